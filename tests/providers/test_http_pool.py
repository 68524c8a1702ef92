"""Provider requests inside `shared_session()` (how the controllers run) share kept-alive
connections to a metrics server; outside it each request has a session and connection of its
own. Against a real aiohttp server that records which client port each request came from."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web

from rollwise.providers.http import HTTPAnswer, fetch, shared_session


class Server:
    def __init__(self) -> None:
        self.url = ""
        self.peers: list[object] = []
        self.cookies: list[str] = []

    async def answer(self, request: web.Request) -> web.Response:
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        self.cookies.append(request.headers.get("Cookie", ""))
        response = web.json_response({"status": "success"})
        response.set_cookie("session", "from-this-server")
        return response


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    recorder = Server()
    app = web.Application()
    app.router.add_get("/", recorder.answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    # a host name, not an address: a cookie jar keeps no cookies of bare IP addresses
    recorder.url = f"http://localhost:{runner.addresses[0][1]}/"
    try:
        yield recorder
    finally:
        await runner.cleanup()


async def three_fetches(url: str) -> None:
    for _ in range(3):
        answer = await fetch("GET", url, what="test server", timeout_s=5)
        assert isinstance(answer, HTTPAnswer)
        assert answer.status == 200


async def test_inside_the_shared_session_requests_reuse_one_connection(server: Server) -> None:
    async with shared_session():
        await three_fetches(server.url)
    assert len(server.peers) == 3
    assert len(set(server.peers)) == 1


async def test_outside_it_each_request_opens_its_own(server: Server) -> None:
    await three_fetches(server.url)
    assert len(set(server.peers)) == 3


async def test_the_shared_session_keeps_no_cookies(server: Server) -> None:
    async with shared_session():
        await three_fetches(server.url)
    assert server.cookies == ["", "", ""]
