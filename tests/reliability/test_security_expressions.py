"""What an expression can reach, and how much work it can cause: nothing of Python, and a bounded
amount.

The condition language (`rollwise.core.expressions`: a lark grammar and its own interpreter, no
`eval`) is written by whoever writes an AnalysisTemplate and evaluated by the controller against
whatever a metrics server answered. So an expression must not reach a Python object, a file or
the network, and neither an expression nor a result may make the controller work or allocate
without bound. (`test_fuzz_expressions.py` throws random malformed input at it; this file tries
specific capabilities and bounds.)

Capabilities: dunder attributes and keys on every kind of value and on the environment's own
functions, Python's builtins and modules by name, calls of values, format-string tricks; the
answer must be an `ExpressionError` or plain data (nil, bools, numbers, strings, lists and maps
of them), never a Python object. The builtins are an allowlist and the package's source holds
no door to Python's own machinery. Notification templates (Jinja2, sandboxed) are tried too.

Bounds, as limits that fire rather than times: 1 MB of text, 10,000 nested parentheses, huge
literals, string and list growth, values that are small to build but huge to walk (`[x, x]`
doubled forty times), exponentiation, and regular expressions that backtrack catastrophically
(in `matches` and in dryRun metric names, both run by Python's backtracking `re`): each is
refused by its limit or evaluated, and the limits are the documented ones. Where the only
evidence of a bound is that the work finishes, the test's own timeout is the guard.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest

from rollwise.api.errors import ManifestError
from rollwise.api.models import AnalysisRun
from rollwise.core.analysis.runs import plan
from rollwise.core.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_RANGE,
    MAX_STEPS,
    MAX_STRING,
    ExpressionError,
    compile_expression,
    evaluate_condition,
)
from rollwise.core.expressions.builtins import BUILTINS, PREDICATES
from rollwise.core.expressions.regexes import EXPONENTIAL_LIMIT, compile_pattern
from rollwise.notify.templates import compile_template, render_template

NOW = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)
BOUNDED = pytest.mark.timeout(60)  # a bound that fails to fire fails the test instead of hanging
PACKAGE = Path(__file__).resolve().parents[2] / "src" / "rollwise" / "core" / "expressions"

RESULTS: list[object] = [
    None,
    True,
    7,
    1.5,
    "text",
    [1, "a", None],
    {"a": 1, "nested": {"b": [1, 2]}},
]


def plain(value: object) -> bool:
    """Data a JSON document could hold, and nothing else."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is list:
        return all(plain(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and plain(item) for key, item in value.items())
    return False


def outcome(text: str, result: object) -> object:
    """The value of `text` in Argo's environment around `result`, or the ExpressionError."""
    try:
        got: object = evaluate_condition(text, result, now=NOW)
    except ExpressionError as error:
        got = error
    assert "internal error" not in str(got), str(got)
    return got


def value_of(text: str, env: dict[str, Any]) -> object:
    try:
        got = compile_expression(text).evaluate(env, now=NOW)
    except ExpressionError as error:
        got = error
    if isinstance(got, ExpressionError):
        assert "internal error" not in str(got), str(got)
    return got


# -- capabilities --------------------------------------------------------------------------------

REACHES = [
    "result.__class__",
    "result.__class__.__mro__",
    "result.__globals__",
    "result.__dict__",
    "result.__init__.__globals__",
    "result['__class__']",
    "result?.__class__",
    "result?.['__class__']",
    "get(result, '__class__')",
    "().__class__.__bases__",
    "''.__class__.__mro__[1].__subclasses__()",
    "'text'.__class__",
    "'text'.upper",
    "'{0.__class__}'.format(result)",
    "[].__class__",
    "[1][0].__class__",
    "{}.__class__",
    "{'a': 1}.__class__",
    "asInt.__globals__",
    "asInt.__code__.co_consts",
    "isNil.__closure__",
    "default.__globals__['__builtins__']",
    "asFloat.__module__",
    "now().__class__",
    "now().Year()",
    "duration('1s').total_seconds",
    "date('2026-01-01').__class__",
    "fromJSON('{\"__class__\": 1}').__class__.__class__",
    "map([result], {#.__class__})",
    "reduce([1, 2], {#acc.__class__}, result)",
    "result.__len__()",
    "result()",
    "asInt(result).__class__",
]
BUILTIN_NAMES = [
    "__import__('os')",
    "__import__('os').system('true')",
    "open('/etc/passwd')",
    "open('/etc/passwd').read()",
    "eval('1')",
    "exec('1')",
    "compile('1', '', 'eval')",
    "getattr(result, '__class__')",
    "setattr(result, 'x', 1)",
    "globals()",
    "locals()",
    "vars()",
    "dir()",
    "breakpoint()",
    "input()",
    "print(result)",
    "__builtins__",
    "__builtins__.open",
    "os.system('true')",
    "sys.modules",
    "socket.socket()",
    "subprocess.run('true')",
    "urllib.request.urlopen('http://127.0.0.1')",
    "$env",
    "$env.HOME",
]
FORMATTING = [
    "'{0.__class__}'",
    "'%s%s%s' + string(result)",
    "string({'{0.__class__}': result})",
    "replace('{0.__class__.__init__.__globals__}', '0', 'x')",
    "toJSON({'__class__': result})",
    "date('2026-01-01', '%Y-%m-%d %s')",
    "string(asInt)",
    "type(asInt)",
]


@pytest.mark.parametrize("text", REACHES + BUILTIN_NAMES + FORMATTING)
def test_an_expression_reaches_no_python_object(text: str) -> None:
    for result in RESULTS:
        # In Argo's environment a condition must be a bool; nothing else comes out of it.
        got = outcome(text, result)
        assert got is True or got is False or isinstance(got, ExpressionError), (text, got)
        # Evaluated as a plain expression (notification `when`), the value is data or an error.
        value = value_of(text, {"result": result})
        assert isinstance(value, ExpressionError) or plain(value), (text, result, value)
        if isinstance(value, str):
            assert "<class" not in value, value
            assert "<function" not in value, value
            assert " at 0x" not in value, value


def test_an_environment_function_is_called_never_exposed() -> None:
    # The functions of Argo's environment can be called; as values they are opaque.
    assert evaluate_condition("asInt('3') == 3", None) is True
    assert evaluate_condition("type(asInt) == 'func'", None) is True
    for function in (len, int, lambda value: value, evaluate_condition):
        for text in ("string(f)", "toJSON(f)", "f.__name__", "[f][0]", "{'f': f}.f"):
            shown = value_of(text, {"f": function})
            if isinstance(shown, ExpressionError):
                continue
            assert shown is function or isinstance(shown, str | type(None)), (text, shown)
            text_shown = str(shown) if isinstance(shown, str) else ""
            for python in ("function", "class", "built-in", "0x", "lambda", "evaluate"):
                assert python not in text_shown, (text, text_shown)


def test_the_builtins_are_data_functions_only() -> None:
    """An allowlist: a new builtin must be read for what it can reach before it is added here."""
    pure = {
        "len", "type", "abs", "ceil", "floor", "round", "int", "float", "string", "trim",
        "trimPrefix", "trimSuffix", "upper", "lower", "split", "splitAfter", "replace",
        "repeat", "join", "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix", "max", "min",
        "mean", "median", "toJSON", "fromJSON", "toBase64", "fromBase64", "now", "duration",
        "date", "first", "last", "get", "take", "keys", "values", "toPairs", "fromPairs",
        "reverse", "uniq", "concat", "flatten", "sort", "bitand", "bitor", "bitxor",
        "bitnand", "bitshl", "bitshr", "bitushr", "bitnot",
    }  # fmt: skip
    predicates = {
        "all", "none", "any", "one", "filter", "map", "count", "sum", "find", "findIndex",
        "findLast", "findLastIndex", "groupBy", "sortBy", "reduce",
    }  # fmt: skip
    assert set(BUILTINS) <= pure, set(BUILTINS) - pure
    assert set(PREDICATES) <= predicates, set(PREDICATES) - predicates


def test_the_interpreter_has_no_door_to_python() -> None:
    """No eval/exec/compile, no attribute looked up by a computed name, no import, no file,
    process or socket in the package's source: member access is `fetch` over maps and lists."""
    doors = re.compile(
        r"(?<![.\w])(?<!def )(?:eval|exec|compile|__import__|open|globals|vars)\s*\("
        r"|\b(?:getattr|setattr|delattr)\s*\([^,]+,(?!\s*[\"'])"  # by a name not written here
        r"|\bimport\s+(?:os|sys|io|socket|subprocess|urllib|http|importlib|pickle|shutil)\b"
        r"|\bfrom\s+(?:os|sys|io|socket|subprocess|urllib|http|importlib|pickle|shutil)\b"
        r"|\.__(?:class|globals|dict|subclasses|builtins)__"
    )
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if doors.search(code):
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert not found, found


def test_notification_templates_are_sandboxed() -> None:
    variables = {"rollout": {"metadata": {"name": "shop"}}, "secrets": {}, "event": {}}
    attempts = [
        "{{ rollout.__class__ }}",
        "{{ rollout.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ '{0.__class__.__mro__}'.format(rollout) }}",
        "{{ '{0.metadata.__class__}'.format(rollout) }}",
        "{{ '%s' % rollout.__class__ }}",
        "{{ rollout.metadata.name.format_map }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ self._TemplateReference__context }}",
        "{{ rollout.update({'x': 1}) }}",
        "{{ rollout.metadata.pop('name') }}",
        "{{ config }}",
        "{{ request }}",
        "{{ range.__self__ }}",
    ]
    for text in attempts:
        try:
            rendered = render_template(compile_template("t", {"message": text}), variables)
        except (ManifestError, jinja2.exceptions.SecurityError):
            continue
        message = str(rendered.get("message", ""))
        for python in ("<class", "<module", "<built-in", "__globals__", "__builtins__"):
            assert python not in message, (text, message)
    assert variables["rollout"] == {"metadata": {"name": "shop"}}  # nothing was changed


# -- bounds ------------------------------------------------------------------------------------


@BOUNDED
def test_long_and_deep_texts_are_refused_before_they_are_parsed() -> None:
    for text in ("1" * 1_000_000, "(" * 10_000 + "1" + ")" * 10_000, "result + " * 200_000):
        with pytest.raises(ExpressionError) as caught:
            compile_expression(text)
        assert caught.value.detail == f"expression longer than {MAX_LENGTH} characters"
    nesting = MAX_LENGTH // 2 - 1  # as deep as the length allows
    for text in (
        "(" * nesting + "1" + ")" * nesting,
        "[" * nesting + "]" * nesting,
        "-" * (MAX_LENGTH - 1) + "1",
        "!" * (MAX_LENGTH - 5) + "true",
        "{'a': " * (MAX_LENGTH // 7) + "1" + "}" * (MAX_LENGTH // 7),
    ):
        assert len(text) <= MAX_LENGTH
        with pytest.raises(ExpressionError) as caught:
            compile_expression(text)
        assert f"more than {MAX_DEPTH} levels" in caught.value.detail, text[:20]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("1e999 > 0", "float literal is too large"),
        ("9" * 4000 + " > 0", "too large"),
        ("0x" + "f" * 4000 + " > 0", "too large"),
        ("'a' * 1000000000 == ''", "mismatched types string and int"),
        ("repeat('a', 1000000000) == ''", "memory budget exceeded"),
        ("repeat('a', 10 ** 9) == ''", "memory budget exceeded"),
        ("repeat(repeat('ab', 1000), 1000) == ''", "memory budget exceeded"),
        ("repeat('a', 999999) + repeat('a', 999999) == ''", "string too long"),
        ("replace(repeat('a', 1000000), 'a', repeat('a', 1000000)) == ''", "memory budget"),
        ("len(0..1000000000) > 0", "too large"),
        ("len(map(0..999999, {0..999999})) > 0", "exceeded its budget"),
        ("all(1..1000, {all(1..1000, {all(1..1000, {true})})})", "exceeded its budget"),
        ("reduce(1..64, {#acc + #acc}, 'x') == ''", "string too long"),
        ("len(toJSON(reduce(1..40, {[#acc, #acc]}, [0]))) > 0", "exceeded its budget"),
        ("len(string(reduce(1..40, {[#acc, #acc]}, [0]))) > 0", "exceeded its budget"),
        ("reduce(1..40, {[#acc, #acc]}, [0]) == reduce(1..40, {[#acc, #acc]}, [0])", "budget"),
        ("[0] in [reduce(1..40, {[#acc, #acc]}, [0])]", "exceeded its budget"),
        ("len(uniq([reduce(1..40, {[#acc, #acc]}, [0]), [0]])) > 0", "exceeded its budget"),
        ("len(flatten(reduce(1..40, {[#acc, #acc]}, [0]))) > 0", "exceeded its budget"),
        ("max(reduce(1..40, {[#acc, #acc]}, [0])) > 0", "exceeded its budget"),
    ],
)
@BOUNDED
def test_growth_is_refused_by_a_limit(text: str, detail: str) -> None:
    got = outcome(text, None)
    assert isinstance(got, ExpressionError), (text, got)
    assert detail in got.detail, got.detail


