"""Both transports over TLS: `KubeClient` (aiohttp) and `KubeCliStore` on `BlockingTransport`
(http.client) against a real HTTPS endpoint, with certificates made by `openssl`.

The endpoint (aiohttp, in the test's loop) answers a GET and a PATCH of one Rollout and a watch
of the rollouts that sends two events and then stays open; it records the method and headers of
every request and the connections it accepted, and can hang up on a request it has read. The
blocking transport runs in a worker thread (`asyncio.to_thread`).
Each case loads a kubeconfig written for it, as a user's would be: the CA as a file or as data,
a wrong CA, no CA but insecure-skip-tls-verify, tls-server-name, client certificates for an
endpoint that requires them (mTLS), an exec plugin, the service account in a pod, a CONNECT proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp import web
from multidict import CIMultiDict
from tests.kubernetes.pki import Pki, data

from rollwise.api.errors import RollwiseError, TransientError, UserError
from rollwise.platforms.kubernetes import config
from rollwise.platforms.kubernetes.blocking import BlockingTransport
from rollwise.platforms.kubernetes.cli_store import KubeCliStore
from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.platforms.kubernetes.config import load_configuration
from rollwise.platforms.kubernetes.wire import Requests

T = TypeVar("T")
ARGO = "argoproj.io/v1alpha1"
ROLLOUTS = "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts"
ENVIRONMENT = (
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "POD_NAMESPACE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(config, "SERVICE_ACCOUNT", tmp_path / "no-service-account")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


def rollout(version: int) -> dict[str, Any]:
    return {
        "apiVersion": ARGO,
        "kind": "Rollout",
        "metadata": {"name": "myapp", "namespace": "default", "resourceVersion": str(version)},
        "spec": {"replicas": version},
    }


@dataclass
class Endpoint:
    """The HTTPS API endpoint of one test (see the module doc)."""

    url: str = ""
    seen: list[CIMultiDict[str]] = field(default_factory=list)
    connections: list[asyncio.BaseTransport] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    methods: list[str] = field(default_factory=list)
    hang_up: list[str] = field(default_factory=list)  # methods to read once and not answer

    def _note(self, request: web.Request) -> None:
        self.seen.append(CIMultiDict(request.headers))
        self.methods.append(request.method)
        if request.transport is not None and request.transport not in self.connections:
            self.connections.append(request.transport)

    async def get(self, request: web.Request) -> web.Response:
        self._note(request)
        await request.read()
        if request.method in self.hang_up and request.transport is not None:
            # the request was read (a write may have been applied), and no answer comes
            self.hang_up.remove(request.method)
            request.transport.close()
        return web.json_response(rollout(1 if request.method == "GET" else 2))

    async def watch(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        if request.query.get("watch") != "1":
            return web.json_response({"kind": "RolloutList", "metadata": {}, "items": []})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        since = int(request.query.get("resourceVersion") or 0)
        for version, kind in ((2, "ADDED"), (3, "MODIFIED")):
            if version > since:
                line = json.dumps({"type": kind, "object": rollout(version)}) + "\n"
                await response.write(line.encode())
        with contextlib.suppress(TimeoutError):  # held open, as a watch is, until the end
            await asyncio.wait_for(self.stopping.wait(), 20)
        return response

    def authorization(self) -> list[str]:
        return [headers.get("Authorization", "") for headers in self.seen]

    def drop_connections(self) -> list[asyncio.BaseTransport]:
        """Close every connection from the server's side (as an idle keep-alive times out)."""
        dropped, self.connections = self.connections, []
        for transport in dropped:
            transport.close()
        return dropped


@contextlib.asynccontextmanager
async def serving(
    certificate: tuple[Path, Path], *, client_ca: Path | None = None
) -> AsyncIterator[Endpoint]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    endpoint = Endpoint()
    app = web.Application()
    app.router.add_get(f"{ROLLOUTS}/myapp", endpoint.get)
    app.router.add_patch(f"{ROLLOUTS}/myapp", endpoint.get)
    app.router.add_get(ROLLOUTS, endpoint.watch)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    endpoint.url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield endpoint
    finally:
        endpoint.stopping.set()
        await runner.cleanup()


