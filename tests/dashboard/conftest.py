"""A local store holding one canary paused mid-way, and the dashboard served over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.cli.cli_objects import NOW, ago, analysis_run, pod, replica_set, rollout

from rollwise.core.timestamps import ManualClock
from rollwise.dashboard.server import create_app
from rollwise.platforms.local.store import SqliteStore

TOKEN = "s3cret-token"
STEPS: list[dict[str, Any]] = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}]
QUERY = 'sum(rate(x{service="{{args.service-name}}"}[1m]))'


def seed(store: SqliteStore) -> None:
    """`shop`: revision 2 (hash `def`) is the canary at step 1/3, paused; revision 1 stable."""
    store.create(
        rollout(
            "shop",
            created=ago(minutes=30),
            replicas=2,
            steps=STEPS,
            image="argoproj/rollouts-demo:yellow",
            status={
                "phase": "Paused",
                "message": "CanaryPauseStep",
                "currentStepIndex": 1,
                "stableRS": "abc",
                "currentPodHash": "def",
                "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": ago(minutes=1)}],
                "controllerPause": True,
                "replicas": 3,
                "availableReplicas": 3,
            },
        )
    )
    stable = replica_set(
        "shop",
        "abc",
        revision=1,
        image="argoproj/rollouts-demo:blue",
        replicas=2,
        created=ago(minutes=30),
    )
    canary = replica_set(
        "shop",
        "def",
        revision=2,
        image="argoproj/rollouts-demo:yellow",
        replicas=1,
        created=ago(minutes=2),
    )
    for rs in (stable, canary):
        store.create(rs)
    for obj in (
        pod(stable, "aaaaa", created=ago(minutes=30)),
        pod(stable, "bbbbb", created=ago(minutes=30)),
        pod(canary, "ccccc", created=ago(minutes=2)),
    ):
        store.create(obj)
    run = analysis_run(
        "shop",
        "shop-def-2-1",
        revision=2,
        phase="Running",
        created=ago(minutes=1),
        counts={"successful": 2},
    )
    run["spec"]["args"] = [{"name": "service-name", "value": "shop-canary"}]
    run["spec"]["metrics"] = [
        {
            "name": "success-rate",
            "successCondition": "result[0] >= 0.95",
            "provider": {"prometheus": {"query": QUERY}},
        }
    ]
    run["status"]["metricResults"][0]["measurements"] = [
        {"phase": "Successful", "value": "[0.99]", "startedAt": ago(seconds=40)},
        {"phase": "Successful", "value": "[0.97]", "startedAt": ago(seconds=20)},
    ]
    run["status"]["metricResults"][0]["metadata"] = {
        "ResolvedPrometheusQuery": QUERY.replace("{{args.service-name}}", "shop-canary")
    }
    store.create(run)
    store.record_event(
        kind="Rollout",
        name="shop",
        namespace="default",
        type="Normal",
        reason="TrafficWeightUpdated",
        message="Traffic weight updated to 20",
        at=NOW,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def store(home: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open_home(home) as opened:
        seed(opened)
        yield opened


async def serve(home: Path, *, read_only: bool = False) -> TestClient[Any, Any]:
    app = create_app(
        lambda: SqliteStore.open_home(home),
        token=TOKEN,
        read_only=read_only,
        clock=ManualClock(NOW),
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(home: Path, store: SqliteStore) -> AsyncIterator[TestClient[Any, Any]]:
    served = await serve(home)
    try:
        yield served
    finally:
        await served.close()
