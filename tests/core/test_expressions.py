"""The expr language as Argo runs it: values, operators, builtins, Argo's environment, errors.

Tables of (expression, environment) -> value pin expr's semantics where Python would differ:
`/` always divides as floats, `%` truncates like Go, ints wrap at 64 bits, `-2 ** 2` is -4,
`!a == b` negates `a` only, comparisons chain, nil equals only nil, and so on.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from rollwise.api.errors import UserError
from rollwise.core.expressions import (
    ExpressionError,
    compile_expression,
    evaluate_condition,
)

NAN = math.nan
INF = math.inf
NOW = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)


def same(actual: object, expected: object) -> bool:
    """Equal, of the same type all the way down (1 is not 1.0 here), NaN equal to NaN."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float):
        assert isinstance(actual, float)
        return (math.isnan(actual) and math.isnan(expected)) or actual == expected
    if isinstance(expected, list):
        assert isinstance(actual, list)
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        return actual.keys() == expected.keys() and all(
            same(actual[k], expected[k]) for k in expected
        )
    return actual == expected


def evaluate(text: str, env: dict[str, Any] | None = None) -> object:
    return compile_expression(text).evaluate(env or {}, now=NOW)


VALUES: list[tuple[str, dict[str, Any], object]] = [
    # literals
    ("1_000", {}, 1000),
    ("1e3", {}, 1000.0),
    (".5", {}, 0.5),
    ("0x1F + 0o17 + 0b101", {}, 51),
    ("'it''s'" if False else "'a\\tb'", {}, "a\tb"),
    ('"\\u00e9\\x41\\101"', {}, "éAA"),
    ("`raw\\n`", {}, "raw\\n"),
    ("[1, 'a', nil, true,]", {}, [1, "a", None, True]),
    ("{a: 1, 'b': 2, 3: 4, (1 + 1): 5}", {}, {"a": 1, "b": 2, "3": 4, 2: 5}),
    ("1 /* two */ + 2 // three", {}, 3),
    # arithmetic: ints stay ints, `/` is always a float division, `**` always a float
    ("1 + 2", {}, 3),
    ("1 + 2.0", {}, 3.0),
    ("7 / 2", {}, 3.5),
    ("6 / 3", {}, 2.0),
    ("1 / 0", {}, INF),
    ("-1 / 0", {}, -INF),
    ("0 / 0", {}, NAN),
    ("7 % 3", {}, 1),
    ("-7 % 3", {}, -1),
    ("7 % -3", {}, 1),
    ("2 ** 10", {}, 1024.0),
    ("2 ^ 3", {}, 8.0),
    ("2 ** 3 ** 2", {}, 512.0),
    ("-2 ** 2", {}, -4.0),
    ("(-2) ** 2", {}, 4.0),
    ("0 ** -1", {}, INF),
    ("(-8) ** 0.5", {}, NAN),
    ("10 ** 400", {}, INF),
    ("10 - 2 - 3", {}, 5),
    ("2 + 3 * 4", {}, 14),
    ("9223372036854775807 + 1", {}, -9223372036854775808),
    ("x * 2", {"x": 2**62}, -(2**63)),
    ("-x", {"x": 3}, -3),
    ("'a' + 'b'", {}, "ab"),
    # comparisons
    ("1 == 1.0", {}, True),
    ("1 < 1.5", {}, True),
    ("'abc' < 'abd'", {}, True),
    ("nil == nil", {}, True),
    ("nil == 0", {}, False),
    ("nil != 0", {}, True),
    ("true == 1", {}, False),
    ("'1' == 1", {}, False),
    ("[1, 2] == [1, 2]", {}, True),
    ("[1] == [1.0]", {}, True),
    ("{a: [1]} == {a: [1]}", {}, True),
    ("1 < 2 < 3", {}, True),
    ("3 > 2 > 2", {}, False),
    # logic and expr's unary precedence
    ("true && false", {}, False),
    ("false or true", {}, True),
    ("not true", {}, False),
    ("!true == false", {}, True),
    ("!(1 == 2)", {}, True),
    ("not nil ?? true", {}, False),  # `not` takes `??` into its operand: not (nil ?? true)
    ("-x ?? 1", {"x": None}, -1),  # and so does unary minus: -(x ?? 1)
    ("1 + x ?? 2", {"x": None}, 3),  # `??` binds tighter than `+`
    ("false && missing", {}, False),
    ("true || missing", {}, True),
    # membership and strings
    ("2 in [1, 2]", {}, True),
    ("2.0 in [1, 2]", {}, True),
    ("'a' in {a: 1}", {}, True),
    ("'b' in {a: 1}", {}, False),
    ("'b' not in {a: 1}", {}, True),
    ("1 in nil", {}, False),
    ("'hello' contains 'ell'", {}, True),
    ("'hello' not contains 'x'", {}, True),
    ("'hello' startsWith 'he' && 'hello' endsWith 'lo'", {}, True),
    ("'hello' matches 'l+o$'", {}, True),
    ("'hello' not matches '^x'", {}, True),
    ("'abc' matches '[[:alpha:]]+'", {}, True),
    # ternary, nil-coalescing, optional chaining
    ("true ? 1 : 2", {}, 1),
    ("false ? 1 : true ? 2 : 3", {}, 2),
    ("nil ?? 1", {}, 1),
    ("0 ?? 1", {}, 0),
    ("x?.y", {"x": None}, None),
    ("x?.y.z", {"x": None}, None),
    ("x?.[0]", {"x": None}, None),
    ("x?.y", {"x": {"y": 2}}, 2),
    ("{a: nil}.a?.b", {}, None),
    # member access, index, slices, ranges
    ("x.y", {"x": {"y": [1]}}, [1]),
    ("x['y']", {"x": {"y": 1}}, 1),
    ("x.missing", {"x": {"y": 1}}, None),
    ("x[-1]", {"x": [1, 2, 3]}, 3),
    ("x[0.9]", {"x": [1, 2, 3]}, 1),
    ("'hello'[1]", {}, "e"),
    ("[1, 2, 3, 4][1:3]", {}, [2, 3]),
    ("[1, 2, 3][:-1]", {}, [1, 2]),
    ("[1, 2, 3][5:]", {}, []),
    ("[1, 2, 3][:]", {}, [1, 2, 3]),
    ("'hello'[1:3]", {}, "el"),
    ("1..3", {}, [1, 2, 3]),
    ("3..1", {}, []),
    # closures
    ("map([1, 2, 3], # * 2)", {}, [2, 4, 6]),
    ("map([1, 2, 3], {# * 2})", {}, [2, 4, 6]),
    ("filter(1..6, # % 2 == 0)", {}, [2, 4, 6]),
    ("count([true, false, true])", {}, 2),
    ("count(1..5, # > 2)", {}, 3),
    ("sum([1, 2, 3])", {}, 6),
    ("sum([1, 2.5])", {}, 3.5),
    ("sum([{v: 1}, {v: 2}], .v)", {}, 3),
    ("find([1, 2, 3], # > 1)", {}, 2),
    ("find([1, 2, 3], # > 5)", {}, None),
    ("findIndex([1, 2, 3], # > 5)", {}, -1),
    ("findLast([1, 2, 3], # < 3)", {}, 2),
    ("findLastIndex([1, 2, 3], # < 3)", {}, 1),
    ("one([1, 2, 3], # == 2)", {}, True),
    ("none([1, 2], # > 2)", {}, True),
    ("any([], true)", {}, False),
    ("map([{v: 1}, {v: 2}], .v)", {}, [1, 2]),
    ("map([{v: 1}], #.v + 1)", {}, [2]),
    ("map([10, 20], #index)", {}, [0, 1]),
    ("reduce(1..4, #acc + #)", {}, 10),
    ("reduce([1, 2], #acc + #, 10)", {}, 13),
    ("groupBy([1, 2, 3], # % 2 == 0)", {}, {False: [1, 3], True: [2]}),
    ("sortBy([{n: 2}, {n: 1}], .n)", {}, [{"n": 1}, {"n": 2}]),
    ("sortBy([1, 3, 2], #, 'desc')", {}, [3, 2, 1]),
    ("all([[1, 2], [3]], {all(#, {# > 0})})", {}, True),
    ("x | filter(# > 1) | map(# * 10)", {"x": [1, 2, 3]}, [20, 30]),
    ("x | len() == 3", {"x": [1, 2, 3]}, True),
    # builtins
    ("len('héllo') + len([1, 2]) + len({a: 1})", {}, 8),
    ("abs(-2) + abs(-2.5)", {}, 4.5),
    (
        "[ceil(1.2), floor(-1.2), round(2.5), round(-2.5), round(2)]",
        {},
        [2.0, -2.0, 3.0, -3.0, 2.0],
    ),
    ("[int(2.9), int(-2.9), int('42')]", {}, [2, -2, 42]),
    ("[float('1.5'), float(2)]", {}, [1.5, 2.0]),
    ("string(1.5)", {}, "1.5"),
    (
        "[string(100000.0), string(1000000.0), string(0.0001), string(0.00001)]",
        {},
        ["100000", "1e+06", "0.0001", "1e-05"],
    ),
    ("string([1, 'a', nil, true])", {}, "[1 a <nil> true]"),
    ("string({b: 2, a: 1})", {}, "map[a:1 b:2]"),
    ("upper('a') + lower('B')", {}, "Ab"),
    (
        "[trim('  a '), trim('xxaxx', 'x'), trimPrefix('v1.2', 'v'), trimSuffix('a.y', '.y')]",
        {},
        ["a", "a", "1.2", "a"],
    ),
    ("split('a,b,c', ',')", {}, ["a", "b", "c"]),
    ("split('a,b,c', ',', 2)", {}, ["a", "b,c"]),
    ("splitAfter('a,b', ',')", {}, ["a,", "b"]),
    ("join(['a', 'b'], '-')", {}, "a-b"),
    ("replace('aaa', 'a', 'b')", {}, "bbb"),
    ("replace('aaa', 'a', 'b', 2)", {}, "bba"),
    ("hasPrefix('abc', 'ab') && hasSuffix('abc', 'bc')", {}, True),
    ("[indexOf('abca', 'a'), lastIndexOf('abca', 'a')]", {}, [0, 3]),
    ("max(1, 2.5, [3])", {}, 3),
    ("min([3, 1, 2])", {}, 1),
    ("max([])", {}, None),
    ("mean([1, 2])", {}, 1.5),
    ("mean([])", {}, 0.0),
    ("median([3, 1, 2])", {}, 2.0),
    ("median([1, 2, 3, 4])", {}, 2.5),
    ("[first([1, 2]), first([]), last([1, 2]), get({a: 1}, 'b')]", {}, [1, None, 2, None]),
    ("keys({a: 1, b: 2})", {}, ["a", "b"]),
    ("values({a: 1})", {}, [1]),
    ("toPairs({a: 1})", {}, [["a", 1]]),
    ("fromPairs([['a', 1]])", {}, {"a": 1}),
    ("sort([3, 1, 2])", {}, [1, 2, 3]),
    ("sort(['b', 'a', 'c'], 'desc')", {}, ["c", "b", "a"]),
    ("reverse([1, 2])", {}, [2, 1]),
    ("uniq([1, 1.0, 2])", {}, [1, 2]),
    ("concat([1], [2], [])", {}, [1, 2]),
    ("flatten([1, [2, [3]]])", {}, [1, 2, 3]),
    ("take([1, 2, 3], 2)", {}, [1, 2]),
    ("toJSON([1, 'a<b'])", {}, '[\n  1,\n  "a\\u003cb"\n]'),
    ("toJSON({b: 1.0, a: 1e-7})", {}, '{\n  "a": 1e-7,\n  "b": 1\n}'),
    ("fromJSON('{\"a\": [1, 2.5, null]}')", {}, {"a": [1.0, 2.5, None]}),
    (
        "[type(1), type(1.5), type('a'), type(nil), type([]), type({})]",
        {},
        ["int", "float", "string", "nil", "array", "map"],
    ),
    ("toBase64('hi') + fromBase64('aGk=')", {}, "aGk=hi"),
    ("repeat('ab', 2)", {}, "abab"),
    ("[bitand(6, 3), bitor(6, 3), bitxor(6, 3), bitshl(1, 4), bitnot(0)]", {}, [2, 7, 5, 16, -1]),
    # time: durations, dates, and now() as given by the caller
    ("duration('1h30m') == duration('90m')", {}, True),
    ("duration('1.5s') < duration('2s')", {}, True),
    ("string(duration('90m'))", {}, "1h30m0s"),
    ("string(duration('300ms'))", {}, "300ms"),
    ("date('2026-11-26T01:50:00Z') > date('2026-01-01')", {}, True),
    ("date('2026-01-02', '2006-01-02') == date('2026-01-02')", {}, True),
    ("date('02 Jan 26 15:04 UTC') == date('2026-01-02 15:04:00')", {}, True),
    ("now() - date('2026-11-26T01:00:00Z') < duration('1h')", {}, True),
    ("now() > date('2026-11-26T01:50:00Z') - duration('1s')", {}, True),
]