def write_kubeconfig(
    folder: Path, cluster: dict[str, Any], user: dict[str, Any] | None = None
) -> Path:
    path = folder / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "tls", "cluster": cluster}],
                "users": [{"name": "tls", "user": user or {"token": "tls-token"}}],
                "contexts": [{"name": "tls", "context": {"cluster": "tls", "user": "tls"}}],
                "current-context": "tls",
            }
        )
    )
    return path


async def async_get(kubeconfig: Path | None) -> dict[str, Any] | None:
    path = None if kubeconfig is None else str(kubeconfig)
    async with await KubeClient.connect(kubeconfig=path) as client:
        return await client.get(ARGO, "Rollout", "myapp", "default")


def blocking_get(kubeconfig: Path | None) -> dict[str, Any] | None:
    with KubeCliStore.open(kubeconfig=None if kubeconfig is None else str(kubeconfig)) as store:
        return store.get("Rollout", "myapp")


async def both_get(kubeconfig: Path | None) -> list[dict[str, Any] | None]:
    """The Rollout, read through KubeClient and then through KubeCliStore."""
    return [await async_get(kubeconfig), await asyncio.to_thread(blocking_get, kubeconfig)]


async def failures(kubeconfig: Path) -> list[RollwiseError]:
    """What each transport raised (both must)."""
    raised: list[RollwiseError] = []
    with pytest.raises(RollwiseError) as caught:
        await async_get(kubeconfig)
    raised.append(caught.value)
    with pytest.raises(RollwiseError) as caught:
        await asyncio.to_thread(blocking_get, kubeconfig)
    raised.append(caught.value)
    return raised


def names(objects: list[dict[str, Any] | None]) -> list[str]:
    return [str(((o or {}).get("metadata") or {}).get("name")) for o in objects]


# --- trusting the server -------------------------------------------------------------------------


async def test_the_certificate_authority_as_a_file(tmp_path: Path, pki: Pki) -> None:
    async with serving(pki.server) as api:
        path = write_kubeconfig(tmp_path, {"server": api.url, "certificate-authority": str(pki.ca)})
        assert names(await both_get(path)) == ["myapp", "myapp"]
    assert api.authorization() == ["Bearer tls-token", "Bearer tls-token"]


async def test_the_certificate_authority_as_data(tmp_path: Path, pki: Pki) -> None:
    async with serving(pki.server) as api:
        cluster = {"server": api.url, "certificate-authority-data": data(pki.ca)}
        assert names(await both_get(write_kubeconfig(tmp_path, cluster))) == ["myapp", "myapp"]


async def test_a_server_signed_by_another_authority_is_not_trusted(
    tmp_path: Path, pki: Pki
) -> None:
    async with serving(pki.server) as api:
        cluster = {"server": api.url, "certificate-authority": str(pki.stranger_ca)}
        path = write_kubeconfig(tmp_path, cluster)
        for error in await failures(path):
            assert isinstance(error, UserError)  # not worth retrying: the kubeconfig is wrong
            assert f"the Kubernetes API at {api.url} is not trusted" in str(error)
            assert str(path) in str(error)
    assert api.seen == []


