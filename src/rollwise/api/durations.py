"""Go-style durations as Argo Rollouts accepts them (`30s`, `2m`, `1h30m`, `500ms`, `10`).

Used by validation (to reject what Argo rejects) and by the core (pause steps, intervals).
"""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: int | float | str) -> float:
    """Seconds in `value`; an int or a unit-less numeric string means seconds.

    Raises ValueError with a message that says what a valid duration looks like.
    """
    if isinstance(value, bool):
        raise ValueError(
            f"invalid duration {value!r}: expected seconds or a string like '30s', '2m'"
        )
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return float(text)
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"invalid duration {value!r}: expected seconds or a Go duration like"
            " '30s', '2m', '1h30m'"
        )
    return sign * total
