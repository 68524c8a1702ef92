"""Builders of raw objects in the shapes the store holds, for the CLI tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

NOW = datetime.fromisoformat("2026-11-26T12:00:00+00:00")


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def owner(kind: str, name: str) -> list[dict[str, Any]]:
    api = "argoproj.io/v1alpha1" if kind == "Rollout" else "apps/v1"
    return [{"apiVersion": api, "kind": kind, "name": name, "uid": "", "controller": True}]


def rollout(
    name: str,
    *,
    namespace: str = "default",
    created: str,
    replicas: int,
    steps: list[dict[str, Any]] | None = None,
    status: dict[str, Any] | None = None,
    canary_extra: dict[str, Any] | None = None,
    blue_green: dict[str, Any] | None = None,
    image: str = "argoproj/rollouts-demo:blue",
) -> dict[str, Any]:
    strategy = (
        {"blueGreen": blue_green}
        if blue_green is not None
        else {"canary": {"steps": steps or [], **(canary_extra or {})}}
    )
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
            "strategy": strategy,
        },
        "status": status or {},
    }


def replica_set(
    rollout_name: str,
    pod_hash: str,
    *,
    revision: int,
    image: str,
    replicas: int,
    available: int | None = None,
    created: str,
    namespace: str = "default",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {"app": rollout_name, "rollouts-pod-template-hash": pod_hash}
    available = replicas if available is None else available
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{rollout_name}-{pod_hash}",
            "namespace": namespace,
            "creationTimestamp": created,
            "labels": labels,
            "annotations": {"rollout.argoproj.io/revision": str(revision), **(annotations or {})},
            "ownerReferences": owner("Rollout", rollout_name),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": rollout_name, "image": image}]},
            },
        },
        "status": {
            "replicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
        },
    }


def pod(
    rs: dict[str, Any],
    suffix: str,
    *,
    created: str,
    phase: str = "Running",
    ready: bool = True,
    restarts: int = 0,
    extra_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rs_name = rs["metadata"]["name"]
    image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{rs_name}-{suffix}",
            "namespace": rs["metadata"]["namespace"],
            "creationTimestamp": created,
            "labels": dict(rs["metadata"]["labels"]),
            "ownerReferences": owner("ReplicaSet", rs_name),
        },
        "status": {
            "phase": phase,
            "startTime": created,
            "containerStatuses": [
                {"name": "app", "ready": ready, "restartCount": restarts, "image": image}
            ],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **(extra_status or {}),
        },
    }


def analysis_run(
    rollout_name: str,
    name: str,
    *,
    revision: int | None,
    phase: str,
    created: str,
    counts: dict[str, int],
    pod_hash: str = "",
) -> dict[str, Any]:
    annotations = {} if revision is None else {"rollout.argoproj.io/revision": str(revision)}
    labels = {"rollout-type": "Step"}
    if pod_hash:
        labels["rollouts-pod-template-hash"] = pod_hash
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": created,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": owner("Rollout", rollout_name),
        },
        "spec": {"metrics": [{"name": "success-rate"}]},
        "status": {
            "phase": phase,
            "metricResults": [{"name": "success-rate", "phase": phase, **counts}],
        },
    }
