"""Section 9's compatibility traps, and whole runs simulated with values and time passed in:
a fake provider answers with values, the metric's conditions judge them, the reconciler
schedules the next measurement and the test jumps to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from rollwise.api.models import Measurement, Metric
from rollwise.core.analysis.evaluate import error_measurement, measurement_from_value
from rollwise.core.analysis.runs import plan

from .runs_world import T0, Driver, Taker, make_run, measurement, metric, terminated, with_status

S, F, I, E = "Successful", "Failed", "Inconclusive", "Error"  # noqa: E741


@dataclass(frozen=True)
class Unreachable:
    """The provider cannot reach its server: an Error measurement."""

    message: str = "dial tcp 127.0.0.1:9090: connection refused"


def values(script: dict[str, list[object]]) -> Taker:
    """A provider returning the next value of each metric's script."""
    queues = {name: list(items) for name, items in script.items()}

    def take(m: Metric, now: datetime) -> Measurement:
        value = queues[m.name].pop(0)
        if isinstance(value, Unreachable):
            return error_measurement(value.message, started_at=now, finished_at=now)
        return measurement_from_value(m, value, started_at=now, finished_at=now)

    return take


def simulate(*metrics: dict[str, Any], script: dict[str, list[object]], **run: Any) -> Driver:
    driver = Driver(make_run(*metrics, **run), T0, values(script))
    driver.run_to_completion()
    return driver


def _result(driver: Driver, name: str) -> Any:
    assert driver.run.status is not None
    return next(r for r in driver.run.status.metric_results or () if r.name == name)


SUCCESS_RATE = {"successCondition": "result >= 0.95", "count": 3, "interval": "1m"}


# --- whole runs ------------------------------------------------------------------------------


def test_one_failure_within_the_failure_limit_passes() -> None:
    driver = simulate(
        metric("success-rate", failureLimit=1, **SUCCESS_RATE),
        script={"success-rate": [0.99, 0.5, 0.99]},
    )
    assert driver.times() == [0, 60, 120]
    assert driver.phase == S
    result = _result(driver, "success-rate")
    assert (result.count, result.successful, result.failed) == (3, 2, 1)
    assert [m.value for m in result.measurements] == ["0.99", "0.5", "0.99"]
    assert driver.run.status is not None
    assert driver.run.status.completed_at == "2026-11-26T01:02:00Z"


def test_the_first_failure_ends_the_metric_with_default_limits() -> None:
    driver = simulate(
        metric("success-rate", **SUCCESS_RATE), script={"success-rate": [0.99, 0.5, 0.99]}
    )
    assert driver.times() == [0, 60]
    assert driver.phase == F
    assert driver.run.status is not None
    assert driver.run.status.message == (
        'Metric "success-rate" assessed Failed due to failed (1) > failureLimit (0)'
    )


def test_a_metric_without_conditions_is_successful() -> None:
    driver = simulate(metric("raw"), script={"raw": [float("nan")]})
    assert driver.phase == S
    assert driver.last_measurement("raw").value == "NaN"


def test_the_fifth_consecutive_error_errors_the_metric_ten_seconds_apart() -> None:
    driver = simulate(
        metric("latency", successCondition="result[0] < 0.5", interval="5m"),
        script={"latency": [[]] * 5},
    )
    assert driver.times() == [0, 10, 20, 30, 40]
    assert driver.phase == E
    assert driver.run.status is not None
    assert driver.run.status.message == (
        'Metric "latency" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4):'
        ' "Error Message: could not evaluate successCondition "result[0] < 0.5": metric result'
        ' is nil or empty: no data returned from the metric provider"'
    )


def test_errors_do_not_count_toward_count_and_retry_after_ten_seconds() -> None:
    driver = simulate(
        metric("success-rate", successCondition="result >= 0.95", count=2, interval="1m"),
        script={"success-rate": [Unreachable(), 0.99, Unreachable(), Unreachable(), 0.99]},
    )
    assert driver.times() == [0, 10, 70, 80, 90]
    assert driver.phase == S
    result = _result(driver, "success-rate")
    assert (result.count, result.error, result.consecutive_error) == (2, 3, 0)


def test_the_no_data_policy_decides_an_empty_result_at_once() -> None:
    driver = simulate(
        metric("latency", successCondition="result[0] < 0.5", interval="5m"),
        script={"latency": [[]]},
        annotations={"rollwise.io/no-data-policy.latency": "fail"},
    )
    assert driver.times() == [0]
    assert driver.phase == F
    assert "(no-data policy: fail)" in (driver.last_measurement("latency").message or "")


def test_nan_with_both_conditions_is_inconclusive_and_pauses() -> None:
    driver = simulate(
        metric("rate", successCondition="result >= 0.95", failureCondition="result < 0.9"),
        script={"rate": [float("nan")]},
    )
    assert driver.phase == I
    assert driver.run.status is not None
    assert driver.run.status.message == (
        'Metric "rate" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)'
    )


def test_consecutive_successes_end_a_metric_that_tolerates_failures() -> None:
    driver = simulate(
        metric(
            "ready",
            successCondition="result >= 0.95",
            interval="30s",
            failureLimit=-1,
            consecutiveSuccessLimit=2,
        ),
        script={"ready": [0.5, 0.99, 0.5, 0.99, 0.99]},
    )
    assert driver.times() == [0, 30, 60, 90, 120]
    assert driver.phase == S


def test_count_reached_without_the_streak_is_inconclusive() -> None:
    driver = simulate(
        metric(
            "ready",
            successCondition="result >= 0.95",
            count=3,
            interval="30s",
            failureLimit=1,
            consecutiveSuccessLimit=2,
        ),
        script={"ready": [0.99, 0.5, 0.99]},
    )
    assert driver.phase == I
    assert driver.run.status is not None
    assert driver.run.status.message == (
        'Metric "ready" assessed Inconclusive due to count (3) reached with consecutiveSuccess'
        " (1) < consecutiveSuccessLimit (2)"
    )


