"""The clock the local platform is handed, and the RFC3339 time strings it writes.

Who uses this: `store` stamps `creationTimestamp` with it and `pods` schedules back-off,
grace periods and availability with it. The controller owns the real clock and passes it in;
tests pass a clock they move by hand. Nothing in the local platform reads the time any other
way, except `pods.PodSupervisor.shutdown`, which waits for real processes in real seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from rollwise.core.timestamps import format_time, parse_time

__all__ = ["Clock", "SystemClock", "format_time", "parse_time"]


class Clock(Protocol):
    """Anything that can tell the current time as a timezone-aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)
