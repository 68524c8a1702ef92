"""A work queue of object keys, as the controller's reconcile loop consumes it.

Like client-go's rate-limited delaying queue: a key is queued at most once; a key can be asked
for again at a later time (a pause that expires, a deadline); a key whose reconcile failed is
retried with a capped exponential back-off (Argo caps at 10 s). Pure bookkeeping over times the
caller passes in, so it is tested without sleeping.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 10.0


@dataclass
class WorkQueue:
    _ready: dict[str, None] = field(default_factory=dict)
    _delayed: list[tuple[float, str]] = field(default_factory=list)
    _due: dict[str, float] = field(default_factory=dict)
    _failures: dict[str, int] = field(default_factory=dict)

    def add(self, key: str) -> None:
        self._ready[key] = None

    def add_after(self, key: str, delay: float, *, now: float) -> None:
        """Queue `key` at `now + delay`, unless it is already due earlier."""
        due = now + max(delay, 0.0)
        if self._due.get(key, float("inf")) <= due:
            return
        self._due[key] = due
        heapq.heappush(self._delayed, (due, key))

    def fail(self, key: str, *, now: float) -> float:
        """Record a failed reconcile and queue the retry; returns the back-off chosen."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(BACKOFF_BASE_SECONDS * 2.0 ** (failures - 1), BACKOFF_CAP_SECONDS)
        self.add_after(key, delay, now=now)
        return delay

    def succeed(self, key: str) -> None:
        self._failures.pop(key, None)

    def pop_ready(self, *, now: float) -> list[str]:
        """Every key due by `now`, each once, in the order they became due."""
        while self._delayed and self._delayed[0][0] <= now:
            due, key = heapq.heappop(self._delayed)
            if self._due.get(key) == due:
                del self._due[key]
                self._ready[key] = None
        keys = list(self._ready)
        self._ready.clear()
        return keys

    def next_due(self) -> float | None:
        """When the earliest delayed key falls due (None if nothing waits)."""
        while self._delayed and self._due.get(self._delayed[0][1]) != self._delayed[0][0]:
            heapq.heappop(self._delayed)
        return self._delayed[0][0] if self._delayed else None

    def __len__(self) -> int:
        return len(self._ready)


@dataclass
class Backoff:
    """The same capped back-off for work that is not a key (the local controller's
    housekeeping): `failed` says how long to wait, `retry_at` when to try again."""

    retry_at: float = 0.0
    failures: int = 0

    def failed(self, now: float) -> float:
        self.failures += 1
        delay = min(BACKOFF_BASE_SECONDS * 2.0 ** (self.failures - 1), BACKOFF_CAP_SECONDS)
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = 0.0
