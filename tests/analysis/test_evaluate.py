"""Reference 2.5: one measurement from a provider's value, every row of the outcome table, the
Error cases with Argo's messages, Go's rendering of values, and rollwise's no-data policy."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rollwise.api.errors import UserError
from rollwise.api.models import Metric
from rollwise.core.analysis.evaluate import (
    NO_DATA_MESSAGE,
    error_measurement,
    measurement_from_value,
    outcome_of,
    render_value,
)
from rollwise.core.analysis.nodata import no_data_policies, no_data_policy_of, with_no_data_policy
from rollwise.core.expressions import ExpressionError, evaluate_condition

from .runs_world import T0, at, metric, ts

S, F, I, E = "Successful", "Failed", "Inconclusive", "Error"  # noqa: E741
NAN = math.nan


def _metric(success: str | None = None, failure: str | None = None, **fields: Any) -> Metric:
    if success is not None:
        fields["successCondition"] = success
    if failure is not None:
        fields["failureCondition"] = failure
    return Metric.model_validate(metric(**fields))


OUTCOMES = [
    # absent / absent: Successful whatever the value (Argo's docs say Inconclusive; the code wins)
    ("no conditions, a number", None, None, 0.5, S),
    ("no conditions, NaN", None, None, NAN, S),
    ("no conditions, nil", None, None, None, S),
    ("no conditions, empty", None, None, [], S),
    # present / absent: success true -> Successful, else Failed
    ("success only, true", "result >= 0.95", None, 0.99, S),
    ("success only, false", "result >= 0.95", None, 0.5, F),
    ("success only, NaN fails", "result >= 0.95", None, NAN, F),
    # absent / present: failure true -> Failed, else Successful
    ("failure only, true", None, "result < 0.9", 0.5, F),
    ("failure only, false", None, "result < 0.9", 0.99, S),
    ("failure only, NaN passes", None, "result < 0.9", NAN, S),
    # present / present
    ("both, success", "result >= 0.95", "result < 0.9", 0.99, S),
    ("both, failure", "result >= 0.95", "result < 0.9", 0.5, F),
    ("both, neither: inconclusive", "result >= 0.95", "result < 0.9", 0.92, I),
    ("both, NaN: inconclusive", "result >= 0.95", "result < 0.9", NAN, I),
    ("both true: failure wins", "result > 0", "result > 0.5", 0.9, F),
    # conditions over lists, as Prometheus vectors give them
    ("vector, first element", "result[0] >= 0.95", None, [0.99, 0.1], S),
    ("vector, all", "all(result, {# < 0.5})", None, [0.1, 0.6], F),
    ("guarded empty vector", "len(result) == 0 || result[0] >= 0.95", None, [], S),
]


@pytest.mark.parametrize(
    ("success", "failure", "value", "expected"),
    [row[1:] for row in OUTCOMES],
    ids=[row[0] for row in OUTCOMES],
)
def test_outcome_table(
    success: str | None, failure: str | None, value: object, expected: str
) -> None:
    assert outcome_of(_metric(success, failure), value) == (expected, None)


def _expression_error(text: str, value: object) -> str:
    with pytest.raises(ExpressionError) as caught:
        evaluate_condition(text, value)
    return str(caught.value)


@pytest.mark.parametrize("value", [[], None])
def test_an_empty_result_errors_with_argos_message(value: object) -> None:
    phase, message = outcome_of(_metric("result[0] >= 0.95"), value)
    assert phase == E
    assert message == (
        'could not evaluate successCondition "result[0] >= 0.95": metric result is nil or empty:'
        " no data returned from the metric provider"
    )


@pytest.mark.parametrize(
    ("success", "failure", "value", "kind", "bad"),
    [
        ("result >=", None, 0.5, "successCondition", "result >="),  # does not compile
        ("result + 1", None, 0.5, "successCondition", "result + 1"),  # not a boolean
        ("result > 0", "nosuchname > 1", 0.5, "failureCondition", "nosuchname > 1"),
        ("result[3] > 0", "result[0] > 0", [1.0], "successCondition", "result[3] > 0"),
        ("asInt(result) > 0", None, "abc", "successCondition", "asInt(result) > 0"),
    ],
)
def test_expression_errors_are_error_measurements(
    success: str, failure: str | None, value: object, kind: str, bad: str
) -> None:
    phase, message = outcome_of(_metric(success, failure), value)
    assert phase == E
    assert message == f'could not evaluate {kind} "{bad}": {_expression_error(bad, value)}'


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (0.95, "0.95"),
        (1.0, "1"),
        (100.0, "100"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.1 + 0.2, "0.30000000000000004"),
        (0.006121378742186943, "0.006121378742186943"),
        (-0.5, "-0.5"),
        (0.0, "0"),
        (NAN, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        ([0.99, 1.0], "[0.99 1]"),
        ([], "[]"),
        ([NAN, None], "[NaN <nil>]"),
        (None, "<nil>"),
        ("text body", "text body"),
        (True, "true"),
        (3, "3"),
        ({"b": 1.0, "a": "x"}, "map[a:x b:1]"),
        ([{"count": 2.0}], "[map[count:2]]"),
    ],
)
def test_values_render_like_gos_percent_v(value: object, rendered: str) -> None:
    assert render_value(value) == rendered


def test_a_measurement_from_a_value() -> None:
    measured = measurement_from_value(
        _metric("result[0] >= 0.95"),
        [0.5],
        started_at=T0,
        finished_at=at(2),
        metadata={"ResolvedPrometheusQuery": "up"},
    )
    assert measured.to_raw() == {
        "phase": F,
        "startedAt": ts(0),
        "finishedAt": ts(2),
        "value": "[0.5]",
        "metadata": {"ResolvedPrometheusQuery": "up"},
    }


def test_an_error_measurement() -> None:
    measured = error_measurement("connection refused", started_at=T0, finished_at=at(1))
    assert measured.to_raw() == {
        "phase": E,
        "message": "connection refused",
        "startedAt": ts(0),
        "finishedAt": ts(1),
    }


# --- no-data policy (rollwise) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "value", "expected"),
    [
        ("succeed", [], S),
        ("fail", None, F),
        ("inconclusive", "", I),
        ("error", [], E),
        ("fail", [0.99], S),  # there is data: the conditions decide
        ("succeed", [0.5], F),
    ],
)
def test_no_data_policy(policy: Any, value: object, expected: str) -> None:
    m = with_no_data_policy(_metric("result[0] >= 0.95"), policy)
    measured = measurement_from_value(m, value, started_at=T0, finished_at=T0)
    assert measured.phase == expected
    if value in ([], None, ""):
        assert measured.message == f"{NO_DATA_MESSAGE} (no-data policy: {policy})"


def test_the_policy_can_be_given_explicitly() -> None:
    measured = measurement_from_value(
        _metric("result[0] >= 0.95"), [], started_at=T0, finished_at=T0, no_data_policy="fail"
    )
    assert measured.phase == F


def test_the_policy_does_not_leak_into_yaml_fields() -> None:
    m = with_no_data_policy(_metric("result > 1"), "fail")
    assert no_data_policy_of(m) == "fail"
    assert no_data_policy_of(_metric("result > 1")) is None
    assert m.success_condition == "result > 1"


def test_policies_from_annotations() -> None:
    annotations = {
        "rollwise.io/no-data-policy": "inconclusive",
        "rollwise.io/no-data-policy.latency": "Fail",
        "unrelated": "x",
    }
    assert no_data_policies(annotations, ["success-rate", "latency"]) == {
        "success-rate": "inconclusive",
        "latency": "fail",
    }
    assert no_data_policies(None, ["a"]) == {}


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"rollwise.io/no-data-policy.a": "retry"}, "'retry' is not a no-data policy"),
        ({"rollwise.io/no-data-policy.b": "fail"}, "no metric is named 'b'"),
    ],
)
def test_bad_policy_annotations(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        no_data_policies(annotations, ["a"])


def test_now_in_a_condition_is_the_measurements_end() -> None:
    m = _metric('now() > date("2026-11-26T01:00:30Z")')
    early = measurement_from_value(m, 1.0, started_at=T0, finished_at=at(10))
    late = measurement_from_value(m, 1.0, started_at=T0, finished_at=at(60))
    assert (early.phase, late.phase) == (F, S)
