"""RFC3339 timestamps as the resources hold them (`2026-11-26T01:50:00Z`).

Who calls it: the core (pause start times, deadlines, conditions) and the builders of observed
views. Time itself is never read here: callers pass `now` in.
"""

from __future__ import annotations

from datetime import UTC, datetime


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
