"""What the judge says after one look: a `Verdict`, and how several verdicts combine.

Where this sits: returned by `RateTest.update` / `ErrorRateTest.update`, `LatencyTest.update` and
`CanaryJudge.update` (this package), read by the `rollwise/judge` provider (which turns it into a
measurement) and by the detection benchmark (which only looks at `decision`). Pure values.

Decisions:

| decision   | meaning                                                                 |
|------------|-------------------------------------------------------------------------|
| `fail`     | the evidence of a regression passed 1/alpha: roll back                  |
| `pass`     | a time-uniform upper bound cleared the non-inferiority margin: promote  |
| `continue` | not decided yet: keep looking                                           |
| `no-data`  | too little traffic to compare (never a pass)                            |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

Decision = Literal["fail", "pass", "continue", "no-data"]

FAIL: Final = "fail"
PASS: Final = "pass"
CONTINUE: Final = "continue"
NO_DATA: Final = "no-data"


@dataclass(frozen=True)
class Verdict:
    """One test's (or the whole judge's) reading of all the data seen so far.

    Rates are events per request (0.011 = 1.1%); bounds are time-uniform: they hold at every
    look at once, with the confidence the test states. `None` means "not computable yet".
    """

    decision: Decision
    reason: str
    """One line a person can read, e.g. "canary 1.1% errors of 2,340 requests vs baseline 0.12%
    of 9,410; evidence 142 ≥ 100 → regression"."""
    metric: str = "errors"
    """What was compared: `errors`, `latency`, or `judge` for a combined verdict."""
    e_value: float = 1.0
    """Evidence of a regression: the mixture likelihood ratio against "the canary is within the
    ratio margin". Fails at `threshold` (1/alpha)."""
    threshold: float = 20.0
    """1/alpha: the evidence needed to fail."""
    p_value: float = 1.0
    """Always-valid p-value: 1 / the largest evidence seen so far (capped at 1)."""
    pass_evidence: float = 1.0
    """Evidence that the canary's rate is below the margin (passes at 1/its alpha)."""
    canary_requests: float = 0.0
    canary_events: float = 0.0
    baseline_requests: float = 0.0
    baseline_events: float = 0.0
    canary_rate: float | None = None
    canary_bounds: tuple[float, float] | None = None
    baseline_rate: float | None = None
    baseline_bounds: tuple[float, float] | None = None
    ratio: float | None = None
    """Canary rate / baseline rate (point estimate, `None` while the baseline has no events)."""
    margin: float | None = None
    """The rate the canary's upper bound must stay under to pass: ratio margin x the
    baseline's lower bound + the absolute margin."""
    requests_needed: int | None = None
    """Estimated further canary requests until a decision at the current rates (`None`: no
    decision in sight, e.g. the canary sits right on the margin)."""
    expected: Decision | None = None
    """The decision `requests_needed` leads to (`fail` or `pass`)."""

    @property
    def decided(self) -> bool:
        return self.decision in (FAIL, PASS)


def combine(verdicts: Sequence[Verdict], *, reason_prefix: bool = True) -> Verdict:
    """The judge's verdict from its tests' verdicts (each run at its share of alpha).

    Any fail fails; all pass passes; otherwise no-data if some test has no data, else continue.
    The combined verdict carries the figures of the test that decided (or, undecided, of the
    test furthest from a decision) and a reason naming every test.
    """
    if not verdicts:
        return Verdict(decision=NO_DATA, reason="nothing to judge", metric="judge")
    if len(verdicts) == 1:
        return verdicts[0]
    failed = [v for v in verdicts if v.decision == FAIL]
    if failed:
        lead = max(failed, key=lambda v: v.e_value / v.threshold)
        decision: Decision = FAIL
    elif all(v.decision == PASS for v in verdicts):
        lead = max(verdicts, key=lambda v: v.canary_requests)
        decision = PASS
    else:
        pending = [v for v in verdicts if v.decision != PASS]
        decision = NO_DATA if any(v.decision == NO_DATA for v in pending) else CONTINUE
        # The test that needs the most requests sets the time to a decision.
        lead = max(pending, key=lambda v: -1 if v.requests_needed is None else v.requests_needed)
        if any(v.requests_needed is None for v in pending):
            lead = next(v for v in pending if v.requests_needed is None)
    reason = (
        "; ".join(f"{v.metric}: {v.reason}" for v in verdicts) if reason_prefix else lead.reason
    )
    needed = lead.requests_needed if decision in (CONTINUE, NO_DATA) else None
    return Verdict(
        decision=decision,
        reason=reason,
        metric="judge",
        e_value=lead.e_value,
        threshold=lead.threshold,
        p_value=min(v.p_value for v in verdicts),
        pass_evidence=lead.pass_evidence,
        canary_requests=lead.canary_requests,
        canary_events=lead.canary_events,
        baseline_requests=lead.baseline_requests,
        baseline_events=lead.baseline_events,
        canary_rate=lead.canary_rate,
        canary_bounds=lead.canary_bounds,
        baseline_rate=lead.baseline_rate,
        baseline_bounds=lead.baseline_bounds,
        ratio=lead.ratio,
        margin=lead.margin,
        requests_needed=needed,
        expected=lead.expected if needed is not None else None,
    )
