"""Known cases of the e-values and bounds, each checked against an independent computation
(binomial probabilities from `math.comb`), and the monotonicity the tests rely on."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollwise.core.judge.evidence import (
    ABOVE_MULTIPLES,
    BELOW_FRACTIONS,
    SHARE_MULTIPLIERS,
    above_log_e,
    below_log_e,
    lower_bound,
    share_log_lr,
    upper_bound,
)


def binomial_pmf(k: int, n: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def test_one_batch_share_ratio_is_the_binomial_likelihood_ratio_of_the_canary_share() -> None:
    # 100 canary and 400 baseline requests; 3 of the 4 errors are the canary's.
    # Null ratio 1: the canary's share of errors is 100 / 500 = 0.2.
    logs = share_log_lr(
        canary_requests=100,
        canary_events=3,
        baseline_requests=400,
        baseline_events=1,
        null_ratio=1.0,
    )
    for m, log_lr in zip(SHARE_MULTIPLIERS, logs, strict=True):
        share = 100 * m / (100 * m + 400)
        expected = binomial_pmf(3, 4, share) / binomial_pmf(3, 4, 0.2)
        assert math.exp(log_lr) == pytest.approx(expected, rel=1e-12)


def test_the_share_ratio_uses_the_null_ratio_as_its_baseline() -> None:
    # Null ratio 2: the null share is 200 / 600; the alternative m doubles the ratio again.
    log_lr = share_log_lr(
        canary_requests=100,
        canary_events=5,
        baseline_requests=400,
        baseline_events=5,
        null_ratio=2.0,
        multipliers=(2.0,),
    )[0]
    null, alternative = 200 / 600, 400 / 800
    expected = binomial_pmf(5, 10, alternative) / binomial_pmf(5, 10, null)
    assert math.exp(log_lr) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "batch",
    [
        {"canary_requests": 0, "canary_events": 0, "baseline_requests": 10, "baseline_events": 2},
        {"canary_requests": 10, "canary_events": 0, "baseline_requests": 10, "baseline_events": 0},
        {"canary_requests": 10, "canary_events": 2, "baseline_requests": 0, "baseline_events": 0},
    ],
)
def test_a_batch_without_events_or_without_one_side_is_no_evidence(
    batch: dict[str, float],
) -> None:
    assert share_log_lr(**batch, null_ratio=1.2) == [0.0] * len(SHARE_MULTIPLIERS)


def test_below_evidence_is_the_mean_of_its_alternatives_likelihood_ratios() -> None:
    n, k, p = 500, 2, 0.01
    ratios = [
        (binomial_pmf(k, n, r * p) if r > 0 else float(k == 0)) / binomial_pmf(k, n, p)
        for r in BELOW_FRACTIONS
    ]
    assert math.exp(below_log_e(n, k, p)) == pytest.approx(sum(ratios) / len(ratios))


def test_above_evidence_is_the_mean_of_its_alternatives_likelihood_ratios() -> None:
    n, k, q = 500, 12, 0.01
    ratios = [binomial_pmf(k, n, m * q) / binomial_pmf(k, n, q) for m in ABOVE_MULTIPLES]
    assert math.exp(above_log_e(n, k, q)) == pytest.approx(sum(ratios) / len(ratios))


@pytest.mark.parametrize("n", [300, 3000, 30000])
def test_with_no_error_the_upper_bound_follows_the_rule_of_three_time_uniformly(n: int) -> None:
    """0 errors in n: a one-look 95% bound is about 3/n; a bound valid at every look is wider,
    but not wider than what the "no errors at all" alternative alone gives:
    (1/7)(1 - p)^-n = 20."""
    alpha = 0.05
    bound = upper_bound(n, 0, alpha)
    alone = 1 - (1 / (len(BELOW_FRACTIONS) / alpha)) ** (1 / n)
    assert 3 / n < bound <= alone
    assert below_log_e(n, 0, bound) == pytest.approx(-math.log(alpha), abs=0.01)


@pytest.mark.parametrize(("n", "k"), [(200, 1), (2000, 20), (100000, 37), (50, 50)])
def test_bounds_sit_where_the_evidence_reaches_one_over_alpha(n: int, k: int) -> None:
    alpha = 0.01
    goal = -math.log(alpha)
    low, high = lower_bound(n, k, alpha), upper_bound(n, k, alpha)
    assert low <= k / n <= high
    if high < 1:
        assert below_log_e(n, k, high) >= goal > below_log_e(n, k, high * 0.99)
    if low > 0:
        assert above_log_e(n, k, low) >= goal > above_log_e(n, k, low * 1.01)


def test_no_request_bounds_nothing() -> None:
    assert (lower_bound(0, 0, 0.05), upper_bound(0, 0, 0.05)) == (0.0, 1.0)
    assert lower_bound(1000, 0, 0.05) == 0.0


counts = st.integers(min_value=1, max_value=100_000)


@given(n=counts, share=st.floats(0, 1), p=st.floats(1e-6, 0.5), q=st.floats(1e-6, 0.5))
def test_below_evidence_grows_and_above_evidence_shrinks_with_the_threshold(
    n: int, share: float, p: float, q: float
) -> None:
    k = round(n * share * 0.1)
    low, high = min(p, q), max(p, q)
    assert below_log_e(n, k, low) <= below_log_e(n, k, high) + 1e-9
    assert above_log_e(n, k, low) + 1e-9 >= above_log_e(n, k, high)


@given(
    canary=st.integers(1, 10_000),
    baseline=st.integers(1, 10_000),
    errors=st.integers(0, 50),
    canary_errors=st.integers(0, 50),
    rho=st.floats(0.1, 10),
    factor=st.floats(1, 5),
)
def test_share_evidence_shrinks_as_the_null_ratio_grows(
    canary: int, baseline: int, errors: int, canary_errors: int, rho: float, factor: float
) -> None:
    """What lets a margin move: more lenient null, less evidence against it."""
    batch = {
        "canary_requests": canary,
        "canary_events": min(canary_errors, canary),
        "baseline_requests": baseline,
        "baseline_events": min(errors, baseline),
    }
    strict = share_log_lr(**batch, null_ratio=rho)
    lenient = share_log_lr(**batch, null_ratio=rho * factor)
    for a, b in zip(strict, lenient, strict=True):
        assert b <= a + 1e-9
