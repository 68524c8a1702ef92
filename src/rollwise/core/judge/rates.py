"""Anytime-valid comparison of an event rate (errors, slow requests) between canary and baseline.

Where this sits: the heart of `rollwise.core.judge`. `ErrorRateTest` compares error counts;
`LatencyTest` (module `latency`) feeds it the counts of requests slower than the baseline's tail
bucket. Called once per look (per measurement window) by the `rollwise/judge` provider and, in
tight loops, by the detection benchmark. Pure and synchronous; the state is a small immutable
value that serialises to JSON (`to_json`/`from_json`), so it can live in a measurement's
metadata between looks and a controller restart loses nothing.

Theory of operation. Each look brings one batch of counts: requests and events of each version
since the previous look. Two tests run side by side on everything seen so far:

- **fail** (a regression): the mixture SPRT on the canary's share of events given the traffic
  split (`evidence.share_log_lr`), null "canary rate <= margin_ratio x baseline rate". Its
  e-value is kept per alternative in the state (a running sum of batch log likelihood ratios)
  and may be checked after every batch: under the null the chance that it *ever* reaches
  1/alpha is at most alpha, however often one looks and whenever one stops.
- **pass** (non-inferiority): the canary's time-uniform upper bound (confidence
  1 - 0.8 pass_alpha) is at most `margin_ratio x the baseline's time-uniform lower bound
  (confidence 1 - 0.2 pass_alpha) + margin_abs`. If the canary is really worse than
  "margin_ratio x baseline + margin_abs", a pass happens with probability at most pass_alpha.
  A pass also needs `min_requests` requests on each side.

Fail is checked first (a clear regression is never hidden by a pass), then the data floor
(`no-data`: never a pass), then pass; otherwise `continue`, with an estimate of the canary
requests still needed at the current rates (the drift of the nearest alternative's log
likelihood ratio towards its threshold).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from rollwise.core.judge.evidence import (
    BELOW_FRACTIONS,
    SHARE_MULTIPLIERS,
    below_log_e,
    below_terms_and_drift,
    log_mixture,
    lower_bound,
    share_drift,
    share_log_lr,
    uniform_log_weights,
    upper_bound,
)
from rollwise.core.judge.verdicts import CONTINUE, FAIL, NO_DATA, PASS, Decision, Verdict

DEFAULT_ALPHA = 0.01
DEFAULT_PASS_ALPHA = 0.05
DEFAULT_MIN_REQUESTS = 200
PASS_ALPHA_CANARY_SHARE = 0.8
"""Of pass_alpha, the share spent on the canary's upper bound (the rest on the baseline's lower
bound): the canary has far fewer requests, so its bound is the one that needs the room."""

_MAX_LOG = 700.0  # exp() beyond this overflows a float


@dataclass(frozen=True)
class RateState:
    """Everything a rate test remembers between looks (JSON-serialisable via `to_json`)."""

    canary_requests: float = 0.0
    canary_events: float = 0.0
    baseline_requests: float = 0.0
    baseline_events: float = 0.0
    log_lr: tuple[float, ...] = ()
    """Running log likelihood ratio of each alternative of the fail test."""
    log_e: float = 0.0
    """log of the fail test's evidence now (the equal-weight mixture of `log_lr`)."""
    max_log_e: float = 0.0
    """The largest log evidence seen so far (for the always-valid p-value)."""
    looks: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "canaryRequests": self.canary_requests,
            "canaryEvents": self.canary_events,
            "baselineRequests": self.baseline_requests,
            "baselineEvents": self.baseline_events,
            "logLR": list(self.log_lr),
            "logE": self.log_e,
            "maxLogE": self.max_log_e,
            "looks": self.looks,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RateState:
        """The state `to_json` wrote; raises ValueError/TypeError/KeyError when it is not one."""
        return cls(
            canary_requests=float(raw["canaryRequests"]),
            canary_events=float(raw["canaryEvents"]),
            baseline_requests=float(raw["baselineRequests"]),
            baseline_events=float(raw["baselineEvents"]),
            log_lr=tuple(float(v) for v in raw["logLR"]),
            log_e=float(raw["logE"]),
            max_log_e=float(raw["maxLogE"]),
            looks=int(raw["looks"]),
        )