@pytest.mark.parametrize(("text", "env", "expected"), VALUES, ids=[v[0] for v in VALUES])
def test_expression_value(text: str, env: dict[str, Any], expected: object) -> None:
    actual = evaluate(text, env)
    assert same(actual, expected), f"{text} gave {actual!r}, expected {expected!r}"


NAN_AND_INF: list[tuple[str, float, object]] = [
    ("x > 0", NAN, False),
    ("x < 0", NAN, False),
    ("x == x", NAN, False),
    ("x != x", NAN, True),
    ("x >= 0.95 || isNaN(x)", NAN, True),
    ("x - x", INF, NAN),
    ("1 / x", INF, 0.0),
    ("-x", INF, -INF),
    ("x > 1e308", INF, True),
    ("string(x)", NAN, "NaN"),
    ("string(x)", INF, "+Inf"),
    ("string(-x)", INF, "-Inf"),
    ("isInf(x) && x > 0", INF, True),
    ("max([x, 1])", NAN, NAN),  # Go's minMax keeps a NaN it met first: NaN < 1 is false
    ("max([1, x])", NAN, 1),
]


@pytest.mark.parametrize(("text", "x", "expected"), NAN_AND_INF)
def test_nan_and_inf_behave_as_in_go(text: str, x: float, expected: object) -> None:
    from rollwise.core.expressions.conditions import condition_environment

    env = condition_environment(None)
    env["x"] = x
    assert same(compile_expression(text).evaluate(env), expected)


