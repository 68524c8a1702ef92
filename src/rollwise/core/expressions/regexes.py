"""`matches`: Go regular expressions run by Python's `re`, without catastrophic backtracking.

Who calls it: the `matches` operator in `evaluation`. Go's RE2 engine runs in linear time;
Python's backtracking engine does not, so a pattern such as `(a+)+$` could hang the controller.
Before a pattern is used we bound, from its structure, how much work one search can take on a
text of n characters: each unbounded quantifier is a factor n; each `?`, small bounded repeat or
alternation a constant factor (alternatives of single characters excepted: `re` makes them one
class); a repeated group that itself holds a choice makes it exponential; a search that is not
anchored with `^` or `\\A` tries every start (one more factor n); and each way of matching walks
the pattern (a factor of its length). The text a pattern may be run against is then limited so
that the bound stays under `WORK` steps (a fraction of a second): a longer text is an error, not
a hang, and a pattern over `WORK` on any text at all (`a?a?a?...` forty times) is refused.
Since `matches` only asks whether the pattern occurs, a leading and a trailing `.*` change
nothing and are dropped first (`.*error.*` is searched as `error`).
RE2 syntax Python lacks is translated (`\\z`, POSIX classes such as `[[:alpha:]]`), and what RE2
refuses (look-around, back-references, comments, verbose mode) is refused here too.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

from rollwise.core.expressions.errors import ExpressionError
from rollwise.core.expressions.values import MAX_STRING, Fault, mismatch

MAX_PATTERN = 1000  # characters
WORK = 10**8  # backtracking steps we accept in the worst case (well under a second)
EXPONENTIAL_LIMIT = 20  # input characters for patterns that can backtrack exponentially

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7F",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
# Look-around and back-references (RE2 has none), `\Z` (Python's `\z`), and what would let a
# pattern hide its structure from the scanner below: comments and verbose mode (RE2 lacks both).
_UNSUPPORTED = re.compile(r"\(\?(?:=|!|<=|<!|P=|#)|\(\?[a-zA-Z-]*x|\\[1-9]|\\Z")
_POSIX_CLASS = re.compile(r"\[:(\^?)([a-z]+):\]")


@dataclass(frozen=True, slots=True)
class Pattern:
    compiled: re.Pattern[str]
    max_input: int


def matches(text: object, pattern: object) -> bool:
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise mismatch("matches", text, pattern)
    compiled = compile_pattern(pattern)
    if len(text) > compiled.max_input:
        raise Fault(
            f"matches: the text has {len(text)} characters, more than the {compiled.max_input} "
            "this pattern may be run against without risking catastrophic backtracking"
        )
    return compiled.compiled.search(text) is not None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` (Go syntax) occurs in `text`, under the same guards as `matches`: for
    the regular expressions outside the language (dryRun and measurementRetention metric
    names). Raises `ExpressionError`: a syntax error (detail starting "error parsing regexp"),
    a pattern too complex, or a text too long for it."""
    try:
        return matches(text, pattern)
    except Fault as fault:
        raise ExpressionError(
            fault.detail, expression=pattern, position=None, kind="invalid regular expression"
        ) from None


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Pattern:
    if len(pattern) > MAX_PATTERN:
        raise Fault(f"regular expression longer than {MAX_PATTERN} characters")
    if _UNSUPPORTED.search(pattern):
        raise Fault(f"error parsing regexp: invalid or unsupported Perl syntax in {pattern!r}")
    translated = _translate(pattern)
    _compile(translated, pattern)  # syntax errors first, as written
    runnable, max_input = _max_input(translated)
    return Pattern(_compile(runnable, pattern), max_input)


def _compile(translated: str, pattern: str) -> re.Pattern[str]:
    try:
        with warnings.catch_warnings():
            # Python warns about `[[` (a possible future nested set); Go reads it literally.
            warnings.simplefilter("ignore", FutureWarning)
            return re.compile(translated)
    except re.error as error:
        raise Fault(f"error parsing regexp: {error} in {pattern!r}") from None
    except (OverflowError, RecursionError):
        raise Fault(f"error parsing regexp: too complex: {pattern!r}") from None


def _translate(pattern: str) -> str:
    """RE2 spellings Python reads differently: `\\z` (end of text) and POSIX classes."""

    def posix(match: re.Match[str]) -> str:
        negated, name = match.groups()
        if name not in _POSIX:
            raise Fault(f"error parsing regexp: invalid character class range: [:{name}:]")
        if negated:
            raise Fault(f"error parsing regexp: negated POSIX class [:^{name}:] not supported")
        return _POSIX[name]

    return _POSIX_CLASS.sub(posix, pattern.replace("\\z", "\\Z"))


