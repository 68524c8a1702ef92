"""Completed AnalysisRuns beyond the history limits are deleted, oldest first; current runs and
runs still going are never deleted (spec.analysis.successfulRunHistoryLimit and
unsuccessfulRunHistoryLimit, 5 each by default)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollwise.core.actions import DeleteAnalysisRun
from rollwise.core.analysis_runs import RunsContext, reconcile_runs
from rollwise.core.observed import AnalysisRunView

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def run(name: str, phase: str, minute: int) -> AnalysisRunView:
    return AnalysisRunView(
        name=name,
        phase=phase,
        kind="Step",
        step_index=1,
        pod_template_hash="h",
        created_at=T0 + timedelta(minutes=minute),
    )


def deleted(
    runs: list[AnalysisRunView], *, successful: int = 5, unsuccessful: int = 5
) -> list[str]:
    ctx = RunsContext(
        rollout_name="r",
        pod_hash="h",
        stable_hash="s",
        revision=2,
        step_index=None,
        step_analysis=None,
        background=None,
        selector_labels={},
        skip_all=True,
        fully_promoted=True,
        paused=False,
        inconclusive_paused=False,
        controller_pause=False,
        was_aborted=False,
        runs=runs,
        step_run_status={"name": "current", "status": "Successful"},
        background_run_status=None,
        successful_history_limit=successful,
        unsuccessful_history_limit=unsuccessful,
    )
    outcome = reconcile_runs(ctx)
    return sorted(a.name for a in outcome.actions if isinstance(a, DeleteAnalysisRun))


@pytest.mark.parametrize(
    ("runs", "limits", "expected"),
    [
        ([run(f"ok-{i}", "Successful", i) for i in range(7)], (5, 5), ["ok-0", "ok-1"]),
        ([run(f"bad-{i}", "Failed", i) for i in range(3)], (5, 1), ["bad-0", "bad-1"]),
        (
            [run("bad", "Error", 0), run("inc", "Inconclusive", 1), run("ok", "Successful", 2)],
            (0, 1),
            ["bad", "ok"],
        ),
        ([run("going", "Running", 0), run("current", "Successful", 1)], (0, 0), []),
    ],
)
def test_history_limits(
    runs: list[AnalysisRunView], limits: tuple[int, int], expected: list[str]
) -> None:
    assert deleted(runs, successful=limits[0], unsuccessful=limits[1]) == expected
