"""What a template can use: the variables of one notification.

Where it sits: `rollwise.notify`; the notifier builds them for each event and destination, from
objects it read from the store. Argo's variables keep Argo's names:

    rollout        the Rollout (a mapping as stored: metadata, spec, status)
    analysisRuns   the AnalysisRuns of the Rollout's current revision, newest first
    recipient      the destination's recipient (a channel, an address...)
    secrets        the keys of `argo-rollouts-notification-secret`

and rollwise adds what Argo's templates have to dig for:

    event          the event: type, reason, message, count, firstTimestamp, lastTimestamp
    trigger        the trigger's name (`on-rollout-aborted`)
    step           index, count, current (the step's definition, None when every step is done)
                   and label (`setWeight: 50`, `analysis`); the index is status.currentStepIndex,
                   except after an abort by a step's analysis: an abort sets currentStepIndex
                   back to 0, so the index is then the failed run's `step-index`
    weights        canary and stable traffic weights (status.canary.weights), None without them
    failedMetrics  each Failed/Error metric of those runs: analysisRun, name, phase, message,
                   value (last measurement)
    now            the time of rendering (RFC3339)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from rollwise.api.models import CanaryStep
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import STEP_INDEX_LABEL
from rollwise.core.steps import step_label
from rollwise.core.timestamps import format_time

RawObject = dict[str, Any]
FAILED_PHASES = ("Failed", "Error")


def notification_variables(
    *,
    rollout: Mapping[str, Any],
    analysis_runs: Sequence[Mapping[str, Any]],
    event: Mapping[str, Any],
    trigger: str,
    recipient: str = "",
    secrets: Mapping[str, str] | None = None,
    now: datetime,
) -> dict[str, Any]:
    runs = current_runs(rollout, analysis_runs)
    return {
        "rollout": rollout,
        "analysisRuns": runs,
        "recipient": recipient,
        "secrets": dict(secrets or {}),
        "event": {
            key: event.get(key)
            for key in ("type", "reason", "message", "count", "firstTimestamp", "lastTimestamp")
        },
        "trigger": trigger,
        "step": step_variables(rollout, runs),
        "weights": weight_variables(rollout),
        "failedMetrics": failed_metrics(runs),
        "now": format_time(now),
    }


def current_runs(
    rollout: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Runs of the current revision (its pod-template hash), newest first (Argo's order)."""
    current = (rollout.get("status") or {}).get("currentPodHash")
    chosen = [
        run
        for run in runs
        if current is None
        or (run.get("metadata") or {}).get("labels", {}).get(HASH_LABEL) == current
    ]
    return sorted(
        chosen,
        key=lambda run: (
            str((run.get("metadata") or {}).get("creationTimestamp") or ""),
            str((run.get("metadata") or {}).get("name") or ""),
        ),
        reverse=True,
    )


def step_variables(
    rollout: Mapping[str, Any], runs: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    steps = (strategy.get("canary") or {}).get("steps") or []
    status = rollout.get("status") or {}
    index = status.get("currentStepIndex")
    position = index if isinstance(index, int) else 0
    if status.get("abort"):
        stopped = _failed_step(runs)
        position = position if stopped is None else stopped
    current = steps[position] if 0 <= position < len(steps) else None
    return {
        "index": position,
        "count": len(steps),
        "current": current,
        "label": _label(current) if current is not None else "",
    }


def _failed_step(runs: Sequence[Mapping[str, Any]]) -> int | None:
    """The step index of the newest failed step run (runs are newest first)."""
    for run in runs:
        if (run.get("status") or {}).get("phase") not in FAILED_PHASES:
            continue
        label = ((run.get("metadata") or {}).get("labels") or {}).get(STEP_INDEX_LABEL)
        if label is not None and str(label).isdigit():
            return int(label)
    return None


def _label(step: Any) -> str:
    try:
        return step_label(CanaryStep.model_validate(step))
    except ValidationError:
        return "invalid"


def weight_variables(rollout: Mapping[str, Any]) -> dict[str, Any] | None:
    weights = ((rollout.get("status") or {}).get("canary") or {}).get("weights")
    if not isinstance(weights, Mapping):
        return None
    return {
        "canary": (weights.get("canary") or {}).get("weight", 0),
        "stable": (weights.get("stable") or {}).get("weight", 0),
    }


def failed_metrics(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for run in runs:
        for result in (run.get("status") or {}).get("metricResults") or []:
            if result.get("phase") not in FAILED_PHASES:
                continue
            measurements = result.get("measurements") or []
            last = measurements[-1] if measurements else {}
            found.append(
                {
                    "analysisRun": (run.get("metadata") or {}).get("name"),
                    "name": result.get("name"),
                    "phase": result.get("phase"),
                    "message": result.get("message") or last.get("message") or "",
                    "value": last.get("value"),
                }
            )
    return found
