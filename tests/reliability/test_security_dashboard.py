"""The dashboard's actions refuse every request that does not carry the token in a header or that
comes from another site, and the store is left exactly as it was.

The dashboard (`rollwise.dashboard.server.create_app`, over a real SQLite store seeded with a
paused canary) is the only HTTP surface of rollwise that writes: the controller's own server
(`rollwise.controller.http`) serves `GET /metrics` and `GET /healthz` only, checked here too.
For each action (promote, promote full, abort, retry, restart, undo, set image; PUT and, where
routed, POST) every forgery below is sent, then the genuine request, which must succeed: so a
refusal is a refusal, not a broken endpoint. `tests/dashboard/test_api.py` checks one action
against one forgery of each kind; this is the full matrix.

Forgeries: no token; a wrong token (header, Bearer); the right token where a browser would put
it for another site or a link would carry it (query string, cookie, Basic auth, JSON body); the
right token with a cross-site `Origin` (another host, another port, `null`), with
`Sec-Fetch-Site: cross-site` or `same-site`, or with a foreign `Host` (DNS rebinding: the page of
`evil.example` resolving to 127.0.0.1 sends `Host: evil.example`). Reads refuse a foreign Host
and a foreign Origin too; no response carries a CORS header; every response carries the CSP.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.cli.cli_objects import NOW
from tests.dashboard.conftest import seed

from rollwise.controller.http import ControllerHTTPServer
from rollwise.controller.metrics import ControllerMetrics
from rollwise.core.timestamps import ManualClock
from rollwise.dashboard.server import create_app
from rollwise.platforms.local.store import SqliteStore

Client = TestClient[Any, Any]
TOKEN = "the-real-token-0123456789abcdef"
BASE = "/api/v1/rollouts/default/shop"

# (method, path, JSON body): every action route of server.py.
ACTIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    *((method, f"{BASE}/promote", None) for method in ("PUT", "POST")),
    *((method, f"{BASE}/promote", {"full": True}) for method in ("PUT", "POST")),
    *(
        (method, f"{BASE}/{verb}", None)
        for verb in ("abort", "retry", "restart")
        for method in ("PUT", "POST")
    ),
    ("PUT", f"{BASE}/undo/1", None),
    ("PUT", f"{BASE}/set/shop/argoproj%2Frollouts-demo:green", None),
]
READS = [
    "/",
    "/rollouts",
    "/api/v1/version",
    "/api/v1/namespace",
    "/api/v1/settings",
    "/api/v1/rollouts/default/info",
    f"{BASE}/info",
]
STREAMS = ["/api/v1/rollouts/default/info/watch", f"{BASE}/info/watch"]

GOOD = {"X-Rollwise-Token": TOKEN}
BASIC = base64.b64encode(f"admin:{TOKEN}".encode()).decode()
# name -> (headers, query string, extra JSON fields, the status that refuses it)
FORGERIES: dict[str, tuple[dict[str, str], str, dict[str, Any], int]] = {
    "no token": ({}, "", {}, 401),
    "wrong token": ({"X-Rollwise-Token": "guess"}, "", {}, 401),
    "wrong bearer": ({"Authorization": "Bearer guess"}, "", {}, 401),
    "empty token": ({"X-Rollwise-Token": ""}, "", {}, 401),
    "token in the query": ({}, f"?token={TOKEN}", {}, 401),
    "token as a query header name": ({}, f"?X-Rollwise-Token={TOKEN}", {}, 401),
    "token in a cookie": ({"Cookie": f"token={TOKEN}; X-Rollwise-Token={TOKEN}"}, "", {}, 401),
    "token as Basic auth": ({"Authorization": f"Basic {BASIC}"}, "", {}, 401),
    "token in the body": ({}, "", {"token": TOKEN}, 401),
    "wrong header, right bearer": (
        {"X-Rollwise-Token": "guess", "Authorization": f"Bearer {TOKEN}"},
        "",
        {},
        401,
    ),
    "other site's origin": ({**GOOD, "Origin": "http://evil.example"}, "", {}, 403),
    "other port's origin": ({**GOOD, "Origin": "http://127.0.0.1:1"}, "", {}, 403),
    "null origin": ({**GOOD, "Origin": "null"}, "", {}, 403),
    "cross-site fetch": ({**GOOD, "Sec-Fetch-Site": "cross-site"}, "", {}, 403),
    "same-site fetch": ({**GOOD, "Sec-Fetch-Site": "same-site"}, "", {}, 403),
    "rebound host": ({**GOOD, "Host": "evil.example"}, "", {}, 421),
    "rebound host and port": ({**GOOD, "Host": "evil.example:3100"}, "", {}, 421),
    "loopback-looking host": ({**GOOD, "Host": "localhost.evil.example"}, "", {}, 421),
    "ip-looking host": ({**GOOD, "Host": "127.0.0.1.nip.io"}, "", {}, 421),
    "any-address host": ({**GOOD, "Host": "0.0.0.0:3100"}, "", {}, 421),
}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with SqliteStore.open_home(tmp_path) as opened:
        seed(opened)
        yield opened


async def serve(home: Path, *, token: str | None = TOKEN) -> Client:
    app = create_app(
        lambda: SqliteStore.open_home(home),
        token=token,
        read_only=False,
        clock=ManualClock(NOW),
    )
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(tmp_path: Path, store: SqliteStore) -> AsyncIterator[Client]:
    served = await serve(tmp_path)
    try:
        yield served
    finally:
        await served.close()


async def send(
    client: Client,
    action: tuple[str, str, dict[str, Any] | None],
    *,
    headers: dict[str, str],
    query: str = "",
    extra: dict[str, Any] | None = None,
) -> tuple[int, str]:
    method, path, body = action
    payload = {**(body or {}), **(extra or {})}
    async with client.request(
        method, path + query, headers=headers, json=payload if payload else None
    ) as response:
        return response.status, await response.text()


def snapshot(store: SqliteStore) -> tuple[int, list[dict[str, Any]]]:
    """The store's revision counter (bumped by any write) and its objects."""
    objects = [obj for kind in ("Rollout", "ReplicaSet", "Pod") for obj in store.list(kind, None)]
    return store.revision(), objects


