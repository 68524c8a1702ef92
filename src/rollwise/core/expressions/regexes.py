"""`matches`: Go regular expressions run by Python's `re`, without catastrophic backtracking.

Who calls it: the `matches` operator in `evaluation`. Go's RE2 engine runs in linear time;
Python's backtracking engine does not, so a pattern such as `(a+)+$` could hang the controller.
Before a pattern is used we measure how much it can backtrack — nested quantifiers or a quantified
alternation make it exponential, k quantifiers in a row polynomial of degree k — and bound the
length of the text it may be run against accordingly; a longer text is an error, not a hang.
RE2 syntax Python lacks is translated (`\\z`, POSIX classes such as `[[:alpha:]]`), and what RE2
refuses (look-around, back-references) is refused here too.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

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
_UNSUPPORTED = re.compile(r"\(\?(?:=|!|<=|<!|P=)|\\[1-9]|\\Z")
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


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Pattern:
    if len(pattern) > MAX_PATTERN:
        raise Fault(f"regular expression longer than {MAX_PATTERN} characters")
    if _UNSUPPORTED.search(pattern):
        raise Fault(f"error parsing regexp: invalid or unsupported Perl syntax in {pattern!r}")
    translated = _translate(pattern)
    try:
        with warnings.catch_warnings():
            # Python warns about `[[` (a possible future nested set); Go reads it literally.
            warnings.simplefilter("ignore", FutureWarning)
            compiled = re.compile(translated)
    except re.error as error:
        raise Fault(f"error parsing regexp: {error} in {pattern!r}") from None
    except (OverflowError, RecursionError):
        raise Fault(f"error parsing regexp: too complex: {pattern!r}") from None
    return Pattern(compiled, _max_input(translated))


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


def _max_input(pattern: str) -> int:
    nested, repeats = _backtracking(pattern)
    if nested:
        return EXPONENTIAL_LIMIT
    if repeats <= 1:
        return MAX_STRING
    return max(EXPONENTIAL_LIMIT, int(WORK ** (1.0 / repeats)))


def _backtracking(pattern: str) -> tuple[bool, int]:
    """(can it backtrack exponentially?, how many repeating quantifiers does it hold?).

    A small scanner over the pattern text: it skips escapes and character classes, tracks groups,
    and looks at each quantifier whose maximum is above one (`*`, `+`, `{n,}`, `{n,m}` with m > 1).
    A repeated group that itself holds such a quantifier or an alternation is "nested".
    """
    groups: list[list[bool]] = [[False, False]]  # per open group: [holds a repeat, holds `|`]
    last_group: list[bool] | None = None  # the group just closed, if it is the current atom
    nested = False
    repeats = 0
    index = 0
    length = len(pattern)
    while index < length:
        char = pattern[index]
        atom_group: list[bool] | None = None
        if char == "\\":
            index += 2
            braced = index < length and pattern[index - 1] in "pPx" and pattern[index] == "{"
            if braced:
                close = pattern.find("}", index)
                index = length if close < 0 else close + 1
        elif char == "[":
            index = _skip_class(pattern, index)
        elif char == "(":
            groups.append([False, False])
            index += 1
            if pattern.startswith("?", index):  # (?:...), (?P<name>...), (?i)
                close = index
                while close < length and pattern[close] not in ":)>":
                    close += 1
                index = close + 1 if close < length and pattern[close] != ")" else close
            last_group = None
            continue
        elif char == ")":
            closed = groups.pop() if len(groups) > 1 else [False, False]
            if closed[0] or closed[1]:
                groups[-1][0] = groups[-1][0] or closed[0]
            atom_group = closed
            index += 1
        elif char == "|":
            groups[-1][1] = True
            index += 1
        elif char in "*+?{":
            maximum, index = _quantifier(pattern, index)
            if maximum is None:  # a literal `{`
                last_group = None
                continue
            if maximum > 1:
                repeats += 1
                if last_group is not None and (last_group[0] or last_group[1]):
                    nested = True
                groups[-1][0] = True
            if index < length and pattern[index] in "?+":  # lazy or possessive suffix
                index += 1
            last_group = None
            continue
        else:
            index += 1
        last_group = atom_group
    return nested, repeats


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


def _quantifier(pattern: str, index: int) -> tuple[int | None, int]:
    """The maximum count of the quantifier at `index` (`math.inf` as a large number)."""
    char = pattern[index]
    if char == "?":
        return 1, index + 1
    if char in "*+":
        return 2**31, index + 1
    match = _BRACES.match(pattern, index)
    if match is None or not (match.group(1) or match.group(3)):
        return None, index + 1
    low, comma, high = match.groups()
    if not comma:
        maximum = int(low)
    elif high:
        maximum = int(high)
    else:
        maximum = 2**31
    return maximum, match.end()