def _max_input(pattern: str) -> tuple[str, int]:
    """The pattern to run (without a needless leading or trailing `.*`) and the longest text it
    may be run against; Fault if it can backtrack catastrophically on any text."""
    cost, alternation = _analyse(pattern)
    if not alternation:
        trimmed = _trim_wildcards(pattern)
        if trimmed != pattern:
            pattern = trimmed
            cost, alternation = _analyse(pattern)
    anchored = (
        pattern.startswith(("^", "\\A")) and not alternation and not _MULTILINE.search(pattern)
    )
    starts = 0 if anchored else 1  # an unanchored search tries the pattern at every position
    # Each way of matching walks the pattern once more: its length is a factor too.
    budget = math.log(WORK) - math.log(cost.branches) - math.log(max(len(pattern), 1))
    degree = cost.degree + starts

    def fits(length: int) -> bool:
        return length * math.log(cost.base) + degree * math.log(length) <= budget

    if not fits(1):
        raise Fault(
            "regular expression too complex: it could backtrack catastrophically "
            "(too many nested or successive optional parts)"
        )
    low, high = 1, MAX_STRING
    while low < high:  # the longest length that fits (fits is monotonic)
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return pattern, min(low, EXPONENTIAL_LIMIT) if cost.base > 1 else low


_MULTILINE = re.compile(r"\(\?[a-zA-Z]*m")
_CAP = 1e30  # branch counts beyond any budget: kept finite so that logarithms stay defined
SMALL_REPEAT = 16  # a bounded repeat up to this count is expanded, not treated as unbounded


@dataclass(frozen=True, slots=True)
class _Cost:
    """An upper bound on the steps of one match attempt on a text of n characters:
    `branches * base**n * n**degree` (`base` 1: polynomial). `char`: a single character (a
    literal, an escape, a class), which `re` folds with others of its kind into one class when
    they are alternatives (`(a|b|\\d)` is `[ab\\d]`), so such an alternation is no choice."""

    branches: float = 1.0
    degree: int = 0
    base: float = 1.0
    char: bool = False

    @property
    def variable(self) -> bool:
        """Whether it can match in more than one way (so repeating it multiplies the ways)."""
        return self.branches > 1 or self.degree > 0 or self.base > 1


_EMPTY = _Cost()
_CHAR = _Cost(char=True)


def _then(first: _Cost, second: _Cost) -> _Cost:
    return _Cost(
        min(first.branches * second.branches, _CAP),
        first.degree + second.degree,
        max(first.base, second.base),
    )


def _either(options: list[_Cost]) -> _Cost:
    if all(option.char for option in options):
        return _CHAR
    return _Cost(
        min(sum(option.branches for option in options), _CAP),
        max(option.degree for option in options),
        max(option.base for option in options),
    )


def _power(atom: _Cost, count: int) -> _Cost:
    """`atom` exactly `count` times in a row."""
    if count == 0 or not atom.variable:
        return _EMPTY
    exponent = count * math.log(atom.branches)
    branches = _CAP if exponent >= math.log(_CAP) else atom.branches**count
    return _Cost(branches, min(atom.degree * count, 10**6), atom.base)


def _repeated(atom: _Cost, low: int, high: int | None) -> _Cost:
    """`atom{low,high}` (`high` None: unbounded)."""
    if high == low:
        return _power(atom, low)
    if not atom.variable:
        if high is not None and high - low < SMALL_REPEAT:
            return _Cost(branches=high - low + 1)  # a few possible lengths
        return _Cost(degree=1)  # any length up to n
    if high == 1:
        return _either([atom, _EMPTY])
    if high is not None and high <= SMALL_REPEAT:
        return _then(_power(atom, low), _power(_either([atom, _EMPTY]), high - low))
    # A choice repeated any number of times: the ways to split the text between repetitions
    # grow exponentially (`(a+)+`, `(a|aa)*`, `(\w+\s?)*`).
    return _Cost(1.0, atom.degree + 1, max(2.0, atom.branches + 1) * atom.base)


