"""rollwise's judge (`rollwise.core.judge`) as a benchmark policy.

Who uses it: `run`, as the "rollwise judge" policy.

The judge is used as the `rollwise/judge` provider uses it: one look per `LOOK_S`, each look
folding in the counts since the previous one (both versions' requests and errors, and both
versions' latency histograms as cumulative bucket counts by upper bound, `+Inf` last), with
J1's defaults (`CanaryJudge.build(errors=ErrorRateTest(), latency=LatencyTest())`: alpha 0.01
and pass alpha 0.05 split between the error and the latency test). A `fail` rolls the canary
back at that look; a `pass` promotes it; `continue` and `no-data` wait for the next look.

For speed the loop calls each test's `advance` and `decide` (the figures-free path the judge
offers for simulations) and combines the decisions as `verdicts.combine` does: any fail fails,
all pass passes. `tests/bench` checks that this gives the same decisions as
`CanaryJudge.update`.
"""

from __future__ import annotations

import math

import numpy as np

from bench.detection.outcomes import Outcomes
from bench.detection.scenarios import BLOCK_S, BUCKETS
from bench.detection.streams import Streams
from rollwise.core.judge import (
    FAIL,
    PASS,
    CanaryJudge,
    Decision,
    ErrorRateTest,
    LatencyTest,
)

LOOK_S = 10
BOUNDS = (*BUCKETS, math.inf)


def default_judge() -> CanaryJudge:
    return CanaryJudge.build(errors=ErrorRateTest(), latency=LatencyTest())


def combined(decisions: list[Decision]) -> str:
    """`verdicts.combine`'s rule on decisions alone: FAIL, PASS or "wait"."""
    if FAIL in decisions:
        return FAIL
    if all(decision == PASS for decision in decisions):
        return PASS
    return "wait"


def looks_of(streams: Streams, *, look_s: int = LOOK_S) -> dict[str, np.ndarray]:
    """Per-look counts: requests and errors `[run, look]`, cumulative buckets `[run, look, k]`."""
    per = look_s // BLOCK_S
    runs, blocks = streams.canary.errors.shape
    looks = blocks // per

    def grouped(values: np.ndarray) -> np.ndarray:
        summed: np.ndarray = values.reshape(runs, looks, per, *values.shape[2:]).sum(axis=2)
        return summed

    canary_latency = grouped(streams.canary.latency)
    baseline_latency = grouped(streams.baseline.latency)
    return {
        "canary_requests": canary_latency.sum(axis=-1),
        "canary_errors": grouped(streams.canary.errors),
        "baseline_requests": baseline_latency.sum(axis=-1),
        "baseline_errors": grouped(streams.baseline.errors),
        "canary_buckets": np.cumsum(canary_latency, axis=-1),
        "baseline_buckets": np.cumsum(baseline_latency, axis=-1),
    }


def decide(streams: Streams, *, judge: CanaryJudge | None = None, look_s: int = LOOK_S) -> Outcomes:
    judge = judge or default_judge()
    counts = looks_of(streams, look_s=look_s)
    looks = counts["canary_requests"].shape[1]
    rollback_at = np.full(streams.runs, np.nan)
    promote_at = np.full(streams.runs, np.nan)
    errors_test, latency_test = judge.errors, judge.latency
    for run in range(streams.runs):
        row = {name: values[run].tolist() for name, values in counts.items()}
        errors_state = None if errors_test is None else errors_test.initial_state()
        latency_state = None if latency_test is None else latency_test.initial_state()
        for look in range(looks):
            decisions: list[Decision] = []
            if errors_test is not None:
                errors_state = errors_test.advance(
                    errors_state,
                    canary_requests=row["canary_requests"][look],
                    canary_errors=row["canary_errors"][look],
                    baseline_requests=row["baseline_requests"][look],
                    baseline_errors=row["baseline_errors"][look],
                )
                decisions.append(errors_test.decide(errors_state))
            if latency_test is not None:
                latency_state = latency_test.advance(
                    latency_state,
                    canary_buckets=dict(zip(BOUNDS, row["canary_buckets"][look], strict=True)),
                    baseline_buckets=dict(zip(BOUNDS, row["baseline_buckets"][look], strict=True)),
                )
                decisions.append(latency_test.decide(latency_state))
            verdict = combined(decisions)
            if verdict == FAIL:
                rollback_at[run] = (look + 1) * look_s
                break
            if verdict == PASS:
                promote_at[run] = (look + 1) * look_s
                break
    return Outcomes.first_of(rollback_at=rollback_at, promote_at=promote_at)
