"""Anytime-valid latency comparison: the share of canary requests slower than the baseline's tail.

Where this sits: in `rollwise.core.judge`, beside `rates`; used by `CanaryJudge` and by the
detection benchmark. Pure; the state serialises to JSON like `RateState`.

Theory of operation. Histograms (Prometheus' or Traefik's) are counts per bucket, so latency
becomes a count too: a request is *slow* when it lands above a bucket bound `b`. The test picks
`b` once, as the smallest bucket bound under which the baseline has served at least `quantile`
of its requests (its p99 bucket by default), from the baseline's first `calibration_requests`
requests; those looks only calibrate (`no-data`), and every later batch is judged against the
fixed `b`, which makes the choice predictable (it depends on earlier data only) and keeps the
sequential guarantees. From then on it is a `RateTest` on "requests slower than b": fail when
the canary's share of slow requests is, with evidence 1/alpha, more than `margin_ratio` x the
baseline's; pass when its upper bound is below `margin_ratio` x the baseline's lower bound +
`margin_abs`. A p99 that grows by 30% shows up as a canary with several times the baseline's
share of requests above the baseline's p99 bucket.

Buckets come as Prometheus reports them: cumulative counts by upper bound in seconds (`le`,
`math.inf` for `+Inf`, whose count is the number of requests), for one batch (the increase since
the previous look). Both versions must use the same bucket bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rollwise.core.judge.evidence import SHARE_MULTIPLIERS
from rollwise.core.judge.rates import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_REQUESTS,
    DEFAULT_PASS_ALPHA,
    RateState,
    RateTest,
    count_text,
)
from rollwise.core.judge.verdicts import NO_DATA, Decision, Verdict

Buckets = Mapping[float, float]
"""Cumulative request counts by upper bound in seconds (`math.inf` = all requests)."""


@dataclass(frozen=True)
class LatencyState:
    """What a latency test remembers between looks (JSON-serialisable via `to_json`)."""

    bound: float | None = None
    """The slow-request bound in seconds, once calibrated."""
    calibration: tuple[tuple[float, float], ...] = ()
    """The baseline's cumulative buckets summed over the calibrating looks."""
    rates: RateState = field(default_factory=RateState)

    def to_json(self) -> dict[str, Any]:
        return {
            "bound": self.bound,
            "calibration": [[_bound_json(le), count] for le, count in self.calibration],
            "rates": self.rates.to_json(),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LatencyState:
        bound = raw.get("bound")
        return cls(
            bound=None if bound is None else float(bound),
            calibration=tuple((float(le), float(count)) for le, count in raw["calibration"]),
            rates=RateState.from_json(raw["rates"]),
        )


def _bound_json(bound: float) -> float | str:
    return "+Inf" if math.isinf(bound) else bound


def total_requests(buckets: Buckets) -> float:
    """The requests a cumulative histogram counts (its `+Inf` bucket, else its largest)."""
    if math.inf in buckets:
        return buckets[math.inf]
    return max(buckets.values(), default=0.0)


def at_or_below(buckets: Buckets, bound: float) -> float:
    """Requests no slower than `bound`: the cumulative count of the largest bound <= it."""
    if bound in buckets:
        return buckets[bound]
    below = [count for le, count in buckets.items() if le <= bound]
    return max(below, default=0.0)


def tail_bound(buckets: Buckets, quantile: float) -> float | None:
    """The smallest finite bucket bound under which at least `quantile` of the requests fall
    (the highest finite bound when the quantile is in the `+Inf` bucket); None without any
    finite bound or request."""
    total = total_requests(buckets)
    finite = sorted((le, count) for le, count in buckets.items() if math.isfinite(le))
    if total <= 0 or not finite:
        return None
    for le, count in finite:
        if count >= quantile * total:
            return le
    return finite[-1][0]


def seconds_text(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


@dataclass(frozen=True)
class LatencyTest:
    """Sequential comparison of the canary's share of requests slower than the baseline's
    `quantile` bucket bound. Defaults: the p99 bucket, fail at evidence 1/alpha with a ratio
    margin of 1.5, pass when the canary's slow share is at most 1.5 x the baseline's + a
    quarter of the tail (0.25 percentage point for p99), calibrating on
    ceil(10 / (1 - quantile)) baseline requests (1,000 for p99: about 10 in the tail)."""

    alpha: float = DEFAULT_ALPHA
    quantile: float = 0.99
    margin_ratio: float = 1.5
    margin_abs: float | None = None
    """Default: a quarter of the tail, (1 - quantile) / 4 (0.25 percentage point for p99)."""
    pass_alpha: float = DEFAULT_PASS_ALPHA
    min_requests: float = DEFAULT_MIN_REQUESTS
    calibration_requests: float | None = None
    multipliers: tuple[float, ...] = SHARE_MULTIPLIERS

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be between 0 and 1, not {self.quantile}")
        if self.calibration_requests is not None and self.calibration_requests < 1:
            raise ValueError("calibration needs at least one request")
        self.rates_for(1.0)  # validates the shared parameters now

    @property
    def calibration_target(self) -> float:
        if self.calibration_requests is not None:
            return self.calibration_requests
        return float(math.ceil(10 / (1 - self.quantile)))

    @property
    def tail_margin(self) -> float:
        """The absolute margin on the share of slow requests."""
        return (1 - self.quantile) / 4 if self.margin_abs is None else self.margin_abs

    @property
    def quantile_text(self) -> str:
        return f"p{self.quantile * 100:g}"

    def rates_for(self, bound: float) -> RateTest:
        return RateTest(
            alpha=self.alpha,
            margin_ratio=self.margin_ratio,
            margin_abs=self.tail_margin,
            pass_alpha=self.pass_alpha,
            min_requests=self.min_requests,
            multipliers=self.multipliers,
            label=f"slower than {seconds_text(bound)}",
            metric="latency",
        )

    def initial_state(self) -> LatencyState:
        return LatencyState()

    def update(
        self,
        state: LatencyState | None,
        *,
        canary_buckets: Buckets,
        baseline_buckets: Buckets,
    ) -> tuple[LatencyState, Verdict]:
        """Fold one batch of both versions' buckets in and judge everything so far."""
        state = state or self.initial_state()
        if state.bound is None:
            return self._calibrate(state, baseline_buckets)
        new = self.advance(state, canary_buckets=canary_buckets, baseline_buckets=baseline_buckets)
        return new, self.verdict(new)

    def advance(
        self,
        state: LatencyState | None,
        *,
        canary_buckets: Buckets,
        baseline_buckets: Buckets,
    ) -> LatencyState:
        """`update` without the verdict (pair it with `decide` in simulation loops)."""
        state = state or self.initial_state()
        if state.bound is None:
            return self._calibrate(state, baseline_buckets)[0]
        canary_total = total_requests(canary_buckets)
        baseline_total = total_requests(baseline_buckets)
        canary_slow = max(0.0, canary_total - at_or_below(canary_buckets, state.bound))
        baseline_slow = max(0.0, baseline_total - at_or_below(baseline_buckets, state.bound))
        rates = self.rates_for(state.bound).advance(
            state.rates,
            canary_requests=canary_total,
            canary_events=canary_slow,
            baseline_requests=baseline_total,
            baseline_events=baseline_slow,
        )
        return replace(state, rates=rates)

    def decide(self, state: LatencyState) -> Decision:
        if state.bound is None:
            return NO_DATA
        return self.rates_for(state.bound).decide(state.rates)

    def verdict(self, state: LatencyState) -> Verdict:
        if state.bound is None:
            return self._calibrating_verdict(state)
        if state.rates.looks == 0:
            return self._calibrated_verdict(state)
        return self.rates_for(state.bound).verdict(state.rates)

    def _calibrate(
        self, state: LatencyState, baseline_buckets: Buckets
    ) -> tuple[LatencyState, Verdict]:
        merged = dict(state.calibration)
        for le, count in baseline_buckets.items():
            merged[le] = merged.get(le, 0.0) + count
        calibration = tuple(sorted(merged.items()))
        bound = None
        if total_requests(merged) >= self.calibration_target:
            bound = tail_bound(merged, self.quantile)
        new = replace(state, calibration=calibration, bound=bound)
        return new, self.verdict(new)

    def _calibrated_verdict(self, state: LatencyState) -> Verdict:
        assert state.bound is not None
        return Verdict(
            decision=NO_DATA,
            metric="latency",
            threshold=1 / self.alpha,
            reason=(
                f"baseline {self.quantile_text} ≤ {seconds_text(state.bound)} (from "
                f"{count_text(total_requests(dict(state.calibration)))} requests); comparing "
                "slow requests from the next look"
            ),
        )

    def _calibrating_verdict(self, state: LatencyState) -> Verdict:
        seen = total_requests(dict(state.calibration))
        return Verdict(
            decision=NO_DATA,
            metric="latency",
            threshold=1 / self.alpha,
            baseline_requests=seen,
            reason=(
                f"calibrating: baseline {count_text(seen)} of "
                f"{count_text(self.calibration_target)} requests needed to find its "
                f"{self.quantile_text} bucket"
            ),
        )
