"""The condition language under hostile input: malformed and hostile expressions, odd results.

What is generated (each test 250 examples, derandomized so CI sees the same inputs):

- expressions: token soup from the language's own vocabulary, well-formed random trees over
  every builtin, predicate and operator, the seed manifests' conditions with characters
  inserted, deleted or replaced, and hostile shapes (deep nesting, long chains, unclosed
  strings and comments, huge literals, catastrophic regular expressions);
- `result` values: None, booleans, 64-bit and far larger integers, NaN, ±Inf, strings, nested
  lists and maps, values nested thousands deep;
- growth: expressions whose work or size is chosen around the limits (strings, ranges,
  predicate loops, replace/split/join/toJSON/string over large values).

What must hold: compiling and evaluating either give a boolean or raise `ExpressionError`
whose message names the condition, a position inside it (if any), and says what is wrong in
the language's own words (never a Python exception's name, never "internal error"); growth
beyond a limit is refused by that limit, within it the value is right.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fuzzing import SEEDS, lookup, paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollwise.core.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_RANGE,
    MAX_STRING,
    ExpressionError,
    compile_condition,
    evaluate_condition,
)
from rollwise.core.expressions.builtins import BUILTINS, PREDICATES

NOW = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)
EXAMPLES = 250
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Every evaluation must end, refused by a limit or done: a test that hangs fails here, well
# before the suite's own timeout (the examples take seconds in all).
BOUNDED = pytest.mark.timeout(60)
PYTHON_ERROR = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b|internal error|Traceback")
LIMIT_WORDS = ("budget", "too large", "too long", "too deeply", "memory", "more than")


def _seed_conditions() -> set[str]:
    """The success and failure conditions of the seed manifests' metrics."""
    found: set[str] = set()
    for kind in ("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun"):
        for document in SEEDS[kind]:
            for path in paths(document):
                if path[-1] in ("successCondition", "failureCondition"):
                    found.add(str(lookup(document, path)))
    return found


SEED_CONDITIONS = sorted(
    _seed_conditions()
    | {
        "result[0] >= 0.95",
        "result > 0.9 && result < 1.1",
        "isNaN(result) || result < 0.05",
        "default(result, 0) >= 1",
        "isNil(result) or len(result) == 0",
        "asFloat(result) < 500",
        "asInt(result) == 3",
        "isInf(result)",
        "all(result, {# > 0.5})",
        "result.status == 'ok' and result.code in [200, 204]",
        "len(filter(result, # matches '^5..$')) < 3",
        "result[0] ?? 0 > 1 ? true : false",
        "sum(map(result, #.count)) > 10",
        "now() - date(result) < duration('1h')",
        "string(result) contains 'error'",
        "toJSON(result) != ''",
        "max(result) < 1 and mean(result) > 0",
        "result[1:3] == [1, 2]",
        "-result < 0",
        "int(result) % 2 == 0",
    }
)


def _check_error(error: ExpressionError, text: str) -> None:
    message = str(error)
    assert message.startswith(("invalid condition", "cannot evaluate condition")), message
    assert error.detail.strip(), message
    assert error.position is None or 0 <= error.position <= len(text), (error.position, text)
    assert not PYTHON_ERROR.search(error.detail), message
    assert len(error.detail) <= 500, len(error.detail)  # it ends up in a status


def _outcome(text: str, result: Any) -> bool | ExpressionError:
    """The condition's value, or the ExpressionError it raised (checked); nothing else."""
    try:
        compile_condition(text)
        outcome = evaluate_condition(text, made(result), now=NOW)
    except ExpressionError as error:
        _check_error(error, text)
        return error
    assert outcome is True or outcome is False, (text, outcome)
    return outcome


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Made:
    """A result too big to be printed by hypothesis (`10**5000`, lists nested thousands
    deep), made only when the condition is evaluated."""

    what: str
    size: int

    def __repr__(self) -> str:
        return f"Made({self.what!r}, {self.size})"

    def make(self) -> Any:
        if self.what == "power":
            return 10**self.size
        if self.what == "negative power":
            return -(10**self.size)
        root: list[Any] = []
        current = root
        for _ in range(self.size):
            inner: list[Any] = []
            current.append(inner)
            current = inner
        return root


