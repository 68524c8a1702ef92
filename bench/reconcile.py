"""Benchmark 3: a no-op reconcile of one Rollout with the store (budget: ≤ 50 ms p99).

The local controller's own parts, minus the processes: a real `SqliteStore` in a temporary
home, the real `LocalExecutor` (its pod supervisor and data plane are built but never asked to
act, so no process starts) and `RolloutReconciler`, on a manual clock. The seed rollout is
applied as `rollwise apply` would, then driven through its canary by the reconciler itself; a
stand-in kubelet marks every ReplicaSet's pods ready after each reconcile. Once settled, each
timed reconcile is `store.get` + `Rollout.model_validate` + `observe` (Services, owned
ReplicaSets and AnalysisRuns from the store) + `decide` + the status comparison; each one is
checked to act on nothing and write nothing.

`SettledHome` is shared with `bench.memory`, which fills a store with many such rollouts.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import seed
from bench.report import Budget, Row, Section, Summary
from rollwise.api.models import Rollout
from rollwise.controller.reconciler import Outcome, RolloutReconciler
from rollwise.core.rollouts import decide
from rollwise.platforms.local.dataplane import DataPlane
from rollwise.platforms.local.executor import LocalExecutor
from rollwise.platforms.local.pods import PodSupervisor
from rollwise.platforms.local.store import SqliteStore
from rollwise.platforms.local.traefik import TraefikProcess

RECONCILES = 2000
WARMUP = 100
BUDGET_MS = 50.0
NAMESPACE = "default"
NAME = "myapp"


class ManualClock:
    """A clock that moves only when told to (any object with `now()` is a rollwise Clock)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


@dataclass
class SettledHome:
    """A temporary rollwise home whose store holds the seed rollout, settled."""

    home: Path
    store: SqliteStore
    clock: ManualClock
    executor: LocalExecutor
    reconciler: RolloutReconciler
    reconciles: int = 0

    @classmethod
    def open(cls, home: Path) -> SettledHome:
        clock = ManualClock(seed.START)
        store = SqliteStore.open_home(home, clock=clock)
        traefik = TraefikProcess(home)  # never started: the seed rollout has no traffic routing
        executor = LocalExecutor(
            store,
            pods=PodSupervisor(store, home, clock=clock),
            dataplane=DataPlane(home, traefik),
            clock=clock,
        )
        reconciler = RolloutReconciler(store, executor, clock=clock)
        return cls(home, store, clock, executor, reconciler)

    def close(self) -> None:
        self.store.close()

    def make_pods_ready(self) -> bool:
        """What the pod supervisor would report once every pod is up; True if anything moved."""
        changed = False
        for rs in self.store.list("ReplicaSet", NAMESPACE):
            replicas = int(rs["spec"].get("replicas") or 0)
            status = {
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
            if rs.get("status") != status:
                self.store.update_status({**rs, "status": status})
                changed = True
        return changed

    async def settle(self, name: str = NAME, *, rounds: int = 60) -> None:
        for _ in range(rounds):
            outcome = await self.reconciler.reconcile(NAMESPACE, name)
            self.reconciles += 1
            moved = self.make_pods_ready()
            if not (outcome.actions or outcome.status_written or moved):
                return
        raise RuntimeError(f"rollout {name} did not settle in {rounds} reconciles")

    async def deploy_seed(self) -> None:
        """Apply the example, roll blue -> yellow through every step, end Healthy."""
        for obj in seed.seed_objects():
            self.store.apply(obj)
        await self.settle()
        raw = self.store.require("Rollout", NAME, NAMESPACE)
        raw = copy.deepcopy(raw)
        raw["spec"]["template"]["spec"]["containers"][0]["image"] = "argoproj/rollouts-demo:yellow"
        self.store.update(raw)
        await self.settle()
        for _ in range(8):
            self.clock.advance(121)
            await self.settle()
        phase = (self.store.require("Rollout", NAME, NAMESPACE).get("status") or {}).get("phase")
        if phase != "Healthy":
            raise RuntimeError(f"the seed rollout ended {phase}, not Healthy")


def check_noop(outcome: Outcome) -> None:
    if outcome.actions or outcome.status_written:
        raise RuntimeError(f"not a no-op reconcile: {outcome}")


async def time_reconciles(settled: SettledHome, name: str, *, count: int) -> list[float]:
    """Milliseconds per no-op reconcile of `name`."""
    reconcile = settled.reconciler.reconcile
    for _ in range(WARMUP):
        check_noop(await reconcile(NAMESPACE, name))
    timings: list[float] = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        outcome = await reconcile(NAMESPACE, name)
        timings.append((clock() - start) * 1000)
        check_noop(outcome)
    return timings


def _time_part(part: Callable[[], Any], *, count: int) -> list[float]:
    for _ in range(WARMUP):
        part()
    timings: list[float] = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        part()
        timings.append((clock() - start) * 1000)
    return timings


async def _measure(home: Path) -> tuple[list[Row], list[str]]:
    settled = SettledHome.open(home)
    try:
        await settled.deploy_seed()
        budget = Budget(BUDGET_MS, on="p99")
        rows = [
            Row(
                "`RolloutReconciler.reconcile`, settled seed rollout",
                Summary.of(await time_reconciles(settled, NAME, count=RECONCILES)),
                "ms",
                budget,
            )
        ]
        store, executor = settled.store, settled.executor
        raw = store.require("Rollout", NAME, NAMESPACE)
        rollout = Rollout.model_validate(raw)
        observed = executor.observe(rollout)
        now = settled.clock.now()
        status = rollout.status
        if status is None:
            raise RuntimeError("the settled rollout has no status")
        parts: list[tuple[str, Callable[[], Any]]] = [
            ("part: `store.get` of the Rollout", lambda: store.get("Rollout", NAME, NAMESPACE)),
            ("part: `Rollout.model_validate`", lambda: Rollout.model_validate(raw)),
            ("part: `LocalExecutor.observe`", lambda: executor.observe(rollout)),
            ("part: `decide`", lambda: decide(rollout, observed, now)),
            ("part: `status.to_raw()` (the comparison)", status.to_raw),
        ]
        for case, part in parts:
            rows.append(Row(case, Summary.of(_time_part(part, count=RECONCILES)), "ms"))
        notes = [
            f"Settling took {settled.reconciles} reconciles through the real reconciler; the "
            "store then held the Service, the Rollout and its 2 ReplicaSets.",
            "The parts are timed separately on the same objects; they add up to about the "
            "whole reconcile.",
        ]
        return rows, notes
    finally:
        settled.close()


def run() -> Section:
    section = Section(
        name="reconcile",
        title="No-op reconcile with the store",
        what=(
            "One reconcile of the settled seed rollout by the local controller's parts (real "
            "SQLite store in a temporary home, `LocalExecutor`, `RolloutReconciler`, manual "
            f"clock), {RECONCILES} times after {WARMUP} warm-up reconciles, in ms. Each timed "
            "reconcile is checked to act on nothing and write nothing."
        ),
    )
    with tempfile.TemporaryDirectory(prefix="rollwise-bench-") as tmp:
        rows, notes = asyncio.run(_measure(Path(tmp) / "home"))
    section.rows += rows
    section.notes += notes
    return section
