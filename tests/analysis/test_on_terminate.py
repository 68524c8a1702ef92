"""`rollwise.io/on-terminate[.<metric>]` (docs/analysis.md 2.9): what a terminated run's metrics
end as when they never had a Successful measurement, from tables with time passed in. Argo's
Successful "Run Terminated" stays the default."""

from __future__ import annotations

from typing import Any

import pytest

from rollwise.api.models import AnalysisRun, AnalysisTemplate, Measurement
from rollwise.core.analysis.args import merge_templates
from rollwise.core.analysis.runs import plan, record

from .runs_world import T0, at, make_run, measurement, metric, terminated, with_status

S, F, I, E = "Successful", "Failed", "Inconclusive", "Error"  # noqa: E741
EVERY = "rollwise.io/on-terminate"
UNPROVEN = "terminated before any successful measurement"
RATE = {"interval": "1m", "count": 5}


def _measured(run: AnalysisRun, phases: dict[str, list[str]]) -> AnalysisRun:
    """`run` after each metric got its phases one minute apart (Error ones say "boom")."""
    for index in range(max((len(p) for p in phases.values()), default=0)):
        planned = plan(run, at(60 * index))
        run = with_status(run, planned.status)
        results: dict[str, Measurement] = {}
        for name, script in phases.items():
            if index < len(script):
                message = "boom" if script[index] == E else None
                results[name] = measurement(script[index], 60 * index, message=message)
        run = with_status(run, record(run, results, at(60 * index)))
        assert run.status is not None
        assert run.status.phase == "Running"
    return run


def _terminate(run: AnalysisRun) -> Any:
    """The status the first reconcile after `spec.terminate` writes (nothing left to stop)."""
    stopped = plan(terminated(run), at(600))
    assert stopped.idle
    assert stopped.requeue_after is None
    return stopped.status


def _phases(status: Any) -> dict[str, str]:
    return {r.name: r.phase for r in status.metric_results or ()}


@pytest.mark.parametrize(
    ("annotations", "measured", "phase", "message"),
    [
        # Argo's default, whatever was measured
        (None, [E, E], S, "Run Terminated"),
        ({EVERY: "successful"}, [E, E], S, "Run Terminated"),
        # opted in: no Successful measurement is not a pass
        (
            {EVERY: "inconclusive"},
            [E, E],
            I,
            f'Metric "rate" assessed Inconclusive due to {UNPROVEN}: "Error Message: boom"',
        ),
        ({EVERY: "Inconclusive "}, [], I, f'Metric "rate" assessed Inconclusive due to {UNPROVEN}'),
        (
            {"rollwise.io/on-terminate.rate": "inconclusive"},
            [F],  # within failureLimit
            I,
            f'Metric "rate" assessed Inconclusive due to {UNPROVEN}',
        ),
        # one Successful measurement and no broken limit: Successful, as Argo
        ({EVERY: "inconclusive"}, [E, S, E], S, "Run Terminated"),
    ],
)
def test_a_terminated_metric_without_a_successful_measurement(
    annotations: dict[str, str] | None, measured: list[str], phase: str, message: str
) -> None:
    fields = dict(RATE, failureLimit=2)
    run = _measured(make_run(metric("rate", **fields), annotations=annotations), {"rate": measured})
    status = _terminate(run)
    assert (status.phase, _phases(status)) == (phase, {"rate": phase})
    assert status.message == message
    assert status.completed_at == "2026-11-26T01:10:00Z"
    assert status.run_summary.model_dump(exclude_none=True) == {
        "count": 1,
        "successful": 1 if phase == S else 0,
        "failed": 0,
        "inconclusive": 1 if phase == I else 0,
        "error": 0,
    }
    assert plan(with_status(terminated(run), status), at(700)).status == status  # idempotent


def test_a_metric_never_measured_gets_a_result_only_when_opted_in() -> None:
    fields = {"initialDelay": "5m", **RATE}
    argo = _terminate(make_run(metric("rate", **fields)))
    assert (argo.phase, argo.metric_results) == (S, [])  # Argo leaves it out
    opted = _terminate(make_run(metric("rate", **fields), annotations={EVERY: "inconclusive"}))
    (result,) = opted.metric_results
    assert (result.phase, result.count, result.successful, result.measurements) == (I, 0, 0, None)
    assert opted.phase == I


