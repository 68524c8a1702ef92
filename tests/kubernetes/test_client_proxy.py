"""KubeClient and the proxy environment: `HTTP(S)_PROXY` and `NO_PROXY` are honoured as
kubectl honours them (the client reads them once when it connects, not before every request),
against the test API server and a real forward proxy over HTTP.

As in Go (httpproxy.useProxy), `localhost` and loopback addresses never go to the environment's
proxy; so the proxied cases name the server `kube.test` (`named_kubeconfig`), a name the client
never resolves when it goes through a proxy and the proxy maps to the test server's 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from tests.kubernetes.apiserver import KubeApi
from yarl import URL

from rollwise.api.errors import TransientError
from rollwise.platforms.kubernetes.client import KubeClient

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "myapp", "namespace": "default"},
    "spec": {"selector": {"app": "myapp"}},
}
KUBE_HOST = "kube.test"  # the test server's name behind a proxy (`ForwardProxy.hosts`)


class ForwardProxy:
    """A plain-HTTP forward proxy: records each request's absolute URL and relays it, to the
    address `hosts` maps its host to (the proxy's own name resolution)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""
        self.hosts = {KUBE_HOST: "127.0.0.1"}

    async def relay(self, request: web.Request) -> web.Response:
        self.seen.append(str(request.url))
        target = request.url
        if target.host in self.hosts:
            target = target.with_host(self.hosts[target.host])
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                target,
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


def named_kubeconfig(kube_api: KubeApi, *, host: str = KUBE_HOST) -> tuple[Path, str]:
    """The test server's kubeconfig with its server named `host`; (path, server URL)."""
    server = str(URL(kube_api.url).with_host(host))
    config = yaml.safe_load(kube_api.kubeconfig_path.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    path = kube_api.kubeconfig_path.with_name(f"kubeconfig-{host}")
    path.write_text(yaml.safe_dump(config))
    return path, server


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
    path, server = named_kubeconfig(kube_api)
    async with await KubeClient.connect(kubeconfig=str(path)) as client:
        found = await client.get("v1", "Service", "myapp", "default")
        listed = await client.list("v1", "Service", "default")
    assert found is not None
    assert found["spec"]["selector"] == {"app": "myapp"}
    assert [item["metadata"]["name"] for item in listed.items] == ["myapp"]
    assert proxy.seen == [
        f"{server}/api/v1/namespaces/default/services/myapp",
        f"{server}/api/v1/namespaces/default/services",
    ]


async def test_a_host_no_proxy_names_is_not_sent_to_the_proxy(
    kube_api: KubeApi, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # reached directly, where only the proxy knows the name: the client cannot resolve it
    _environment(monkeypatch, proxy=proxy.url, no_proxy=f"other.test,{KUBE_HOST}")
    path, server = named_kubeconfig(kube_api)
    async with await KubeClient.connect(kubeconfig=str(path)) as client:
        with pytest.raises(TransientError) as caught:
            await client.get("v1", "Service", "myapp", "default")
    assert f"cannot reach the Kubernetes API at {server}" in str(caught.value)
    assert proxy.seen == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_loopback_server_is_reached_directly_despite_the_environment_proxy(
    kube_api: KubeApi, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    # a kind cluster on 127.0.0.1 with a corporate proxy set, as kubectl reaches it
    kube_api.create(SERVICE)
    _environment(monkeypatch, proxy=proxy.url, no_proxy=None)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    path, _ = named_kubeconfig(kube_api, host=host)
    async with await KubeClient.connect(kubeconfig=str(path)) as client:
        found = await client.get("v1", "Service", "myapp", "default")
    assert found is not None
    assert found["metadata"]["name"] == "myapp"
    assert proxy.seen == []
