"""The CLI's transport to the Kubernetes API: `wire` requests over the standard library.

Where it sits: `KubeCliStore` (the CLI verbs and the dashboard in the kubernetes context) sends
every call through `BlockingTransport`, which is `KubeClient`'s twin without asyncio, aiohttp or
the client libraries: `http.client` and `ssl` only, so a CLI command against a cluster starts as
fast as one against a local home (importing aiohttp costs about twice the whole command). Same
`config` (server, TLS, proxy, credentials), same `wire` (paths, bodies, the reading of answers
and errors). Each thread keeps one keep-alive connection (the dashboard calls from worker
threads); a watch gets a connection of its own, which `Stream.close` shuts from any thread.

A write is never sent twice (as urllib3 and Go's net/http): before an idle connection is used
again it is checked for the server having closed it, and opened anew; only a GET is sent once
more when the connection breaks anyway. A write that breaks off after it was sent fails saying
it may or may not have been applied (the CLI's writes carry a resourceVersion, so the user may
run the command again).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from rollwise.api.errors import ClusterAccessError, TransientError
from rollwise.platforms.kubernetes.config import ClusterConfig, Endpoint
from rollwise.platforms.kubernetes.wire import Request, WatchEvent, read_answer, read_watch_line

REQUEST_TIMEOUT = 60.0  # seconds without an answer before a call fails (TransientError)
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS that checks the certificate against `tls-server-name` when the kubeconfig sets one."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname
        self._tls = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP, and the proxy's CONNECT when tunnelled
        name = self._server_hostname or getattr(self, "_tunnel_host", None) or self.host
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=name)


def _proxy_authorization(endpoint: Endpoint) -> dict[str, str]:
    """Proxy-Authorization for a proxy URL with credentials (http://user:pass@proxy:3128)."""
    proxy = urlsplit(endpoint.proxy) if endpoint.proxy else None
    if proxy is None or proxy.username is None:
        return {}
    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode()}


def _connection(endpoint: Endpoint, timeout: float | None) -> http.client.HTTPConnection:
    host, port = endpoint.host, endpoint.port
    proxy = urlsplit(endpoint.proxy) if endpoint.proxy else None
    if proxy is not None:
        host, port = proxy.hostname or "", proxy.port or (443 if proxy.scheme == "https" else 80)
    if endpoint.ssl_context is None:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    connection = _TLSConnection(
        host,
        port,
        context=endpoint.ssl_context,
        server_hostname=endpoint.server_hostname,
        timeout=timeout,
    )
    if proxy is not None:
        connection.set_tunnel(endpoint.host, endpoint.port, headers=_proxy_authorization(endpoint))
    return connection


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether an idle keep-alive connection was closed by the server (urllib3's check).

    An idle connection has nothing to read: readable means end-of-file, a reset, or bytes it
    should not have; none of them is worth sending a request on.
    """
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _target(endpoint: Endpoint, request: Request) -> str:
    # through a proxy, plain HTTP names the whole URL; otherwise the path below the server's
    if endpoint.proxy and endpoint.ssl_context is None:
        return endpoint.url + request.target
    return endpoint.prefix + request.target


class Stream:
    """One watch: its events, until the server ends it or `close` is called (any thread)."""

    def __init__(self, connection: http.client.HTTPConnection, request: Request) -> None:
        self._connection = connection
        self._request = request
        self._closed = False

    def __iter__(self) -> Iterator[WatchEvent]:
        request = self._request
        try:
            response = self._connection.getresponse()
            if response.status >= 400:
                read_answer(request, response.status, response.read().decode(errors="replace"))
            while line := response.readline():
                event = read_watch_line(request, line)
                if event is not None:
                    yield event
        except (OSError, http.client.HTTPException) as error:
            if self._closed:
                return
            raise TransientError(f"the watch of {request.what} broke off: {error}") from error
        finally:
            self._connection.close()

    def close(self) -> None:
        self._closed = True
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class BlockingTransport:
    """Sends `wire` requests and reads their answers (see the module doc)."""

    def __init__(self, cluster: ClusterConfig) -> None:
        self.cluster = cluster
        self._local = threading.local()
        # through a plain-HTTP proxy each request carries the proxy's credentials (a tunnel
        # sends them once, with its CONNECT)
        endpoint = cluster.endpoint
        self._proxy_headers = _proxy_authorization(endpoint) if endpoint.ssl_context is None else {}
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []

    def _send(self, connection: http.client.HTTPConnection, request: Request) -> None:
        # `connection.request` takes a mapping; a header may repeat (Impersonate-Group)
        body = request.payload()
        connection.putrequest(request.method, _target(self.cluster.endpoint, request))
        for name, value in (
            *request.headers().items(),
            *self._proxy_headers.items(),
            *self.cluster.credentials.headers(),
        ):
            connection.putheader(name, value)
        if body is not None or request.method in ("POST", "PUT", "PATCH"):
            connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body)

    def _failure(self, error: Exception) -> Exception:
        url = self.cluster.endpoint.url
        if isinstance(error, ssl.SSLCertVerificationError):
            return ClusterAccessError(
                f"the Kubernetes API at {url} is not trusted: {error.verify_message} (check "
                f"certificate-authority in {self.cluster.source})"
            )
        return TransientError(f"cannot reach the Kubernetes API at {url}: {error}")

    def _thread_connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = _connection(
                self.cluster.endpoint, REQUEST_TIMEOUT
            )
            with self._lock:
                self._connections.append(connection)
        elif connection.sock is not None and _closed_by_server(connection.sock):
            connection.close()  # opened anew below, before anything is sent
        return connection

    def call(self, request: Request) -> Any:
        """The request's answer (see `wire.read_answer`); TransientError when unreachable."""
        connection = self._thread_connection()
        for attempt in (1, 2):
            reused = connection.sock is not None
            try:
                if not reused:
                    connection.connect()  # TCP, the proxy's CONNECT, TLS: nothing sent yet
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                raise self._failure(error) from error
            try:
                self._send(connection, request)
                response = connection.getresponse()
                text = response.read().decode(errors="replace")
            except (OSError, http.client.HTTPException) as error:
                connection.close()  # http.client opens it again on the next request
                if request.method == "GET":
                    if reused and attempt == 1 and isinstance(error, _STALE):
                        continue  # closed as it was taken up: a read is sent once more
                    raise self._failure(error) from error
                raise TransientError(
                    f"cannot {request.verb} {request.what}: the connection to the Kubernetes "
                    f"API at {self.cluster.endpoint.url} broke off before its answer ({error}); "
                    f"the {request.method} may or may not have been applied: read it again "
                    "before trying again"
                ) from error
            return read_answer(request, response.status, text)
        raise AssertionError("unreachable")

    def stream(self, request: Request, *, idle_timeout: float | None) -> Stream:
        """Open a watch; iterate the returned Stream for its events."""
        connection = _connection(self.cluster.endpoint, idle_timeout)
        try:
            self._send(connection, request)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise self._failure(error) from error
        return Stream(connection, request)

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
