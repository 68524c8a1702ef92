"""The run reconciler from tables with time passed in: scheduling (reference 2.4), the run
phase and its messages (2.7), termination (2.8), dry-run, retention and validation (2.3)."""

from __future__ import annotations

from typing import Any

import pytest

from rollwise.api.errors import IllegalTransitionError
from rollwise.api.models import AnalysisRun, Measurement, Metric
from rollwise.core.analysis.runs import plan, record

from .runs_world import (
    T0,
    Driver,
    at,
    make_run,
    measurement,
    metric,
    scripted,
    terminated,
    ts,
    with_status,
)

S, F, I, E = "Successful", "Failed", "Inconclusive", "Error"  # noqa: E741


def _recorded(run: AnalysisRun, seconds: float, results: dict[str, Measurement]) -> AnalysisRun:
    """The run after the shell planned at `seconds` and recorded `results`."""
    planned = plan(run, at(seconds))
    run = with_status(run, planned.status)
    return with_status(run, record(run, results, at(seconds)))


# --- scheduling (2.4) --------------------------------------------------------------------------


def test_a_fresh_run_starts_and_measures_every_metric_without_delay() -> None:
    run = make_run(metric("a"), metric("b", interval="1m"))
    first = plan(run, T0)
    assert first.to_run == ("a", "b")
    assert first.status.phase == "Running"
    assert first.status.started_at == ts(0)
    assert first.requeue_after is None


def test_initial_delay_counts_from_the_run_start() -> None:
    run = make_run(metric("late", initialDelay="30s"), metric("now"))
    first = plan(run, T0)
    assert first.to_run == ("now",)
    assert first.requeue_after == 30.0
    run = with_status(run, first.status)
    assert plan(run, at(29)).to_run == ("now",)  # still nothing measured of it
    assert plan(run, at(29)).requeue_after == 1.0
    assert plan(run, at(30)).to_run == ("late", "now")


def test_the_interval_runs_from_the_previous_measurements_end() -> None:
    run = make_run(metric("m", count=3, interval="1m", successCondition="true"))
    run = _recorded(run, 0, {"m": measurement(S, 0, 5)})
    waiting = plan(run, at(60))
    assert waiting.to_run == ()
    assert waiting.requeue_after == 5.0
    assert plan(run, at(65)).to_run == ("m",)


def test_after_an_error_the_retry_is_ten_seconds_whatever_the_interval() -> None:
    run = make_run(metric("m", count=3, interval="5m"))
    run = _recorded(run, 0, {"m": measurement(E, 0, 2, message="connection refused")})
    waiting = plan(run, at(11))
    assert waiting.to_run == ()
    assert waiting.requeue_after == 1.0
    assert plan(run, at(12)).to_run == ("m",)


def test_errors_do_not_count_toward_count() -> None:
    run = make_run(metric("m", count=2, interval="1m"))
    run = _recorded(run, 0, {"m": measurement(S, 0)})
    run = _recorded(run, 60, {"m": measurement(E, 60)})
    result = run.status.metric_results[0]  # type: ignore[union-attr,index]
    assert (result.count, result.error, result.phase) == (1, 1, "Running")
    assert plan(run, at(70)).to_run == ("m",)
    run = _recorded(run, 70, {"m": measurement(S, 70)})
    assert run.status is not None
    assert run.status.phase == S


def test_no_measurement_once_count_is_reached() -> None:
    run = make_run(metric("m", count=1), metric("slow", interval="1m"))
    run = _recorded(run, 0, {"m": measurement(S, 0), "slow": measurement(S, 0)})
    later = plan(run, at(60))
    assert later.to_run == ("slow",)


def test_in_flight_measurements_resume_once_resume_at_passes() -> None:
    run = make_run(metric("job"))
    run = _recorded(run, 0, {"job": measurement("Running", 0, resume_at=30)})
    assert run.status is not None
    assert run.status.phase == "Running"
    early = plan(run, at(29))
    assert (early.to_run, early.to_resume, early.requeue_after) == ((), (), 1.0)
    assert plan(run, at(30)).to_resume == ("job",)


def test_an_in_flight_measurement_without_resume_at_is_looked_at_again_in_ten_seconds() -> None:
    run = make_run(metric("job"))
    run = _recorded(run, 0, {"job": measurement("Running", 0)})
    last = run.status.metric_results[0].measurements[-1]  # type: ignore[union-attr,index]
    assert last.resume_at == ts(10)
    assert plan(run, at(10)).to_resume == ("job",)


