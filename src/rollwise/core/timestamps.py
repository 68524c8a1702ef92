"""RFC3339 timestamps as the resources hold them (`2026-11-26T01:50:00Z`), and the clocks.

Who calls it: the core (pause start times, deadlines, conditions), the builders of observed
views, and every shell that stamps objects. The core never reads the time: callers pass `now`
in. The shells (controller, CLI, `rollwise analyze`) own a `Clock` and hand it to the platforms
and providers they build; tests hand them a `ManualClock` and advance it instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as a timezone-aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def format_time(moment: datetime) -> str:
    """`moment` in UTC, whole seconds, with a `Z` (what Kubernetes writes)."""
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """A timezone-aware datetime from an RFC3339 string (`Z` or an offset; fractions allowed)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def parse_time_or_none(text: str | None) -> datetime | None:
    """`parse_time`, or None when the text is missing or not a timestamp."""
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None
