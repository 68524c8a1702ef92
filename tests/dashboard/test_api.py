"""The dashboard's JSON API over a real local store: Argo's paths, the actions and their
token, read-only mode, cross-site refusals, and live updates by server-sent events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from tests.dashboard.conftest import QUERY, TOKEN, serve

from rollwise.platforms.local.store import SqliteStore

Client = TestClient[Any, Any]
AUTH = {"X-Rollwise-Token": TOKEN}
BASE = "/api/v1/rollouts/default"


async def test_list_shows_status_strategy_step_and_weights(client: Client) -> None:
    response = await client.get(f"{BASE}/info")
    assert response.status == 200
    (shop,) = (await response.json())["rollouts"]
    assert (shop["name"], shop["status"], shop["strategy"], shop["step"]) == (
        "shop",
        "Paused",
        "Canary",
        "1/3",
    )
    assert (shop["setWeight"], shop["actualWeight"]) == (20, 33)  # 1 of 3 available pods
    assert {i["image"]: i["tags"] for i in shop["images"]} == {
        "argoproj/rollouts-demo:blue": ["stable"],
        "argoproj/rollouts-demo:yellow": ["canary"],
    }


async def test_rollout_info_has_steps_revisions_pods_analysis_and_weights(client: Client) -> None:
    response = await client.get(f"{BASE}/shop/info")
    assert response.status == 200
    shop = await response.json()
    assert [s["state"] for s in shop["steps"]] == ["done", "current", "pending"]
    assert [r["revision"] for r in shop["revisions"]] == [2, 1]
    newest = shop["revisions"][0]
    assert [rs["name"] for rs in newest["replicaSets"]] == ["shop-def"]
    assert [p["name"] for p in newest["replicaSets"][0]["pods"]] == ["shop-def-ccccc"]
    assert newest["analysisRuns"] == ["shop-def-2-1"]
    (run,) = shop["analysisRuns"]
    (metric,) = run["metrics"]
    assert metric["successCondition"] == "result[0] >= 0.95"
    assert metric["provider"] == {"prometheus": {"query": QUERY}}  # as the run holds it
    assert metric["resolvedQuery"] == 'sum(rate(x{service="shop-canary"}[1m]))'  # as sent
    assert run["args"] == [{"name": "service-name", "value": "shop-canary"}]
    assert [m["number"] for m in metric["measurements"]] == [0.99, 0.97]
    assert [w["weight"] for w in shop["weights"]] == [20]
    assert shop["containers"] == [{"name": "shop", "image": "argoproj/rollouts-demo:yellow"}]


async def test_settings_tell_the_page_that_actions_are_on(client: Client) -> None:
    assert await (await client.get("/api/v1/settings")).json() == {"readOnly": False}


async def test_unknown_rollout_is_404(client: Client) -> None:
    response = await client.get(f"{BASE}/nope/info")
    assert response.status == 404
    assert "nope" in (await response.json())["error"]


async def test_promote_writes_the_cli_patch(client: Client, store: SqliteStore) -> None:
    response = await client.put(f"{BASE}/shop/promote", json={"full": False}, headers=AUTH)
    assert response.status == 200, await response.text()
    status = store.require("Rollout", "shop")["status"]
    assert "pauseConditions" not in status
    assert status["currentStepIndex"] == 1  # the controller moves on once unpaused


async def test_promote_full_abort_retry_restart(client: Client, store: SqliteStore) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (
        await client.put(f"{BASE}/shop/promote", json={"full": True}, headers=bearer)
    ).status == 200
    assert store.require("Rollout", "shop")["status"]["promoteFull"] is True
    assert (await client.put(f"{BASE}/shop/abort", headers=AUTH)).status == 200
    assert store.require("Rollout", "shop")["status"]["abort"] is True
    assert (await client.put(f"{BASE}/shop/retry", headers=AUTH)).status == 200
    assert store.require("Rollout", "shop")["status"]["abort"] is False
    assert (await client.put(f"{BASE}/shop/restart", headers=AUTH)).status == 200
    assert store.require("Rollout", "shop")["spec"]["restartAt"] == "2026-11-26T12:00:00Z"


async def test_set_image_and_undo(client: Client, store: SqliteStore) -> None:
    response = await client.put(
        f"{BASE}/shop/set/shop/argoproj%2Frollouts-demo:green", headers=AUTH
    )
    assert response.status == 200, await response.text()
    containers = store.require("Rollout", "shop")["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "argoproj/rollouts-demo:green"
    assert (await client.put(f"{BASE}/shop/undo/1", headers=AUTH)).status == 200
    containers = store.require("Rollout", "shop")["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "argoproj/rollouts-demo:blue"
    missing = await client.put(f"{BASE}/shop/undo/7", headers=AUTH)
    assert missing.status == 400
    assert "revision 7" in (await missing.json())["error"]
    unknown = await client.put(f"{BASE}/shop/set/nope/x:1", headers=AUTH)
    assert unknown.status == 400


async def test_actions_need_the_token(client: Client, store: SqliteStore) -> None:
    before = store.require("Rollout", "shop")
    assert (await client.put(f"{BASE}/shop/abort")).status == 401
    assert (
        await client.put(f"{BASE}/shop/abort", headers={"X-Rollwise-Token": "guess"})
    ).status == 401
    assert (
        await client.put(f"{BASE}/shop/abort", headers={"Cookie": f"token={TOKEN}"})
    ).status == 401
    assert store.require("Rollout", "shop") == before


async def test_read_only_refuses_every_action(home: Path, store: SqliteStore) -> None:
    client = await serve(home, read_only=True)
    try:
        before = store.require("Rollout", "shop")
        for path in ("promote", "abort", "retry", "restart", "undo/1", "set/shop/x:1"):
            assert (await client.put(f"{BASE}/shop/{path}", headers=AUTH)).status == 403, path
        assert store.require("Rollout", "shop") == before
        assert (await client.get(f"{BASE}/shop/info")).status == 200
        assert await (await client.get("/api/v1/settings")).json() == {"readOnly": True}
    finally:
        await client.close()


async def test_cross_site_requests_are_refused(client: Client, store: SqliteStore) -> None:
    before = store.require("Rollout", "shop")
    evil = {**AUTH, "Origin": "http://evil.example"}
    assert (await client.put(f"{BASE}/shop/abort", headers=evil)).status == 403
    rebound = {**AUTH, "Host": "evil.example:3100"}
    assert (await client.put(f"{BASE}/shop/abort", headers=rebound)).status == 421
    assert (await client.get(f"{BASE}/info", headers={"Host": "evil.example"})).status == 421
    site = {**AUTH, "Sec-Fetch-Site": "cross-site"}
    assert (await client.put(f"{BASE}/shop/abort", headers=site)).status == 403
    assert store.require("Rollout", "shop") == before
    same = {**AUTH, "Origin": str(client.make_url("")).rstrip("/")}
    assert (await client.put(f"{BASE}/shop/abort", headers=same)).status == 200


async def test_page_is_self_contained_and_locked_down(client: Client) -> None:
    response = await client.get("/")
    assert response.status == 200
    page = await response.text()
    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'self'")
    assert "'unsafe-inline'" not in policy
    assert "sha256-" in policy
    assert "frame-ancestors 'none'" in policy
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


async def _next_event(lines: Any) -> dict[str, Any]:
    async for raw in lines:
        line = raw.decode().strip()
        if line.startswith("data: "):
            payload: dict[str, Any] = json.loads(line[len("data: ") :])
            return payload
    raise AssertionError("the stream ended")


async def test_watch_sends_a_new_list_when_the_store_changes(
    client: Client, store: SqliteStore
) -> None:
    response = await client.get(f"{BASE}/info/watch")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    first = await asyncio.wait_for(_next_event(response.content), 10)
    assert first["rollouts"][0]["status"] == "Paused"
    store.patch(
        "Rollout", "shop", "default", merge={"phase": "Degraded", "abort": True}, status=True
    )
    second = await asyncio.wait_for(_next_event(response.content), 10)
    assert second["rollouts"][0]["status"] == "Degraded"
    response.close()


async def test_watch_of_one_rollout_follows_an_action(client: Client) -> None:
    response = await client.get(f"{BASE}/shop/info/watch")
    first = await asyncio.wait_for(_next_event(response.content), 10)
    assert first["aborted"] is False
    assert (await client.put(f"{BASE}/shop/abort", headers=AUTH)).status == 200
    second = await asyncio.wait_for(_next_event(response.content), 10)
    assert second["aborted"] is True
    response.close()


async def test_server_stops_with_a_stream_open(home: Path, store: SqliteStore) -> None:
    client = await serve(home)
    response = await client.get(f"{BASE}/info/watch")
    await asyncio.wait_for(_next_event(response.content), 10)
    await asyncio.wait_for(client.close(), 10)
