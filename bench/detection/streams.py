"""Simulated request streams: per-block counts of requests, errors and latency buckets.

Who uses it: `run` draws one `Streams` per cell and hands the very same arrays to every
policy, so all policies judge identical traffic (same seed, same counts).

Why counts and not requests: with Poisson arrivals and independent marks (error or not,
which latency bucket), the number of requests that land in each latency bucket during a
block is an independent Poisson variable, and the errors among a block's requests are
binomial. Drawing those counts is exact for this model and lets 1000 req/s × 30 min × 1000
runs fit in seconds. The finest time step is `BLOCK_S`; every policy looks at sums of blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.detection.scenarios import (
    BASELINE_ERROR_RATE,
    BLOCK_S,
    HISTORY_S,
    LATENCY_SIGMA,
    MAX_ANALYSIS_S,
    Cell,
    bucket_probabilities,
)

Counts = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Arm:
    """One version's traffic: `latency[run, block, bucket]` and `errors[run, block]`."""

    latency: Counts
    errors: Counts

    @property
    def requests(self) -> Counts:
        total: Counts = self.latency.sum(axis=-1)
        return total


@dataclass(frozen=True, slots=True)
class Streams:
    """What a cell's runs served. Block b covers seconds [b·BLOCK_S, (b+1)·BLOCK_S) after the
    canary started; `history` is the stable version alone in the `HISTORY_S` before."""

    canary: Arm
    baseline: Arm
    history: Arm

    @property
    def runs(self) -> int:
        return int(self.canary.errors.shape[0])

    @property
    def blocks(self) -> int:
        return int(self.canary.errors.shape[1])


def draw(cell: Cell) -> Streams:
    rng = np.random.default_rng(list(cell.seed))
    runs, blocks = cell.runs, MAX_ANALYSIS_S // BLOCK_S
    rate, weight = cell.traffic.rate, cell.traffic.weight
    healthy = np.array(bucket_probabilities(LATENCY_SIGMA))
    canary_shape = np.array(bucket_probabilities(cell.release.sigma))

    def arm(per_second: float, shape: NDArray[np.float64], error_rate: float, n: int) -> Arm:
        latency = rng.poisson(per_second * BLOCK_S * shape, size=(runs, n, len(shape)))
        errors = rng.binomial(latency.sum(axis=-1), error_rate)
        return Arm(latency.astype(np.int64), errors.astype(np.int64))

    return Streams(
        canary=arm(rate * weight, canary_shape, cell.release.error_rate, blocks),
        baseline=arm(rate * (1 - weight), healthy, BASELINE_ERROR_RATE, blocks),
        history=arm(rate, healthy, BASELINE_ERROR_RATE, HISTORY_S // BLOCK_S),
    )


def window_sums(values: NDArray[np.int64], *, ends: NDArray[np.int64], length: int) -> Counts:
    """Sums over `length` blocks ending (exclusive) at each of `ends`, along axis 1.

    `values[run, block, ...]`; the result is `[run, len(ends), ...]`. A window that would
    start before block 0 starts at block 0.
    """
    cumulative = np.concatenate([np.zeros_like(values[:, :1]), np.cumsum(values, axis=1)], axis=1)
    starts = np.maximum(ends - length, 0)
    sums: Counts = cumulative[:, ends] - cumulative[:, starts]
    return sums


def histogram_quantile(
    q: float, buckets: NDArray[np.int64], bounds: tuple[float, ...]
) -> NDArray[np.float64]:
    """Prometheus' `histogram_quantile(q, ...)` over per-bucket (not cumulative) counts whose
    last column is the +Inf bucket: linear interpolation inside the bucket holding the rank,
    the highest finite bound when the rank falls in +Inf, NaN with no observations."""
    cumulative = np.cumsum(buckets, axis=-1).astype(np.float64)
    total = cumulative[..., -1]
    rank = q * total
    finite = cumulative[..., :-1]
    reached = finite >= rank[..., None]
    index = np.where(reached.any(axis=-1), reached.argmax(axis=-1), len(bounds))
    upper_bounds = np.array((*bounds, bounds[-1]))
    lower_bounds = np.array((0.0, *bounds))
    below = np.take_along_axis(
        np.concatenate([np.zeros_like(total)[..., None], cumulative], axis=-1),
        index[..., None],
        axis=-1,
    )[..., 0]
    inside = np.take_along_axis(buckets, index[..., None], axis=-1)[..., 0].astype(np.float64)
    start, end = lower_bounds[index], upper_bounds[index]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = start + (end - start) * (rank - below) / inside
    value = np.where(index == len(bounds), bounds[-1], value)
    return np.where(total > 0, value, np.nan)