class _Group:
    """A group being scanned: its finished alternatives, the current sequence, the last atom
    (kept apart until we know whether a quantifier follows)."""

    __slots__ = ("alternatives", "atom", "sequence")

    def __init__(self) -> None:
        self.alternatives: list[_Cost] = []
        self.sequence: _Cost | None = None  # nothing yet
        self.atom: _Cost | None = None

    def push(self, atom: _Cost) -> None:
        self.commit()
        self.atom = atom

    def commit(self) -> None:
        if self.atom is not None:
            atom, self.atom = self.atom, None
            self.sequence = atom if self.sequence is None else _then(self.sequence, atom)

    def quantify(self, low: int, high: int | None) -> None:
        if self.atom is not None:
            self.atom = _repeated(self.atom, low, high)

    def alternate(self) -> None:
        self.commit()
        self.alternatives.append(self.sequence or _EMPTY)
        self.sequence = None

    def close(self) -> _Cost:
        self.commit()
        last = self.sequence or _EMPTY
        if not self.alternatives:
            return last
        return _either([*self.alternatives, last])


def _analyse(pattern: str) -> tuple[_Cost, bool]:
    """(the bound of one match attempt, whether the pattern has a top-level alternation).

    A small scanner over the pattern text: escapes and character classes are single atoms,
    groups nest, quantifiers apply to the atom before them.
    """
    groups = [_Group()]
    index = 0
    length = len(pattern)
    while index < length:
        char = pattern[index]
        group = groups[-1]
        if char == "\\":
            index += 2
            braced = index < length and pattern[index - 1] in "pPx" and pattern[index] == "{"
            if braced:
                close = pattern.find("}", index)
                index = length if close < 0 else close + 1
            group.push(_CHAR if pattern[index - 1] not in "bBAZ" else _EMPTY)
        elif char == "[":
            negated = pattern.startswith("[^", index)
            index = _skip_class(pattern, index)
            group.push(_EMPTY if negated else _CHAR)
        elif char == "(":
            group.commit()
            groups.append(_Group())
            index += 1
            if pattern.startswith("?", index):  # (?:...), (?P<name>...), (?i)
                close = index
                while close < length and pattern[close] not in ":)>":
                    close += 1
                index = close + 1 if close < length and pattern[close] != ")" else close
        elif char == ")":
            index += 1
            if len(groups) > 1:
                closed = groups.pop()
                groups[-1].push(closed.close())
        elif char == "|":
            group.alternate()
            index += 1
        elif char in "*+?{":
            bounds, index = _quantifier(pattern, index)
            if bounds is None:  # a literal `{`
                group.push(_CHAR)
                continue
            if index < length and pattern[index] in "?+":  # lazy or possessive suffix
                index += 1
            group.quantify(*bounds)
        else:
            group.push(_EMPTY if char in ".^$" else _CHAR)
            index += 1
    while len(groups) > 1:  # unbalanced: re.compile has refused it already
        closed = groups.pop()
        groups[-1].push(closed.close())
    top = groups[0]
    return top.close(), bool(top.alternatives)


def _trim_wildcards(pattern: str) -> str:
    """The pattern without a leading and a trailing `.*` (or `.*?`): whether it occurs somewhere
    in a text does not depend on them, since they may match nothing."""
    for lead in (".*?", ".*"):
        if pattern.startswith(lead) and not pattern.startswith(("+", "*", "{"), len(lead)):
            pattern = pattern[len(lead) :]
            break
    for tail in (".*?", ".*"):
        if pattern.endswith(tail):
            before = pattern[: -len(tail)]
            backslashes = len(before) - len(before.rstrip("\\"))
            if backslashes % 2 == 0:  # the `.` is not escaped
                pattern = before
            break
    return pattern


def _skip_class(pattern: str, index: int) -> int:
    index += 1
    if index < len(pattern) and pattern[index] == "^":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    while index < len(pattern) and pattern[index] != "]":
        index += 2 if pattern[index] == "\\" else 1
    return index + 1


_BRACES = re.compile(r"\{(\d*)(,?)(\d*)\}")


def _quantifier(pattern: str, index: int) -> tuple[tuple[int, int | None] | None, int]:
    """The bounds (low, high; high None when unbounded) of the quantifier at `index`, None for
    a `{` that is a literal, and where the quantifier ends."""
    char = pattern[index]
    if char == "?":
        return (0, 1), index + 1
    if char == "*":
        return (0, None), index + 1
    if char == "+":
        return (1, None), index + 1
    match = _BRACES.match(pattern, index)
    if match is None or not (match.group(1) or match.group(3)):
        return None, index + 1
    low_text, comma, high_text = match.groups()
    low = int(low_text) if low_text else 0
    if not comma:
        return (low, low), match.end()
    return (low, int(high_text) if high_text else None), match.end()