def test_resuming_replaces_the_in_flight_measurement_and_counts_it_then() -> None:
    run = make_run(metric("job"))
    run = _recorded(run, 0, {"job": measurement("Running", 0, resume_at=30)})
    run = _recorded(run, 30, {"job": measurement(S, 0, 30)})
    result = run.status.metric_results[0]  # type: ignore[union-attr,index]
    assert [m.phase for m in result.measurements or ()] == [S]
    assert (result.count, result.successful, result.phase) == (1, 1, S)
    assert run.status is not None
    assert run.status.phase == S


def test_requeue_is_the_earliest_next_due_time() -> None:
    run = make_run(
        metric("a", interval="1m"),
        metric("b", interval="30s"),
        metric("c", initialDelay="5m"),
    )
    run = _recorded(run, 0, {"a": measurement(S, 0), "b": measurement(E, 0, 2)})
    assert plan(run, at(3)).requeue_after == 9.0  # b's error retry at 12 s


def test_a_completed_run_plans_nothing_and_keeps_its_status() -> None:
    run = make_run(metric("m"))
    run = _recorded(run, 0, {"m": measurement(S, 0)})
    assert run.status is not None
    assert run.status.phase == S
    later = plan(terminated(run), at(3600))
    assert later.idle
    assert later.requeue_after is None
    assert later.status == run.status
    assert record(run, {"m": measurement(F, 9)}, at(9)) == run.status


def test_planning_twice_at_the_same_time_gives_the_same_answer() -> None:
    run = make_run(
        metric("a", count=3, interval="1m"), metric("b", initialDelay="10s"), metric("job")
    )
    run = _recorded(
        run, 0, {"a": measurement(S, 0), "job": measurement("Running", 0, resume_at=20)}
    )
    for seconds in (0, 10, 20, 60):
        assert plan(run, at(seconds)) == plan(run, at(seconds))


def test_a_result_for_an_unknown_metric_is_a_bug() -> None:
    run = make_run(metric("m"))
    with pytest.raises(IllegalTransitionError):
        record(run, {"other": measurement(S, 0)}, T0)


# --- the run phase and its messages (2.7) ---------------------------------------------------


def _completed(
    name: str, phase: str, counters: dict[str, int], message: str | None = None
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": name,
        "phase": phase,
        "measurements": [{"phase": phase, "startedAt": ts(0), "finishedAt": ts(0)}],
        "count": 1,
        **counters,
    }
    if message:
        raw["message"] = message
    return raw


def _status(*results: dict[str, Any]) -> dict[str, Any]:
    return {"phase": "Running", "startedAt": ts(0), "metricResults": list(results)}


RUN_PHASE_ROWS = [
    ("all successful", [(S, {})], (S, None)),
    (
        "worst is failed",
        [(S, {}), (F, {"failed": 1})],
        (F, 'Metric "b" assessed Failed due to failed (1) > failureLimit (0)'),
    ),
    (
        "error worse than inconclusive",
        [(I, {"inconclusive": 1}), (E, {"consecutiveError": 5, "error": 5})],
        (E, 'Metric "b" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4)'),
    ),
    (
        "failed worse than error",
        [(F, {"failed": 1}), (E, {"consecutiveError": 5, "error": 5})],
        (F, 'Metric "a" assessed Failed due to failed (1) > failureLimit (0)'),
    ),
    (
        "inconclusive worse than successful",
        [(S, {}), (I, {"inconclusive": 1})],
        (I, 'Metric "b" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)'),
    ),
    (
        "first of equals keeps the message",
        [(F, {"failed": 1}), (F, {"failed": 1})],
        (F, 'Metric "a" assessed Failed due to failed (1) > failureLimit (0)'),
    ),
]


@pytest.mark.parametrize(
    ("phases", "expected"),
    [row[1:] for row in RUN_PHASE_ROWS],
    ids=[row[0] for row in RUN_PHASE_ROWS],
)
def test_run_phase_is_the_worst_metric_phase(
    phases: list[tuple[str, dict[str, int]]], expected: tuple[str, str | None]
) -> None:
    names = "abc"
    run = make_run(
        *(metric(names[i]) for i in range(len(phases))),
        status=_status(*(_completed(names[i], p, c) for i, (p, c) in enumerate(phases))),
    )
    status = plan(run, at(1)).status
    assert (status.phase, status.message) == expected
    assert status.completed_at == ts(1)


def test_the_run_message_carries_the_last_measurements_message() -> None:
    run = make_run(metric("m"))
    run = _recorded(run, 0, {"m": measurement(F, 0, message="p99 too high")})
    assert run.status is not None
    assert run.status.message == (
        'Metric "m" assessed Failed due to failed (1) > failureLimit (0):'
        ' "Error Message: p99 too high"'
    )
    assert run.status.metric_results[0].message == "p99 too high"  # type: ignore[index]