async def test_the_kubeconfig_authority_is_the_only_one_trusted(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the machine's store trusts the server's issuer, the kubeconfig names another authority:
    # kubectl trusts only the kubeconfig's
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    async with serving(pki.server) as api:
        cluster = {"server": api.url, "certificate-authority-data": data(pki.stranger_ca)}
        for error in await failures(write_kubeconfig(tmp_path, cluster)):
            assert isinstance(error, UserError)
            assert "not trusted" in str(error)
        # without a CA in the kubeconfig the machine's store is used
        assert names(await both_get(write_kubeconfig(tmp_path, {"server": api.url}))) == [
            "myapp",
            "myapp",
        ]


async def test_insecure_skip_tls_verify_needs_no_authority(tmp_path: Path, pki: Pki) -> None:
    async with serving(pki.named_server) as api:
        cluster = {"server": api.url, "insecure-skip-tls-verify": True}
        assert names(await both_get(write_kubeconfig(tmp_path, cluster))) == ["myapp", "myapp"]


async def test_tls_server_name_is_what_the_certificate_is_checked_against(
    tmp_path: Path, pki: Pki
) -> None:
    # the certificate names kubernetes.test only, and the server is reached as 127.0.0.1
    async with serving(pki.named_server) as api:
        cluster = {"server": api.url, "certificate-authority": str(pki.ca)}
        for error in await failures(write_kubeconfig(tmp_path, cluster)):
            assert isinstance(error, UserError)
            assert "not trusted" in str(error)
        cluster["tls-server-name"] = "kubernetes.test"
        assert names(await both_get(write_kubeconfig(tmp_path, cluster))) == ["myapp", "myapp"]


# --- authenticating ------------------------------------------------------------------------------


async def test_client_certificates_for_an_endpoint_that_requires_them(
    tmp_path: Path, pki: Pki
) -> None:
    certificate, key = pki.client
    async with serving(pki.server, client_ca=pki.ca) as api:
        cluster = {"server": api.url, "certificate-authority-data": data(pki.ca)}
        as_data = {"client-certificate-data": data(certificate), "client-key-data": data(key)}
        as_files = {"client-certificate": str(certificate), "client-key": str(key)}
        assert names(await both_get(write_kubeconfig(tmp_path, cluster, as_data))) == [
            "myapp",
            "myapp",
        ]
        assert names(await both_get(write_kubeconfig(tmp_path, cluster, as_files))) == [
            "myapp",
            "myapp",
        ]
        assert api.authorization() == ["", "", "", ""]  # the certificate is the identity
        # without them the handshake fails: no request gets through
        await failures(write_kubeconfig(tmp_path, cluster))
        assert len(api.seen) == 4


async def test_an_exec_plugin_token_is_the_bearer(tmp_path: Path, pki: Pki) -> None:
    script = (
        "import json, os; spec = json.loads(os.environ['KUBERNETES_EXEC_INFO'])['spec'];"
        "print(json.dumps({'kind': 'ExecCredential',"
        " 'status': {'token': 'exec-for-' + spec['cluster']['server']}}))"
    )
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": ["-c", script],
        "provideClusterInfo": True,
        "interactiveMode": "Never",
    }
    async with serving(pki.server) as api:
        cluster = {"server": api.url, "certificate-authority": str(pki.ca)}
        path = write_kubeconfig(tmp_path, cluster, {"exec": plugin})
        assert names(await both_get(path)) == ["myapp", "myapp"]
    assert api.authorization() == [f"Bearer exec-for-{api.url}"] * 2


async def test_impersonation_headers_reach_the_server(tmp_path: Path, pki: Pki) -> None:
    user = {"token": "admin", "as": "jane", "as-groups": ["devs", "system:authenticated"]}
    async with serving(pki.server) as api:
        cluster = {"server": api.url, "certificate-authority": str(pki.ca)}
        assert names(await both_get(write_kubeconfig(tmp_path, cluster, user))) == [
            "myapp",
            "myapp",
        ]
    for headers in api.seen:
        assert headers.getall("Impersonate-User") == ["jane"]
        assert headers.getall("Impersonate-Group") == ["devs", "system:authenticated"]


