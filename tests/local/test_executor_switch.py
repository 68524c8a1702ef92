"""The local executor's Service selector switch (blue-green's active switch) is served by the real
Traefik before `execute` returns, so the status the reconcile writes next never claims a switch
the proxy has not made (found by the kill -9 reliability test: a kill right after that status
write left requests going to the old version for ~0.1 s)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rollwise.api.models import Rollout
from rollwise.core import actions as act
from rollwise.core.timestamps import SystemClock
from rollwise.platforms.local.dataplane import DataPlane
from rollwise.platforms.local.executor import LocalExecutor
from rollwise.platforms.local.pods import PodSupervisor
from rollwise.platforms.local.store import SqliteStore
from rollwise.platforms.local.traefik import TraefikProcess, free_port

pytestmark = pytest.mark.slow

HASH = "rollouts-pod-template-hash"
ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "bg", "namespace": "default"},
    "spec": {
        "selector": {"matchLabels": {"app": "bg"}},
        "template": {"metadata": {"labels": {"app": "bg"}}, "spec": {"containers": []}},
        "strategy": {"blueGreen": {"activeService": "bg-active"}},
    },
}


def start_demo_app(color: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "rollwise.demo.app", "--color", color, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return app, port
        except OSError:
            if time.monotonic() > deadline or app.poll() is not None:
                app.kill()
                raise
            time.sleep(0.01)


@pytest.fixture
def ports() -> Iterator[dict[str, int]]:
    apps: list[subprocess.Popen[bytes]] = []
    try:
        found = {}
        for color in ("blue", "yellow"):
            app, found[color] = start_demo_app(color)
            apps.append(app)
        yield found
    finally:
        for app in apps:
            app.kill()
            app.wait(timeout=10)


@pytest.fixture
async def traefik(tmp_path: Path) -> AsyncIterator[TraefikProcess]:
    process = TraefikProcess(tmp_path)
    try:
        await process.start_or_adopt()
        yield process
    finally:
        await process.stop()


def pod(color: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"bg-{color}",
            "labels": {"app": "bg", HASH: color},
            "annotations": {"rollwise.io/port": str(port)},
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


async def colors(traefik: TraefikProcess, count: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.get(traefik.web_url, headers={"Host": "bg-active.localhost"}) as r:
                seen[(await r.json())["color"] if r.status == 200 else str(r.status)] += 1
    return seen


async def test_a_switched_selector_is_served_when_execute_returns(
    tmp_path: Path, traefik: TraefikProcess, ports: dict[str, int]
) -> None:
    clock = SystemClock()
    store = SqliteStore.open_home(tmp_path, clock=clock)
    dataplane = DataPlane(tmp_path, traefik)
    try:
        for color, port in ports.items():
            store.create(pod(color, port))
        store.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "bg-active"},
                "spec": {"selector": {"app": "bg", HASH: "blue"}},
            }
        )
        executor = LocalExecutor(
            store,
            pods=PodSupervisor(store, tmp_path, clock=clock),
            dataplane=dataplane,
            clock=clock,
        )
        await executor.refresh_endpoints()
        async with asyncio.timeout(10):
            while not await dataplane.verify():  # noqa: ASYNC110 - Traefik has no event
                await asyncio.sleep(0.02)
        assert await colors(traefik, 10) == {"blue": 10}

        for color in ("yellow", "blue", "yellow"):
            action = act.SwitchServiceSelector(service="bg-active", pod_template_hash=color)
            await executor.execute(ROLLOUT, Rollout.model_validate(ROLLOUT), action)
            assert await colors(traefik, 10) == {color: 10}
    finally:
        await dataplane.close()
        store.close()
