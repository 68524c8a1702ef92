"""kill -9 of the local controller at random points of canary, blue-green and analysis-driven
rollouts, at least 100 kills in one run: each rollout ends as it ends without kills, with no
duplicate revision, AnalysisRun or notification, no weight going back, and no request served by
a version the status gives no traffic (`killing` says what is checked when, and the allowances).

`ROLLWISE_SEED` replays a run's kill points (the seed is in every failure message);
`ROLLWISE_KILLS` sets the kills per scenario (default 35)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from killing import SCENARIOS, Cancelled, KillRun, Report, RoundEnd, run_reference, scenario_home

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

KILLS_PER_SCENARIO = int(os.environ.get("ROLLWISE_KILLS", "35"))
T = TypeVar("T")


def test_rollouts_end_as_without_kills_through_100_kill_9(tmp_path: Path) -> None:
    seed = int(os.environ.get("ROLLWISE_SEED", str(time.time_ns())))
    print(f"ROLLWISE_SEED={seed}")
    stop = threading.Event()  # one scenario failing stops the others at once

    def stopping_others(work: Callable[[], T]) -> T:
        try:
            return work()
        except BaseException:
            stop.set()
            raise

    def reference(index: int) -> RoundEnd:
        scenario = SCENARIOS[index]
        with scenario_home(tmp_path / f"reference-{scenario.name}") as home:
            return stopping_others(lambda: run_reference(scenario, home, stop=stop, seed=seed))

    def killed(index: int, expected: Future[RoundEnd]) -> Report:
        scenario = SCENARIOS[index]
        with scenario_home(tmp_path / f"killed-{scenario.name}") as home:
            run = KillRun(
                scenario,
                home,
                seed=seed,
                quota=KILLS_PER_SCENARIO,
                reference=lambda: expected.result(timeout=120),
                stop=stop,
            )
            return stopping_others(run.run)

    with ThreadPoolExecutor(max_workers=2 * len(SCENARIOS)) as pool:
        try:
            references = [pool.submit(reference, i) for i in range(len(SCENARIOS))]
            runs = [pool.submit(killed, i, references[i]) for i in range(len(SCENARIOS))]
            outcomes = [run.exception() for run in runs]
        finally:
            stop.set()  # also when the test itself times out
    failures = [error for error in outcomes if error and not isinstance(error, Cancelled)]
    if failures:
        raise failures[0]
    reports = [run.result() for run in runs]
    for report in reports:
        print(report.line())
    kills = {report.scenario: report.kills for report in reports}
    assert sum(kills.values()) >= 100, f"seed {seed}: {sum(kills.values())} kills: {kills}"
