"""The detection benchmark's grid: traffic, releases, the latency model and the time frame.

Who uses it: `streams` draws request counts from a `Cell`; the policies read the time frame
(`BLOCK_S`, `MAX_ANALYSIS_S`, `HISTORY_S`) and the latency buckets; `run` walks `cells()`.

Everything a reader needs to reproduce a number is a constant here. The canary holds one
weight for the whole analysis (the scenario's 5% or 20%): every policy sees the same traffic
at the same weight, so differences come from the policies, not from their ramps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import NormalDist

from rollwise.platforms.local.traefik import LATENCY_BUCKETS

RATES = (10.0, 100.0, 1000.0)
"""Requests per second to the whole service (stable + canary)."""
WEIGHTS = (0.05, 0.20)
"""The canary's share of the service's traffic, held for the whole analysis."""
BASELINE_ERROR_RATE = 0.001

MAX_ANALYSIS_S = 1800
"""30 minutes: a policy that has not decided by then counts as undecided."""
BLOCK_S = 10
"""Counts are drawn per 10-second block: the finest step any policy looks at."""
HISTORY_S = 300
"""Stable-only traffic before the canary starts, for queries whose window reaches back."""

BUCKETS = LATENCY_BUCKETS
"""Upper bounds (s) of the latency histogram: the ones rollwise configures in Traefik."""
LATENCY_MEDIAN_S = 0.050
LATENCY_SIGMA = 0.6
"""Log-normal latency: median 50 ms, p95 ≈ 134 ms, p99 ≈ 202 ms."""
Z99 = NormalDist().inv_cdf(0.99)

HEALTHY_RUNS = 2000
BAD_RUNS = 1000
SEED = 20261126


@dataclass(frozen=True, slots=True)
class Release:
    """What the canary does differently from the baseline."""

    name: str
    error_rate: float
    p99_increase: float = 0.0
    """0.3: the canary's p99 is 30% higher, its median unchanged (a wider log-normal)."""

    @property
    def healthy(self) -> bool:
        return self.error_rate <= BASELINE_ERROR_RATE and self.p99_increase == 0

    @property
    def sigma(self) -> float:
        """The canary's log-normal σ: p99 = median·exp(σ·z99) grows by `p99_increase`."""
        return LATENCY_SIGMA + math.log1p(self.p99_increase) / Z99


RELEASES = (
    Release("healthy", 0.001),
    Release("errors 0.2%", 0.002),
    Release("errors 0.5%", 0.005),
    Release("errors 1%", 0.01),
    Release("errors 5%", 0.05),
    Release("p99 +30%", 0.001, p99_increase=0.30),
)


@dataclass(frozen=True, slots=True)
class Traffic:
    rate: float
    weight: float

    @property
    def label(self) -> str:
        return f"{self.rate:g} rps, {self.weight:.0%}"


@dataclass(frozen=True, slots=True)
class Cell:
    traffic: Traffic
    release: Release
    runs: int
    seed: tuple[int, ...]


def traffics() -> list[Traffic]:
    return [Traffic(rate, weight) for rate in RATES for weight in WEIGHTS]


def cells(*, scale: float = 1.0) -> Iterator[Cell]:
    """Every traffic × release; `scale` shrinks the run counts (tests use it)."""
    for t, traffic in enumerate(traffics()):
        for r, release in enumerate(RELEASES):
            runs = HEALTHY_RUNS if release.healthy else BAD_RUNS
            yield Cell(traffic, release, max(1, round(runs * scale)), (SEED, t, r))


def bucket_probabilities(sigma: float) -> tuple[float, ...]:
    """P(latency in each bucket) for the log-normal, the last entry being (last bound, +Inf)."""
    law = NormalDist(math.log(LATENCY_MEDIAN_S), sigma)
    cumulative = [law.cdf(math.log(bound)) for bound in BUCKETS]
    edges = [0.0, *cumulative, 1.0]
    return tuple(high - low for low, high in itertools.pairwise(edges))