SYNTAX_ERRORS: list[tuple[str, str, int | None]] = [
    ("result[0] >= ", "unexpected end of input", 13),
    ("1 +* 2", 'unexpected token "*"', 3),
    ("a @ b", 'unexpected character "@"', 2),
    ("'abc", "unterminated string literal", 0),
    ("f(1,, 2)", 'unexpected token ","', 4),
    ("[1, 2", "unexpected end of input", 5),
    ("(1 + 2", "unexpected end of input", 6),
    ("a ?? b + 1", "coalesce expressions (??) cannot be mixed", 7),
    ("#", "cannot use pointer accessor outside predicate", 0),
    (".x > 1", "cannot use pointer accessor outside predicate", 0),
    ("map([1], #foo)", "unknown pointer #foo", 9),
    ("map([1], #acc)", "#acc can only be used inside reduce", 9),
    ("{# > 1}", "a closure {...} can only be a predicate argument", 0),
    ("len()", "invalid number of arguments for len (expected 1, got 0)", 0),
    ("all([1])", "invalid number of arguments for all (expected 2, got 1)", 0),
    ("{[1]: 3}", "a map key must be a quoted string", 1),
    ("'\\q'", "invalid escape sequence \\q", 1),
    ("99999999999999999999", "integer literal is too large", 0),
    ("1e999", "float literal is too large", 0),
    ("x | 3", "a pipe must be followed by a function call", 4),
    ("/* open", "unclosed comment", 0),
    # constants are evaluated when compiling, as expr's checker rejects them
    ("1 + 'a'", "invalid operation: + (mismatched types int and string)", 2),
    ("1.5 % 2", "invalid operation: % (mismatched types float64 and int)", 4),
    ("1 % 0", "integer divide by zero", 2),
    ("'a' matches '('", "error parsing regexp", 4),
    ("'a' matches '(?=a)'", "invalid or unsupported Perl syntax", 4),
    ("1..2000000", "range 1..2000000 too large", 1),
    ("int('x')", "invalid operation: int(x)", 0),
    ("duration('5x')", 'unknown unit "x"', 0),
    ("fromJSON('{')", "fromJSON:", 0),
]


