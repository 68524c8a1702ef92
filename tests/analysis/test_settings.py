"""Reference 2.3: how a metric's fields read (defaults, int-or-string, durations, effective
count) and Argo's validation, with its messages."""

from __future__ import annotations

from typing import Any

import pytest

from rollwise.api.models import Metric
from rollwise.core.analysis.settings import (
    consecutive_error_limit,
    consecutive_success_limit,
    effective_count,
    failure_limit,
    inconclusive_limit,
    int_or_string,
    metric_problem,
    metrics_problem,
    parse_go_duration,
)

from .runs_world import metric


def _metric(**fields: Any) -> Metric:
    return Metric.model_validate(metric(**fields))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 0),
        (3, 3),
        (-1, -1),
        ("3", 3),  # what a substituted {{args.count}} gives
        ("+4", 4),
        ("-1", -1),
        ("abc", 0),  # junk reads as 0, silently (trap in section 9)
        ("3.5", 0),
        (" 3", 0),
        ("", 0),
        ("{{args.n}}", 0),
    ],
)
def test_int_or_string_reads_like_go(raw: int | str | None, expected: int) -> None:
    assert int_or_string(raw) == expected


def test_defaults() -> None:
    plain = _metric()
    assert failure_limit(plain) == 0
    assert inconclusive_limit(plain) == 0
    assert consecutive_error_limit(plain) == 4
    assert consecutive_success_limit(plain) == 0
    assert consecutive_error_limit(_metric(consecutiveErrorLimit="junk")) == 0


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 1),  # no count, no interval: one measurement
        ({"count": 0}, 1),
        ({"interval": "1m"}, None),  # interval without count: until terminated
        ({"count": 0, "interval": "1m"}, None),
        ({"count": "junk", "interval": "1m"}, None),
        ({"count": "junk"}, 1),
        ({"count": 3, "interval": "1m"}, 3),
        ({"count": "5", "interval": "1m"}, 5),
    ],
)
def test_effective_count(fields: dict[str, Any], expected: int | None) -> None:
    assert effective_count(_metric(**fields)) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("1m30s", 90.0), ("1h", 3600.0), ("500ms", 0.5), ("0", 0.0), ("1.5m", 90.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", 'time: missing unit in duration "10"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("abc", 'time: invalid duration "abc"'),
        ("", 'time: invalid duration ""'),
    ],
)
def test_bad_go_durations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.") + "$"):
        parse_go_duration(text)


VALIDATION = [
    ({"count": 1, "failureLimit": 3}, "count must be >= failureLimit"),
    (
        {"count": 3, "interval": "1m", "failureLimit": 2, "consecutiveSuccessLimit": 2},
        "count must be >= failureLimit + consecutiveSuccessLimit",
    ),
    ({"count": 2, "interval": "1m", "inconclusiveLimit": 3}, "count must be >= inconclusiveLimit"),
    ({"count": 2}, "interval must be specified when count > 1"),
    ({"count": "3"}, "interval must be specified when count > 1"),
    ({"interval": "10"}, 'invalid interval string: time: missing unit in duration "10"'),
    ({"initialDelay": "soon"}, 'invalid startDelay string: time: invalid duration "soon"'),
    ({"failureLimit": -2}, "failureLimit must be >= 0, or -1 to turn the failure check off"),
    ({"failureLimit": -1}, "consecutiveSuccessLimit must be > 0 when failureLimit is -1"),
    ({"inconclusiveLimit": -1}, "inconclusiveLimit must be >= 0"),
    ({"consecutiveErrorLimit": -1}, "consecutiveErrorLimit must be >= 0"),
    ({"consecutiveSuccessLimit": -1}, "consecutiveSuccessLimit must be >= 0"),
    ({"provider": {}}, "no provider specified"),
    (
        {"provider": {"web": {"url": "x"}, "prometheus": {"query": "up"}}},
        "multiple providers specified",
    ),
    ({"provider": {"plugin": {"a/b": {}, "c/d": {}}}}, "multiple providers specified"),
]


@pytest.mark.parametrize(("fields", "message"), VALIDATION)
def test_metric_validation(fields: dict[str, Any], message: str) -> None:
    assert metric_problem(_metric(**fields)) == message


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"count": 3, "interval": "1m", "failureLimit": 3},
        {"count": 4, "interval": "1m", "failureLimit": 2, "consecutiveSuccessLimit": 2},
        {"count": 1, "failureLimit": -1, "consecutiveSuccessLimit": 3},  # -1 skips the sum
        {"interval": "1m", "failureLimit": -1, "consecutiveSuccessLimit": 2},
        {"count": "junk", "failureLimit": "junk"},  # both read as 0
        {"provider": {"plugin": {"rollwise/builtin": {}}}},
    ],
)
def test_valid_metrics(fields: dict[str, Any]) -> None:
    assert metric_problem(_metric(**fields)) is None


def test_metrics_validation_names_the_index() -> None:
    assert metrics_problem([]) == "no metrics specified"
    assert metrics_problem([_metric(name="a"), _metric(name="a")]) == (
        "metrics[1]: duplicate name 'a'"
    )
    assert metrics_problem([_metric(name="a"), _metric(name="b", count=2)]) == (
        "metrics[1]: interval must be specified when count > 1"
    )