@dataclass(frozen=True)
class RateTest:
    """Sequential comparison of "events per request" of the canary with the baseline's.

    alpha: the chance of ever failing a canary whose rate is within `margin_ratio` x the
    baseline's (a healthy canary), under continuous looking. pass_alpha: the chance of passing
    a canary worse than `margin_ratio` x baseline + `margin_abs`. `label` names the events in
    reasons ("errors", "slower than 250ms"); `metric` names the test in combined verdicts.
    """

    alpha: float = DEFAULT_ALPHA
    margin_ratio: float = 1.2
    margin_abs: float = 0.001
    pass_alpha: float = DEFAULT_PASS_ALPHA
    min_requests: float = DEFAULT_MIN_REQUESTS
    multipliers: tuple[float, ...] = SHARE_MULTIPLIERS
    label: str = "errors"
    metric: str = "errors"
    _log_weights: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, not {self.alpha}")
        if not 0 < self.pass_alpha < 1:
            raise ValueError(f"pass alpha must be between 0 and 1, not {self.pass_alpha}")
        if not self.margin_ratio > 0 or not math.isfinite(self.margin_ratio):
            raise ValueError(f"margin ratio must be positive, not {self.margin_ratio}")
        if not 0 <= self.margin_abs < 1:
            raise ValueError(f"absolute margin must be in [0, 1), not {self.margin_abs}")
        if self.min_requests < 0:
            raise ValueError(f"minimum requests must not be negative, not {self.min_requests}")
        if not self.multipliers or any(m <= 1 for m in self.multipliers):
            raise ValueError("the fail test's alternatives must all be above 1")
        object.__setattr__(self, "_log_weights", uniform_log_weights(len(self.multipliers)))

    @property
    def canary_alpha(self) -> float:
        return self.pass_alpha * PASS_ALPHA_CANARY_SHARE

    @property
    def baseline_alpha(self) -> float:
        return self.pass_alpha * (1 - PASS_ALPHA_CANARY_SHARE)

    def initial_state(self) -> RateState:
        return RateState(log_lr=(0.0,) * len(self.multipliers))

    def update(
        self,
        state: RateState | None,
        *,
        canary_requests: float,
        canary_events: float,
        baseline_requests: float,
        baseline_events: float,
    ) -> tuple[RateState, Verdict]:
        """Fold one batch (the counts since the previous look) in and judge everything so far.

        Negative counts or more events than requests raise ValueError (a caller's bug or a
        counter reset the caller did not handle)."""
        new = self.advance(
            state,
            canary_requests=canary_requests,
            canary_events=canary_events,
            baseline_requests=baseline_requests,
            baseline_events=baseline_events,
        )
        return new, self.verdict(new)

    def advance(
        self,
        state: RateState | None,
        *,
        canary_requests: float,
        canary_events: float,
        baseline_requests: float,
        baseline_events: float,
    ) -> RateState:
        """`update` without the verdict: fold one batch in (cheap; pair it with `decide`)."""
        for name, value in (
            ("canary requests", canary_requests),
            ("canary events", canary_events),
            ("baseline requests", baseline_requests),
            ("baseline events", baseline_events),
        ):
            if not value >= 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a non-negative number, not {value}")
        if canary_events > canary_requests or baseline_events > baseline_requests:
            raise ValueError("a batch cannot have more events than requests")
        state = state if state is not None and state.log_lr else self.initial_state()
        if len(state.log_lr) != len(self.multipliers):
            raise ValueError("the state was written by a test with other alternatives")
        increments = share_log_lr(
            canary_requests=canary_requests,
            canary_events=canary_events,
            baseline_requests=baseline_requests,
            baseline_events=baseline_events,
            null_ratio=self.margin_ratio,
            multipliers=self.multipliers,
        )
        log_lr = tuple(a + b for a, b in zip(state.log_lr, increments, strict=True))
        log_e = log_mixture(self._log_weights, log_lr)
        return RateState(
            canary_requests=state.canary_requests + canary_requests,
            canary_events=state.canary_events + canary_events,
            baseline_requests=state.baseline_requests + baseline_requests,
            baseline_events=state.baseline_events + baseline_events,
            log_lr=log_lr,
            log_e=log_e,
            max_log_e=max(state.max_log_e, log_e),
            looks=state.looks + 1,
        )

    def decide(self, state: RateState) -> Decision:
        """The decision `verdict(state)` gives, without its figures: no bound is computed
        unless a pass is within reach, so loops over many simulated looks stay fast."""
        if state.log_e >= -math.log(self.alpha):
            return FAIL
        if not self._enough(state):
            return NO_DATA
        n_c, x_c = state.canary_requests, state.canary_events
        n_b, x_b = state.baseline_requests, state.baseline_events
        goal = -math.log(self.canary_alpha)
        # The baseline's lower bound never exceeds its observed rate, and the pass evidence
        # grows with the margin: if even this margin does not pass, the real one does not.
        optimistic = self.margin_ratio * (x_b / n_b) + self.margin_abs
        if below_log_e(n_c, x_c, optimistic) < goal:
            return CONTINUE
        return PASS if below_log_e(n_c, x_c, self.margin_for(state)) >= goal else CONTINUE

    def margin_for(self, state: RateState) -> float:
        """The rate the canary's upper bound must clear: margin_ratio x the baseline's lower
        bound + margin_abs."""
        base_low = lower_bound(state.baseline_requests, state.baseline_events, self.baseline_alpha)
        return self.margin_ratio * base_low + self.margin_abs

    def _enough(self, state: RateState) -> bool:
        floor = max(self.min_requests, 1)
        return state.canary_requests >= floor and state.baseline_requests >= floor

    def verdict(self, state: RateState) -> Verdict:
        """The verdict on `state` (what `update` returns, without new data)."""
        if not state.log_lr:
            state = self.initial_state()
        n_c, x_c = state.canary_requests, state.canary_events
        n_b, x_b = state.baseline_requests, state.baseline_events
        log_e = state.log_e
        decision = self.decide(state)

        margin = self.margin_for(state)
        pass_log_e = below_log_e(n_c, x_c, margin)
        canary_rate = x_c / n_c if n_c > 0 else None
        baseline_rate = x_b / n_b if n_b > 0 else None
        canary_bounds = (
            (lower_bound(n_c, x_c, self.canary_alpha), upper_bound(n_c, x_c, self.canary_alpha))
            if n_c > 0
            else None
        )
        baseline_bounds = (
            (
                lower_bound(n_b, x_b, self.baseline_alpha),
                upper_bound(n_b, x_b, self.baseline_alpha),
            )
            if n_b > 0
            else None
        )
        ratio = (
            canary_rate / baseline_rate
            if canary_rate is not None and baseline_rate is not None and baseline_rate > 0
            else None
        )

        needed, expected = (None, None)
        if decision in (CONTINUE, NO_DATA):
            needed, expected = self._requests_needed(state, margin=margin, log_e=log_e)
        verdict = Verdict(
            decision=decision,
            reason="",
            metric=self.metric,
            e_value=math.exp(min(log_e, _MAX_LOG)),
            threshold=1 / self.alpha,
            p_value=min(1.0, math.exp(-state.max_log_e)),
            pass_evidence=math.exp(min(pass_log_e, _MAX_LOG)),
            canary_requests=n_c,
            canary_events=x_c,
            baseline_requests=n_b,
            baseline_events=x_b,
            canary_rate=canary_rate,
            canary_bounds=canary_bounds,
            baseline_rate=baseline_rate,
            baseline_bounds=baseline_bounds,
            ratio=ratio,
            margin=margin,
            requests_needed=needed,
            expected=expected,
        )
        return replace(verdict, reason=self.reason(verdict))

    # --- the time to a decision ---------------------------------------------------------------

    def _requests_needed(
        self, state: RateState, *, margin: float, log_e: float
    ) -> tuple[int | None, Decision | None]:
        """Canary requests until the nearest decision if the rates stay what they look like now
        (smoothed so that a version with no events yet is not taken as perfect)."""
        n_c, x_c = state.canary_requests, state.canary_events
        n_b, x_b = state.baseline_requests, state.baseline_events
        if n_c <= 0 or n_b <= 0:
            return None, None
        canary_rate = (x_c + 0.5) / (n_c + 1)
        baseline_rate = (x_b + 0.5) / (n_b + 1)
        split = n_b / n_c
        best: tuple[float, Decision] | None = None

        goal_fail = -math.log(self.alpha)
        for log_w, log_lr, m in zip(self._log_weights, state.log_lr, self.multipliers, strict=True):
            drift = share_drift(
                canary_rate=canary_rate,
                baseline_rate=baseline_rate,
                baseline_per_canary=split,
                null_ratio=self.margin_ratio,
                multiplier=m,
            )
            if drift > 0:
                steps = max(0.0, (goal_fail - log_w - log_lr) / drift)
                if best is None or steps < best[0]:
                    best = (steps, FAIL)

        goal_pass = -math.log(self.canary_alpha)
        log_count = math.log(len(BELOW_FRACTIONS))  # each alternative's prior weight
        floor = max(self.min_requests - n_c, (self.min_requests - n_b) / split, 0.0)
        # The baseline's lower bound climbs towards its rate as its traffic grows (faster than
        # the canary's, usually): aim at the margin it is heading for.
        heading = max(margin, self.margin_ratio * baseline_rate + self.margin_abs)
        for term, drift in below_terms_and_drift(n_c, x_c, heading, canary_rate):
            if term == -math.inf or not drift > 0:
                continue
            steps = max((goal_pass + log_count - term) / drift, floor)
            if best is None or steps < best[0]:
                best = (steps, PASS)
        if best is None or not math.isfinite(best[0]):
            return None, None
        return max(1, math.ceil(best[0])), best[1]

    # --- words --------------------------------------------------------------------------------

    def reason(self, verdict: Verdict) -> str:
        """The verdict's one line, e.g. "canary 1.1% errors of 2,340 requests vs baseline 0.12%
        of 9,410; evidence 142 ≥ 100 → regression"."""
        if verdict.decision == NO_DATA and (
            verdict.canary_requests < self.min_requests
            or verdict.baseline_requests < self.min_requests
        ):
            floor = f"at least {count_text(self.min_requests)} each"
            return (
                f"too little data: canary {count_text(verdict.canary_requests)} requests, "
                f"baseline {count_text(verdict.baseline_requests)} ({floor})"
            )
        seen = (
            f"canary {rate_text(verdict.canary_rate)} {self.label} of "
            f"{count_text(verdict.canary_requests)} requests vs baseline "
            f"{rate_text(verdict.baseline_rate)} of {count_text(verdict.baseline_requests)}"
        )
        evidence = f"evidence {number_text(verdict.e_value)}"
        goal = number_text(verdict.threshold)
        upper = verdict.canary_bounds[1] if verdict.canary_bounds else 1.0
        margin = verdict.margin if verdict.margin is not None else 0.0
        margin_words = f"margin {rate_text(margin)}"
        if verdict.decision == FAIL:
            return f"{seen}; {evidence} ≥ {goal} → regression"
        if verdict.decision == PASS:
            return f"{seen}; upper bound {rate_text(upper)} ≤ {margin_words} → within margin"
        return f"{seen}; {evidence} < {goal}, upper bound {rate_text(upper)} > {margin_words}"


