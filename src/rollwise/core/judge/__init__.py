"""rollwise.core.judge: anytime-valid canary statistics, pure and synchronous (issue 7).

Who calls it: the `rollwise/judge` metric provider (`rollwise.providers.judge`), once per
measurement window, and the detection benchmark (`bench/detection`), in tight loops. No I/O, no
clock, no numpy: the stdlib `math` only. Every state is an immutable value that round-trips
through JSON (`to_json` / `from_json`), so it can live in a measurement's metadata.

The method (reference 3.4, `docs/judge.md`): each look adds one batch of counts per version;
a regression is declared when a mixture SPRT on the canary's share of events given the traffic
split reaches 1/alpha (P(ever, under no regression) <= alpha, however often one looks); a pass
when a time-uniform upper bound on the canary's rate clears the non-inferiority margin
"margin_ratio x baseline + margin_abs"; too little data is `no-data`, never a pass.

Public API (importable from this package):

- `ErrorRateTest(alpha=0.01, margin_ratio=1.2, margin_abs=0.001, pass_alpha=0.05,
  min_requests=200)`:
  `.update(state | None, *, canary_requests, canary_errors, baseline_requests,
  baseline_errors) -> (RateState, Verdict)`; `.verdict(state) -> Verdict`;
  `.initial_state() -> RateState`.
- `LatencyTest(alpha=0.01, quantile=0.99, margin_ratio=1.5, margin_abs=(1-quantile)/4,
  pass_alpha=0.05, min_requests=200, calibration_requests=None)`:
  `.update(state | None, *, canary_buckets, baseline_buckets) -> (LatencyState, Verdict)`,
  buckets = {upper bound in seconds (math.inf for +Inf): cumulative count} of one batch.
- Every test also has `advance(state, ...) -> state` and `decide(state) -> Decision`: the same
  decision as `update(...)[1].decision` without computing bounds and reasons (about 10x
  cheaper; for simulation loops).
- `RateTest(...)`: the generic "events per request" test both are built on (`label` names the
  events in reasons).
- `CanaryJudge(errors=ErrorRateTest(), latency=None)`, `CanaryJudge.build(*, alpha,
  pass_alpha, errors, latency)` (splits the alphas between the tests):
  `.update(state | None, Traffic(...)) -> (JudgeState, JudgeVerdict)`.
- `Verdict`: `decision` ("fail" | "pass" | "continue" | "no-data"), `reason` (one line),
  `e_value`, `threshold` (1/alpha), `p_value` (always valid), `pass_evidence`, the counts,
  `canary_rate`/`canary_bounds`, `baseline_rate`/`baseline_bounds`, `ratio`, `margin`,
  `requests_needed` and `expected` (the decision they lead to). `combine(verdicts)`.
- `RateState`, `LatencyState`, `JudgeState`: `to_json() -> dict`, `from_json(dict)`.

Modules: `evidence` (e-values and bounds), `rates` (the rate test), `latency` (tail bucket +
rate test), `judge` (both under one alpha), `verdicts` (the outcome value).
"""

from rollwise.core.judge.judge import CanaryJudge, JudgeState, JudgeVerdict, Traffic
from rollwise.core.judge.latency import Buckets, LatencyState, LatencyTest
from rollwise.core.judge.rates import ErrorRateTest, RateState, RateTest
from rollwise.core.judge.verdicts import (
    CONTINUE,
    FAIL,
    NO_DATA,
    PASS,
    Decision,
    Verdict,
    combine,
)

__all__ = [
    "CONTINUE",
    "FAIL",
    "NO_DATA",
    "PASS",
    "Buckets",
    "CanaryJudge",
    "Decision",
    "ErrorRateTest",
    "JudgeState",
    "JudgeVerdict",
    "LatencyState",
    "LatencyTest",
    "RateState",
    "RateTest",
    "Traffic",
    "Verdict",
    "combine",
]
