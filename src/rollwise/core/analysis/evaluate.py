"""One measurement: a provider's value judged by the metric's conditions (reference 2.5).

Where this sits: called by every provider that returns a value (Prometheus, Web, Datadog, ...
through `rollwise.providers.base.finished`) to turn it into a `Measurement`; Job and Kayenta
decide their phase themselves. Pure: the times are passed in.

The outcome table, exactly as Argo Rollouts' `EvaluateResult`:

| successCondition | failureCondition | outcome                                                    |
|------------------|------------------|------------------------------------------------------------|
| absent           | absent           | Successful (whatever the value)                            |
| present          | absent           | success true -> Successful, else Failed                    |
| absent           | present          | failure true -> Failed, else Successful                    |
| present          | present          | failure true -> Failed (even if success is true);          |
|                  |                  | else success true -> Successful; neither -> Inconclusive   |

An expression that does not compile, fails at run time or does not give a boolean makes the
measurement Error, with Argo's message (`could not evaluate successCondition "...": ...`); when
the value was nil or an empty list the message says so ("metric result is nil or empty"). The
success condition is evaluated first, so its error is the one reported.

The value is rendered as Argo renders it (Go's `%v`): `0.95`, `1e+06`, `NaN`, `+Inf`, `[0.99 1]`,
`map[a:1 b:x]`, `<nil>`, strings as they are.

rollwise addition: a metric carrying a no-data policy (`rollwise.core.analysis.nodata`) takes
the policy's phase when the value is nil, `[]` or `""`, before any condition is evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from rollwise.api.models import Measurement, Metric
from rollwise.core.analysis.nodata import (
    POLICY_PHASES,
    NoDataPolicy,
    is_no_data,
    no_data_policy_of,
)
from rollwise.core.analysis.phases import ERROR, FAILED, INCONCLUSIVE, SUCCESSFUL
from rollwise.core.expressions import ExpressionError, evaluate_condition
from rollwise.core.timestamps import format_time

NO_DATA_MESSAGE = "metric result is nil or empty: no data returned from the metric provider"


# --- Go's %v -----------------------------------------------------------------------------------


def _go_float(number: float) -> str:
    """`strconv.FormatFloat(f, 'g', -1, 64)`, which is what `%v` prints for a float64."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    _sign, digit_tuple, exponent = Decimal(repr(abs(number))).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    point = len(digits) + exponent  # digits[:point] is the integer part
    prefix = "-" if number < 0 else ""
    power = point - 1
    # Shortest formatting switches to %e when the exponent is < -4 or >= 6 (Go's eprec rule).
    if power < -4 or power >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{prefix}{digits}{'0' * (point - len(digits))}"
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def render_value(value: object) -> str:
    """`fmt.Sprintf("%v", value)` for the values providers return (JSON-like data)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "[" + " ".join(render_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        # Go prints maps with their keys sorted.
        items = sorted(value.items(), key=lambda item: render_value(item[0]))
        return "map[" + " ".join(f"{render_value(k)}:{render_value(v)}" for k, v in items) + "]"
    return str(value)


# --- the outcome table -------------------------------------------------------------------------


def _nil_or_empty(value: object) -> bool:
    """Argo's `isNilOrEmpty`: nil or an empty list (an empty string is not)."""
    return value is None or (isinstance(value, list | tuple) and len(value) == 0)


def _evaluate(kind: str, expression: str, value: object, now: datetime | None) -> bool | str:
    """The condition's truth, or the Error message when it cannot be evaluated."""
    try:
        return evaluate_condition(expression, value, now=now)
    except ExpressionError as error:
        reason = NO_DATA_MESSAGE if _nil_or_empty(value) else str(error)
        return f'could not evaluate {kind} "{expression}": {reason}'


def outcome_of(
    metric: Metric, value: object, *, now: datetime | None = None
) -> tuple[str, str | None]:
    """The phase the metric's conditions give `value`, and the Error message if any. `now` is
    what `now()` returns in a condition (without it `now()` is an Error)."""
    success_text = metric.success_condition or ""
    failure_text = metric.failure_condition or ""
    success = False
    failure = False
    if success_text:
        evaluated = _evaluate("successCondition", success_text, value, now)
        if isinstance(evaluated, str):
            return ERROR, evaluated
        success = evaluated
    if failure_text:
        evaluated = _evaluate("failureCondition", failure_text, value, now)
        if isinstance(evaluated, str):
            return ERROR, evaluated
        failure = evaluated
    if not success_text and not failure_text:
        return SUCCESSFUL, None
    if success_text and not failure_text:
        failure = not success
    elif failure_text and not success_text:
        success = not failure
    if failure:
        return FAILED, None
    if not success:
        return INCONCLUSIVE, None
    return SUCCESSFUL, None


def _measurement(
    phase: str,
    message: str | None,
    *,
    value: str | None,
    started_at: datetime,
    finished_at: datetime,
    metadata: Mapping[str, str] | None,
) -> Measurement:
    fields: dict[str, object] = {
        "phase": phase,
        "started_at": format_time(started_at),
        "finished_at": format_time(finished_at),
    }
    if message:
        fields["message"] = message
    if value is not None:
        fields["value"] = value
    if metadata:
        fields["metadata"] = dict(metadata)
    return Measurement.model_validate(fields)


def measurement_from_value(
    metric: Metric,
    value: object,
    *,
    started_at: datetime,
    finished_at: datetime,
    metadata: Mapping[str, str] | None = None,
    no_data_policy: NoDataPolicy | None = None,
) -> Measurement:
    """A finished measurement of `value` judged by the metric's conditions (the table above).

    `no_data_policy` overrides the policy the metric carries (see `nodata`); with neither, an
    empty value goes through the conditions exactly as in Argo. A condition's `now()` is
    `finished_at`.
    """
    rendered = render_value(value)
    policy = no_data_policy or no_data_policy_of(metric)
    if policy is not None and is_no_data(value):
        return _measurement(
            POLICY_PHASES[policy],
            f"{NO_DATA_MESSAGE} (no-data policy: {policy})",
            value=rendered,
            started_at=started_at,
            finished_at=finished_at,
            metadata=metadata,
        )
    phase, message = outcome_of(metric, value, now=finished_at)
    return _measurement(
        phase,
        message,
        value=rendered,
        started_at=started_at,
        finished_at=finished_at,
        metadata=metadata,
    )


def error_measurement(
    message: str,
    *,
    started_at: datetime,
    finished_at: datetime,
    metadata: Mapping[str, str] | None = None,
) -> Measurement:
    """An Error measurement (a provider that could not measure): counts toward
    `consecutiveErrorLimit`, not toward `count`, and is retried after 10 s."""
    return _measurement(
        ERROR,
        message,
        value=None,
        started_at=started_at,
        finished_at=finished_at,
        metadata=metadata,
    )