def test_the_run_runs_while_any_metric_has_not_completed() -> None:
    run = make_run(
        metric("done"), metric("slow", count=2, interval="1m"), metric("later", initialDelay="1h")
    )
    run = _recorded(run, 0, {"done": measurement(S, 0), "slow": measurement(S, 0)})
    assert run.status is not None
    assert (run.status.phase, run.status.message) == ("Running", None)
    phases = {r.name: r.phase for r in run.status.metric_results or ()}
    assert phases == {"done": S, "slow": "Running"}


def test_run_summary_counts_metrics_not_measurements() -> None:
    run = make_run(
        metric("a"), metric("b"), metric("c", interval="1m"), metric("d"), dry_run=["^d$"]
    )
    run = _recorded(
        run,
        0,
        {
            "a": measurement(S, 0),
            "b": measurement(S, 0),
            "c": measurement(S, 0),
            "d": measurement(F, 0),
        },
    )
    assert run.status is not None
    assert run.status.run_summary is not None
    assert run.status.run_summary.to_raw() == {
        "count": 3,
        "successful": 2,
        "failed": 0,
        "inconclusive": 0,
        "error": 0,
    }
    assert run.status.dry_run_summary is not None
    assert run.status.dry_run_summary.to_raw() == {
        "count": 1,
        "successful": 0,
        "failed": 1,
        "inconclusive": 0,
        "error": 0,
    }


def test_fail_fast_the_first_failing_metric_ends_the_run_in_the_same_reconcile() -> None:
    run = make_run(
        metric("gate"), metric("background", interval="1m"), metric("late", initialDelay="5m")
    )
    run = _recorded(run, 0, {"gate": measurement(F, 0), "background": measurement(S, 0)})
    assert run.status is not None
    assert run.status.phase == F
    assert (
        run.status.message == 'Metric "gate" assessed Failed due to failed (1) > failureLimit (0)'
    )
    phases = {r.name: r.phase for r in run.status.metric_results or ()}
    assert phases == {"gate": F, "background": S}  # unbounded + terminating: Successful
    after = plan(run, at(300))
    assert after.idle
    assert after.requeue_after is None


def test_fail_fast_terminates_in_flight_measurements_before_completing() -> None:
    run = make_run(metric("gate"), metric("job"))
    run = _recorded(run, 0, {"gate": measurement(F, 0), "job": measurement("Running", 0)})
    assert run.status is not None
    assert run.status.phase == "Running"  # held until the job is stopped
    assert plan(run, T0).to_terminate == ("job",)

    driver = Driver(
        make_run(metric("gate"), metric("job")),
        T0,
        scripted({"gate": [F], "job": ["Running"]}),
        stop=lambda m, last, now: measurement(S, 0, 1, message="job deleted"),
    )
    driver.run_to_completion()
    assert driver.log == [(0, "run", "gate"), (0, "run", "job"), (0, "terminate", "job")]
    assert driver.phase == F
    assert driver.run.status is not None
    assert driver.run.status.message == (
        'Metric "gate" assessed Failed due to failed (1) > failureLimit (0)'
    )
    job = driver.last_measurement("job")
    assert (job.phase, job.message) == (I, "Metric Terminated")


# --- dry-run -----------------------------------------------------------------------------------


def test_dry_run_metrics_are_reported_but_never_change_the_phase() -> None:
    driver = Driver(
        make_run(metric("total-5xx-errors"), metric("latency"), dry_run=["total"]),
        T0,
        scripted({"total-5xx-errors": [F], "latency": [S]}),
    )
    driver.run_to_completion()
    assert driver.phase == S
    assert driver.run.status is not None
    dry = driver.run.status.metric_results[0]  # type: ignore[index]
    assert (dry.name, dry.phase, dry.dry_run) == ("total-5xx-errors", F, True)
    assert dry.message == "Metric assessed Failed due to failed (1) > failureLimit (0)"


def test_a_run_of_only_dry_run_metrics_ends_successful() -> None:
    driver = Driver(
        make_run(metric("a"), metric("b"), dry_run=[".*"]),
        T0,
        scripted({"a": [F], "b": [E, E, E, E, E]}),
    )
    driver.run_to_completion()
    assert driver.phase == S
    assert driver.run.status is not None
    assert driver.run.status.dry_run_summary is not None
    assert driver.run.status.dry_run_summary.failed == 1
    assert driver.run.status.dry_run_summary.error == 1