@pytest.mark.parametrize(
    "action", ACTIONS, ids=[f"{m} {p.rsplit('/', 2)[-2:]}{b or ''}" for m, p, b in ACTIONS]
)
async def test_every_forgery_of_an_action_is_refused_and_the_real_one_works(
    client: Client, store: SqliteStore, action: tuple[str, str, dict[str, Any] | None]
) -> None:
    before = snapshot(store)
    refused = {}
    for name, (headers, query, extra, expected) in FORGERIES.items():
        status, text = await send(client, action, headers=headers, query=query, extra=extra)
        refused[name] = (status, expected, text.strip())
    wrong = {name: got for name, got in refused.items() if got[0] != got[1]}
    assert not wrong, wrong
    assert snapshot(store) == before

    status, text = await send(client, action, headers=GOOD)
    assert status == 200, text
    assert store.revision() > before[0]


async def test_other_methods_on_action_paths_change_nothing(
    client: Client, store: SqliteStore
) -> None:
    before = snapshot(store)
    for _, path, _ in ACTIONS:
        for method in ("GET", "HEAD", "DELETE", "PATCH"):
            headers = {**GOOD, "X-HTTP-Method-Override": "PUT"}
            async with client.request(method, path, headers=headers) as response:
                assert response.status == 405, (method, path, response.status)
        async with client.request(
            "OPTIONS",
            path,
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"},
        ) as preflight:
            assert preflight.status in (403, 405), (path, preflight.status)
            assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]
    assert snapshot(store) == before


async def test_reads_refuse_a_foreign_host_or_origin_and_send_no_cors(client: Client) -> None:
    for path in READS + STREAMS:
        for headers, expected in (
            ({"Host": "evil.example"}, 421),
            ({"Host": "localhost.evil.example:3100"}, 421),
            ({"Origin": "http://evil.example"}, 403),
        ):
            async with client.get(path, headers=headers) as response:
                assert response.status == expected, (path, headers, response.status)
                assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    for path in READS:  # the genuine reads, for contrast: same host, no token needed
        async with client.get(path) as response:
            assert response.status == 200, path
            assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
            assert response.headers["X-Frame-Options"] == "DENY"
            assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_the_page_is_locked_down_by_its_policy(client: Client) -> None:
    async with client.get("/") as response:
        policy = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["connect-src"] == "'self'"
    for source in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in directives[source]
        assert "'unsafe-eval'" not in directives[source]
        assert "*" not in directives[source].split()


@pytest.mark.parametrize("token", [None, ""], ids=["no token", "empty token"])
async def test_a_dashboard_without_a_token_refuses_every_action(
    tmp_path: Path, store: SqliteStore, token: str | None
) -> None:
    client = await serve(tmp_path, token=token)
    try:
        before = snapshot(store)
        for action in ACTIONS:
            for headers in ({}, {"X-Rollwise-Token": ""}, {"Authorization": "Bearer "}):
                status, _ = await send(client, action, headers=headers)
                assert status == 403, (action, headers, status)
        assert snapshot(store) == before
        async with client.get("/api/v1/settings") as response:
            assert await response.json() == {"readOnly": True}
    finally:
        await client.close()


async def test_the_controllers_own_server_only_reads(store: SqliteStore) -> None:
    """`/metrics` and `/healthz` are the controller's whole HTTP surface besides the dashboard:
    every other method is refused, and nothing there takes a token or writes."""
    server = ControllerHTTPServer(ControllerMetrics(store, clock=ManualClock(NOW)), port=0)
    client: Client = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        for path in ("/metrics", "/healthz"):
            async with client.get(path) as response:
                assert response.status == 200, path
            for method in ("PUT", "POST", "DELETE", "PATCH"):
                async with client.request(method, path, headers=GOOD) as response:
                    assert response.status == 405, (method, path)
        routes = {
            (r.method, r.resource.canonical) for r in server.app.router.routes() if r.resource
        }
        assert routes == {
            ("GET", "/metrics"),
            ("HEAD", "/metrics"),
            ("GET", "/healthz"),
            ("HEAD", "/healthz"),
        }
    finally:
        await client.close()