@pytest.mark.parametrize(
    ("text", "detail", "position"), SYNTAX_ERRORS, ids=[e[0] for e in SYNTAX_ERRORS]
)
def test_compile_error_names_expression_and_position(
    text: str, detail: str, position: int | None
) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    error = caught.value
    assert detail in error.detail
    assert error.position == position
    assert error.expression == text
    assert str(error) == f'invalid expression "{text}": {error.detail} at {position}'


RUNTIME_ERRORS: list[tuple[str, dict[str, Any], str, int]] = [
    ("x[3]", {"x": [1]}, "index out of range: 3 (array length is 1)", 1),
    ("x[-2]", {"x": [1]}, "index out of range: -1 (array length is 1)", 1),
    ("x + 1", {"x": "a"}, "invalid operation: + (mismatched types string and int)", 2),
    ("x % 0", {"x": 1}, "integer divide by zero", 2),
    ("x.y", {"x": 1.0}, "cannot fetch y from float64", 2),
    ("x.y.z", {"x": {}}, "cannot fetch z from <nil>", 4),
    ("unknown + 1", {}, "unknown name unknown", 0),
    ("nope(1)", {}, "unknown name nope", 0),
    ("x ? 1 : 2", {"x": 1}, "non-bool expression (type int) used as condition", 2),
    ("x && true", {"x": 1}, "invalid operation: and on int (expected bool)", 2),
    ("!x", {"x": 1}, "invalid operation: ! int", 0),
    ("not x in [true]", {"x": 1}, "invalid operation: ! int", 0),
    ("all(x, # + 1)", {"x": [1]}, "non-bool value (type int) used as the predicate of all", 0),
    ("all(x, # > 0)", {"x": 1}, "cannot iterate int", 0),
    ("'ell' in x", {"x": "hello"}, 'operator "in" not defined on string', 6),
    ("reduce(x, #acc)", {"x": []}, "reduce of empty array with no initial value", 0),
    ("x < 1", {"x": None}, "invalid operation: < (mismatched types <nil> and int)", 2),
    ("x < 'a'", {"x": 1.5}, "invalid operation: < (mismatched types float64 and string)", 2),
    (
        "x contains 'a'",
        {"x": ["a"]},
        "invalid operation: contains (mismatched types []interface {} and string)",
        2,
    ),
    ("now()", {}, "now() needs the current time", 0),
    ("toJSON(x)", {"x": NAN}, "json: unsupported value: NaN", 0),
    ("len(x)", {"x": 3}, "invalid argument for len (type int)", 0),
    ("x()", {"x": 3}, "x is not a function (type int)", 0),
]


