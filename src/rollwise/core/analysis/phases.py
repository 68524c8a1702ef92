"""Analysis phases, their severity, and the rules that turn measurements into phases.

Where this sits: the tables of the analysis engine, read by `rollwise.core.analysis.runs`.
Everything Argo Rollouts decides about a metric or a run after a measurement lives here, as
data where it fits (reference 2.4, 2.6, 2.7):

- `COUNTER_RULES`: what one completed measurement does to a metric's counters;
- `limit_breach`: the three limit checks, in Argo's order, a later one overriding an earlier;
- `assess_metric`: the metric phase rules, first match wins;
- `SEVERITY`: the order used to pick the worst metric phase as the run phase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from rollwise.api.models import Metric, MetricResult
from rollwise.core.analysis.settings import (
    consecutive_error_limit,
    consecutive_success_limit,
    effective_count,
    failure_limit,
    inconclusive_limit,
)

PENDING: Final = "Pending"
RUNNING: Final = "Running"
SUCCESSFUL: Final = "Successful"
FAILED: Final = "Failed"
ERROR: Final = "Error"
INCONCLUSIVE: Final = "Inconclusive"

COMPLETED: Final = frozenset({SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE})
BREACHED: Final = frozenset({FAILED, ERROR, INCONCLUSIVE})
"""A non-dry-run metric ending in one of these makes the whole run terminate (fail-fast)."""

SEVERITY: Final = (SUCCESSFUL, RUNNING, PENDING, INCONCLUSIVE, ERROR, FAILED)
"""Best to worst; the run phase is the worst phase of its completed metrics."""


def completed(phase: str | None) -> bool:
    return phase in COMPLETED


def is_worse(current: str, new: str) -> bool:
    """Argo's `IsWorse`: whether `new` ranks after `current` (unknown phases rank first)."""
    rank = {phase: index for index, phase in enumerate(SEVERITY)}
    return rank.get(new, 0) > rank.get(current, 0)


# --- counters (reference 2.4) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CounterRule:
    counter: Literal["successful", "failed", "inconclusive", "error"]
    counts: bool
    """Whether the measurement counts toward `count` (errors do not)."""
    consecutive_success: Literal["increment", "reset"]
    consecutive_error: Literal["increment", "reset"]


COUNTER_RULES: Final[Mapping[str, CounterRule]] = {
    SUCCESSFUL: CounterRule("successful", True, "increment", "reset"),
    FAILED: CounterRule("failed", True, "reset", "reset"),
    INCONCLUSIVE: CounterRule("inconclusive", True, "reset", "reset"),
    ERROR: CounterRule("error", False, "reset", "increment"),
}


def count_measurement(result: MetricResult, phase: str) -> None:
    """Fold one completed measurement of `phase` into the result's counters (in place)."""
    rule = COUNTER_RULES[phase]
    setattr(result, rule.counter, (getattr(result, rule.counter) or 0) + 1)
    if rule.counts:
        result.count = (result.count or 0) + 1
    success = result.consecutive_success or 0
    errors = result.consecutive_error or 0
    result.consecutive_success = success + 1 if rule.consecutive_success == "increment" else 0
    result.consecutive_error = errors + 1 if rule.consecutive_error == "increment" else 0


# --- metric phase (reference 2.6) -----------------------------------------------------------


def limit_breach(metric: Metric, result: MetricResult) -> tuple[str, str] | None:
    """The limit the metric has broken and Argo's words for it, or None.

    The checks run in Argo's order and a later one overrides an earlier one, so a metric over
    both its failure and its error limit is an Error.
    """
    breach: tuple[str, str] | None = None
    failed, limit = result.failed or 0, failure_limit(metric)
    if limit != -1 and failed > limit:
        breach = (FAILED, f"failed ({failed}) > failureLimit ({limit})")
    inconclusive, limit = result.inconclusive or 0, inconclusive_limit(metric)
    if inconclusive > limit:
        breach = (INCONCLUSIVE, f"inconclusive ({inconclusive}) > inconclusiveLimit ({limit})")
    errors, limit = result.consecutive_error or 0, consecutive_error_limit(metric)
    if errors > limit:
        breach = (ERROR, f"consecutiveErrors ({errors}) > consecutiveErrorLimit ({limit})")
    return breach


def success_shortfall(metric: Metric, result: MetricResult) -> tuple[str, str] | None:
    """Count reached without `consecutiveSuccessLimit` successes in a row: Inconclusive while
    the failure check is on, Failed when it is off (-1). rollwise's words; Argo gives none."""
    needed = consecutive_success_limit(metric)
    count = effective_count(metric)
    if needed <= 0 or count is None or (result.count or 0) < count:
        return None
    streak = result.consecutive_success or 0
    if streak >= needed:
        return None
    phase = FAILED if failure_limit(metric) == -1 else INCONCLUSIVE
    return phase, (
        f"count ({count}) reached with consecutiveSuccess ({streak}) < "
        f"consecutiveSuccessLimit ({needed})"
    )


UNPROVEN_REASON: Final = "terminated before any successful measurement"
"""Why a metric under `rollwise.io/on-terminate: inconclusive` did not end Successful."""


def assess_metric(
    metric: Metric, result: MetricResult, *, terminating: bool, unproven: str = SUCCESSFUL
) -> str:
    """The metric's phase after its latest measurement (reference 2.6, first match wins).

    While the run is terminating `consecutiveSuccessLimit` is ignored (reference 2.8): a metric
    that broke no limit ends Successful, or `unproven` when it has no Successful measurement
    (rollwise's `rollwise.io/on-terminate`, see `onterminate`; Argo's is Successful).
    """
    if completed(result.phase):
        return result.phase  # a metric that ended on its own keeps its phase
    phase = _argo_phase(metric, result, terminating=terminating)
    if terminating and phase == SUCCESSFUL and not (result.successful or 0):
        return unproven
    return phase


def _argo_phase(metric: Metric, result: MetricResult, *, terminating: bool) -> str:
    measurements = result.measurements or []
    if not measurements:
        return SUCCESSFUL if terminating else PENDING
    if not completed(measurements[-1].phase):
        return RUNNING
    breach = limit_breach(metric, result)
    if breach is not None:
        return breach[0]
    needed = consecutive_success_limit(metric)
    if not terminating and needed > 0 and (result.consecutive_success or 0) >= needed:
        return SUCCESSFUL
    count = effective_count(metric)
    if count is not None and (result.count or 0) >= count:
        shortfall = None if terminating else success_shortfall(metric, result)
        return shortfall[0] if shortfall else SUCCESSFUL
    return SUCCESSFUL if terminating else RUNNING


def assessment_reason(
    metric: Metric, result: MetricResult, *, unproven: str = SUCCESSFUL
) -> str | None:
    """Why a completed metric is not Successful, in the words of the run message. `unproven`
    is the metric's on-terminate phase, as given to `assess_metric`."""
    breach = limit_breach(metric, result) or success_shortfall(metric, result)
    if breach is not None:
        return breach[1]
    if unproven != SUCCESSFUL and result.phase == unproven and not (result.successful or 0):
        return UNPROVEN_REASON
    return None
