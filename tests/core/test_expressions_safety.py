"""No expression, however hostile, escapes as anything but an ExpressionError or runs unbounded.

Limits are tested where they bite (length, nesting, work budget, ranges, string growth,
catastrophic regular expressions, deeply nested data), then random garbage, random token soups
and random well-formed expressions are thrown at the compiler and the evaluator. An "internal
error" message would mean a Python exception slipped through the operators: that fails too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollwise.core.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    Expression,
    ExpressionError,
    compile_expression,
    evaluate_condition,
)


def refusal(text: str, env: dict[str, Any] | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text).evaluate(env or {})
    assert "internal error" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("1 + " * (MAX_LENGTH // 4) + "1", f"longer than {MAX_LENGTH} characters"),
        ("(" * (MAX_DEPTH + 5) + "1" + ")" * (MAX_DEPTH + 5), "nested too deeply"),
        ("1" + " + 1" * (MAX_DEPTH + 5), "nested too deeply"),
        ("!" * (MAX_DEPTH + 5) + "true", "nested too deeply"),
        ("-" * (MAX_DEPTH + 5) + "1", "nested too deeply"),
        ("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5), "nested too deeply"),
    ],
    ids=["length", "parentheses", "operators", "negations", "minus", "arrays"],
)
def test_size_limits_are_compile_errors(text: str, detail: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    assert detail in caught.value.detail


@pytest.mark.parametrize(
    ("text", "env", "detail"),
    [
        ("all(1..1000, {all(1..1000, {true})})", {}, "exceeded its budget"),
        ("count(x, {none(x, {# == -1})})", {"x": list(range(2000))}, "exceeded its budget"),
        ("x..y", {"x": 0, "y": 10**9}, "too large"),
        ("reduce(1..100000, {#acc + 'xxxxxxxxxxxxxxxxxxxxxxx'}, '')", {}, "exceeded its budget"),
        ("reduce(1..40, {#acc + #acc}, 'ab')", {}, "string too long"),
        ("len(repeat('ab', 5000000))", {}, "memory budget exceeded"),
        ("x matches '(a+)+$'", {"x": "a" * 40 + "b"}, "catastrophic backtracking"),
        ("x matches '(a|aa)*c'", {"x": "a" * 40}, "catastrophic backtracking"),
        ("x matches '.*.*.*.*x'", {"x": "a" * 5000}, "catastrophic backtracking"),
        ("x == x", {"x": "deep"}, "nested too deeply"),
        ("toJSON(x) != ''", {"x": "deep"}, "nested too deeply"),
        ("string(x) != ''", {"x": "deep"}, "nested too deeply"),
    ],
    ids=[
        "nested-loops",
        "loops-over-data",
        "range",
        "string-growth",
        "string-doubling",
        "repeat",
        "nested-quantifier",
        "quantified-alternation",
        "polynomial-regex",
        "deep-equal",
        "deep-json",
        "deep-string",
    ],
)
def test_work_limits_are_evaluation_errors(text: str, env: dict[str, Any], detail: str) -> None:
    if env.get("x") == "deep":
        deep: list[object] = []
        for _ in range(50_000):
            deep = [deep]
        env = {"x": deep}
    assert detail in refusal(text, env).detail


def test_a_guarded_pattern_still_matches_short_texts() -> None:
    assert compile_expression("x matches '(a+)+$'").evaluate({"x": "aaaa"}) is True
    assert compile_expression("x matches '^(v[0-9]+\\\\.)+[0-9]+$'").evaluate({"x": "v1.2"}) is True


def test_nothing_is_evaluated_as_python() -> None:
    for text in ("__import__('os').system('true')", "().__class__", "open('/etc/passwd')"):
        with pytest.raises(ExpressionError):
            compile_expression(text).evaluate({})


# -- random inputs -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)

TOKENS = [
    "result",
    "x",
    "#",
    "#index",
    "#acc",
    ".",
    "?.",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ",",
    ":",
    "?",
    "??",
    "|",
    "..",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "^",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "!",
    "not",
    "and",
    "or",
    "&&",
    "||",
    "in",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "0",
    "1",
    "-1",
    "2.5",
    "1e3",
    "nil",
    "true",
    "false",
    "'a'",
    '"b"',
    "'(a+)+$'",
    "len",
    "all",
    "any",
    "map",
    "filter",
    "reduce",
    "sum",
    "max",
    "sortBy",
    "groupBy",
    "split",
    "toJSON",
    "fromJSON",
    "string",
    "int",
    "duration",
    "date",
    "now",
    "isNaN",
    "asInt",
    "default",
    "isNil",
    "0..10",
    "1..100000",
]


def _attempt(action: Callable[[], object]) -> object:
    """The value of `action()`, or the ExpressionError it raised (anything else propagates)."""
    try:
        return action()
    except ExpressionError as error:
        return error


def _check_error(outcome: object, text: str) -> None:
    if isinstance(outcome, ExpressionError):
        assert "internal error" not in str(outcome), str(outcome)
        assert outcome.position is None or 0 <= outcome.position <= len(text)


def _never_escapes(text: str, result: object) -> None:
    compiled = _attempt(lambda: compile_expression(text))
    _check_error(compiled, text)
    if not isinstance(compiled, Expression):
        return
    for env in ({"result": result, "x": result}, {}):
        _check_error(_attempt(lambda env=env: compiled.evaluate(env)), text)  # type: ignore[misc]
    decided = _attempt(lambda: evaluate_condition(text, result))
    _check_error(decided, text)
    assert isinstance(decided, bool | ExpressionError)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=60), result=json_values)
def test_random_text_only_ever_raises_expression_errors(text: str, result: object) -> None:
    _never_escapes(text, result)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens=st.lists(st.sampled_from(TOKENS), max_size=25), result=json_values)
def test_random_token_soup_only_ever_raises_expression_errors(
    tokens: list[str], result: object
) -> None:
    _never_escapes(" ".join(tokens), result)


LEAVES = [
    "result",
    "result[0]",
    "result.a",
    "1",
    "2.5",
    "-3",
    "nil",
    "true",
    "'s'",
    "[1, 2]",
    "{a: 1}",
]
UNARY = [
    "!{}",
    "-{}",
    "not {}",
    "({})",
    "len({})",
    "string({})",
    "int({})",
    "abs({})",
    "isNaN({})",
    "asFloat({})",
    "default({}, 0)",
    "{}?.a",
    "{}[0]",
    "{}[1:]",
    "first({})",
    "toJSON({})",
    "fromJSON({})",
    "max({})",
    "sort({})",
    "keys({})",
    "upper({})",
    "duration({})",
]
BINARY = [
    "{} + {}",
    "{} - {}",
    "{} * {}",
    "{} / {}",
    "{} % {}",
    "{} ** {}",
    "{} == {}",
    "{} < {}",
    "{} >= {}",
    "{} && {}",
    "{} || {}",
    "{} in {}",
    "{} .. {}",
    "{} ?? {}",
    "{} matches {}",
    "{} contains {}",
    "{} ? {} : 1",
    "[{}, {}]",
    "{{k: {}, j: {}}}",
    "split({}, {})",
    "all({}, {{# > {}}})",
    "map({}, {{# + {}}})",
    "filter({}, {{{} == #}})",
    "reduce({}, {{#acc + {}}}, 0)",
    "sortBy({}, {{{}}})",
    "{} | map({{# * {}}})",
]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 4 or draw(st.booleans()):
        return draw(st.sampled_from(LEAVES))
    if draw(st.booleans()):
        return draw(st.sampled_from(UNARY)).format(draw(expressions(depth + 1)))
    shape = draw(st.sampled_from(BINARY))
    return shape.format(*(draw(expressions(depth + 1)) for _ in range(shape.count("{}"))))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=expressions(), result=json_values)
def test_random_expressions_only_ever_raise_expression_errors(text: str, result: object) -> None:
    _never_escapes(text, result)


@settings(max_examples=200, deadline=None)
@given(x=st.floats(), y=st.floats() | st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_arithmetic_on_any_numbers_is_a_value_or_an_expression_error(x: float, y: float) -> None:
    for op in ("+", "-", "*", "/", "%", "**", "<", "==", ".."):
        text = f"x {op} y"
        value = _attempt(lambda text=text: compile_expression(text).evaluate({"x": x, "y": y}))  # type: ignore[misc]
        _check_error(value, text)
        assert isinstance(value, bool | int | float | list | ExpressionError)
    assert math.isnan(x) is compile_expression("isNaN(x)").evaluate(
        {"x": x, "isNaN": lambda v: v != v}
    )
