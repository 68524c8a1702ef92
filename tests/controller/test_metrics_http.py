"""The controller's HTTP server on a real socket: `/metrics` in Prometheus' text format,
`/healthz`, routes added by others, and a clear refusal when the port is taken."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from tests.controller.metrics_support import parse_series, rollout, value

from rollwise.api.errors import UserError
from rollwise.controller.http import ControllerHTTPServer
from rollwise.controller.metrics import ControllerMetrics
from rollwise.core.timestamps import ManualClock
from rollwise.platforms.local.store import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "state.db") as opened:
        yield opened


@pytest.fixture
def metrics(store: SqliteStore) -> ControllerMetrics:
    clock = ManualClock(datetime(2026, 11, 26, tzinfo=UTC))
    return ControllerMetrics(store, clock=clock)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def test_metrics_and_healthz(
    store: SqliteStore, metrics: ControllerMetrics, client: aiohttp.ClientSession
) -> None:
    healthy = [True]
    server = ControllerHTTPServer(metrics, port=0, healthy=lambda: healthy[0])
    await server.start()
    try:
        assert server.port != 0
        store.create(rollout("shop"))
        async with client.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            series = parse_series(await response.text())
        assert value(series, "rollout_info_replicas_desired", namespace="default", name="shop") == 4

        async with client.get(f"{server.url}/healthz") as response:
            assert (response.status, await response.text()) == (200, "ok\n")
        healthy[0] = False
        async with client.get(f"{server.url}/healthz") as response:
            assert response.status == 503
    finally:
        await server.stop()


async def test_routes_added_before_start_are_served(
    metrics: ControllerMetrics, client: aiohttp.ClientSession
) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    server = ControllerHTTPServer(metrics, port=0)
    server.add_routes([web.get("/hello", hello)])
    dashboard = web.Application()
    dashboard.router.add_get("/", hello)
    server.mount("/dashboard", dashboard)
    await server.start()
    try:
        for path in ("/hello", "/dashboard/"):
            async with client.get(f"{server.url}{path}") as response:
                assert (response.status, await response.text()) == (200, "hello")
    finally:
        await server.stop()


async def test_a_taken_port_is_a_user_error_naming_the_option(metrics: ControllerMetrics) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ControllerHTTPServer(metrics, port=port)
        with pytest.raises(UserError, match="--metrics-port"):
            await server.start()
        await server.stop()  # nothing started: nothing to stop, no error
