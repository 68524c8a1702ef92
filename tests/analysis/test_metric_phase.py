"""Reference 2.4 (counters after a measurement) and 2.6 (metric phase), row by row."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from rollwise.api.models import Metric, MetricResult
from rollwise.core.analysis.phases import (
    COMPLETED,
    SEVERITY,
    assess_metric,
    count_measurement,
    is_worse,
)

from .runs_world import measurement, metric

# --- 2.4 counters ---------------------------------------------------------------------------

COUNTERS = ("count", "successful", "failed", "inconclusive", "error")
START = {
    "count": 3,
    "successful": 2,
    "failed": 1,
    "inconclusive": 0,
    "error": 2,
    "consecutive_error": 2,
    "consecutive_success": 1,
}


@pytest.mark.parametrize(
    ("phase", "changes"),
    [
        # Successful: successful++, count++, consecutiveSuccess++, consecutiveError = 0
        (
            "Successful",
            {"successful": 3, "count": 4, "consecutive_success": 2, "consecutive_error": 0},
        ),
        # Failed / Inconclusive: their counter++, count++, both consecutive counters reset
        ("Failed", {"failed": 2, "count": 4, "consecutive_success": 0, "consecutive_error": 0}),
        (
            "Inconclusive",
            {"inconclusive": 1, "count": 4, "consecutive_success": 0, "consecutive_error": 0},
        ),
        # Error: error++, consecutiveError++, consecutiveSuccess = 0, count unchanged
        ("Error", {"error": 3, "consecutive_error": 3, "consecutive_success": 0}),
    ],
)
def test_counters_after_one_measurement(phase: str, changes: dict[str, int]) -> None:
    result = MetricResult(name="m", phase="Running", **START)
    count_measurement(result, phase)
    expected = {**START, **changes}
    assert {key: getattr(result, key) for key in expected} == expected


def test_counters_start_from_nothing() -> None:
    result = MetricResult(name="m", phase="Running")
    for phase in ("Error", "Error", "Successful", "Successful", "Failed"):
        count_measurement(result, phase)
    assert (result.count, result.successful, result.failed, result.error) == (3, 2, 1, 2)
    assert (result.consecutive_error, result.consecutive_success) == (0, 0)


# --- 2.6 metric phase --------------------------------------------------------------------------


def _result(phases: list[str], *, status: str = "Running", **counters: int) -> MetricResult:
    """A result whose measurements have these phases; counters derived unless given."""
    result = MetricResult(name="m", phase=status)
    result.measurements = [measurement(p, float(i)) for i, p in enumerate(phases)]
    for phase in phases:
        if phase in COMPLETED:
            count_measurement(result, phase)
    for key, value in counters.items():
        setattr(result, key, value)
    return result


def _metric(**fields: Any) -> Metric:
    return Metric.model_validate(metric(**fields))


S, F, I, E = "Successful", "Failed", "Inconclusive", "Error"  # noqa: E741

PHASE_ROWS = [
    # 1. already completed: unchanged, whatever the counters say
    ("completed stays", {}, _result([S], status=F), False, F),
    ("completed stays while terminating", {}, _result([F], status=S), True, S),
    # 2. no measurements
    ("nothing measured, terminating", {}, _result([]), True, S),
    ("nothing measured", {}, _result([]), False, "Pending"),
    # 3. last measurement in flight
    ("in flight", {}, _result([S, "Running"]), False, "Running"),
    ("in flight while terminating", {}, _result([S, "Running"]), True, "Running"),
    # 4. limits, Argo's order, later overriding earlier
    ("first failure with defaults", {"count": 3, "interval": "1m"}, _result([F]), False, F),
    (
        "failures within failureLimit",
        {"count": 5, "interval": "1m", "failureLimit": 2},
        _result([F, F]),
        False,
        "Running",
    ),
    (
        "failed > failureLimit",
        {"count": 5, "interval": "1m", "failureLimit": 2},
        _result([F, F, F]),
        False,
        F,
    ),
    (
        "failureLimit -1 never fails",
        {"interval": "1m", "failureLimit": -1, "consecutiveSuccessLimit": 2},
        _result([F, F, F, F]),
        False,
        "Running",
    ),
    ("first inconclusive with defaults", {"count": 3, "interval": "1m"}, _result([I]), False, I),
    (
        "inconclusive within limit",
        {"count": 3, "interval": "1m", "inconclusiveLimit": 1},
        _result([I]),
        False,
        "Running",
    ),
    ("4 consecutive errors", {}, _result([E, E, E, E]), False, "Running"),
    ("5th consecutive error", {}, _result([E, E, E, E, E]), False, E),
    (
        "errors not consecutive",
        {"count": 5, "interval": "1m"},
        _result([E, E, E, S, E, E]),
        False,
        "Running",
    ),
    ("consecutiveErrorLimit 0", {"consecutiveErrorLimit": 0}, _result([E]), False, E),
    (
        "failure and inconclusive: inconclusive wins",
        {"count": 9, "interval": "1m"},
        _result([F, I]),
        False,
        I,
    ),
    (
        "failure and errors: error wins",
        {"count": 9, "interval": "1m"},
        _result([F], consecutive_error=5),
        False,
        E,
    ),
    ("breach while terminating", {"interval": "1m"}, _result([S, F]), True, F),
    # 5. consecutiveSuccessLimit reached
    (
        "consecutive successes reached",
        {"count": 5, "interval": "1m", "consecutiveSuccessLimit": 2},
        _result([S, S]),
        False,
        S,
    ),
    (
        "consecutive successes not yet",
        {"count": 5, "interval": "1m", "consecutiveSuccessLimit": 3, "failureLimit": 2},
        _result([S, F, S, S]),
        False,
        "Running",
    ),
    # 6. count reached
    ("count reached", {"count": 2, "interval": "1m"}, _result([S, S]), False, S),
    ("count 1 (no interval) reached", {}, _result([S]), False, S),
    (
        "count reached, errors do not count",
        {"count": 2, "interval": "1m"},
        _result([S, E, E]),
        False,
        "Running",
    ),
    (
        "count reached without the streak: inconclusive",
        {"count": 3, "interval": "1m", "failureLimit": 1, "consecutiveSuccessLimit": 2},
        _result([S, F, S]),
        False,
        I,
    ),
    (
        "count reached without the streak, failureLimit -1: failed",
        {"count": 3, "interval": "1m", "failureLimit": -1, "consecutiveSuccessLimit": 2},
        _result([S, F, S]),
        False,
        F,
    ),
    (
        "count reached without the streak, terminating: limit ignored",
        {"count": 3, "interval": "1m", "failureLimit": 1, "consecutiveSuccessLimit": 2},
        _result([S, F, S]),
        True,
        S,
    ),
    # 7. unbounded / not reached
    ("unbounded", {"interval": "1m"}, _result([S, S, S]), False, "Running"),
    ("unbounded, terminating", {"interval": "1m"}, _result([S, S, S]), True, S),
    ("count not reached, terminating", {"count": 5, "interval": "1m"}, _result([S]), True, S),
    (
        "streak not reached, terminating",
        {"interval": "1m", "consecutiveSuccessLimit": 3},
        _result([S]),
        True,
        S,
    ),
]


@pytest.mark.parametrize(
    ("fields", "result", "terminating", "expected"),
    [row[1:] for row in PHASE_ROWS],
    ids=[row[0] for row in PHASE_ROWS],
)
def test_metric_phase(
    fields: dict[str, Any], result: MetricResult, terminating: bool, expected: str
) -> None:
    assert assess_metric(_metric(**fields), result, terminating=terminating) == expected


def test_severity_order_is_argos() -> None:
    assert SEVERITY == ("Successful", "Running", "Pending", "Inconclusive", "Error", "Failed")
    for better, worse in itertools.pairwise(SEVERITY):
        assert is_worse(better, worse)
        assert not is_worse(worse, better)
        assert not is_worse(worse, worse)
