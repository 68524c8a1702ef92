"""The clock the local platform is handed, and RFC3339 time strings.

Who uses this: `store` stamps `creationTimestamp` with it and `pods` schedules back-off and
availability with it. The controller owns the real clock and passes it in; tests pass a clock
they move by hand. Nothing in the local platform reads the time any other way (except real
process grace periods while shutting down, which measure the real world, not the domain).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Anything that can tell the current time as a timezone-aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def format_time(at: datetime) -> str:
    """RFC3339 in UTC with a `Z` and whole seconds, as Kubernetes writes timestamps."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: rollwise times are timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """The inverse of `format_time`; also accepts fractional seconds and numeric offsets."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