@BOUNDED
def test_an_error_never_prints_a_huge_value() -> None:
    # `sort`'s order, an index, a key: each is quoted in the message, cut short, even when it
    # is a value built to be huge when written out.
    doubled = "reduce(1..40, {[#acc, #acc]}, [0])"
    for text in (f"sort([1], {doubled}) == []", f"[1][{doubled}] == 1", f"fromPairs([{doubled}])"):
        got = outcome(text, None)
        assert isinstance(got, ExpressionError), text
        assert len(str(got)) < len(text) + 600, len(str(got))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 ** 10 ** 10", math.inf),
        ("2 ** 1024", math.inf),
        ("(-2) ** 1025", -math.inf),
        ("0 ** -1", math.inf),
        ("9223372036854775807 + 1", -(2**63)),
        ("9223372036854775807 * 9223372036854775807", 1),
        ("-9223372036854775807 - 2", 2**63 - 1),
        ("abs(-9223372036854775807 - 1)", -(2**63)),
        ("bitshl(1, 1000000000)", 0),
        ("bitnot(9223372036854775807)", -(2**63)),
    ],
)
def test_arithmetic_stays_in_64_bits_or_floats(text: str, expected: object) -> None:
    """Go's int64 wraps and its float64 saturates: no Python big integers, whose size (and
    the time to compute them) would grow with the exponent."""
    assert value_of(text, {}) == expected


