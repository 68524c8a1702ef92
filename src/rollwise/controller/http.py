"""The controller's own HTTP server: `/metrics` and `/healthz`, and where later faces mount.

Who uses it: the local controller starts one on `--metrics-port` (8090 by default, Argo's
metrics port; 0 turns it off) when it starts and stops it when it stops. It listens on
loopback by default: local mode serves one person, and whatever mounts here later (the
dashboard) must not be reachable from the network by accident.

Adding routes: anything with routes of its own adds them to `server.app` (an aiohttp
`Application`) or mounts a sub-application with `mount(prefix, app)` before `start()`; aiohttp
freezes the routes once the server runs.

A scrape reads the store in a worker thread, so a large store never holds up the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiohttp import web

from rollwise.api.errors import UserError
from rollwise.controller.metrics import ControllerMetrics

log = logging.getLogger("rollwise.controller.http")

DEFAULT_METRICS_PORT = 8090
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


class ControllerHTTPServer:
    """`GET /metrics` (Prometheus text format) and `GET /healthz` (`ok`, or 503 when the
    controller loop has stopped turning) on `host:port` (port 0: any free port)."""

    def __init__(
        self,
        metrics: ControllerMetrics,
        *,
        port: int,
        host: str = "127.0.0.1",
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.healthy = healthy
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/healthz", self._healthz)
        self._runner: web.AppRunner | None = None

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Serve more routes (before `start`)."""
        self.app.add_routes(routes)

    def mount(self, prefix: str, app: web.Application) -> None:
        """Serve a whole sub-application under `prefix` (before `start`)."""
        self.app.add_subapp(prefix, app)

    @property
    def url(self) -> str:
        """`http://host:port` of the running server (the port it really got)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen; UserError (saying how to choose another port) when the port is taken."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise UserError(
                f"cannot serve the controller's metrics on {self.host}:{self.port} ({error}); "
                "choose another port with --metrics-port, or 0 to turn them off"
            ) from error
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
                break

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.metrics.render)
        return web.Response(body=body, headers={"Content-Type": TEXT_FORMAT})

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.healthy():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="the controller loop is not running\n")
