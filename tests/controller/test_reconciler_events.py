"""A reconcile records its events and writes its status in one store transaction: a controller
that dies between the two leaves neither, so the next one records each event once (found by
the kill -9 reliability test: the next controller's notifier had sent the dead one's event
before its own reconcile recorded it again, a notification twice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollwise.api.errors import ConflictError
from rollwise.controller.reconciler import RolloutReconciler
from rollwise.core.timestamps import SystemClock
from rollwise.platforms.local.dataplane import DataPlane
from rollwise.platforms.local.executor import LocalExecutor
from rollwise.platforms.local.pods import PodSupervisor
from rollwise.platforms.local.store import SqliteStore
from rollwise.platforms.local.traefik import TraefikProcess

ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "argoproj/rollouts-demo:blue"}]},
        },
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
    },
}


class DyingStore(SqliteStore):
    """A store whose next status write fails as a process killed there would: nothing after
    it happens."""

    dying: BaseException | None = None

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.dying is not None:
            raise self.dying
        return super().update_status(obj)


def reconciler(store: SqliteStore, home: Path) -> RolloutReconciler:
    clock = SystemClock()
    executor = LocalExecutor(
        store,
        pods=PodSupervisor(store, home, clock=clock),
        dataplane=DataPlane(home, TraefikProcess(home)),
        clock=clock,
    )
    return RolloutReconciler(store, executor, clock=clock)


def recorded(store: SqliteStore) -> dict[str, int]:
    return {e["reason"]: e["count"] for e in store.events(kind="Rollout", name="web")}


@pytest.mark.parametrize("death", [RuntimeError("killed"), ConflictError("stale")])
async def test_no_event_outlives_a_status_write_that_did_not_happen(
    tmp_path: Path, death: BaseException
) -> None:
    store = DyingStore(tmp_path / "state.db")
    try:
        store.create(ROLLOUT)
        store.dying = death
        if isinstance(death, ConflictError):
            await reconciler(store, tmp_path).reconcile("default", "web")
        else:
            with pytest.raises(RuntimeError):
                await reconciler(store, tmp_path).reconcile("default", "web")
        assert recorded(store) == {}
        assert store.event_counter() == 0
        assert not store.require("Rollout", "web").get("status")

        store.dying = None  # the next controller
        await reconciler(store, tmp_path).reconcile("default", "web")
        assert store.require("Rollout", "web")["status"]["currentPodHash"]
        assert recorded(store)
        assert set(recorded(store).values()) == {1}
    finally:
        store.close()
