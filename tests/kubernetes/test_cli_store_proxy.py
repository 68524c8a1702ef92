"""KubeCliStore (the CLI's blocking transport) and proxies: `HTTP_PROXY` and `NO_PROXY` honoured
as kubectl honours them, and a kubeconfig `proxy-url` with credentials, against the test API
server and a real forward proxy over HTTP (`tests.kubernetes.test_client_proxy`'s, which maps
the server's name `kube.test` to 127.0.0.1: a loopback server is never sent to the environment's
proxy).

The API server runs in the test's loop; the store's blocking calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from tests.kubernetes.apiserver import KubeApi
from tests.kubernetes.test_client_proxy import KUBE_HOST, SERVICE, ForwardProxy, named_kubeconfig

from rollwise.api.errors import TransientError
from rollwise.platforms.kubernetes.cli_store import KubeCliStore
from rollwise.platforms.kubernetes.client import KubeClient

T = TypeVar("T")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class RecordingProxy(ForwardProxy):
    """The forward proxy, also noting the Proxy-Authorization each request came with."""

    def __init__(self) -> None:
        super().__init__()
        self.authorizations: list[str | None] = []

    async def relay(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Proxy-Authorization"))
        return await super().relay(request)


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[RecordingProxy]:
    forward = RecordingProxy()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", forward.relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    forward.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield forward
    finally:
        await runner.cleanup()


@pytest.fixture(autouse=True)
def _no_proxy_of_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


async def with_store(kubeconfig: Path, work: Callable[[KubeCliStore], T]) -> T:
    """`work(store)` in a worker thread, the store opened on `kubeconfig` and closed after."""

    def run() -> T:
        with KubeCliStore.open(kubeconfig=str(kubeconfig)) as store:
            return work(store)

    return await asyncio.to_thread(run)


def read_and_write(store: KubeCliStore) -> list[Any]:
    found = store.get("Service", "myapp")
    listed = store.list("Service", "default")
    with store.transaction():
        store.get("Service", "myapp")
        patched = store.patch("Service", "myapp", merge={"metadata": {"labels": {"via": "proxy"}}})
    return [found, [_name(o) for o in listed], patched]


def _name(obj: Any) -> str:
    return str(obj["metadata"]["name"])


async def test_the_cli_store_goes_through_the_proxy_the_environment_names(
    kube_api: KubeApi, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_api.create(SERVICE)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    path, server = named_kubeconfig(kube_api)
    found, listed, patched = await with_store(path, read_and_write)
    assert found["spec"]["selector"] == {"app": "myapp"}
    assert listed == ["myapp"]
    assert patched["metadata"]["labels"] == {"via": "proxy"}
    service = f"{server}/api/v1/namespaces/default/services"
    assert proxy.seen == [f"{service}/myapp", service, f"{service}/myapp", f"{service}/myapp"]
    assert [r.method for r in kube_api.requests_to(None, "/api/v1/namespaces/default/services")][
        -1
    ] == "PATCH"
    assert proxy.authorizations == [None] * 4


async def test_a_host_no_proxy_names_is_not_sent_to_the_proxy_by_the_cli_store(
    kube_api: KubeApi, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # reached directly, where only the proxy knows the name: the store cannot resolve it
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", f"10.0.0.0/8,{KUBE_HOST}")
    path, server = named_kubeconfig(kube_api)
    with pytest.raises(TransientError) as caught:
        await with_store(path, lambda store: store.get("Service", "myapp"))
    assert f"cannot reach the Kubernetes API at {server}" in str(caught.value)
    assert proxy.seen == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_loopback_server_is_reached_directly_by_the_cli_store(
    kube_api: KubeApi, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    # a kind cluster on 127.0.0.1 with a corporate proxy set, as kubectl reaches it
    kube_api.create(SERVICE)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    path, _ = named_kubeconfig(kube_api, host=host)
    found, listed, patched = await with_store(path, read_and_write)
    assert found["metadata"]["name"] == "myapp"
    assert listed == ["myapp"]
    assert patched["metadata"]["labels"] == {"via": "proxy"}
    assert proxy.seen == []


def proxied_kubeconfig(kube_api: KubeApi, proxy_url: str) -> Path:
    """The test server's kubeconfig (127.0.0.1) with a `proxy-url` for its cluster."""
    config = yaml.safe_load(kube_api.kubeconfig_path.read_text())
    config["clusters"][0]["cluster"]["proxy-url"] = proxy_url
    path = kube_api.kubeconfig_path.with_name("proxied-kubeconfig")
    path.write_text(yaml.safe_dump(config))
    return path


async def test_proxy_url_is_used_for_a_loopback_server_with_its_credentials(
    kube_api: KubeApi, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_api.create(SERVICE)
    # the kubeconfig's proxy-url is for every host, loopback too, and wins over NO_PROXY
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    user_url = proxy.url.replace("http://", "http://deploy%40ci:s%3Acret@")
    path = proxied_kubeconfig(kube_api, user_url)
    found = await with_store(path, lambda store: store.get("Service", "myapp"))
    async with await KubeClient.connect(kubeconfig=str(path)) as client:
        also = await client.get("v1", "Service", "myapp", "default")
    assert found is not None
    assert also is not None
    expected = "Basic " + base64.b64encode(b"deploy@ci:s:cret").decode()
    assert proxy.authorizations == [expected, expected]
    service = f"{kube_api.url}/api/v1/namespaces/default/services/myapp"
    assert proxy.seen == [service, service]
