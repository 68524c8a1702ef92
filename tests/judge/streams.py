"""Simulated request streams for the judge's statistical tests: seeded, exact and cheap.

Each look brings a batch: Poisson-like request counts per version (the exposure; its exact law
does not matter, the tests condition on it) and Binomial errors (exact, by inversion, since the
means stay small). Latency batches are multinomial bucket counts of a log-normal distribution,
drawn as successive binomials.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Streams:
    rng: random.Random

    @classmethod
    def seeded(cls, seed: int) -> Streams:
        return cls(random.Random(seed))

    def requests(self, mean: float) -> int:
        """A request count near `mean` (Poisson-like spread)."""
        return max(0, round(self.rng.gauss(mean, math.sqrt(mean))))

    def binomial(self, n: int, p: float) -> int:
        """Binomial(n, p) by inversion: exact, fast while n * p stays small."""
        if n <= 0 or p <= 0:
            return 0
        if p >= 1:
            return n
        u = self.rng.random()
        k, pk = 0, (1 - p) ** n
        cumulative = pk
        odds = p / (1 - p)
        while u > cumulative and k < n:
            pk *= (n - k) / (k + 1) * odds
            k += 1
            cumulative += pk
        return k

    def buckets(
        self, n: int, *, median_s: float, sigma: float, bounds: Sequence[float]
    ) -> dict[float, float]:
        """Cumulative bucket counts of `n` log-normal latencies (Prometheus' layout, +Inf last)."""
        counts: dict[float, float] = {}
        below, left, previous_cdf = 0, n, 0.0
        for bound in bounds:
            cdf = lognormal_cdf(bound, median_s=median_s, sigma=sigma)
            share = 0.0 if previous_cdf >= 1 else (cdf - previous_cdf) / (1 - previous_cdf)
            drawn = self.binomial(left, min(max(share, 0.0), 1.0))
            below += drawn
            left -= drawn
            counts[bound] = float(below)
            previous_cdf = cdf
        counts[math.inf] = float(n)
        return counts


def lognormal_cdf(x: float, *, median_s: float, sigma: float) -> float:
    return 0.5 * (1 + math.erf(math.log(x / median_s) / (sigma * math.sqrt(2))))


def tolerance(alpha: float, runs: int, *, sigmas: float = 3.0) -> float:
    """How far above alpha an observed false-alarm share may land by chance alone: `sigmas`
    binomial standard deviations of a share of `runs` runs (3: exceeded with probability
    about 0.1% if the true rate were exactly alpha)."""
    return sigmas * math.sqrt(alpha * (1 - alpha) / runs)
