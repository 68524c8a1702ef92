"""Flagger's builtin checks on a canary (reference/flagger-kayenta.md §1.3, §1.5).

Who uses it: `run`, as the "Flagger builtin" policy.

The Canary analysis modelled is the one in Flagger's docs and tutorials: `interval: 1m`,
`threshold: 5`, `stepWeight: 10`, `maxWeight: 50`, and the two builtin metrics with their
documented ranges: `request-success-rate` (`min: 99`, percent of non-5xx over `[1m]`) and
`request-duration` (`max: 500`, p99 over `[1m]` in ms). Both are measured on the canary
workload only; an empty window ("no values found") is a failed check.

The scheduler, as `advanceCanary` runs it every `interval`:
- tick 0 runs the pre-rollout hooks and moves the canary to its first weight: traffic
  starts then (t = 0 here);
- at each later tick, *first* `failedChecks >= threshold` rolls back, *then* the metrics
  run: any failure adds one to `failedChecks` (never reset) and holds the weight;
- a tick whose checks pass moves the weight up one step; the tick that passes at
  `maxWeight` promotes (copies the spec; traffic then goes to the primary). With
  10 → 50 that is the fifth passing tick.

So a rollback happens one interval *after* the fifth failed check. The simulation holds the
canary at the scenario's weight instead of ramping 10 → 50 (every policy sees the same
traffic); only the number of passing ticks to promotion comes from the ramp.
"""

from __future__ import annotations

import numpy as np

from bench.detection.outcomes import Outcomes
from bench.detection.scenarios import BLOCK_S, BUCKETS, MAX_ANALYSIS_S
from bench.detection.streams import Streams, histogram_quantile, window_sums

INTERVAL_S = 60
WINDOW_S = 60
THRESHOLD = 5
PASSES_TO_PROMOTE = 5  # stepWeight 10 up to maxWeight 50
MIN_SUCCESS_PERCENT = 99.0
MAX_P99_MS = 500.0


def decide(streams: Streams) -> Outcomes:
    times = np.arange(INTERVAL_S, MAX_ANALYSIS_S + 1, INTERVAL_S)
    ends = times // BLOCK_S
    buckets = window_sums(streams.canary.latency, ends=ends, length=WINDOW_S // BLOCK_S)
    errors = window_sums(streams.canary.errors, ends=ends, length=WINDOW_S // BLOCK_S)
    requests = buckets.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        success = 100 * (requests - errors) / requests
    p99_ms = histogram_quantile(0.99, buckets, BUCKETS) * 1000
    # NaN ("no values found") fails both comparisons.
    failed = ~(success >= MIN_SUCCESS_PERCENT) | ~(p99_ms <= MAX_P99_MS)
    fifth_failure = _nth(failed, THRESHOLD, times)
    fifth_pass = _nth(~failed, PASSES_TO_PROMOTE, times)
    return Outcomes.first_of(rollback_at=fifth_failure + INTERVAL_S, promote_at=fifth_pass)


def _nth(events: np.ndarray, n: int, times: np.ndarray) -> np.ndarray:
    """The time of the n-th event in each run (inf: fewer than n)."""
    reached = np.cumsum(events, axis=1) >= n
    return np.where(reached.any(axis=1), times[reached.argmax(axis=1)], np.inf).astype(np.float64)
