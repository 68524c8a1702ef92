"""What a policy decided in each run, and the numbers the report shows for a cell.

Who uses it: every policy returns an `Outcomes` (one verdict and time per run); `run` turns
outcomes plus the cell's streams into a `CellResult` with `summarise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from bench.detection.scenarios import BLOCK_S, MAX_ANALYSIS_S, Cell
from bench.detection.streams import Streams

UNDECIDED, ROLLBACK, PROMOTE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Per run: `verdict` (UNDECIDED, ROLLBACK or PROMOTE) and `seconds` after the canary
    started when the policy decided (NaN when undecided within `MAX_ANALYSIS_S`)."""

    verdict: NDArray[np.int8]
    seconds: NDArray[np.float64]

    @classmethod
    def first_of(
        cls, *, rollback_at: NDArray[np.float64], promote_at: NDArray[np.float64]
    ) -> Outcomes:
        """Whichever comes first (NaN: never; a tie goes to the rollback)."""
        rollback = np.nan_to_num(rollback_at, nan=np.inf)
        promote = np.nan_to_num(promote_at, nan=np.inf)
        first = np.minimum(rollback, promote)
        decided = first <= MAX_ANALYSIS_S
        verdict = np.where(
            decided, np.where(rollback <= promote, ROLLBACK, PROMOTE), UNDECIDED
        ).astype(np.int8)
        return cls(verdict, np.where(decided, first, np.nan))


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    p90: float

    @classmethod
    def of(cls, values: NDArray[np.float64]) -> Spread | None:
        if values.size == 0:
            return None
        return cls(float(np.median(values)), float(np.percentile(values, 90)))


@dataclass(frozen=True, slots=True)
class CellResult:
    runs: int
    rolled_back: float
    rolled_back_ci: tuple[float, float]
    """95% Wilson interval of the rollback share."""
    promoted: float
    rollback_seconds: Spread | None
    promote_seconds: Spread | None
    exposure: Spread
    """Bad requests the canary served before the decision (or in 30 min if none): its
    errors, or every request it served when the regression is latency."""


def wilson(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials**2)) / (1 + z * z / trials)
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(cell: Cell, streams: Streams, outcomes: Outcomes) -> CellResult:
    runs = streams.runs
    rollback = outcomes.verdict == ROLLBACK
    promote = outcomes.verdict == PROMOTE
    bad = streams.canary.errors if cell.release.p99_increase == 0 else streams.canary.requests
    served = np.concatenate([np.zeros((runs, 1), dtype=np.int64), np.cumsum(bad, axis=1)], axis=1)
    # A decision at t stops traffic from then on: the blocks that ended by t were served.
    until = np.where(np.isnan(outcomes.seconds), MAX_ANALYSIS_S, outcomes.seconds)
    blocks = np.minimum(np.floor(until / BLOCK_S).astype(np.int64), streams.blocks)
    exposure = served[np.arange(runs), blocks].astype(np.float64)
    caught = int(rollback.sum())
    summary = Spread.of(exposure)
    assert summary is not None
    return CellResult(
        runs=runs,
        rolled_back=caught / runs,
        rolled_back_ci=wilson(caught, runs),
        promoted=float(promote.mean()),
        rollback_seconds=Spread.of(outcomes.seconds[rollback]),
        promote_seconds=Spread.of(outcomes.seconds[promote]),
        exposure=summary,
    )