def test_the_limits_are_the_documented_ones() -> None:
    assert MAX_LENGTH == 4096
    assert MAX_DEPTH == 100
    assert MAX_STEPS == 1_000_000
    assert MAX_RANGE == 1_000_000
    assert MAX_STRING == 1_000_000
    assert EXPONENTIAL_LIMIT == 20


# -- regular expressions -------------------------------------------------------------------------

# Patterns that make a backtracking engine take exponential or high-polynomial time, the text
# that triggers it, and a second adversarial text.
EVIL_PATTERNS = [
    ("(a+)+$", "a", "!"),
    ("^(a+)+$", "a", "!"),
    ("(a*)*b", "a", ""),
    ("((a+)+)+b", "a", ""),
    ("(a|aa)*c", "a", ""),
    ("(a|a?)+b", "a", ""),
    ("(x+x+)+y", "x", ""),
    ("(\\w+\\s?)+$", "a", "!"),
    ("^(([a-z])+.)+[A-Z]([a-z])+$", "a", "!"),
    ("(.*a){12}", "a", ""),
    ("(?:a+){5}b", "a", ""),
    ("a*a*a*a*a*b", "a", ""),
    ("\\d+\\d+\\d+x", "1", ""),
    ("a*b", "a", ""),
    ("[[:alpha:]]+!", "a", ""),
    ("(a|b|c|d)*x", "a", ""),
    ("a?" * 20 + "a" * 20, "a", ""),
]
# Patterns over `WORK` on any text at all: refused when compiled.
HOPELESS = [
    "a?" * 40 + "a" * 40,
    "(a?){30}a{30}",
    "(a{1,16}){1,16}b",
    "(?:a|aa)" * 30 + "c",
]