def test_args_fill_conditions_and_counts() -> None:
    driver = simulate(
        metric(
            "success-rate",
            successCondition="result >= {{args.threshold}}",
            count="{{args.count}}",
            interval="{{args.interval}}",
        ),
        script={"success-rate": [0.91, 0.92]},
        args=[
            {"name": "threshold", "value": "0.9"},
            {"name": "count", "value": "2"},
            {"name": "interval", "value": "15s"},
        ],
    )
    assert driver.times() == [0, 15]
    assert driver.phase == S


def test_several_metrics_are_measured_together_and_the_worst_wins() -> None:
    driver = simulate(
        metric("success-rate", **SUCCESS_RATE),
        metric("latency", successCondition="result < 0.3", count=3, interval="2m"),
        script={"success-rate": [0.99, 0.99, 0.99], "latency": [0.1, 0.4]},
    )
    assert driver.log == [
        (0, "run", "success-rate"),
        (0, "run", "latency"),
        (60, "run", "success-rate"),
        (120, "run", "success-rate"),
        (120, "run", "latency"),
    ]
    assert driver.phase == F
    assert driver.run.status is not None
    assert driver.run.status.message == (
        'Metric "latency" assessed Failed due to failed (1) > failureLimit (0)'
    )


# --- section 9, one by one ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"count": 1, "failureLimit": 3},
            "Analysis spec invalid: metrics[0]: count must be >= failureLimit",
        ),
        (
            {"count": 3, "interval": "1m", "failureLimit": 2, "consecutiveSuccessLimit": 2},
            "Analysis spec invalid: metrics[0]: count must be >= failureLimit +"
            " consecutiveSuccessLimit",
        ),
        (
            {"count": 3},
            "Analysis spec invalid: metrics[0]: interval must be specified when count > 1",
        ),
    ],
)
def test_trap_invalid_counts_error_the_run(fields: dict[str, Any], message: str) -> None:
    driver = simulate(metric("m", **fields), script={"m": []})
    assert driver.log == []
    assert driver.phase == E
    assert driver.run.status is not None
    assert driver.run.status.message == message


def test_trap_an_unbounded_metric_runs_until_terminated_then_succeeds() -> None:
    driver = Driver(
        make_run(metric("background", successCondition="result >= 0.95", interval="1m")),
        T0,
        values({"background": [0.99] * 3}),
    )
    for _ in range(3):
        after = driver.reconcile()
        assert driver.phase == "Running"
        assert after.requeue_after == 60.0
        driver.now += timedelta(minutes=1)
    driver.run = terminated(driver.run)
    driver.run_to_completion()
    assert driver.times() == [0, 60, 120]
    assert driver.phase == S
    assert driver.run.status is not None
    assert driver.run.status.message == "Run Terminated"


def test_trap_terminating_an_in_flight_measurement_is_inconclusive() -> None:
    driver = Driver(
        make_run(metric("job")),
        T0,
        lambda m, now: measurement("Running", 0, resume_at=300),
        stop=lambda m, last, now: measurement(S, 0, 5),
    )
    driver.reconcile()
    driver.run = terminated(driver.run)
    driver.run_to_completion()
    assert driver.log == [(0, "run", "job"), (0, "terminate", "job")]
    assert driver.phase == I


def test_trap_fail_fast() -> None:
    driver = simulate(
        metric("gate", successCondition="result >= 0.95"),
        metric("background", successCondition="result >= 0.95", interval="1m"),
        script={"gate": [0.5], "background": [0.99]},
    )
    assert driver.times() == [0, 0]
    assert driver.phase == F


@pytest.mark.parametrize(
    ("rule", "dry"),
    [
        ("total", {"total-5xx-errors"}),
        (".*", {"total-5xx-errors", "latency"}),
        ("^lat", {"latency"}),
    ],
)
def test_trap_dry_run_rules_are_unanchored_regexes(rule: str, dry: set[str]) -> None:
    run = make_run(metric("total-5xx-errors"), metric("latency"), dry_run=[rule])
    planned = plan(run, T0)
    run = with_status(run, planned.status)
    driver = Driver(run, T0, values({"total-5xx-errors": [1.0], "latency": [1.0]}))
    driver.run_to_completion()
    assert driver.run.status is not None
    assert {r.name for r in driver.run.status.metric_results or () if r.dry_run} == dry


def test_trap_a_star_dry_run_rule_is_invalid() -> None:
    driver = simulate(metric("latency"), script={"latency": []}, dry_run=["*"])
    assert driver.phase == E
    assert driver.run.status is not None
    assert driver.run.status.message == (
        "Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)"
    )


def test_trap_a_stray_brace_pair_in_a_query_breaks_the_run() -> None:
    driver = simulate(
        metric(
            "m",
            provider={"prometheus": {"query": 'label_replace(up, "x", "{{instance}}", "", "")'}},
        ),
        script={"m": []},
    )
    assert driver.phase == E
    assert driver.run.status is not None
    assert driver.run.status.message == (
        "Unable to resolve metric arguments: failed to resolve {{instance}}"
    )


def test_trap_junk_in_int_or_string_fields_reads_as_zero() -> None:
    driver = simulate(
        metric("m", successCondition="result >= 0.95", failureLimit="three", count="many"),
        script={"m": [0.5]},
    )
    assert driver.times() == [0]  # count junk -> 0 -> one measurement
    assert driver.phase == F  # failureLimit junk -> 0 -> the first failure fails
