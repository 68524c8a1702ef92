"""The detection benchmark's simulator and policy models (bench/detection), on small runs:
the streams have the rates they claim, Prometheus' histogram_quantile is reproduced, each
policy decides when its reference says it does, Kayenta's interval matches Kayenta's own test,
the rollwise adapter decides as `CanaryJudge.update` does, and a focused run's section replaces
only its own part of docs/benchmarks.md."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from statistics import NormalDist

import numpy as np
import pytest
from bench.detection import (
    argo,
    flagger,
    kayenta,
    live,
    mannwhitney,
    rollwise_judge,
    scenarios,
)
from bench.detection.outcomes import PROMOTE, ROLLBACK, UNDECIDED, Outcomes, summarise
from bench.detection.scenarios import BLOCK_S, MAX_ANALYSIS_S, Cell, Release, Traffic
from bench.detection.streams import Streams, draw, histogram_quantile
from bench.detection.tables import DetectionSection
from bench.report import Section, render, splice

from rollwise.core.judge import FAIL, PASS
from rollwise.core.judge import Traffic as JudgeTraffic

BLOCKS = MAX_ANALYSIS_S // BLOCK_S


def cell(
    rate: float, weight: float, error_rate: float, *, runs: int = 3, tail: float = 0.0
) -> Cell:
    return Cell(Traffic(rate, weight), Release("test", error_rate, tail), runs, (7, runs))


def streams_of(rate: float, weight: float, error_rate: float, **kwargs: float) -> Streams:
    return draw(cell(rate, weight, error_rate, **kwargs))  # type: ignore[arg-type]


def test_streams_carry_the_configured_rates() -> None:
    streams = streams_of(1000, 0.2, 0.01, runs=4)
    seconds = 4 * MAX_ANALYSIS_S
    canary = streams.canary.requests.sum()
    baseline = streams.baseline.requests.sum()
    assert canary / seconds == pytest.approx(200, rel=0.01)
    assert baseline / seconds == pytest.approx(800, rel=0.01)
    assert streams.canary.errors.sum() / canary == pytest.approx(0.01, rel=0.05)
    assert streams.baseline.errors.sum() / baseline == pytest.approx(0.001, rel=0.1)
    assert streams.history.requests.shape == (4, scenarios.HISTORY_S // BLOCK_S)


def test_the_same_cell_draws_the_same_streams() -> None:
    first, second = draw(cell(100, 0.05, 0.01)), draw(cell(100, 0.05, 0.01))
    assert np.array_equal(first.canary.latency, second.canary.latency)
    assert np.array_equal(first.baseline.errors, second.baseline.errors)


def test_the_tail_regression_raises_p99_by_thirty_percent_at_the_same_median() -> None:
    regressed = Release("p99", 0.001, 0.3)
    law = NormalDist(0, 1)
    p99 = math.exp(regressed.sigma * law.inv_cdf(0.99))
    assert p99 / math.exp(scenarios.LATENCY_SIGMA * law.inv_cdf(0.99)) == pytest.approx(1.3)
    for sigma in (scenarios.LATENCY_SIGMA, regressed.sigma):
        assert sum(scenarios.bucket_probabilities(sigma)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ([10, 10, 0, 0], 0.5, 0.1),  # rank 10 ends bucket 1: its upper bound
        ([0, 10, 10, 0], 0.75, 0.35),  # halfway through (0.2, 0.5]
        ([0, 0, 0, 5], 0.99, 0.5),  # in +Inf: the highest finite bound
        ([4, 0, 0, 0], 0.5, 0.05),  # first bucket starts at 0
        ([0, 0, 0, 0], 0.5, math.nan),  # no observations
    ],
)
def test_histogram_quantile_is_prometheus(counts: list[int], q: float, expected: float) -> None:
    value = histogram_quantile(q, np.array(counts), (0.1, 0.2, 0.5))
    assert (math.isnan(expected) and math.isnan(value)) or value == pytest.approx(expected)


def test_the_seed_template_never_sees_a_small_canary_and_never_promotes() -> None:
    outcomes = argo.decide(streams_of(1000, 0.2, 0.05), failure_limit=0)
    assert (outcomes.verdict == UNDECIDED).all()


def test_the_seed_template_aborts_at_the_measurement_that_passes_the_failure_limit() -> None:
    # Every canary answer fails at 50% weight: the service's window holds ≥ 10% errors from the
    # first measurement on (after the 1m pause), so measurement n + 1 passes failureLimit n.
    bad = streams_of(1000, 0.5, 1.0)
    for limit in (0, 3):
        outcomes = argo.decide(bad, failure_limit=limit)
        assert (outcomes.verdict == ROLLBACK).all()
        assert (outcomes.seconds == 60 + 60 * limit).all()


def test_flagger_rolls_back_one_tick_after_the_fifth_failure_and_promotes_at_the_fifth_pass() -> (
    None
):
    bad = flagger.decide(streams_of(100, 0.2, 0.5))
    assert (bad.verdict == ROLLBACK).all()
    assert (bad.seconds == 6 * 60).all()
    good = flagger.decide(streams_of(1000, 0.2, 0.0))
    assert (good.verdict == PROMOTE).all()
    assert (good.seconds == 5 * 60).all()


def test_kayenta_interval_matches_kayentas_own_test() -> None:
    lower, upper, estimate = mannwhitney.shift_interval(
        np.array([10.0, 20, 30, 40]), np.array([1.0, 2, 3, 4]), confidence=0.95
    )
    assert (lower, upper, estimate) == pytest.approx((6.0, 39.0, 22.5))


def test_kayenta_labels() -> None:
    rng = np.random.default_rng(1)
    same = np.array([1.0, 2.0, 3.0])
    assert mannwhitney.classify(same, same[::-1].copy(), rng=rng) == mannwhitney.PASS
    assert mannwhitney.classify(np.array([]), same, rng=rng) == mannwhitney.NODATA
    high = rng.normal(10, 1, 30)
    assert mannwhitney.classify(high, rng.normal(5, 1, 30), rng=rng) == mannwhitney.HIGH
    assert kayenta.score([mannwhitney.PASS, mannwhitney.HIGH]) == 50.0
    assert kayenta.score([mannwhitney.PASS, mannwhitney.ERROR]) == 100.0
    assert kayenta.score([mannwhitney.NODATA, mannwhitney.PASS]) == 0.0


def test_kayenta_fails_a_clear_regression_at_its_first_judgement_and_promotes_at_the_end() -> None:
    bad = kayenta.decide(streams_of(1000, 0.2, 0.05))
    assert (bad.verdict == ROLLBACK).all()
    assert (bad.seconds == 600).all()
    good = kayenta.decide(streams_of(1000, 0.2, 0.001, runs=2))
    assert (good.seconds[good.verdict == PROMOTE] == MAX_ANALYSIS_S).all()


@pytest.mark.parametrize("error_rate", [0.001, 0.05])
def test_the_rollwise_adapter_decides_as_the_judge_does(error_rate: float) -> None:
    streams = streams_of(100, 0.2, error_rate, runs=2)
    outcomes = rollwise_judge.decide(streams)
    judge = rollwise_judge.default_judge()
    counts = rollwise_judge.looks_of(streams)
    for run in range(streams.runs):
        state = None
        expected = Outcomes(np.array([UNDECIDED], dtype=np.int8), np.array([np.nan]))
        for look in range(counts["canary_requests"].shape[1]):
            state, verdict = judge.update(
                state,
                JudgeTraffic(
                    canary_requests=float(counts["canary_requests"][run, look]),
                    canary_errors=float(counts["canary_errors"][run, look]),
                    baseline_requests=float(counts["baseline_requests"][run, look]),
                    baseline_errors=float(counts["baseline_errors"][run, look]),
                    canary_buckets=dict(
                        zip(rollwise_judge.BOUNDS, counts["canary_buckets"][run, look], strict=True)
                    ),
                    baseline_buckets=dict(
                        zip(
                            rollwise_judge.BOUNDS,
                            counts["baseline_buckets"][run, look],
                            strict=True,
                        )
                    ),
                ),
            )
            if verdict.verdict.decision in (FAIL, PASS):
                kind = ROLLBACK if verdict.verdict.decision == FAIL else PROMOTE
                seconds = (look + 1) * rollwise_judge.LOOK_S
                expected = Outcomes(np.array([kind], dtype=np.int8), np.array([float(seconds)]))
                break
        assert outcomes.verdict[run] == expected.verdict[0]
        assert np.array_equal(outcomes.seconds[run : run + 1], expected.seconds, equal_nan=True)
    if error_rate == 0.05:
        assert (outcomes.verdict == ROLLBACK).all()


def test_exposure_counts_what_the_canary_served_until_the_decision() -> None:
    the_cell = cell(100, 0.2, 0.05)
    streams = draw(the_cell)
    outcomes = Outcomes(
        np.array([ROLLBACK, PROMOTE, UNDECIDED], dtype=np.int8), np.array([60.0, 120.0, np.nan])
    )
    result = summarise(the_cell, streams, outcomes)
    served = streams.canary.errors
    expected = [served[0, :6].sum(), served[1, :12].sum(), served[2].sum()]
    assert result.exposure.median == float(np.median(expected))
    assert result.rolled_back == pytest.approx(1 / 3)
    assert result.promoted == pytest.approx(1 / 3)


def test_a_focused_run_replaces_only_its_own_section() -> None:
    def section(name: str, text: str) -> Section:
        return DetectionSection(name=name, title=f"Title {name}", what=text)

    report = render([section("a", "old a"), section("b", "old b")], started=_now(), host=[])
    updated = splice(report, [section("a", "new a")])
    assert "new a" in updated
    assert "old a" not in updated
    assert "old b" in updated
    added = splice(updated, [section("c", "new c")])
    assert added.index("old b") < added.index("new c")
    assert "| [Title c](#title-c) | no budget |" in added
    assert splice(report, [section("b", "new b")]).endswith(section("b", "new b").markdown())


def _now() -> datetime:
    return datetime(2026, 11, 26, tzinfo=UTC)


def _event(reason: str, message: str, first: str, last: str | None = None) -> dict[str, str]:
    return {
        "reason": reason,
        "message": message,
        "firstTimestamp": first,
        "lastTimestamp": last or first,
    }


def test_the_live_check_times_the_decision_from_the_canary_weight() -> None:
    events = [
        _event(
            "RolloutCompleted", "Rollout completed update to revision 1", "2026-11-26T01:00:00Z"
        ),
        _event(
            "TrafficWeightUpdated", "Traffic weight updated from 0 to 20", "2026-11-26T01:01:00Z"
        ),
        _event("RolloutAborted", "Rollout aborted update to revision 2", "2026-11-26T01:01:11Z"),
    ]
    assert live.timed_outcome(events) == (
        "rolled back",
        11.0,
        "Rollout aborted update to revision 2",
    )
    # The first revision's completion comes before the weight: it is not the decision.
    assert live.timed_outcome(events[:2])[0] == "undecided"
    assert live.timed_outcome(events[:1])[0] == "undecided"
