"""The web dashboard in Kubernetes mode, through real HTTP on both sides: the dashboard's API
served by aiohttp, the cluster served by the `kube_api` server. It lists the cluster's rollouts,
streams a change made on the cluster, and its actions write the CLI's merge patches, with the
token only."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.kubernetes.apiserver import KubeApi
from tests.kubernetes.world import ARGO, SEED_ROLLOUT, SEED_SERVICE, seed

from rollwise.dashboard.cluster import cluster_app

TOKEN = "cluster-token"
BASE = "/api/v1/rollouts/default"
Client = TestClient[Any, Any]


def paused_rollout() -> dict[str, Any]:
    rollout = copy.deepcopy(SEED_ROLLOUT)
    rollout["status"] = {
        "phase": "Paused",
        "message": "CanaryPauseStep",
        "currentStepIndex": 1,
        "controllerPause": True,
        "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-11-26T00:00:00Z"}],
    }
    return rollout


@pytest.fixture
async def client(kube_api: KubeApi) -> AsyncIterator[Client]:
    seed(kube_api, SEED_SERVICE, paused_rollout())
    app = cluster_app(
        kubeconfig=str(kube_api.kubeconfig_path), context=None, token=TOKEN, read_only=False
    )
    served: Client = TestClient(TestServer(app))
    await served.start_server()
    try:
        yield served
    finally:
        await served.close()


async def test_the_list_shows_the_clusters_rollouts(client: Client) -> None:
    response = await client.get(f"{BASE}/info")
    assert response.status == 200
    (myapp,) = (await response.json())["rollouts"]
    assert (myapp["name"], myapp["strategy"], myapp["step"]) == ("myapp", "Canary", "1/8")
    assert myapp["status"] == "Paused"


async def test_promote_needs_the_token_and_writes_a_merge_patch(
    client: Client, kube_api: KubeApi
) -> None:
    refused = await client.put(f"{BASE}/myapp/promote", json={"full": False})
    assert refused.status == 401
    assert kube_api.get(ARGO, "Rollout", "myapp")["status"]["pauseConditions"]  # type: ignore[index]
    kube_api.clear_requests()
    done = await client.put(
        f"{BASE}/myapp/promote", json={"full": False}, headers={"X-Rollwise-Token": TOKEN}
    )
    assert done.status == 200
    status = kube_api.get(ARGO, "Rollout", "myapp")["status"]  # type: ignore[index]
    assert "pauseConditions" not in status
    patches = kube_api.requests_to(method="PATCH")
    assert patches
    assert {request.content_type for request in patches} == {"application/merge-patch+json"}


async def test_a_change_on_the_cluster_reaches_the_live_stream(
    client: Client, kube_api: KubeApi
) -> None:
    response = await client.get(f"{BASE}/myapp/info/watch")
    assert response.status == 200

    async def next_payload() -> dict[str, Any]:
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data:"):
                return dict(json.loads(line[len("data:") :]))

    async with asyncio.timeout(20):
        first = await next_payload()
        assert first["status"] == "Paused"
        kube_api.patch(
            ARGO, "Rollout", "myapp", "default", {"status": {"phase": "Degraded", "abort": True}}
        )
        while (await next_payload())["status"] != "Degraded":
            pass
    response.close()