def test_an_unfinished_dry_run_metric_keeps_the_run_running() -> None:
    run = make_run(metric("real"), metric("dry", count=2, interval="1m"), dry_run=["dry"])
    run = _recorded(run, 0, {"real": measurement(S, 0), "dry": measurement(S, 0)})
    assert run.status is not None
    assert run.status.phase == "Running"
    assert plan(run, at(60)).to_run == ("dry",)


def test_a_failing_dry_run_metric_does_not_terminate_the_others() -> None:
    driver = Driver(
        make_run(metric("dry"), metric("real", count=2, interval="1m"), dry_run=["dry"]),
        T0,
        scripted({"dry": [F], "real": [S, S]}),
    )
    driver.run_to_completion()
    assert driver.times(name="real") == [0, 60]
    assert driver.phase == S


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (["*"], "Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)"),
        (
            ["latency", "nothing"],
            "Analysis spec invalid: dryRun[1]: Rule didn't match any metric name(s)",
        ),
    ],
)
def test_a_dry_run_rule_matching_no_metric_errors_the_run(rules: list[str], message: str) -> None:
    status = plan(make_run(metric("latency"), dry_run=rules), T0).status
    assert (status.phase, status.message) == (E, message)


# --- measurement retention -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retention", "kept"),
    [(None, 10), ([("lat", 3)], 3), ([(".*", 12)], 12), ([("lat", 0)], 10)],
)
def test_measurement_retention(retention: list[tuple[str, int]] | None, kept: int) -> None:
    driver = Driver(
        make_run(metric("latency", count=12, interval="1s"), retention=retention),
        T0,
        scripted({"latency": [S] * 12}),
    )
    driver.run_to_completion()
    assert driver.run.status is not None
    result = driver.run.status.metric_results[0]  # type: ignore[index]
    assert (result.count, len(result.measurements or ())) == (12, kept)
    assert (result.measurements or [])[-1].started_at == ts(11)


def test_a_retention_rule_matching_nothing_errors_the_run() -> None:
    status = plan(make_run(metric("a"), retention=[("b", 3)]), T0).status
    assert status.message == (
        "Analysis spec invalid: measurementRetention[0]: Rule didn't match any metric name(s)"
    )


# --- termination (2.8) -------------------------------------------------------------------------


def test_terminating_before_any_measurement_is_successful() -> None:
    run = terminated(make_run(metric("m", initialDelay="1m")))
    first = plan(run, T0)
    assert first.idle
    assert (first.status.phase, first.status.message) == (S, "Run Terminated")


@pytest.mark.parametrize(
    ("fields", "measured"),
    [
        ({"interval": "1m"}, [S, S]),  # unbounded
        ({"count": 5, "interval": "1m", "failureLimit": 2}, [S, F, F]),  # failures within limit
        ({"count": 5, "interval": "1m", "inconclusiveLimit": 1}, [I]),
        ({"interval": "1m", "consecutiveSuccessLimit": 3}, [S, S]),  # streak ignored
        ({"count": 5, "interval": "1m"}, [E, E, E]),  # errors within the limit
    ],
)
def test_terminating_ends_successful_unless_a_limit_was_breached(
    fields: dict[str, Any], measured: list[str]
) -> None:
    run = make_run(metric("m", **fields))
    for index, phase in enumerate(measured):
        run = _recorded(run, 60 * index, {"m": measurement(phase, 60 * index)})
        assert run.status is not None
        assert run.status.phase == "Running"
    stopped = plan(terminated(run), at(600))
    assert stopped.idle
    assert stopped.requeue_after is None
    assert (stopped.status.phase, stopped.status.message) == (S, "Run Terminated")
    assert stopped.status.metric_results[0].phase == S  # type: ignore[index]
    assert stopped.status.completed_at == ts(600)


def test_an_in_flight_measurement_at_termination_ends_inconclusive() -> None:
    run = _recorded(make_run(metric("job")), 0, {"job": measurement("Running", 0, resume_at=3600)})
    stopping = plan(terminated(run), at(5))
    assert stopping.to_terminate == ("job",)  # at once, not at resumeAt
    assert stopping.status.phase == "Running"
    run = with_status(terminated(run), stopping.status)
    status = record(run, {"job": measurement(S, 0, 5, message="job deleted")}, at(5))
    job = status.metric_results[0]  # type: ignore[index]
    assert (job.measurements[-1].phase, job.measurements[-1].message) == (I, "Metric Terminated")  # type: ignore[index]
    assert (job.phase, job.inconclusive, job.count) == (I, 1, 1)
    assert status.phase == I
    assert status.message == (
        'Metric "job" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0):'
        ' "Error Message: Metric Terminated"'
    )


