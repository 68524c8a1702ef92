"""The canary judge: the error test and the latency test together, under one alpha.

Where this sits: the entry point of `rollwise.core.judge` for the `rollwise/judge` provider
(one `update` per measurement window) and the detection benchmark. Pure; `JudgeState` is the
whole memory of a judgement and round-trips through JSON (`to_json`/`from_json`).

The judge fails when any test fails and passes when every test passes. Its false-fail bound is
alpha in total: `CanaryJudge.build` gives each enabled test alpha / (number of tests), and
likewise pass_alpha (Bonferroni: the chance that one of them ever fails a healthy canary is at
most the sum of theirs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rollwise.core.judge.latency import Buckets, LatencyState, LatencyTest
from rollwise.core.judge.rates import (
    DEFAULT_ALPHA,
    DEFAULT_PASS_ALPHA,
    ErrorRateTest,
    RateState,
)
from rollwise.core.judge.verdicts import (
    CONTINUE,
    FAIL,
    NO_DATA,
    PASS,
    Decision,
    Verdict,
    combine,
)

DEFAULT_ERRORS = ErrorRateTest()


@dataclass(frozen=True)
class Traffic:
    """One look's counts for both versions: the increase since the previous look.

    Buckets are cumulative counts by upper bound in seconds (`math.inf` for `+Inf`); leave them
    None when the judge has no latency test."""

    canary_requests: float
    canary_errors: float
    baseline_requests: float
    baseline_errors: float
    canary_buckets: Buckets | None = None
    baseline_buckets: Buckets | None = None


@dataclass(frozen=True)
class JudgeState:
    errors: RateState | None = None
    latency: LatencyState | None = None
    looks: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "errors": None if self.errors is None else self.errors.to_json(),
            "latency": None if self.latency is None else self.latency.to_json(),
            "looks": self.looks,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> JudgeState:
        """The state `to_json` wrote; raises ValueError/TypeError/KeyError when it is not."""
        errors = raw.get("errors")
        latency = raw.get("latency")
        return cls(
            errors=None if errors is None else RateState.from_json(errors),
            latency=None if latency is None else LatencyState.from_json(latency),
            looks=int(raw.get("looks", 0)),
        )


@dataclass(frozen=True)
class JudgeVerdict:
    """The combined verdict and each test's own."""

    verdict: Verdict
    errors: Verdict | None = None
    latency: Verdict | None = None


@dataclass(frozen=True)
class CanaryJudge:
    errors: ErrorRateTest | None = field(default_factory=ErrorRateTest)
    latency: LatencyTest | None = None

    def __post_init__(self) -> None:
        if self.errors is None and self.latency is None:
            raise ValueError("the judge needs the error test, the latency test or both")

    @classmethod
    def build(
        cls,
        *,
        alpha: float = DEFAULT_ALPHA,
        pass_alpha: float = DEFAULT_PASS_ALPHA,
        errors: ErrorRateTest | None = DEFAULT_ERRORS,
        latency: LatencyTest | None = None,
    ) -> CanaryJudge:
        """A judge whose tests share `alpha` and `pass_alpha` equally (their own alphas are
        replaced)."""
        tests = sum(test is not None for test in (errors, latency))
        share = max(tests, 1)
        return cls(
            errors=None
            if errors is None
            else replace(errors, alpha=alpha / share, pass_alpha=pass_alpha / share),
            latency=None
            if latency is None
            else replace(latency, alpha=alpha / share, pass_alpha=pass_alpha / share),
        )

    def initial_state(self) -> JudgeState:
        return JudgeState(
            errors=None if self.errors is None else self.errors.initial_state(),
            latency=None if self.latency is None else self.latency.initial_state(),
        )

    def update(self, state: JudgeState | None, traffic: Traffic) -> tuple[JudgeState, JudgeVerdict]:
        """Fold one look in and judge everything so far."""
        state = state or self.initial_state()
        errors_state, errors_verdict = state.errors, None
        if self.errors is not None:
            errors_state, errors_verdict = self.errors.update(
                state.errors,
                canary_requests=traffic.canary_requests,
                canary_errors=traffic.canary_errors,
                baseline_requests=traffic.baseline_requests,
                baseline_errors=traffic.baseline_errors,
            )
        latency_state, latency_verdict = state.latency, None
        if self.latency is not None:
            latency_state, latency_verdict = self.latency.update(
                state.latency,
                canary_buckets=traffic.canary_buckets or {},
                baseline_buckets=traffic.baseline_buckets or {},
            )
        new = JudgeState(errors=errors_state, latency=latency_state, looks=state.looks + 1)
        return new, self._verdict(errors_verdict, latency_verdict)

    def advance(self, state: JudgeState | None, traffic: Traffic) -> JudgeState:
        """`update` without the verdicts (pair it with `decide` in simulation loops)."""
        state = state or self.initial_state()
        errors = state.errors
        if self.errors is not None:
            errors = self.errors.advance(
                state.errors,
                canary_requests=traffic.canary_requests,
                canary_errors=traffic.canary_errors,
                baseline_requests=traffic.baseline_requests,
                baseline_errors=traffic.baseline_errors,
            )
        latency = state.latency
        if self.latency is not None:
            latency = self.latency.advance(
                state.latency,
                canary_buckets=traffic.canary_buckets or {},
                baseline_buckets=traffic.baseline_buckets or {},
            )
        return JudgeState(errors=errors, latency=latency, looks=state.looks + 1)

    def decide(self, state: JudgeState) -> Decision:
        """The combined decision `verdict(state)` gives, cheaply."""
        decisions: list[Decision] = []
        if self.errors is not None:
            decisions.append(self.errors.decide(state.errors or self.errors.initial_state()))
        if self.latency is not None:
            decisions.append(self.latency.decide(state.latency or self.latency.initial_state()))
        if FAIL in decisions:
            return FAIL
        if all(d == PASS for d in decisions):
            return PASS
        return NO_DATA if NO_DATA in decisions else CONTINUE

    def verdict(self, state: JudgeState) -> JudgeVerdict:
        """The verdict on `state` without new data."""
        errors = (
            None
            if self.errors is None
            else self.errors.verdict(state.errors or self.errors.initial_state())
        )
        latency = (
            None
            if self.latency is None
            else self.latency.verdict(state.latency or self.latency.initial_state())
        )
        return self._verdict(errors, latency)

    @staticmethod
    def _verdict(errors: Verdict | None, latency: Verdict | None) -> JudgeVerdict:
        parts = [v for v in (errors, latency) if v is not None]
        return JudgeVerdict(verdict=combine(parts), errors=errors, latency=latency)
