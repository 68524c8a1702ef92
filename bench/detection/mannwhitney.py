"""Kayenta's Mann-Whitney classification of one metric (reference/flagger-kayenta.md §2.3).

Who uses it: `kayenta`, once per metric per judgement.

Ported from Kayenta's `MannWhitney.scala` (R's asymptotic `wilcox.test` confidence
interval) and `MannWhitneyClassifier`:
- the 98% interval for the location shift (canary − baseline) comes from the roots of
  `(dz(μ) − correction) / σ(μ) ∓ z`, where `dz` is the canary's rank sum of `x − μ` against
  the baseline minus its null mean, with tie and continuity corrections; an end is the
  bracket's end when the function does not change sign there; the estimate is the root at 0;
- roots come from Kayenta's `BrentSolver.solve`, a port of R's `zeroin` with an absolute
  tolerance of 1e-4 in the metric's own unit (R's `uniroot(tol = 1e-4)`). Earlier Kayenta
  releases used commons-math's `new BrentSolver(1000, 1e-4)`, whose first argument is a
  *relative* accuracy of 1000: it stopped at the first bracket point it tried. The current
  solver is the one ported here;
- High when the interval's lower end exceeds 0.25·|estimate| and the mean ratio is at least
  `allowedIncrease` (1.0; a NaN ratio does not block). Direction `increase`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

Values = NDArray[np.float64]

CONFIDENCE = 0.98
FRACTION = 0.25
ALLOWED_INCREASE = 1.0
TOLERANCE = 1e-4
EPSILON = 2.220446049250313e-16
MAX_ITERATIONS = 1000

PASS, HIGH, NODATA, ERROR = "Pass", "High", "Nodata", "Error"


class SolverError(Exception):
    """Kayenta's "cannot compute confidence interval when all observations are tied": the
    metric is classified Error."""


def classify(canary: Values, baseline: Values, *, rng: np.random.Generator) -> str:
    """One metric's label for a judgement; NaNs already removed (nanStrategy `remove`)."""
    if canary.size == 0 or baseline.size == 0:
        return NODATA
    if np.array_equal(np.sort(canary), np.sort(baseline)):
        return PASS
    if np.unique(np.concatenate([canary, baseline])).size == 1:
        return PASS
    if np.ptp(canary) == 0 and np.ptp(baseline) == 0:
        canary = canary + rng.normal(0, 1, canary.size) * 1e-5 * np.abs(canary)
        baseline = baseline + rng.normal(0, 1, baseline.size) * 1e-5 * np.abs(baseline)
    try:
        lower, _, estimate = shift_interval(canary, baseline, with_upper=False)
    except SolverError:
        return ERROR
    control_mean = float(baseline.mean())
    ratio = float(canary.mean()) / control_mean if control_mean and canary.mean() else math.nan
    effect_ok = math.isnan(ratio) or ratio >= ALLOWED_INCREASE
    if lower > FRACTION * abs(estimate) and effect_ok:
        return HIGH
    return PASS


def shift_interval(
    x: Values, y: Values, *, confidence: float = CONFIDENCE, with_upper: bool = True
) -> tuple[float, float, float]:
    """(lower, upper, estimate) of the shift x − y; x = experiment (canary), y = control, as
    in `calculateConfidenceInterval`. `with_upper=False` skips the upper end (NaN): the
    direction `increase` never reads it."""
    z = -NormalDist().inv_cdf((1 - confidence) / 2)
    nx, ny = x.size, y.size
    y_sorted = np.sort(y)

    def wdiff(mu: float, quantile: float) -> float:
        shifted = x - mu
        left = np.searchsorted(y_sorted, shifted, side="left")
        right = np.searchsorted(y_sorted, shifted, side="right")
        dz = float(left.sum() + 0.5 * (right - left).sum()) - nx * ny / 2
        _, ties = np.unique(np.concatenate([shifted, y]), return_counts=True)
        tie_term = float((ties.astype(np.float64) ** 3 - ties).sum())
        sigma = math.sqrt((nx * ny / 12) * ((nx + ny + 1) - tie_term / ((nx + ny) * (nx + ny - 1))))
        if sigma == 0:
            raise SolverError("cannot compute confidence interval when all observations are tied")
        correction = math.copysign(0.5, dz) if dz != 0 else 0.0
        return (dz - correction) / sigma - quantile

    mu_min = float(x.min() - y.max())
    mu_max = float(x.max() - y.min())

    def root(quantile: float) -> float:
        f_lower = wdiff(mu_min, quantile)
        if f_lower <= 0:
            return mu_min
        f_upper = wdiff(mu_max, quantile)
        if f_upper >= 0:
            return mu_max
        return zeroin(lambda mu: wdiff(mu, quantile), mu_min, mu_max, f_lower, f_upper)

    lower = root(z)
    upper = root(-z) if with_upper else math.nan
    estimate = zeroin(
        lambda mu: wdiff(mu, 0.0), mu_min, mu_max, wdiff(mu_min, 0.0), wdiff(mu_max, 0.0)
    )
    return lower, upper, estimate


def zeroin(f: Callable[[float], float], a: float, b: float, fa: float, fb: float) -> float:
    """Kayenta's `BrentSolver.solve(ax, bx, fa, fb, func)`: R's zeroin, tolerance 1e-4.
    Returns the last iterate after 1000 iterations instead of failing, as Kayenta does."""
    c, fc = a, fa
    if fa == 0:
        return a
    if fb == 0:
        return b
    for _ in range(MAX_ITERATIONS + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * EPSILON * abs(b) + TOLERANCE / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b
