"""Client-side rate limit of the Kubernetes API: a token bucket every request passes.

Where it sits: `KubeClient` takes a token before each request, so that a controller with many
rollouts cannot flood the API server (client-go's default limiter; Argo Rollouts' flags `--qps`
40 and `--burst` 80). `TokenBucket` is the arithmetic with the time passed in (unit-tested
without a clock); `RateLimiter` applies it with the event loop's clock and sleeps.
"""

from __future__ import annotations

import asyncio

DEFAULT_QPS = 40.0
DEFAULT_BURST = 80


class TokenBucket:
    """`burst` tokens at most, refilled at `qps` per second; callers queue in debt.

    A caller that finds the bucket empty still takes its token (the balance goes negative) and
    is told how long to wait, so concurrent callers are spaced 1/qps apart in arrival order.
    `qps` <= 0 means no limit.
    """

    def __init__(self, qps: float, burst: int, *, now: float) -> None:
        self.qps = qps
        self.burst = max(burst, 1)
        self._tokens = float(self.burst)
        self._last = now

    def reserve(self, now: float) -> float:
        """Take one token at time `now`; the seconds to wait before using it (0.0: go now)."""
        if self.qps <= 0:
            return 0.0
        elapsed = max(now - self._last, 0.0)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
        self._last = max(now, self._last)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


class RateLimiter:
    """A `TokenBucket` on the running loop's clock."""

    def __init__(self, qps: float = DEFAULT_QPS, burst: int = DEFAULT_BURST) -> None:
        self.qps = qps
        self.burst = burst
        self._bucket: TokenBucket | None = None

    async def acquire(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._bucket is None:
            self._bucket = TokenBucket(self.qps, self.burst, now=now)
        delay = self._bucket.reserve(now)
        if delay > 0:
            await asyncio.sleep(delay)