@pytest.mark.parametrize(
    ("text", "env", "detail", "position"), RUNTIME_ERRORS, ids=[e[0] for e in RUNTIME_ERRORS]
)
def test_evaluation_error_names_expression_and_position(
    text: str, env: dict[str, Any], detail: str, position: int
) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text).evaluate(env)
    error = caught.value
    assert detail in error.detail
    assert error.position == position
    assert str(error) == f'cannot evaluate expression "{text}": {error.detail} at {position}'


def test_expression_error_is_a_user_error() -> None:
    with pytest.raises(UserError):
        compile_expression("1 +")


def test_compiled_expressions_are_cached_by_text() -> None:
    assert compile_expression("result[0] >= 0.95") is compile_expression("result[0] >= 0.95")


def test_expression_reports_the_names_it_needs() -> None:
    expression = compile_expression("all(result, {# > threshold}) && custom(1) && len(result) > 0")
    assert expression.names == {"result", "threshold", "custom"}


def test_env_functions_are_called_with_the_evaluated_arguments() -> None:
    expression = compile_expression("double(x + 1) == 8")
    assert expression.evaluate({"x": 3, "double": lambda v: v * 2}) is True


def test_a_failing_env_function_is_an_expression_error_at_the_call() -> None:
    def broken(value: object) -> object:
        raise RuntimeError("boom")

    with pytest.raises(ExpressionError) as caught:
        compile_expression("1 + broken(2)").evaluate({"broken": broken})
    assert caught.value.position == 4
    assert "broken: RuntimeError: boom" in caught.value.detail


