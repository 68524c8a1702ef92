"""Shared fixtures of the provider tests: real servers on loopback, never stubs.

- `prometheus` (module scope): a real Prometheus (Debian's package) with a 1 s scrape interval,
  whose targets a test sets with `prometheus.scrape(...)` (file-based discovery, picked up in
  about a second). Missing binary: the tests skip locally and FAIL under CI (env `CI` set), since
  `.ci/run` installs it. The first sample of a new target takes ~5 s; share one per module.
- `http_server` / `https_server` (function scope): a local aiohttp server; a test registers what
  each path answers (`server.route(...)`, `server.json(...)`, `server.hang(...)` for never)
  and reads what was sent (`server.requests`). `https_server` uses a self-signed certificate
  (for `insecure`).
- `module_processes` + `start_demo_app(...)`: real demo-app processes, stopped after the module.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rollwise.demo.prometheus import PrometheusServer as DemoPrometheus

DEADLINE_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, *, seconds: float = DEADLINE_S, alive: Callable[[], bool]) -> None:
    """Poll `url` until it answers 2xx; fail if `alive()` turns false or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if 200 <= response.status < 300:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        if not alive():
            pytest.fail(f"the process behind {url} exited before it answered")
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {seconds} s")
        time.sleep(0.02)


# --- processes ------------------------------------------------------------------------------------


class Processes:
    """Processes started by one test; all stopped (SIGTERM, then SIGKILL) when it ends."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            list(argv),
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def module_processes() -> Iterator[Processes]:
    processes = Processes()
    try:
        yield processes
    finally:
        processes.stop_all()


@dataclass(frozen=True)
class DemoApp:
    color: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def start_demo_app(
    processes: Processes,
    color: str,
    *,
    service: str = "myapp",
    version: str | None = None,
    env: dict[str, str] | None = None,
) -> DemoApp:
    """A real `rollwise.demo.app` process (its `/metrics` has the seed's series); `env` adds
    e.g. `LATENCY_MS` or `ERROR_RATE`."""
    port = free_port()
    env = {**(env or {}), "PORT": str(port), "SERVICE_NAME": service}
    if version is not None:
        env["ROLLWISE_POD_TEMPLATE_HASH"] = version
    process = processes.start(
        [sys.executable, "-m", "rollwise.demo.app", "--color", color], env=env
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", alive=lambda: process.poll() is None)
    return DemoApp(color=color, port=port, process=process)


def send_requests(url: str, count: int) -> list[int]:
    """`count` GETs of `url`, the status codes in order."""
    codes = []
    for _ in range(count):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                codes.append(response.status)
        except urllib.error.HTTPError as exc:
            codes.append(exc.code)
    return codes


# --- Prometheus -----------------------------------------------------------------------------------


class PrometheusServer(DemoPrometheus):
    """The demo's real Prometheus runner, with the queries tests wait on and check."""

    def query(self, promql: str) -> dict[str, Any]:
        """The `data` of an instant query (for waiting and for checking expectations)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            body: dict[str, Any] = json.load(response)
        return dict(body["data"])

    def values(self, promql: str) -> list[float]:
        """The sample values of an instant query (scalar, vector or matrix), in order."""
        data = self.query(promql)
        result = data.get("result")
        if data.get("resultType") == "scalar":
            samples = [result]
        elif data.get("resultType") == "vector":
            samples = [item["value"] for item in result or []]
        else:
            samples = [value for item in result or [] for value in item.get("values", [])]
        return [float(sample[1]) for sample in samples]

    def wait_until(
        self, promql: str, check: Callable[[list[float]], bool], *, seconds: float = 30.0
    ) -> list[float]:
        """Poll the query until `check(values)` holds; return those values."""
        deadline = time.monotonic() + seconds
        while True:
            values = self.values(promql)
            if check(values):
                return values
            if self.process is not None and self.process.poll() is not None:
                pytest.fail("prometheus exited")
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus never satisfied the check for {promql!r}: {values}")
            time.sleep(0.2)


def prometheus_binary() -> str:
    """The `prometheus` binary, or skip (locally) / fail (under CI) without it."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = "prometheus is not installed (apt-get install prometheus; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    binary = prometheus_binary()
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), binary=binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --- a local HTTP server --------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True)


@dataclass
class LocalHTTPServer:
    """Answers each (method, path) as registered; 404 otherwise. Records every request."""

    url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def route(self, method: str, path: str, handler: Handler) -> None:
        """`handler` answers `method path` (`*` for any method)."""
        self.routes[(method.upper(), path)] = handler

    def json(self, method: str, path: str, payload: Any, *, status: int = 200) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            return web.json_response(payload, status=status)

        self.route(method, path, answer)

    def text(
        self,
        method: str,
        path: str,
        body: str,
        *,
        status: int = 200,
        content_type: str = "text/plain",
    ) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            return web.Response(text=body, status=status, content_type=content_type)

        self.route(method, path, answer)

    def hang(self, method: str, path: str) -> None:
        """Never answer `method path` (until the test ends): for timeouts."""

        async def wait(request: web.Request) -> web.StreamResponse:
            await self.released.wait()
            return web.Response(status=503, text="released at the end of the test")

        self.route(method, path, wait)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query={key: request.query.getall(key) for key in request.query},
                headers=dict(request.headers),
                body=await request.read(),
            )
        )
        handler = self.routes.get((request.method, request.path)) or self.routes.get(
            ("*", request.path)
        )
        if handler is None:
            return web.Response(status=404, text=f"no route for {request.method} {request.path}")
        return await handler(request)


async def _serve(ssl_context: ssl.SSLContext | None) -> AsyncIterator[LocalHTTPServer]:
    server = LocalHTTPServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
    try:
        await site.start()
        server.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        yield server
    finally:
        server.released.set()
        await runner.cleanup()


@pytest.fixture
async def http_server() -> AsyncIterator[LocalHTTPServer]:
    async for server in _serve(None):
        yield server


@pytest.fixture(scope="session")
def self_signed_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no client trusts (for `insecure: true` tests)."""
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def https_server(
    self_signed_certificate: tuple[Path, Path],
) -> AsyncIterator[LocalHTTPServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = self_signed_certificate
    context.load_cert_chain(cert, key)
    async for server in _serve(context):
        yield server
