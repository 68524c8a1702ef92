"""The local controller's watch of the store's change log, against a real store and a real
controller loop (and its Traefik): it reads the log to the end at every turn, and when the log no
longer reaches back to what it saw (a burst of writes larger than the log keeps), it lists
every object again instead of stalling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rollwise.controller import local
from rollwise.controller.local import LocalController
from rollwise.platforms.local.store import STATE_FILE, SqliteStore


def _rollout(name: str) -> dict[str, Any]:
    # No replicas: the controller creates the ReplicaSet, and no pod process starts.
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "argoproj/rollouts-demo:blue"}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
    }


def _has_replica_set(store: SqliteStore, name: str) -> bool:
    return any(
        ref.get("name") == name
        for rs in store.list("ReplicaSet", "default", owner=name)
        for ref in rs["metadata"].get("ownerReferences") or ()
    )


async def _until(predicate: Any, *, seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 (the store has no change notification)
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _running(home: Path) -> AsyncIterator[LocalController]:
    controller = LocalController(home=home)
    task = asyncio.create_task(controller.run())
    try:
        yield controller
    finally:
        controller.stop()
        async with asyncio.timeout(30):
            await task


async def _burst(home: Path, names: list[str], *, change_log_size: int) -> None:
    """Start a controller, then write `names` with no turn of the loop in between, through a
    store connection that keeps only `change_log_size` changes in the log."""
    async with _running(home) as controller:
        store = controller.store
        store.create(_rollout("first"))
        await _until(lambda: _has_replica_set(store, "first"))
        with SqliteStore(home / STATE_FILE, change_log_size=change_log_size) as writer:
            for name in names:
                writer.create(_rollout(name))
        await _until(lambda: all(_has_replica_set(store, name) for name in names))


async def test_rollouts_written_beyond_what_the_change_log_keeps_are_all_reconciled(
    tmp_path: Path,
) -> None:
    await _burst(tmp_path / "home", [f"burst-{i}" for i in range(12)], change_log_size=3)


async def test_the_log_is_read_in_pages_without_losing_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "WATCH_PAGE", 2)
    await _burst(tmp_path / "home", [f"burst-{i}" for i in range(9)], change_log_size=50_000)
