"""The judge's promises, measured on simulated streams with fixed seeds.

- A healthy canary (no change, or even exactly at the ratio margin) is *ever* failed in at most
  alpha of the runs, although the test looks after every batch and never stops looking (even
  after it has passed). The runs are many enough that the observed share would exceed
  alpha + `tolerance` with probability about 0.1% if the true rate were exactly alpha.
- The time-uniform bounds contain the true rate at every look at once, in at least 1 - alpha of
  the runs.
- Clear regressions are caught within a few hundred canary requests; healthy canaries pass.

Traffic: 100 requests/s, canary weight 20% (or 5%), one look every 10 s.
"""

from __future__ import annotations

import math

import pytest

from rollwise.core.judge import FAIL, PASS, ErrorRateTest, RateState
from rollwise.core.judge.evidence import above_log_e, below_log_e

from .streams import Streams, tolerance

RUNS = 2000
LOOKS = 30  # five minutes of looks every 10 s
ALPHA = 0.05


def ever_fails(
    test: ErrorRateTest,
    streams: Streams,
    *,
    canary_rate: float,
    baseline_rate: float,
    canary_per_look: float,
    baseline_per_look: float,
    looks: int,
) -> int | None:
    """The look at which the test first fails the canary, None if it never does."""
    state: RateState | None = None
    for look in range(1, looks + 1):
        n_c = streams.requests(canary_per_look)
        n_b = streams.requests(baseline_per_look)
        state = test.advance(
            state,
            canary_requests=n_c,
            canary_errors=streams.binomial(n_c, canary_rate),
            baseline_requests=n_b,
            baseline_errors=streams.binomial(n_b, baseline_rate),
        )
        if test.decide(state) == FAIL:
            return look
    return None


@pytest.mark.parametrize(
    ("name", "canary_rate", "baseline_rate", "weight"),
    [
        ("no change at 20%", 0.01, 0.01, 0.2),
        ("at the margin at 20%", 0.012, 0.01, 0.2),
        ("at the margin at 5%", 0.012, 0.01, 0.05),
    ],
)
def test_a_healthy_canary_is_ever_failed_in_at_most_alpha_of_the_runs(
    name: str, canary_rate: float, baseline_rate: float, weight: float
) -> None:
    test = ErrorRateTest(alpha=ALPHA)  # margin ratio 1.2: "at the margin" is the worst null
    streams = Streams.seeded(7)
    failures = sum(
        ever_fails(
            test,
            streams,
            canary_rate=canary_rate,
            baseline_rate=baseline_rate,
            canary_per_look=1000 * weight,
            baseline_per_look=1000 * (1 - weight),
            looks=LOOKS,
        )
        is not None
        for _ in range(RUNS)
    )
    share = failures / RUNS
    print(f"{name}: {failures} of {RUNS} healthy canaries failed ({share:.2%}, alpha {ALPHA})")
    assert share <= ALPHA + tolerance(ALPHA, RUNS)


def test_the_bounds_hold_at_every_look_at_once() -> None:
    """The true rate leaves the confidence sequence exactly when the e-value of that rate
    reaches 1/alpha (the bounds are its inversion), so the check is on the e-values."""
    alpha, rate, runs, looks = 0.05, 0.01, 500, 40
    goal = -math.log(alpha)
    streams = Streams.seeded(11)
    misses = 0
    for _ in range(runs):
        requests = events = 0
        for _ in range(looks):
            n = streams.requests(200)
            requests, events = requests + n, events + streams.binomial(n, rate)
            # One-sided at alpha each: the two-sided interval misses with at most 2 alpha.
            if (
                below_log_e(requests, events, rate) >= goal
                or above_log_e(requests, events, rate) >= goal
            ):
                misses += 1
                break
    assert misses / runs <= 2 * alpha + tolerance(2 * alpha, runs)


def fixed_sample_size(p0: float, p1: float, *, z_alpha: float, z_beta: float) -> float:
    """Requests per arm of a fixed-sample two-arm test of p0 against p1 (reference 3.3)."""
    mean = (p0 + p1) / 2
    spread = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(
        p0 * (1 - p0) + p1 * (1 - p1)
    )
    return spread**2 / (p1 - p0) ** 2


@pytest.mark.parametrize(("baseline_rate", "weight"), [(0.01, 0.2), (0.002, 0.2), (0.01, 0.05)])
def test_a_five_fold_error_rate_is_caught_sooner_than_a_fixed_sample_test_could_decide(
    baseline_rate: float, weight: float
) -> None:
    """5x the baseline's errors at 100 requests/s: every run is caught, and the median run
    within the requests per arm that a fixed-sample test at the same alpha (0.01) with power
    0.9 must commit to in advance (reference 3.3's formula) - while the judge may look after
    every batch and stops at once."""
    test = ErrorRateTest()  # alpha 0.01
    streams = Streams.seeded(3)
    canary_rate = 5 * baseline_rate
    per_look = 1000 * weight
    looks = [
        ever_fails(
            test,
            streams,
            canary_rate=canary_rate,
            baseline_rate=baseline_rate,
            canary_per_look=per_look,
            baseline_per_look=1000 * (1 - weight),
            looks=200,
        )
        for _ in range(200)
    ]
    caught = sorted(look for look in looks if look is not None)
    assert len(caught) == len(looks)
    median_requests = caught[len(caught) // 2] * per_look
    fixed = fixed_sample_size(baseline_rate, canary_rate, z_alpha=2.326, z_beta=1.282)
    print(f"median {median_requests:.0f} canary requests; a fixed-sample test: {fixed:.0f}")
    assert median_requests <= fixed


def test_a_healthy_canary_passes_and_one_beyond_the_margin_never_does() -> None:
    """Baseline 0.1% errors; margin 1.2 x baseline + 0.1 point. A healthy canary (0.1%) passes
    within the hour at 20 canary requests/s in (nearly) every run; one at 0.5% - beyond the
    margin - passes with probability at most pass_alpha, and here never."""
    test = ErrorRateTest()
    streams = Streams.seeded(5)
    outcomes: dict[str, list[str]] = {"healthy": [], "beyond": []}
    for name, canary_rate in (("healthy", 0.001), ("beyond", 0.005)):
        for _ in range(100):
            state: RateState | None = None
            decision = "continue"
            for _ in range(360):
                n_c, n_b = streams.requests(200), streams.requests(800)
                state = test.advance(
                    state,
                    canary_requests=n_c,
                    canary_errors=streams.binomial(n_c, canary_rate),
                    baseline_requests=n_b,
                    baseline_errors=streams.binomial(n_b, 0.001),
                )
                decision = test.decide(state)
                if decision in (PASS, FAIL):
                    break
            outcomes[name].append(decision)
    assert outcomes["healthy"].count(PASS) >= 95
    assert PASS not in outcomes["beyond"]
