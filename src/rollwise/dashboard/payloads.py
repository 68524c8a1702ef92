"""The JSON the dashboard serves: what `get rollout` shows, as plain dicts for the page.

Who calls it: `rollwise.dashboard.server`, with raw objects it read from the store in a worker
thread. Pure functions of raw Kubernetes-shaped dicts and a `now` passed in; the phases, icons,
weights and the replica-set/pod/analysis summaries come from `rollwise.views.info`, so the page
and the CLI never disagree about a rollout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from rollwise.views import info

Raw = Mapping[str, Any]
Json = dict[str, Any]

WEIGHT_EVENT = "TrafficWeightUpdated"
_WEIGHT_TO = re.compile(r"\bto (\d+)\b")
STEP_EVENT = "RolloutStepCompleted"
RESOLVED_QUERY = "ResolvedPrometheusQuery"
_SET_WEIGHT_STEP = re.compile(r"\(setWeight: (\d+)\)")


def _status(obj: Raw) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _owned(objects: Sequence[Raw], owner: Raw, *, kind: str) -> list[Raw]:
    return [obj for obj in objects if info.owned_by(obj, owner, kind=kind)]


def rollout_summary(
    rollout: Raw, replica_sets: Sequence[Raw], pods: Sequence[Raw], *, now: datetime
) -> Json:
    """One row of the list: Argo's `RolloutInfo` without the tree."""
    phase, message = info.rollout_phase(rollout)
    infos = info.replica_set_infos(rollout, replica_sets, pods, now=now)
    status = _status(rollout)
    strategy = info.strategy_name(rollout)
    steps = info.canary_steps(rollout)
    return {
        "name": info.name_of(rollout),
        "namespace": info.namespace_of(rollout),
        "status": phase,
        "icon": info.rollout_icon(phase),
        "message": message,
        "strategy": strategy,
        "step": info.step_text(rollout),
        "currentStepIndex": status.get("currentStepIndex"),
        "stepCount": len(steps),
        "setWeight": info.set_weight(rollout) if strategy == "Canary" else None,
        "actualWeight": info.actual_weight(rollout, infos) if strategy == "Canary" else None,
        "desired": info.desired_replicas(rollout),
        "current": int(status.get("replicas") or 0),
        "updated": int(status.get("updatedReplicas") or 0),
        "ready": int(status.get("readyReplicas") or 0),
        "available": int(status.get("availableReplicas") or 0),
        "images": [asdict(image) for image in info.images(infos)],
        "age": info.age(rollout, now),
        "revision": info.revision_of(rollout),
    }


def _steps(rollout: Raw) -> list[Json]:
    index = _status(rollout).get("currentStepIndex")
    current = int(index) if index is not None else None
    steps = []
    for position, step in enumerate(info.canary_steps(rollout)):
        kind = next(iter(step), "unknown")
        steps.append(
            {
                "index": position,
                "kind": kind,
                "value": step.get(kind),
                "state": (
                    "current"
                    if position == current
                    else "done"
                    if current is not None and position < current
                    else "pending"
                ),
            }
        )
    return steps


def _containers(rollout: Raw) -> list[Json]:
    template = (rollout.get("spec") or {}).get("template") or {}
    pod_spec = template.get("spec") or {}
    return [
        {"name": str(c.get("name", "")), "image": str(c.get("image", ""))}
        for c in pod_spec.get("containers") or []
    ]


def _measurement_number(text: object) -> float | None:
    """A measurement's value as a number for the chart (`0.97`, `[0.97]`), or None."""
    if isinstance(text, (int, float)):
        return float(text)
    if not isinstance(text, str):
        return None
    cleaned = text.strip().strip("[]").split(",")[0].strip()
    try:
        return float(cleaned)
    except ValueError:
        return None