@dataclass(frozen=True)
class ErrorRateTest:
    """The error-rate comparison: a `RateTest` whose events are errors (5xx responses).

    `update(state, canary_requests=, canary_errors=, baseline_requests=, baseline_errors=)`
    returns `(state, Verdict)`; see `RateTest` for the parameters and the guarantees. Defaults:
    alpha 0.01 (at most 1 false rollback in 100 healthy canaries, whatever the number of looks),
    pass_alpha 0.05, margin "1.2 x baseline + 0.1 percentage point", 200 requests per side
    before a pass.
    """

    alpha: float = DEFAULT_ALPHA
    margin_ratio: float = 1.2
    margin_abs: float = 0.001
    pass_alpha: float = DEFAULT_PASS_ALPHA
    min_requests: float = DEFAULT_MIN_REQUESTS
    multipliers: tuple[float, ...] = SHARE_MULTIPLIERS

    @cached_property
    def rates(self) -> RateTest:
        return RateTest(
            alpha=self.alpha,
            margin_ratio=self.margin_ratio,
            margin_abs=self.margin_abs,
            pass_alpha=self.pass_alpha,
            min_requests=self.min_requests,
            multipliers=self.multipliers,
            label="errors",
            metric="errors",
        )

    def __post_init__(self) -> None:
        self.rates  # noqa: B018 - validates the parameters now, not at the first look

    def initial_state(self) -> RateState:
        return self.rates.initial_state()

    def update(
        self,
        state: RateState | None,
        *,
        canary_requests: float,
        canary_errors: float,
        baseline_requests: float,
        baseline_errors: float,
    ) -> tuple[RateState, Verdict]:
        return self.rates.update(
            state,
            canary_requests=canary_requests,
            canary_events=canary_errors,
            baseline_requests=baseline_requests,
            baseline_events=baseline_errors,
        )

    def advance(
        self,
        state: RateState | None,
        *,
        canary_requests: float,
        canary_errors: float,
        baseline_requests: float,
        baseline_errors: float,
    ) -> RateState:
        """`update` without the verdict (pair it with `decide` in simulation loops)."""
        return self.rates.advance(
            state,
            canary_requests=canary_requests,
            canary_events=canary_errors,
            baseline_requests=baseline_requests,
            baseline_events=baseline_errors,
        )

    def decide(self, state: RateState) -> Decision:
        return self.rates.decide(state)

    def verdict(self, state: RateState) -> Verdict:
        return self.rates.verdict(state)


# --- number formatting for reasons ------------------------------------------------------------


def rate_text(rate: float | None) -> str:
    """0.011 -> "1.1%", 0.0012 -> "0.12%", None -> "-" (two significant digits)."""
    if rate is None:
        return "-"
    percent = rate * 100
    if percent == 0:
        return "0%"
    if percent >= 10:
        return f"{percent:.0f}%"
    return f"{percent:.2g}%"


def count_text(count: float) -> str:
    return f"{count:,.0f}"


def number_text(value: float) -> str:
    """Evidence for people: 0.031, 3.1, 142, 12,400, 3.2e+08."""
    if value >= 1e6:
        return f"{value:.2g}"
    if value >= 10:
        return f"{value:,.0f}"
    return f"{value:.2g}"
