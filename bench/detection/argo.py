"""Argo Rollouts judging a canary with the seed's `success-rate` AnalysisTemplate.

Who uses it: `run`, as the "Argo, seed template", "Argo defaults" and "Argo, seed template
on the canary only" policies.

What is reproduced (reference/argo-rollouts.md §2.3–2.7, seed Part 4):
- the seed's Rollout step `setWeight` → `pause: {duration: 1m}` → `analysis`, so the run
  starts 60 s after the canary gets traffic and measures at once (no `initialDelay`), then
  every `interval: 1m` (measured from the previous measurement's end; queries are instant);
- both metrics of the template: `success-rate` (`result[0] >= 0.95`, the ratio of non-5xx
  to all requests over `[5m]`) and `latency` (`result[0] <= 500`, histogram_quantile(0.95)
  over `[5m]`, in ms). A NaN result makes the condition false: a Failed measurement;
- a metric fails when `failed > failureLimit` (3 in the seed, 0 by default), and the run
  fails (the rollout aborts) as soon as one metric fails;
- `count` is unset while `interval` is set: the metric is unbounded (§2.3, "Effective
  count"), so the step's run never succeeds on its own and the rollout never leaves the
  step: no promotion, however healthy the canary.

The seed's queries select `service="..."`, the whole service: stable and canary together,
including the stable-only traffic before the canary started when the 5-minute window reaches
back that far. `scope="canary"` is a variant (not the seed) that reads the canary's requests
only, to show what the thresholds do when they see the canary alone.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from bench.detection.outcomes import Outcomes
from bench.detection.scenarios import BLOCK_S, BUCKETS, HISTORY_S, MAX_ANALYSIS_S
from bench.detection.streams import Streams, histogram_quantile, window_sums

PAUSE_S = 60
INTERVAL_S = 60
WINDOW_S = 300
MIN_SUCCESS_RATE = 0.95
MAX_P95_MS = 500.0


def decide(
    streams: Streams, *, failure_limit: int, scope: Literal["service", "canary"] = "service"
) -> Outcomes:
    times = np.arange(PAUSE_S, MAX_ANALYSIS_S + 1, INTERVAL_S)
    if scope == "service":
        offset = HISTORY_S // BLOCK_S
        latency = np.concatenate(
            [streams.history.latency, streams.canary.latency + streams.baseline.latency], axis=1
        )
        errors = np.concatenate(
            [streams.history.errors, streams.canary.errors + streams.baseline.errors], axis=1
        )
    else:
        offset = 0
        latency, errors = streams.canary.latency, streams.canary.errors
    ends = offset + times // BLOCK_S
    buckets = window_sums(latency, ends=ends, length=WINDOW_S // BLOCK_S)
    failed_errors = window_sums(errors, ends=ends, length=WINDOW_S // BLOCK_S)
    requests = buckets.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        success_rate = (requests - failed_errors) / requests
    p95_ms = histogram_quantile(0.95, buckets, BUCKETS) * 1000
    # `not (x >= 0.95)` rather than `x < 0.95`: NaN fails the condition, as in Argo.
    failed_rate = ~(success_rate >= MIN_SUCCESS_RATE)
    failed_latency = ~(p95_ms <= MAX_P95_MS)
    rollback_at = np.minimum(
        _limit_tripped(failed_rate, times, failure_limit),
        _limit_tripped(failed_latency, times, failure_limit),
    )
    never = np.full(streams.runs, np.nan)
    return Outcomes.first_of(rollback_at=rollback_at, promote_at=never)


def _limit_tripped(failed: np.ndarray, times: np.ndarray, failure_limit: int) -> np.ndarray:
    """When the metric's failed count first exceeds the limit (inf: never)."""
    over = np.cumsum(failed, axis=1) > failure_limit
    return np.where(over.any(axis=1), times[over.argmax(axis=1)], np.inf).astype(np.float64)