@pytest.mark.parametrize(("pattern", "char", "tail"), EVIL_PATTERNS)
@BOUNDED
def test_a_catastrophic_pattern_runs_only_on_texts_it_cannot_hang_on(
    pattern: str, char: str, tail: str
) -> None:
    limit = compile_pattern(pattern).max_input
    assert 0 < limit < 10_000
    # Within its limit the pattern runs, on the texts that make it backtrack the most...
    for text in (char * limit, char * (limit - len(tail)) + tail):
        assert isinstance(outcome("result matches " + repr(pattern), text), bool)
    # ... and beyond it (a million characters too) it is an error, not a hang.
    for length in (limit + 1, 1_000_000):
        got = outcome("result matches " + repr(pattern), char * length)
        assert isinstance(got, ExpressionError), (pattern, length)
        assert "catastrophic backtracking" in got.detail


@pytest.mark.parametrize("pattern", HOPELESS)
def test_a_pattern_that_backtracks_on_any_text_is_refused(pattern: str) -> None:
    got = outcome("result matches " + repr(pattern), "a")
    assert isinstance(got, ExpressionError)
    assert "too complex" in got.detail


@pytest.mark.parametrize(
    "pattern",
    ["(?x) (a # )\n +)+ $", "(?#comment)a", "(?=a)a", "(?!b)a", "(?<=a)b", "(a)\\1"],
)
def test_syntax_that_could_hide_a_pattern_from_its_check_is_refused(pattern: str) -> None:
    got = outcome("result matches " + repr(pattern), "aaaa")
    assert isinstance(got, ExpressionError)
    assert "unsupported Perl syntax" in got.detail


