"""A real HTTP receiver on loopback (aiohttp, in its own thread and loop) that records every
request, for the delivery and end-to-end notification tests (fixture `receiver`)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each request with the next scripted (status, body), then 200 `ok` (or Slack's
    `{"ok": true}` under /api/)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *responses: tuple[int, str]) -> None:
        with self.lock:
            self.script.extend(responses)

    def wait_for(self, count: int, *, timeout: float = 30.0) -> list[Received]:
        """At least `count` requests (fails after `timeout` seconds)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise AssertionError(
                    f"the receiver got {len(self.requests)} request(s), expected {count}: "
                    f"{[(r.method, r.path, r.body[:80]) for r in self.requests]}"
                )
            return list(self.requests)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        with self.arrived:
            self.requests.append(
                Received(
                    method=request.method,
                    path=request.path,
                    query=request.query_string,
                    headers=dict(request.headers),
                    body=body,
                )
            )
            status, text = self.script.pop(0) if self.script else (200, "")
            self.arrived.notify_all()
        if not text:
            text = '{"ok": true}' if request.path.startswith("/api/") else "ok"
        return web.Response(status=status, text=text)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A `Receiver` listening on a free loopback port until the block ends."""
    state = Receiver()
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    runner: web.AppRunner | None = None

    async def start() -> None:
        nonlocal runner
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", state.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state.port = int(runner.addresses[0][1])
        ready.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        assert runner is not None
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "the receiver did not start"
    try:
        yield state
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
