"""The judge: both tests under one alpha; fail if any fails, pass when all pass."""

from __future__ import annotations

import json
import math

import pytest

from rollwise.core.judge import (
    CONTINUE,
    FAIL,
    NO_DATA,
    PASS,
    CanaryJudge,
    ErrorRateTest,
    JudgeState,
    LatencyTest,
    Traffic,
    Verdict,
    combine,
)

BUCKETS_FAST = {0.1: 990.0, 0.25: 999.0, math.inf: 1000.0}


def test_build_shares_alpha_and_pass_alpha_between_the_tests() -> None:
    judge = CanaryJudge.build(
        alpha=0.02, pass_alpha=0.1, errors=ErrorRateTest(), latency=LatencyTest()
    )
    assert judge.errors is not None
    assert judge.latency is not None
    assert (judge.errors.alpha, judge.latency.alpha) == (0.01, 0.01)
    assert (judge.errors.pass_alpha, judge.latency.pass_alpha) == (0.05, 0.05)
    alone = CanaryJudge.build(alpha=0.02, errors=ErrorRateTest())
    assert alone.errors is not None
    assert alone.errors.alpha == 0.02


def test_a_judge_needs_something_to_judge() -> None:
    with pytest.raises(ValueError, match="needs the error test"):
        CanaryJudge(errors=None, latency=None)


def verdict(decision: str, needed: int | None = None, metric: str = "errors") -> Verdict:
    return Verdict(decision=decision, reason=decision, metric=metric, requests_needed=needed)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("errors", "latency", "combined"),
    [
        (FAIL, PASS, FAIL),
        (PASS, FAIL, FAIL),
        (PASS, PASS, PASS),
        (PASS, CONTINUE, CONTINUE),
        (CONTINUE, NO_DATA, NO_DATA),
        (NO_DATA, FAIL, FAIL),
    ],
)
def test_verdicts_combine_fail_first_then_all_pass(
    errors: str, latency: str, combined: str
) -> None:
    result = combine([verdict(errors), verdict(latency, metric="latency")])
    assert result.decision == combined
    assert result.reason == f"errors: {errors}; latency: {latency}"


def test_the_slowest_test_sets_the_time_to_a_decision() -> None:
    result = combine([verdict(CONTINUE, 500), verdict(CONTINUE, 4000, metric="latency")])
    assert result.requests_needed == 4000
    unknown = combine([verdict(CONTINUE, 500), verdict(CONTINUE, None, metric="latency")])
    assert unknown.requests_needed is None


def test_the_judge_fails_on_errors_while_latency_is_still_calibrating() -> None:
    judge = CanaryJudge.build(errors=ErrorRateTest(), latency=LatencyTest())
    state, verdicts = judge.update(
        None,
        Traffic(
            canary_requests=1000,
            canary_errors=100,
            baseline_requests=1000,
            baseline_errors=1,
            canary_buckets=BUCKETS_FAST,
            baseline_buckets={0.1: 0.0, math.inf: 0.0},
        ),
    )
    assert verdicts.verdict.decision == FAIL
    assert verdicts.errors is not None
    assert verdicts.errors.decision == FAIL
    assert verdicts.latency is not None
    assert verdicts.latency.decision == NO_DATA
    assert judge.decide(state) == FAIL
    restored = JudgeState.from_json(json.loads(json.dumps(state.to_json())))
    assert restored == state
    assert judge.verdict(restored) == verdicts