async def test_in_a_pod_the_service_account_reaches_the_api(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("service-account-token\n")
    (account / "ca.crt").write_bytes(pki.ca.read_bytes())
    monkeypatch.setattr(config, "SERVICE_ACCOUNT", account)
    async with serving(pki.server) as api:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", api.url.rpartition(":")[2])
        assert names(await both_get(None)) == ["myapp", "myapp"]
    assert api.authorization() == ["Bearer service-account-token"] * 2


# --- connections and watches ---------------------------------------------------------------------


async def test_the_blocking_transport_reconnects_when_the_server_closed_the_idle_connection(
    tmp_path: Path, pki: Pki
) -> None:
    async with serving(pki.server) as api:
        path = write_kubeconfig(tmp_path, {"server": api.url, "certificate-authority": str(pki.ca)})
        transport = BlockingTransport(load_configuration(kubeconfig=str(path)))
        get = Requests("default").get(ARGO, "Rollout", "myapp", "default")
        patch = Requests("default").merge_patch(ARGO, "Rollout", "myapp", "default", {"a": 1})
        loop = asyncio.get_running_loop()
        # one thread for every call: the transport keeps one connection per thread
        with ThreadPoolExecutor(max_workers=1) as thread:
            try:
                first = await loop.run_in_executor(thread, transport.call, get)
                second = await loop.run_in_executor(thread, transport.call, get)
                assert len(api.connections) == 1  # kept alive
                dropped = api.drop_connections()
                await asyncio.sleep(0.05)  # the close reaches the client's socket
                third = await loop.run_in_executor(thread, transport.call, get)
                assert len(api.connections) == 1
                assert api.connections[0] not in dropped  # the third call came on a new one
                # a write, which is never sent twice, goes on a new connection as well
                dropped = api.drop_connections()
                await asyncio.sleep(0.05)
                patched = await loop.run_in_executor(thread, transport.call, patch)
                assert len(api.connections) == 1
                assert api.connections[0] not in dropped
            finally:
                await loop.run_in_executor(thread, transport.close)
    assert [first, second, third, patched] == [rollout(1)] * 3 + [rollout(2)]
    assert api.methods == ["GET", "GET", "GET", "PATCH"]


async def test_a_read_is_sent_again_when_the_server_hangs_up_on_it(
    tmp_path: Path, pki: Pki
) -> None:
    async with serving(pki.server) as api:
        path = write_kubeconfig(tmp_path, {"server": api.url, "certificate-authority": str(pki.ca)})
        transport = BlockingTransport(load_configuration(kubeconfig=str(path)))
        get = Requests("default").get(ARGO, "Rollout", "myapp", "default")
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as thread:
            try:
                await loop.run_in_executor(thread, transport.call, get)
                api.hang_up.append("GET")  # the kept-alive connection is closed as it is used
                again = await loop.run_in_executor(thread, transport.call, get)
            finally:
                await loop.run_in_executor(thread, transport.close)
    assert again == rollout(1)
    assert api.methods == ["GET", "GET", "GET"]
    assert len(api.connections) == 2


async def test_a_write_the_server_hangs_up_on_is_not_sent_again(tmp_path: Path, pki: Pki) -> None:
    async with serving(pki.server) as api:
        path = write_kubeconfig(tmp_path, {"server": api.url, "certificate-authority": str(pki.ca)})
        transport = BlockingTransport(load_configuration(kubeconfig=str(path)))
        requests = Requests("default")
        patch = requests.merge_patch(ARGO, "Rollout", "myapp", "default", {"a": 1})
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as thread:
            try:
                await loop.run_in_executor(
                    thread, transport.call, requests.get(ARGO, "Rollout", "myapp", "default")
                )
                api.hang_up.append("PATCH")  # read on the kept-alive connection, not answered
                with pytest.raises(TransientError) as caught:
                    await loop.run_in_executor(thread, transport.call, patch)
            finally:
                await loop.run_in_executor(thread, transport.close)
    assert api.methods == ["GET", "PATCH"]
    message = str(caught.value)
    assert f"cannot patch {patch.what}" in message
    assert "the PATCH may or may not have been applied" in message


async def test_a_watch_over_tls_through_both_transports(tmp_path: Path, pki: Pki) -> None:
    async with serving(pki.server) as api:
        path = write_kubeconfig(tmp_path, {"server": api.url, "certificate-authority": str(pki.ca)})
        async with await KubeClient.connect(kubeconfig=str(path)) as client:
            events = []
            async with contextlib.aclosing(
                client.watch(ARGO, "Rollout", "default", resource_version="1")
            ) as stream:
                async for event in stream:
                    events.append((event.type, event.object["metadata"]["resourceVersion"]))
                    if len(events) == 2:
                        break
        assert events == [("ADDED", "2"), ("MODIFIED", "3")]

        def watch_with_the_cli_store() -> int:
            with KubeCliStore.open(kubeconfig=str(path)) as store:
                store.get("Rollout", "myapp")  # resourceVersion 1: the watch starts there
                return until(store.revision, lambda changes: changes >= 2)

        assert await asyncio.to_thread(watch_with_the_cli_store) == 2


def until(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> T:
    """`read()` again every 20 ms until `done` holds of it (bounded)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


# --- through a CONNECT proxy ---------------------------------------------------------------------


@dataclass
class Tunnel:
    """An HTTP CONNECT proxy: records each CONNECT target and relays the bytes both ways, to the
    address `hosts` maps the target's host to (the proxy's own name resolution)."""

    url: str = ""
    targets: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=lambda: {"kubernetes.test": "127.0.0.1"})

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            method, target, _ = head.split(" ", 2)
            self.targets.append(f"{method} {target}")
            fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
            self.authorizations.append(fields.get("Proxy-Authorization"))
            host, _, port = target.rpartition(":")
            upstream = self.hosts.get(host, host)
            upstream_reader, upstream_writer = await asyncio.open_connection(upstream, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.mark.parametrize("credentials", [False, True], ids=["https-proxy", "proxy-url"])
async def test_tls_through_a_connect_proxy_keeps_the_server_name(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch, credentials: bool
) -> None:
    # The certificate names kubernetes.test only; the tunnel maps that name to 127.0.0.1.
    tunnel = Tunnel()
    proxy = await asyncio.start_server(tunnel.handle, "127.0.0.1", 0)
    try:
        tunnel.url = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
        async with serving(pki.named_server) as api:
            port = api.url.rpartition(":")[2]
            if credentials:
                # the kubeconfig's proxy, with a user, is for every host, loopback too; the
                # certificate is checked against tls-server-name
                cluster = {
                    "server": api.url,
                    "certificate-authority": str(pki.ca),
                    "tls-server-name": "kubernetes.test",
                    "proxy-url": tunnel.url.replace("http://", "http://ops:pa%24%24@"),
                }
            else:
                # the environment's proxy (never for loopback); the certificate is checked
                # against the tunnel's host, not the proxy's
                cluster = {
                    "server": f"https://kubernetes.test:{port}",
                    "certificate-authority": str(pki.ca),
                }
                monkeypatch.setenv("HTTPS_PROXY", tunnel.url)
            assert names(await both_get(write_kubeconfig(tmp_path, cluster))) == [
                "myapp",
                "myapp",
            ]
    finally:
        proxy.close()
        await proxy.wait_closed()
    address = urlsplit(str(cluster["server"])).netloc
    assert tunnel.targets == [f"CONNECT {address}"] * 2
    expected = "Basic " + base64.b64encode(b"ops:pa$$").decode() if credentials else None
    assert tunnel.authorizations == [expected] * 2
    assert len(api.seen) == 2


async def test_a_loopback_server_is_reached_directly_despite_https_proxy(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    tunnel = Tunnel()
    proxy = await asyncio.start_server(tunnel.handle, "127.0.0.1", 0)
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
        async with serving(pki.server) as api:
            cluster = {"server": api.url, "certificate-authority": str(pki.ca)}
            assert names(await both_get(write_kubeconfig(tmp_path, cluster))) == [
                "myapp",
                "myapp",
            ]
    finally:
        proxy.close()
        await proxy.wait_closed()
    assert tunnel.targets == []
    assert len(api.seen) == 2


async def test_a_transient_failure_when_nothing_listens(tmp_path: Path, pki: Pki) -> None:
    async with serving(pki.server) as api:
        url = api.url
    path = write_kubeconfig(tmp_path, {"server": url, "certificate-authority": str(pki.ca)})
    for error in await failures(path):
        assert isinstance(error, TransientError)
        assert f"cannot reach the Kubernetes API at {url}" in str(error)
