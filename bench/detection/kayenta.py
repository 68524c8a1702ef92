"""Kayenta's NetflixACAJudge over 60-second buckets (reference/flagger-kayenta.md §2.2–2.5).

Who uses it: `run`, as the "Kayenta" policy.

The configuration modelled follows Spinnaker's advice scaled to this benchmark's 30-minute
ceiling (its own starting point is a 3 h lifetime judged every hour):
- two metrics, each in its own group of equal weight, direction `increase`, effect size
  `meanRatio` with `allowedIncrease` 1.0, outliers kept, NaNs removed: the canary's and the
  baseline's **error percentage** per bucket (100 × errors / requests) and their **p99
  latency** per bucket in ms (histogram_quantile(0.99) over that bucket's histogram), the
  units of the error data in Kayenta's own tests;
- `step` 60 s, lifetime 30 min, `analysisIntervalMins` 10 with no lookback: judgements at
  10, 20 and 30 min over the buckets since the start (10, 20 and 30 points per metric);
- thresholds `marginal` 75 and `pass` 95: an interim judgement below marginal fails the
  analysis at once; the last must reach pass, or the canary fails. Only then it promotes.

Scoring: a group's score is 100 × Pass / (Pass + High + Low + NodataFailMetric) (100 when
nothing in it counts); the summary is the weighted sum; 0 when half the metrics or more have
no data. With one metric per group a single High metric brings the score to 50: a failure.
The baseline is the stable version with the rest of the traffic (not a fresh equal-size
baseline), as it would be when Argo's Kayenta provider compares canary and stable.
"""

from __future__ import annotations

import numpy as np

from bench.detection import mannwhitney
from bench.detection.outcomes import Outcomes
from bench.detection.scenarios import BLOCK_S, BUCKETS, MAX_ANALYSIS_S
from bench.detection.streams import Arm, Streams, histogram_quantile

STEP_S = 60
JUDGEMENT_INTERVAL_S = 600
PASS_SCORE = 95.0
MARGINAL_SCORE = 75.0


def _per_bucket(arm: Arm) -> tuple[np.ndarray, np.ndarray]:
    """Error percentage and p99 (ms) per 60-s bucket: `[run, bucket]`, NaN where no
    requests. The units matter a little: the solver's tolerance is absolute (1e-4)."""
    per = STEP_S // BLOCK_S
    runs, blocks, width = arm.latency.shape
    latency = arm.latency.reshape(runs, blocks // per, per, width).sum(axis=2)
    errors = arm.errors.reshape(runs, blocks // per, per).sum(axis=2)
    requests = latency.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(requests > 0, 100 * errors / requests, np.nan)
    return percent, 1000 * histogram_quantile(0.99, latency, BUCKETS)


def score(labels: list[str]) -> float:
    """WeightedSumScorer with one metric per group of equal weight: a group scores 0 when its
    metric is High, 100 otherwise (Nodata and Error are left out of its denominator, so an
    empty group scores 100); 0 overall when half the metrics or more have no data."""
    if sum(label == mannwhitney.NODATA for label in labels) * 2 >= len(labels):
        return 0.0
    groups = [0.0 if label == mannwhitney.HIGH else 100.0 for label in labels]
    return round(sum(groups) / len(groups), 2)


def decide(streams: Streams) -> Outcomes:
    canary_ratio, canary_p99 = _per_bucket(streams.canary)
    baseline_ratio, baseline_p99 = _per_bucket(streams.baseline)
    judgements = range(JUDGEMENT_INTERVAL_S, MAX_ANALYSIS_S + 1, JUDGEMENT_INTERVAL_S)
    rollback_at = np.full(streams.runs, np.nan)
    promote_at = np.full(streams.runs, np.nan)
    rng = np.random.default_rng(0)
    for run in range(streams.runs):
        for at in judgements:
            points = at // STEP_S
            labels = [
                mannwhitney.classify(
                    _present(canary[run, :points]), _present(baseline[run, :points]), rng=rng
                )
                for canary, baseline in (
                    (canary_ratio, baseline_ratio),
                    (canary_p99, baseline_p99),
                )
            ]
            summary = score(labels)
            last = at + JUDGEMENT_INTERVAL_S > MAX_ANALYSIS_S
            if summary < MARGINAL_SCORE or (last and summary < PASS_SCORE):
                rollback_at[run] = at
                break
            if last:
                promote_at[run] = at
    return Outcomes.first_of(rollback_at=rollback_at, promote_at=promote_at)


def _present(values: np.ndarray) -> np.ndarray:
    kept: np.ndarray = values[~np.isnan(values)]
    return kept