def made(value: Any) -> Any:
    """`value` with every `Made` in it made."""
    if isinstance(value, Made):
        return value.make()
    if isinstance(value, list):
        return [made(item) for item in value]
    if isinstance(value, dict):
        return {key: made(item) for key, item in value.items()}
    return value


ODD_RESULTS = [
    None,
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    1.7976931348623157e308,
    5e-324,
    2**63,
    -(2**63) - 1,
    10**30,
    Made("power", 5000),
    Made("negative power", 5000),
    "",
    "NaN",
    "1e400",
    "2026-11-26T01:50:00Z",
    "\u202e\x00",
    [Made("power", 5000)],
    {"a": math.nan},
    Made("nested lists", 3000),
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(ODD_RESULTS),
)
results = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
# The odd values on their own half of the time: inside random trees they would be rare.
results = st.one_of(st.sampled_from(ODD_RESULTS), results)


# --- expressions --------------------------------------------------------------------------------

NAMES = ["result", "asInt", "asFloat", "isNaN", "isInf", "isNil", "default", "undefinedName"]
FUNCTIONS = sorted(BUILTINS) + sorted(PREDICATES)
TOKENS = [
    *NAMES,
    *FUNCTIONS,
    *["+", "-", "*", "/", "%", "**", "^", "==", "!=", "<", ">", "<=", ">=", "!", "?", ":"],
    *["??", "?.", ".", "..", ",", "(", ")", "[", "]", "{", "}", "#", "|", "&&", "||"],
    "and",
    "or",
    "not",
    "in",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "true",
    "false",
    "nil",
    "#index",
    "#acc",
    "0",
    "1",
    "-1",
    "0.5",
    "1e308",
    "1e309",
    "9223372036854775807",
    "9223372036854775808",
    "0x_FF",
    "0b102",
    "1__0",
    "'a'",
    '"b"',
    "`raw`",
    '"unclosed',
    "'\\q'",
    '"\\u12"',
    '"\\777"',
    "/* comment",
    "// line\n",
    "\t",
    "\n",
    "\x00",
    "é",
    "💥",
    "$env",
    "let",
    "if",
]
OPERATORS = ["+", "-", "*", "/", "%", "**", "==", "!=", "<", ">=", "and", "or", "??", "in", ".."]
OPERATORS += ["matches", "contains", "startsWith", "endsWith"]

token_soup = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=25).map(
    lambda tokens: " ".join(tokens)
)


def _trees() -> st.SearchStrategy[str]:
    leaves = st.one_of(
        st.sampled_from(["result", "#", "#index", "nil", "true", "''", "[]", "{}"]),
        st.integers(-(2**64), 2**64).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6).map(
            lambda text: '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        ),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(OPERATORS), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(st.sampled_from(FUNCTIONS + NAMES), st.lists(inner, max_size=3)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"
            ),
            st.tuples(st.sampled_from(sorted(PREDICATES)), inner, inner).map(
                lambda t: f"{t[0]}({t[1]}, {{{t[2]}}})"
            ),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
            st.tuples(inner, st.sampled_from(["a", "b", "count"])).map(lambda t: f"{t[0]}?.{t[1]}"),
            st.lists(inner, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
            inner.map(lambda text: f"!{text}"),
            inner.map(lambda text: f"{text} | len()"),
        )

    return st.recursive(leaves, extend, max_leaves=12)


@st.composite
def mutated_conditions(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEED_CONDITIONS))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.sampled_from(list("()[]{}'\"`.,:?!#|&=<>+-*/%^ 0aZ\\\n\x00é")))
        if how == "insert":
            text = text[:at] + char + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at + 1 :]
    return text


@st.composite
def hostile_shapes(draw: st.DrawFn) -> str:
    n = draw(st.sampled_from([MAX_DEPTH - 2, MAX_DEPTH + 1, 1_000, 3_000, 100_000]))
    shape = draw(
        st.sampled_from(
            ["parens", "negations", "nots", "brackets", "chain", "members", "string", "comment"]
        )
    )
    if shape == "parens":
        return "(" * n + "result" + ")" * n + " > 0"
    if shape == "negations":
        return "-" * n + "1 < 0"
    if shape == "nots":
        return "!" * n + "true"
    if shape == "brackets":
        return "[" * n + "]" * n + " == []"
    if shape == "chain":
        return " + ".join(["1"] * n) + " > 0"
    if shape == "members":
        return "result" + ".a" * n + " == nil"
    if shape == "string":
        return '"' + "x" * n + '" == result'
    return "result == 1 /*" + " " * n