@BOUNDED
def test_common_patterns_keep_long_texts() -> None:
    text = "x" * (MAX_STRING - 10) + " error 42"
    for pattern in ("error", ".*error.*", "^x+", "error|fail", "[0-9]{2}$", "^[x ]+"):
        assert outcome("result matches " + repr(pattern), text) is True, pattern


@BOUNDED
def test_number_parsing_is_linear_in_the_result() -> None:
    """`asFloat(result)` and `float()` read any text a server sent: a million digits followed by
    a letter once took hours (a quadratic regular expression)."""
    for text in ("1" * 1_000_000 + "x", "1" * 500_000 + "." + "1" * 499_999 + "x", "1e" * 400_000):
        for condition in ("asFloat(result) > 0", "float(result) > 0", "asInt(result) > 0"):
            got = outcome(condition, text)
            assert isinstance(got, ExpressionError), condition
            assert len(str(got)) < 1_000  # the message quotes the text, cut short
        assert outcome("asFloat(result) > 0", "1" * 1_000_000) is True


@BOUNDED
def test_a_dry_run_metric_name_pattern_cannot_hang_the_analysis() -> None:
    """dryRun/measurementRetention `metricName` is a regular expression a template's author
    writes and the controller matches against metric names: the same guards apply."""
    name = "a" * 64 + "!"
    run = AnalysisRun.model_validate(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": "run", "namespace": "default"},
            "spec": {
                "dryRun": [{"metricName": "(a+)+$"}],
                "metrics": [{"name": name, "provider": {"web": {"url": "http://127.0.0.1:1/"}}}],
            },
        }
    )
    status = plan(run, NOW).status
    assert status.phase == "Error"
    assert "dryRun[0]" in (status.message or "")
    assert "catastrophic backtracking" in (status.message or "")
    ok = run.model_copy(update={"spec": run.spec.model_copy(update={"dry_run": []})})
    assert plan(ok, NOW).status.phase != "Error"
