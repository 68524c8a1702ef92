"""KubeClient and the proxy environment: `HTTP(S)_PROXY` and `NO_PROXY` are honoured as
kubectl honours them (the client reads them once when it connects, not before every request),
against the test API server and a real forward proxy over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from tests.kubernetes.apiserver import KubeApi

from rollwise.platforms.kubernetes.client import KubeClient

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "myapp", "namespace": "default"},
    "spec": {"selector": {"app": "myapp"}},
}


class ForwardProxy:
    """A plain-HTTP forward proxy: records each request's absolute URL and relays it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""

    async def relay(self, request: web.Request) -> web.Response:
        self.seen.append(str(request.url))
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                str(request.url),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                data=await request.read(),
            ) as answer,
        ):
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                content_type=answer.content_type,
            )


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    forward = ForwardProxy()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", forward.relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    forward.url = f"http://127.0.0.1:{port}"
    try:
        yield forward
    finally:
        await runner.cleanup()


def _environment(monkeypatch: pytest.MonkeyPatch, *, proxy: str, no_proxy: str | None) -> None:
    for name in ("http_proxy", "HTTPS_PROXY", "https_proxy", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    if no_proxy is not None:
        monkeypatch.setenv("NO_PROXY", no_proxy)


async def test_requests_go_through_the_proxy_the_environment_names(
    kube_api: KubeApi, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_api.create(SERVICE)
    _environment(monkeypatch, proxy=proxy.url, no_proxy=None)
    async with await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path)) as client:
        found = await client.get("v1", "Service", "myapp", "default")
        listed = await client.list("v1", "Service", "default")
    assert found is not None
    assert found["spec"]["selector"] == {"app": "myapp"}
    assert [item["metadata"]["name"] for item in listed.items] == ["myapp"]
    assert proxy.seen == [
        f"{kube_api.url}/api/v1/namespaces/default/services/myapp",
        f"{kube_api.url}/api/v1/namespaces/default/services",
    ]


async def test_a_host_no_proxy_names_is_reached_directly(
    kube_api: KubeApi, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_api.create(SERVICE)
    _environment(monkeypatch, proxy=proxy.url, no_proxy="127.0.0.1")
    async with await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path)) as client:
        found = await client.get("v1", "Service", "myapp", "default")
    assert found is not None
    assert proxy.seen == []