expressions = st.one_of(token_soup, _trees(), mutated_conditions(), hostile_shapes())


@BOUNDED
@FUZZ
@given(expressions, results)
def test_hostile_expressions_fail_with_an_expression_error(text: str, result: Any) -> None:
    _outcome(text, result)


@BOUNDED
@FUZZ
@given(st.sampled_from(SEED_CONDITIONS), results)
def test_real_conditions_over_any_result_give_a_bool_or_an_expression_error(
    text: str, result: Any
) -> None:
    _outcome(text, result)


# --- growth -------------------------------------------------------------------------------------

SIZES = [0, 1, 63, 1_000, 99_999, MAX_STRING // 2, MAX_STRING, MAX_STRING + 1, 10**9, 10**18]


@st.composite
def growth(draw: st.DrawFn) -> tuple[str, int | None]:
    """An expression that builds something of a chosen size, and that size's length when the
    language should compute it (None when only a limit may answer)."""
    n = draw(st.sampled_from(SIZES))
    m = draw(st.sampled_from([1, 2, 60, 1_000, 1_000_000]))
    unit = draw(st.sampled_from(["a", "ab", "é", "💥"]))
    shape = draw(
        st.sampled_from(
            [
                "repeat",
                "range",
                "replace",
                "split",
                "join",
                "string",
                "toJSON",
                "nested-map",
                "concat",
                "upper",
                "plus",
                "base64",
            ]
        )
    )
    u = f'"{unit}"'
    if shape == "repeat":
        return f"len(repeat({u}, {n}))", len(unit) * n
    if shape == "range":
        return f"len(1..{n})", n
    if shape == "replace":
        return f'len(replace(repeat({u}, {n}), {u}, repeat("xy", {m})))', n * 2 * m
    if shape == "split":
        return f'len(split(repeat({u}, {n}), ""))', len(unit) * n
    if shape == "join":
        return f'len(join(map(1..{m}, {{repeat({u}, {n})}}), ""))', len(unit) * n * m
    if shape == "string":
        return f"len(string(map(1..{m}, {{repeat({u}, {n})}})))", None
    if shape == "toJSON":
        return f"len(toJSON(map(1..{m}, {{repeat({u}, {n})}})))", None
    if shape == "nested-map":
        return f"len(flatten(map(1..{m}, {{map(1..{n}, {{#}})}})))", m * n
    if shape == "concat":
        return f"len(concat(1..{n}, 1..{m}))", n + m
    if shape == "upper":
        return f"len(upper(repeat({u}, {n})))", len(unit.upper()) * n
    if shape == "plus":
        return f"len(repeat({u}, {n}) + repeat({u}, {m}))", len(unit) * (n + m)
    return f"len(toBase64(repeat({u}, {n})))", 4 * math.ceil(len(unit.encode()) * n / 3)


@BOUNDED
@FUZZ
@given(growth())
def test_growth_is_refused_by_a_limit_or_computed_right(case: tuple[str, int | None]) -> None:
    text, expected = case
    condition = f"{text} >= 0"
    outcome = _outcome(condition, None)
    if isinstance(outcome, ExpressionError):
        assert any(word in outcome.detail for word in LIMIT_WORDS), str(outcome)
        return
    assert outcome is True
    if expected is not None:
        # Within the limits the value is the right one, not merely some boolean.
        assert _outcome(f"{text} == {expected}", None) is True, text
        assert expected <= max(MAX_STRING * 4, MAX_RANGE * 2), (text, expected)


def test_the_limits_are_the_documented_ones() -> None:
    # Spot checks that the limits above exist where the fuzzing expects them.
    assert isinstance(_outcome(f"len(1..{MAX_RANGE + 1}) > 0", None), ExpressionError)
    assert isinstance(
        _outcome("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1) + " > 0", None),
        ExpressionError,
    )
    assert isinstance(_outcome("1 " + "+ 1 " * MAX_LENGTH + "> 0", None), ExpressionError)