# -- Argo's environment --------------------------------------------------------------------------


def test_condition_error_message_names_condition_and_position() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_condition("result[0] >= ", [1.0])
    assert str(caught.value) == 'invalid condition "result[0] >= ": unexpected end of input at 13'
    assert caught.value.expression == "result[0] >= "
    assert caught.value.position == 13


def test_condition_evaluation_error_says_where() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_condition("len(result) >= 0 && result[0] > 1", [])
    assert str(caught.value) == (
        'cannot evaluate condition "len(result) >= 0 && result[0] > 1": '
        "index out of range: 0 (array length is 0) at 26"
    )


def test_non_boolean_condition_is_an_error() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_condition("result[0] * 2", [1.5])
    assert caught.value.detail == "expected bool, but got float64"
    assert caught.value.position is None


def test_unknown_names_are_refused_even_where_evaluation_would_not_reach() -> None:
    # Argo compiles against its environment: `false && foo` fails although `foo` is never read.
    with pytest.raises(ExpressionError) as caught:
        evaluate_condition("false && foo", 1.0)
    assert caught.value.detail == "unknown name foo"
    assert caught.value.position == 9


@pytest.mark.parametrize(
    ("condition", "result", "expected"),
    [
        ("default(1, 2) == 2", None, True),  # nil result: the default
        ("default(1, 2) == 5", 5, True),  # otherwise result itself, not the first argument
        ("default(nil, 2) == [1]", [1], True),
        ("isNil(123)", None, True),  # the argument is ignored...
        ("isNil(nil)", 0.5, False),  # ...both ways
        ("isNil(result) || result > 1", None, True),
    ],
)
def test_default_and_isnil_look_at_result_not_at_their_argument(
    condition: str, result: object, expected: bool
) -> None:
    assert evaluate_condition(condition, result) is expected


def test_now_is_the_time_given_by_the_caller() -> None:
    condition = "now() - date('2026-11-26T01:00:00Z') < duration('1h')"
    assert evaluate_condition(condition, None, now=NOW) is True
    with pytest.raises(ExpressionError, match="now\\(\\) needs the current time"):
        evaluate_condition(condition, None)
