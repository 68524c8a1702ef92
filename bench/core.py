"""Benchmark 2: a no-op `decide` in the core (budget: ≤ 5 ms p99).

The seed rollout is simulated to a settled state (`bench.seed`); then `decide` is called
thousands of times on that same snapshot, each call timed on its own. Every call is checked to
be a no-op (no actions, the same status): timing a call that does work would measure
something else.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench import seed
from bench.report import Budget, Row, Section, Summary
from rollwise.core.observed import Observed, replica_set_view_from_raw
from rollwise.core.rollouts import decide

CALLS = 5000
WARMUP = 200
BUDGET_US = 5000.0  # 5 ms p99


def _time_calls(call: Callable[[], object], *, calls: int) -> list[float]:
    for _ in range(WARMUP):
        call()
    timings: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        call()
        timings.append((clock() - start) / 1000)
    return timings


def _noop_decide(world: seed.SeedWorld, *, with_views: bool) -> Callable[[], object]:
    rollout, now = world.rollout, world.now
    observed = world.observe()
    raws = list(world.replica_sets.values())
    first = decide(rollout, observed, now)
    if first.actions or first.status != rollout.status:
        raise RuntimeError(f"not a no-op: {first.actions}")

    def call() -> object:
        seen = (
            Observed(replica_sets=tuple(replica_set_view_from_raw(r) for r in raws))
            if with_views
            else observed
        )
        decision = decide(rollout, seen, now)
        if decision.actions:
            raise RuntimeError(f"not a no-op: {decision.actions}")
        return decision

    return call


def run() -> Section:
    section = Section(
        name="core",
        title="No-op decide in the core",
        what=(
            "`rollwise.core.rollouts.decide(rollout, observed, now)` on a settled seed rollout "
            "(`examples/rollout.yaml`, simulated in memory through its canary steps like the "
            f"core tests do), called {CALLS} times after {WARMUP} warm-up calls, each call "
            "timed on its own, in µs. Every call is checked to return no actions and an "
            "unchanged status."
        ),
    )
    budget = Budget(BUDGET_US, on="p99")
    cases = [
        ("settled after blue → yellow (Healthy, 2 ReplicaSets)", seed.promoted(), False),
        ("same, building the ReplicaSet views from raw objects too", seed.promoted(), True),
        ("first deploy settled (Healthy, 1 ReplicaSet)", seed.deployed(), False),
        ("paused in a 2m pause step (20 % canary)", seed.paused_mid_canary(), False),
    ]
    for case, world, with_views in cases:
        timings = _time_calls(_noop_decide(world, with_views=with_views), calls=CALLS)
        section.rows.append(Row(case, Summary.of(timings), "µs", budget))
    promoted = seed.promoted()
    section.notes.append(
        f"Building the settled state took {promoted.decisions} decisions "
        "(deploy blue, update to yellow, 4 × setWeight + 2m pause, promotion)."
    )
    return section