def analysis_run_detail(run: Raw) -> Json:
    """An AnalysisRun with each metric's conditions, query and measurements."""
    spec = run.get("spec") or {}
    results = {r.get("name"): r for r in _status(run).get("metricResults") or []}
    metrics = []
    for metric in spec.get("metrics") or []:
        name = metric.get("name")
        result = results.get(name) or {}
        metrics.append(
            {
                "name": name,
                "phase": result.get("phase") or "Pending",
                "successCondition": metric.get("successCondition"),
                "failureCondition": metric.get("failureCondition"),
                "provider": metric.get("provider") or {},
                # What the controller sent (Argo keeps it on the result for Prometheus).
                "resolvedQuery": (result.get("metadata") or {}).get(RESOLVED_QUERY),
                "count": {
                    key: int(result.get(key) or 0)
                    for key in ("successful", "failed", "inconclusive", "error")
                },
                "message": result.get("message"),
                "measurements": [
                    {
                        "phase": m.get("phase"),
                        "value": m.get("value"),
                        "number": _measurement_number(m.get("value")),
                        "startedAt": m.get("startedAt"),
                        "finishedAt": m.get("finishedAt"),
                        "message": m.get("message"),
                    }
                    for m in result.get("measurements") or []
                ],
            }
        )
    return {
        "args": [{"name": a.get("name"), "value": a.get("value")} for a in spec.get("args") or []],
        "message": _status(run).get("message"),
        "metrics": metrics,
    }


def weight_history(events: Sequence[Raw]) -> list[Json]:
    """The canary weight over time: from the rollout's `TrafficWeightUpdated` events when it is
    traffic-routed; for a basic canary (whose split follows pod counts and which records no such
    event) from its completed `setWeight` steps, 0 on an abort and 100 on the completion of a
    rollout that went through steps."""
    routed = [event for event in events if event.get("reason") == WEIGHT_EVENT]
    points: list[Json] = []
    if routed:
        for event in routed:
            found = _WEIGHT_TO.search(str(event.get("message") or ""))
            if found:
                points.append({"at": event.get("lastTimestamp"), "weight": int(found.group(1))})
    else:
        for event in sorted(events, key=lambda event: str(event.get("lastTimestamp"))):
            weight = _basic_canary_weight(event, stepped=bool(points))
            if weight is not None:
                points.append({"at": event.get("lastTimestamp"), "weight": weight})
    points.sort(key=lambda point: str(point["at"]))
    return points


def _basic_canary_weight(event: Raw, *, stepped: bool) -> int | None:
    reason = event.get("reason")
    if reason == STEP_EVENT:
        found = _SET_WEIGHT_STEP.search(str(event.get("message") or ""))
        return int(found.group(1)) if found else None
    if reason == "RolloutAborted":
        return 0
    if reason == "RolloutCompleted" and stepped:
        return 100
    return None


def rollout_detail(
    rollout: Raw,
    replica_sets: Sequence[Raw],
    pods: Sequence[Raw],
    analysis_runs: Sequence[Raw],
    events: Sequence[Raw],
    *,
    now: datetime,
) -> Json:
    """A rollout's page: the summary, its steps, revisions with replica sets and pods, analysis
    runs with their measurements, containers (for set image) and the weight history."""
    replica_sets = _owned(replica_sets, rollout, kind="Rollout")
    infos = info.replica_set_infos(rollout, replica_sets, pods, now=now)
    runs = _owned(analysis_runs, rollout, kind="Rollout")
    run_infos = info.analysis_run_infos(rollout, runs, infos, replica_sets, now=now)
    raw_runs = {info.name_of(run): run for run in runs}
    revisions: dict[int, Json] = {}
    for rs in infos:
        entry = revisions.setdefault(
            rs.revision, {"revision": rs.revision, "replicaSets": [], "analysisRuns": []}
        )
        entry["replicaSets"].append(
            {**asdict(rs), "pods": [asdict(pod) for pod in rs.pods], "tags": list(rs.tags)}
        )
    analysis = []
    for run_info in run_infos:
        detail = {**asdict(run_info), **analysis_run_detail(raw_runs[run_info.name])}
        detail["jobs"] = [list(job) for job in run_info.jobs]
        analysis.append(detail)
        entry = revisions.setdefault(
            run_info.revision,
            {"revision": run_info.revision, "replicaSets": [], "analysisRuns": []},
        )
        entry["analysisRuns"].append(run_info.name)
    return {
        **rollout_summary(rollout, replica_sets, pods, now=now),
        "steps": _steps(rollout),
        "paused": bool((rollout.get("spec") or {}).get("paused"))
        or bool(_status(rollout).get("pauseConditions")),
        "aborted": bool(_status(rollout).get("abort")),
        "containers": _containers(rollout),
        "revisions": [revisions[key] for key in sorted(revisions, reverse=True)],
        "analysisRuns": analysis,
        "weights": weight_history(events),
    }