def test_an_in_flight_measurement_at_termination_within_the_inconclusive_limit() -> None:
    run = _recorded(
        make_run(metric("job", inconclusiveLimit=1)), 0, {"job": measurement("Running", 0)}
    )
    run = terminated(run)
    status = record(run, {"job": measurement(S, 0, 5)}, at(5))
    assert (status.phase, status.message) == (S, "Run Terminated")


def test_a_terminate_that_fails_is_an_error_measurement() -> None:
    run = terminated(_recorded(make_run(metric("job")), 0, {"job": measurement("Running", 0)}))
    status = record(run, {"job": measurement(E, 0, 5, message="cannot delete job")}, at(5))
    job = status.metric_results[0]  # type: ignore[index]
    assert job.measurements[-1].phase == E  # type: ignore[index]
    assert (job.phase, status.phase) == (S, S)  # one error breaks no limit


# --- validation and arguments (2.3, 2.9) -------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "args", "message"),
    [
        (
            {"count": 1, "failureLimit": 3},
            None,
            "Analysis spec invalid: metrics[0]: count must be >= failureLimit",
        ),
        (
            {"count": 2},
            None,
            "Analysis spec invalid: metrics[0]: interval must be specified when count > 1",
        ),
        (
            {"count": "{{args.n}}"},
            [{"name": "n", "value": "2"}],
            "Analysis spec invalid: metrics[0]: interval must be specified when count > 1",
        ),
        (
            {"successCondition": "result > {{args.x}}"},
            None,
            "Unable to resolve metric arguments: failed to resolve {{args.x}}",
        ),
        (
            {"successCondition": "result > {{args.x}}"},
            [{"name": "x"}],
            'Unable to resolve metric arguments: argument "x" was not supplied',
        ),
        (
            {"provider": {"prometheus": {"query": "{{ $labels }}"}}},
            None,
            "Unable to resolve metric arguments: failed to resolve {{ $labels }}",
        ),
    ],
)
def test_an_invalid_run_is_an_error(
    fields: dict[str, Any], args: list[dict[str, Any]] | None, message: str
) -> None:
    run = make_run(metric("m", **fields), args=args)
    first = plan(run, T0)
    assert first.idle
    assert first.requeue_after is None
    assert (first.status.phase, first.status.message) == (E, message)
    assert plan(with_status(run, first.status), at(10)).status == first.status


def test_plan_hands_out_resolved_metrics_with_secrets_only_when_asked() -> None:
    run = make_run(
        metric("m", provider={"web": {"url": "http://x/?key={{args.key}}&svc={{args.svc}}"}}),
        args=[
            {"name": "svc", "value": "canary"},
            {"name": "key", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
        ],
    )
    scheduling = plan(run, T0)
    url = scheduling.metrics["m"].to_raw()["provider"]["web"]["url"]
    assert url == "http://x/?key=temp-for-secret&svc=canary"
    measuring = plan(run, T0, secret_lookup=lambda name, key: "s3cr3t")
    assert measuring.metrics["m"].to_raw()["provider"]["web"]["url"] == (
        "http://x/?key=s3cr3t&svc=canary"
    )
    assert measuring.secrets == frozenset({"s3cr3t"})
    status = record(
        with_status(run, measuring.status),
        {"m": measurement(E, 0, message="GET http://x/?key=s3cr3t: 401")},
        T0,
        secrets=measuring.secrets,
    )
    assert status.metric_results[0].measurements[0].message == "GET http://x/?key=*****: 401"  # type: ignore[index]


def test_a_missing_secret_errors_the_run_when_a_measurement_is_due() -> None:
    run = make_run(
        metric("m", successCondition="{{args.key}} != ''"),
        args=[{"name": "key", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}],
    )
    status = plan(run, T0, secret_lookup=lambda name, key: None).status
    assert (status.phase, status.message) == (
        E,
        "Unable to resolve metric arguments: key 'token' does not exist in secret 'api'",
    )


def test_metric_metadata_is_recorded() -> None:
    run = make_run(metric("m"))
    status = record(
        run,
        {"m": measurement(S, 0)},
        T0,
        metric_metadata={"m": {"ResolvedPrometheusQuery": "up"}},
    )
    assert status.metric_results[0].metadata == {"ResolvedPrometheusQuery": "up"}  # type: ignore[index]


def test_status_written_back_has_no_nulls() -> None:
    run = _recorded(make_run(metric("m", interval="1m")), 0, {"m": measurement(S, 0)})
    assert run.status is not None

    def walk(value: object) -> None:
        assert value is not None
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        if isinstance(value, list):
            for item in value:
                walk(item)

    walk(run.status.to_raw())
    assert isinstance(Metric, type)
