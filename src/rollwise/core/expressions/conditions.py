"""Argo Rollouts' conditions: `successCondition` / `failureCondition` over a metric's `result`.

Who calls it: the analysis core (`measurement_from_value`), once per condition and measurement.
The environment is the one of Argo's `EvalCondition` (utils/evaluate/evaluate.go): `result`,
`asInt`, `asFloat`, `isNaN`, `isInf`, and the two odd ones, `isNil(_)` and `default(_, d)`, which
ignore their (still evaluated) first argument and look at `result` itself — so
`default(result, 0) < 0.05` works on a nil result but `default(result[0], 0)` still fails on an
empty list. As in Argo, a name outside this environment is refused before evaluation, even in a
branch that would not run, and an outcome that is not a boolean is an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from datetime import datetime
from functools import lru_cache

from rollwise.core.expressions.errors import ExpressionError
from rollwise.core.expressions.evaluation import Expression, compile_expression
from rollwise.core.expressions.values import INT_MAX, INT_MIN, Fault, brief, is_number, type_name

_INT_TEXT = re.compile(r"[+-]?\d+")
# One way only to read each digit (`\d+\.?\d*` backtracks quadratically on a long non-number,
# and `result` may be any text a metrics server sent).
_FLOAT_TEXT = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE
)


def as_int(value: object) -> int:
    """Argo's asInt: any number (floats truncated) or a base-10 numeric string to an int64."""
    if isinstance(value, bool):
        raise Fault(f"asInt() not supported on bool {str(value).lower()}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise Fault(f"asInt() cannot convert {value}")
        return int(value)
    if isinstance(value, str):
        # an int64 has at most 19 digits: longer text is out of range (and slow to convert)
        if len(value) <= 20 and _INT_TEXT.fullmatch(value) and INT_MIN <= int(value) <= INT_MAX:
            return int(value)
        raise Fault(f'strconv.ParseInt: parsing "{brief(value)}": invalid syntax')
    raise Fault(f"asInt() not supported on {type_name(value)}")


def as_float(value: object) -> float:
    """Argo's asFloat: any number or a numeric string to a float64."""
    if is_number(value):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        if _FLOAT_TEXT.fullmatch(value):
            return float(value)
        raise Fault(f'strconv.ParseFloat: parsing "{brief(value)}": invalid syntax')
    raise Fault(f"asFloat() not supported on {type_name(value)}")


def _float_argument(name: str, value: object) -> float:
    if is_number(value):
        return float(value)  # type: ignore[arg-type]
    raise Fault(f"cannot use {type_name(value)} as argument (type float64) to call {name}")


def is_nan(value: object) -> bool:
    return math.isnan(_float_argument("isNaN", value))


def is_inf(value: object) -> bool:
    return math.isinf(_float_argument("isInf", value))


_STATIC: dict[str, object] = {
    "asInt": as_int,
    "asFloat": as_float,
    "isNaN": is_nan,
    "isInf": is_inf,
}
ENVIRONMENT = frozenset([*_STATIC, "result", "isNil", "default"])
_RESULT_ONLY = frozenset(["result"])


@lru_cache(maxsize=1024)
def compile_condition(text: str) -> Expression:
    """The compiled condition, its names checked against Argo's environment."""
    try:
        expression = compile_expression(text)
        expression.check_names(ENVIRONMENT)
    except ExpressionError as error:
        raise error.renamed("invalid condition") from None
    return expression


def condition_environment(
    result: object, names: Collection[str] = ENVIRONMENT
) -> dict[str, object]:
    """Argo's environment for one measurement's `result` (only `names` of it, if given)."""
    env = {name: function for name, function in _STATIC.items() if name in names}
    env["result"] = result
    if "isNil" in names:
        env["isNil"] = lambda _ignored: result is None
    if "default" in names:
        env["default"] = lambda _ignored, fallback: fallback if result is None else result
    return env


# The environment is built per measurement; building only what a condition names keeps the
# common `result[0] >= 0.95` cheap. A plain dict in front of the LRU cache saves its call cost.
_compiled: dict[str, Expression] = {}


def evaluate_condition(text: str, result: object, *, now: datetime | None = None) -> bool:
    """Whether the condition holds for `result`; every failure is an ExpressionError.

    `now` is what the builtin `now()` returns; without it, `now()` is an error (the core never
    reads the clock itself).
    """
    expression = _compiled.get(text)
    if expression is None:
        expression = compile_condition(text)
        if len(_compiled) >= 1024:
            _compiled.clear()
        _compiled[text] = expression
    names = expression.names
    if names == _RESULT_ONLY:
        env: dict[str, object] = {"result": result}
    else:
        env = condition_environment(result, names)
    try:
        outcome = expression.evaluate(env, now=now)
    except ExpressionError as error:
        raise error.renamed("cannot evaluate condition") from None
    if outcome is True or outcome is False:
        return outcome
    raise ExpressionError(
        f"expected bool, but got {type_name(outcome)}",
        expression=text,
        position=None,
        kind="invalid condition",
    )