def test_the_per_metric_annotation_wins_over_the_run_wide_one() -> None:
    run = make_run(
        metric("rate", **RATE),
        metric("latency", **RATE),
        metric("errors", **RATE),
        annotations={
            EVERY: "inconclusive",
            "rollwise.io/on-terminate.latency": "successful",
        },
    )
    status = _terminate(_measured(run, {"rate": [E], "latency": [E], "errors": [S]}))
    assert _phases(status) == {"rate": I, "latency": S, "errors": S}
    assert status.phase == I
    assert status.message == (
        f'Metric "rate" assessed Inconclusive due to {UNPROVEN}: "Error Message: boom"'
    )


def test_a_dry_run_metric_keeps_argos_rule() -> None:
    run = make_run(
        metric("shadow", **RATE),
        metric("rate", **RATE),
        dry_run=["shadow"],
        annotations={EVERY: "inconclusive"},
    )
    status = _terminate(_measured(run, {"shadow": [E], "rate": [S]}))
    assert _phases(status) == {"shadow": S, "rate": S}
    assert (status.phase, status.message) == (S, "Run Terminated")
    assert status.dry_run_summary.successful == 1


def test_fail_fast_marks_the_unproven_metrics_and_the_worst_still_wins() -> None:
    run = make_run(
        metric("rate", **RATE),
        metric("gate", **RATE),
        annotations={EVERY: "inconclusive"},
    )
    run = _measured(run, {"rate": [E]})
    planned = plan(run, at(60))
    run = with_status(run, planned.status)
    status = record(run, {"gate": measurement(F, 60), "rate": measurement(E, 60)}, at(60))
    assert _phases(status) == {"rate": I, "gate": F}
    assert status.phase == F
    assert status.message == 'Metric "gate" assessed Failed due to failed (1) > failureLimit (0)'


def test_a_metric_that_ended_on_its_own_keeps_its_phase() -> None:
    run = make_run(
        metric("short", count=2, interval="1m", failureLimit=2),
        metric("long", **RATE),
        annotations={EVERY: "inconclusive"},
    )
    run = _measured(run, {"short": [F, F], "long": [S, S]})
    assert _phases(run.status) == {"short": S, "long": "Running"}  # failures within the limit
    status = _terminate(run)
    assert (status.phase, _phases(status)) == (S, {"short": S, "long": S})


def test_an_in_flight_measurement_stopped_within_the_inconclusive_limit() -> None:
    run = make_run(metric("job", inconclusiveLimit=1), annotations={EVERY: "inconclusive"})
    planned = plan(run, T0)
    run = with_status(run, planned.status)
    run = with_status(run, record(run, {"job": measurement("Running", 0)}, T0))
    stopping = terminated(run)
    status = record(stopping, {"job": measurement(S, 0, 5)}, at(5))
    assert status.phase == I
    assert status.message == (
        f'Metric "job" assessed Inconclusive due to {UNPROVEN}: "Error Message: Metric Terminated"'
    )


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {EVERY: "failed"},
            "Analysis spec invalid: annotation rollwise.io/on-terminate: 'failed' is not an"
            " on-terminate policy; expected one of successful, inconclusive",
        ),
        (
            {"rollwise.io/on-terminate.rate": "succeed"},
            "Analysis spec invalid: annotation rollwise.io/on-terminate.rate: 'succeed' is not an"
            " on-terminate policy; expected one of successful, inconclusive",
        ),
        (
            {"rollwise.io/on-terminate.rtae": "inconclusive"},
            "Analysis spec invalid: annotation rollwise.io/on-terminate.rtae: no metric is named"
            " 'rtae' (metrics: rate)",
        ),
    ],
)
def test_a_bad_annotation_errors_the_run(annotations: dict[str, str], message: str) -> None:
    first = plan(make_run(metric("rate", **RATE), annotations=annotations), T0)
    assert first.idle
    assert (first.status.phase, first.status.message) == (E, message)


def test_other_rollwise_io_annotations_are_not_read_as_on_terminate() -> None:
    run = make_run(metric("rate", **RATE), annotations={"rollwise.io/on-terminated": "x"})
    assert plan(run, T0).to_run == ("rate",)


def _template(name: str, annotations: dict[str, str], metric_name: str) -> AnalysisTemplate:
    return AnalysisTemplate.model_validate(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"metrics": [metric(metric_name)]},
        }
    )


def test_templates_hand_the_annotation_to_the_run() -> None:
    merged = merge_templates(
        [
            _template("a", {EVERY: "inconclusive", "team": "x"}, "rate"),
            _template("b", {"rollwise.io/on-terminate.latency": "successful"}, "latency"),
        ]
    )
    assert merged.annotations == {
        EVERY: "inconclusive",
        "rollwise.io/on-terminate.latency": "successful",
    }
