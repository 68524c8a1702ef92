"""The latency test: the baseline's tail bucket, calibration, then slow-request shares."""

from __future__ import annotations

import json
import math

import pytest

from rollwise.core.judge import FAIL, NO_DATA, PASS, LatencyState, LatencyTest
from rollwise.core.judge.latency import at_or_below, tail_bound, total_requests

from .streams import Streams, tolerance

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.5)
INF = math.inf


def test_the_tail_bound_is_the_first_bucket_holding_the_quantile() -> None:
    buckets = {0.1: 900.0, 0.25: 990.0, 0.5: 999.0, INF: 1000.0}
    assert tail_bound(buckets, 0.9) == 0.1
    assert tail_bound(buckets, 0.95) == 0.25
    assert tail_bound(buckets, 0.99) == 0.25
    assert tail_bound(buckets, 0.995) == 0.5
    assert tail_bound(buckets, 0.9999) == 0.5  # in +Inf: the highest finite bound
    assert tail_bound({INF: 10.0}, 0.99) is None
    assert tail_bound({0.1: 0.0, INF: 0.0}, 0.99) is None


def test_counts_are_read_from_cumulative_buckets() -> None:
    buckets = {0.1: 8.0, 0.3: 9.0, INF: 10.0}
    assert total_requests(buckets) == 10
    assert at_or_below(buckets, 0.3) == 9
    assert at_or_below(buckets, 0.2) == 8  # between bounds: the largest bound below
    assert total_requests({0.1: 3.0, 0.3: 4.0}) == 4


def test_calibration_says_no_data_until_the_baseline_has_shown_its_tail() -> None:
    test = LatencyTest(quantile=0.99)  # calibrates on 1,000 baseline requests
    streams = Streams.seeded(2)
    state: LatencyState | None = None
    state, verdict = test.update(
        state,
        canary_buckets=streams.buckets(100, median_s=0.05, sigma=0.5, bounds=BOUNDS),
        baseline_buckets=streams.buckets(400, median_s=0.05, sigma=0.5, bounds=BOUNDS),
    )
    assert verdict.decision == NO_DATA
    assert state.bound is None
    assert (
        verdict.reason
        == "calibrating: baseline 400 of 1,000 requests needed to find its p99 bucket"
    )
    for _ in range(2):
        state, verdict = test.update(
            state,
            canary_buckets=streams.buckets(100, median_s=0.05, sigma=0.5, bounds=BOUNDS),
            baseline_buckets=streams.buckets(400, median_s=0.05, sigma=0.5, bounds=BOUNDS),
        )
    # p99 of a log-normal with median 50 ms and sigma 0.5 is 160 ms: the 200 ms bucket.
    assert state.bound == 0.2
    assert verdict.decision == NO_DATA
    assert verdict.reason.startswith("baseline p99 ≤ 200ms (from 1,200 requests)")
    assert state.rates.looks == 0  # the calibrating looks are not judged


def judge_stream(
    test: LatencyTest, streams: Streams, *, slowdown: float, looks: int, weight: float = 0.2
) -> tuple[str, int]:
    state: LatencyState | None = None
    decision = NO_DATA
    for look in range(1, looks + 1):
        state = test.advance(
            state,
            canary_buckets=streams.buckets(
                round(1000 * weight), median_s=0.05 * slowdown, sigma=0.5, bounds=BOUNDS
            ),
            baseline_buckets=streams.buckets(
                round(1000 * (1 - weight)), median_s=0.05, sigma=0.5, bounds=BOUNDS
            ),
        )
        decision = test.decide(state)
        if decision in (PASS, FAIL):
            return decision, look
    return decision, looks


def test_a_p99_thirty_percent_slower_fails_and_an_unchanged_one_passes() -> None:
    test = LatencyTest()
    streams = Streams.seeded(4)
    slower = [judge_stream(test, streams, slowdown=1.3, looks=120) for _ in range(20)]
    same = [judge_stream(test, streams, slowdown=1.0, looks=120) for _ in range(20)]
    assert all(decision == FAIL for decision, _ in slower)
    assert sum(decision == PASS for decision, _ in same) >= 18
    assert FAIL not in [decision for decision, _ in same]


def test_an_unchanged_latency_is_ever_failed_in_at_most_alpha_of_the_runs() -> None:
    alpha, runs = 0.05, 300
    test = LatencyTest(alpha=alpha)
    streams = Streams.seeded(8)
    failures = 0
    for _ in range(runs):
        state: LatencyState | None = None
        for _ in range(30):
            state = test.advance(
                state,
                canary_buckets=streams.buckets(200, median_s=0.05, sigma=0.5, bounds=BOUNDS),
                baseline_buckets=streams.buckets(800, median_s=0.05, sigma=0.5, bounds=BOUNDS),
            )
            if test.decide(state) == FAIL:
                failures += 1
                break
    assert failures / runs <= alpha + tolerance(alpha, runs)


def test_the_state_survives_json() -> None:
    test = LatencyTest(calibration_requests=100)
    streams = Streams.seeded(6)
    state: LatencyState | None = None
    for _ in range(3):
        state, verdict = test.update(
            state,
            canary_buckets=streams.buckets(100, median_s=0.05, sigma=0.5, bounds=BOUNDS),
            baseline_buckets=streams.buckets(400, median_s=0.05, sigma=0.5, bounds=BOUNDS),
        )
        assert state is not None
        restored = LatencyState.from_json(json.loads(json.dumps(state.to_json())))
        assert restored == state
        assert test.verdict(restored) == verdict


@pytest.mark.parametrize("quantile", [0, 1, 1.5])
def test_a_quantile_outside_zero_and_one_is_refused(quantile: float) -> None:
    with pytest.raises(ValueError, match="quantile must be between 0 and 1"):
        LatencyTest(quantile=quantile)
