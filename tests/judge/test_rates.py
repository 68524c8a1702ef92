"""The rate test's decisions, figures and words on known counts; its state through JSON."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwise.core.judge import (
    CONTINUE,
    FAIL,
    NO_DATA,
    PASS,
    ErrorRateTest,
    RateState,
    RateTest,
)

from .streams import Streams


def judge_once(
    test: ErrorRateTest, n_c: float, x_c: float, n_b: float, x_b: float
) -> tuple[RateState, object]:
    return test.update(
        None, canary_requests=n_c, canary_errors=x_c, baseline_requests=n_b, baseline_errors=x_b
    )


def test_a_regression_fails_with_a_reason_that_shows_the_counts_and_the_evidence() -> None:
    test = ErrorRateTest()
    _, verdict = test.update(
        None,
        canary_requests=2340,
        canary_errors=26,
        baseline_requests=9410,
        baseline_errors=11,
    )
    assert verdict.decision == FAIL
    assert verdict.e_value >= verdict.threshold == pytest.approx(100)
    assert verdict.p_value == pytest.approx(1 / verdict.e_value)
    assert verdict.reason.startswith(
        "canary 1.1% errors of 2,340 requests vs baseline 0.12% of 9,410; evidence "
    )
    assert verdict.reason.endswith(" ≥ 100 → regression")
    assert verdict.ratio == pytest.approx((26 / 2340) / (11 / 9410))


def test_the_evidence_of_one_batch_is_the_equal_weight_mixture_of_binomial_ratios() -> None:
    test = ErrorRateTest()
    _, verdict = test.update(
        None, canary_requests=100, canary_errors=3, baseline_requests=400, baseline_errors=1
    )
    null_share = 120 / (120 + 400)  # margin ratio 1.2
    ratios = []
    for m in test.multipliers:
        share = 120 * m / (120 * m + 400)
        ratios.append((share / null_share) ** 3 * ((1 - share) / (1 - null_share)))
    assert verdict.e_value == pytest.approx(sum(ratios) / len(ratios))
    assert verdict.decision == NO_DATA  # too little data to pass, too little evidence to fail


def test_a_clean_canary_with_enough_traffic_passes_under_the_margin() -> None:
    test = ErrorRateTest()  # 1.2 x baseline + 0.1 point
    _, verdict = test.update(
        None, canary_requests=40000, canary_errors=40, baseline_requests=160000, baseline_errors=160
    )
    assert verdict.decision == PASS
    assert verdict.canary_bounds is not None
    assert verdict.baseline_bounds is not None
    assert verdict.margin == pytest.approx(1.2 * verdict.baseline_bounds[0] + 0.001)
    assert verdict.canary_bounds[1] <= verdict.margin
    assert verdict.reason.endswith("→ within margin")
    assert "upper bound" in verdict.reason


def test_without_an_absolute_margin_a_baseline_without_errors_allows_no_pass() -> None:
    test = ErrorRateTest(margin_abs=0)
    _, verdict = test.update(
        None, canary_requests=50000, canary_errors=0, baseline_requests=50000, baseline_errors=0
    )
    assert verdict.margin == 0
    assert verdict.decision == CONTINUE


@pytest.mark.parametrize(
    ("n_c", "n_b"), [(0, 0), (150, 5000), (5000, 150)], ids=["nothing", "canary", "baseline"]
)
def test_too_little_traffic_is_no_data_and_never_a_pass(n_c: float, n_b: float) -> None:
    test = ErrorRateTest(min_requests=200, margin_abs=0.5)  # a margin anything would clear
    _, verdict = test.update(
        None, canary_requests=n_c, canary_errors=0, baseline_requests=n_b, baseline_errors=0
    )
    assert verdict.decision == NO_DATA
    assert verdict.reason.startswith("too little data: canary ")
    assert "(at least 200 each)" in verdict.reason


def test_a_gross_regression_fails_even_before_the_data_floor() -> None:
    test = ErrorRateTest(min_requests=1000)
    _, verdict = test.update(
        None, canary_requests=60, canary_errors=30, baseline_requests=240, baseline_errors=1
    )
    assert verdict.decision == FAIL


def test_undecided_verdicts_estimate_the_requests_to_a_decision() -> None:
    test = ErrorRateTest()
    _, towards_fail = test.update(
        None, canary_requests=400, canary_errors=4, baseline_requests=1600, baseline_errors=2
    )
    assert towards_fail.decision == CONTINUE
    assert towards_fail.expected == FAIL
    assert towards_fail.requests_needed is not None
    _, towards_pass = test.update(
        None, canary_requests=400, canary_errors=0, baseline_requests=1600, baseline_errors=2
    )
    assert towards_pass.expected == PASS
    assert towards_pass.requests_needed is not None


def test_the_estimate_is_roughly_what_the_stream_then_takes() -> None:
    """Feed the rates the estimate assumes; the decision comes within a factor of two."""
    test = ErrorRateTest()
    state, verdict = test.update(
        None, canary_requests=1000, canary_errors=1, baseline_requests=4000, baseline_errors=4
    )
    assert verdict.expected == PASS
    assert verdict.requests_needed is not None
    estimate, taken = verdict.requests_needed, 0
    while not verdict.decided:
        state, verdict = test.update(
            state,
            canary_requests=100,
            canary_errors=0.1,
            baseline_requests=400,
            baseline_errors=0.4,
        )
        taken += 100
    assert verdict.decision == PASS
    print(f"estimated {estimate}, took {taken}")
    assert estimate / 2 <= taken <= estimate * 2


def test_the_state_survives_json_and_a_restart_changes_nothing() -> None:
    test = ErrorRateTest()
    streams = Streams.seeded(1)
    straight: RateState | None = None
    restarted: RateState | None = None
    for _ in range(20):
        batch = {
            "canary_requests": 200,
            "canary_errors": streams.binomial(200, 0.02),
            "baseline_requests": 800,
            "baseline_errors": streams.binomial(800, 0.01),
        }
        straight, expected = test.update(straight, **batch)
        if restarted is not None:
            restarted = RateState.from_json(json.loads(json.dumps(restarted.to_json())))
        restarted, verdict = test.update(restarted, **batch)
        assert verdict == expected


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.tuples(
            st.integers(0, 500), st.integers(0, 30), st.integers(0, 2000), st.integers(0, 30)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_decide_agrees_with_the_full_verdict(batches: list[tuple[int, int, int, int]]) -> None:
    test = ErrorRateTest(min_requests=100)
    state: RateState | None = None
    for n_c, x_c, n_b, x_b in batches:
        state, verdict = test.update(
            state,
            canary_requests=n_c,
            canary_errors=min(x_c, n_c),
            baseline_requests=n_b,
            baseline_errors=min(x_b, n_b),
        )
        assert test.decide(state) == verdict.decision


@pytest.mark.parametrize(
    "settings_",
    [
        {"alpha": 0},
        {"alpha": 1.5},
        {"pass_alpha": 0},
        {"margin_ratio": 0},
        {"margin_ratio": math.inf},
        {"margin_abs": -0.1},
        {"min_requests": -1},
        {"multipliers": (0.5, 2.0)},
    ],
)
def test_parameters_out_of_range_are_refused(settings_: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        ErrorRateTest(**settings_)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "batch",
    [
        {"canary_requests": -1, "canary_events": 0, "baseline_requests": 1, "baseline_events": 0},
        {"canary_requests": 1, "canary_events": 2, "baseline_requests": 1, "baseline_events": 0},
        {
            "canary_requests": math.nan,
            "canary_events": 0,
            "baseline_requests": 1,
            "baseline_events": 0,
        },
    ],
)
def test_impossible_counts_are_refused(batch: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must be a non-negative number|more events"):
        RateTest().update(None, **batch)


def test_reasons_name_the_events_the_test_counts() -> None:
    test = RateTest(label="slower than 250ms", metric="latency")
    _, verdict = test.update(
        None, canary_requests=1000, canary_events=5, baseline_requests=4000, baseline_events=20
    )
    assert verdict.metric == "latency"
    assert verdict.reason.startswith("canary 0.5% slower than 250ms of 1,000 requests vs ")
