"""`duration("5m")` and `date("2024-01-02")`: Go's time parsing for the builtins of expr.

Who calls it: `builtins`. Pure functions: the current time is never read here (`now()` comes from
the caller through the evaluation context). Durations are `timedelta` (Go's nanoseconds are
rounded to microseconds), times are timezone-aware `datetime` in UTC unless the text carries an
offset. Only the `UTC` time zone name is known: reading the zone database would be I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from rollwise.core.expressions.values import Fault

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-zµμ]+)")
_MAX_NANOS = 2**63 - 1


def parse_duration(text: str) -> timedelta:
    """Go's `time.ParseDuration`: `300ms`, `-1.5h`, `2h45m`, `0`."""
    body = text
    sign = 1
    if body[:1] in "+-" and body:
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return timedelta(0)
    if not body:
        raise Fault(f'time: invalid duration "{text}"')
    nanos = 0.0
    position = 0
    while position < len(body):
        match = _DURATION.match(body, position)
        if match is None or match.group(1) in ("", "."):
            raise Fault(f'time: invalid duration "{text}"')
        unit = _UNITS.get(match.group(2))
        if unit is None:
            raise Fault(f'time: unknown unit "{match.group(2)}" in duration "{text}"')
        nanos += float(match.group(1)) * unit
        position = match.end()
    if nanos > _MAX_NANOS:
        raise Fault(f'time: invalid duration "{text}"')
    return timedelta(microseconds=sign * round(nanos / 1000))


# Go layout elements and the strptime directives that read them, longest first.
_LAYOUT = [
    ("January", "%B"),
    ("Monday", "%A"),
    ("Z07:00", "%z"),
    ("-07:00", "%z"),
    ("-0700", "%z"),
    ("2006", "%Y"),
    ("Jan", "%b"),
    ("Mon", "%a"),
    ("MST", "%Z"),
    (".000000000", ".%f"),
    (".999999999", ".%f"),
    (".000000", ".%f"),
    (".999999", ".%f"),
    (".000", ".%f"),
    (".999", ".%f"),
    ("_2", "%d"),
    ("01", "%m"),
    ("02", "%d"),
    ("03", "%I"),
    ("04", "%M"),
    ("05", "%S"),
    ("06", "%y"),
    ("15", "%H"),
    ("PM", "%p"),
    ("pm", "%p"),
    ("1", "%m"),
    ("2", "%d"),
    ("3", "%I"),
    ("4", "%M"),
    ("5", "%S"),
]

# The layouts `date(text)` tries without one (expr's list).
_DEFAULT_LAYOUTS = [
    "2006-01-02",
    "15:04:05",
    "2006-01-02 15:04:05",
    "2006-01-02T15:04:05Z07:00",  # RFC3339
    "02 Jan 06 15:04 MST",  # RFC822
    "Monday, 02-Jan-06 15:04:05 MST",  # RFC850
    "Mon, 02 Jan 2006 15:04:05 MST",  # RFC1123
]
_ZONE_WORD = re.compile(r"[A-Z]{3,5}(?=[^A-Z]*$)")
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)


def _strptime_format(layout: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(layout):
        for element, directive in _LAYOUT:
            if layout.startswith(element, index):
                out.append(directive)
                index += len(element)
                break
        else:
            char = layout[index]
            out.append("%%" if char == "%" else char)
            index += 1
    return "".join(out)


def _parse_layout(text: str, layout: str) -> datetime:
    if layout == "2006-01-02T15:04:05Z07:00" or layout.startswith("2006-01-02T15:04:05.999999999"):
        if not _RFC3339.match(text):
            raise ValueError(text)
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    fmt = _strptime_format(layout)
    if "%Z" in fmt:
        # Go gives a zone abbreviation it does not know a zero offset; strptime knows none, so
        # the abbreviation is dropped and the time read as UTC.
        fmt = fmt.replace("%Z", "")
        text = _ZONE_WORD.sub("", text, count=1)
    parsed = datetime.strptime(text, fmt)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def parse_date(text: str, layout: str | None = None, zone: str | None = None) -> datetime:
    """expr's `date(text[, layout[, zone]])`."""
    if zone is not None and zone.upper() not in ("UTC", "Z"):
        raise Fault(f"unknown time zone {zone} (only UTC is available)")
    layouts = [layout] if layout is not None else _DEFAULT_LAYOUTS
    for candidate in layouts:
        try:
            return _parse_layout(text, candidate)
        except ValueError:
            continue
    if layout is not None:
        raise Fault(f'parsing time "{text}" as "{layout}": cannot parse')
    raise Fault(f"invalid date {text}")
