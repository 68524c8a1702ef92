"""Objects as the local store holds them, for the notification tests: a Rollout aborted by its
step analysis, and its AnalysisRuns."""

from __future__ import annotations

from typing import Any

CANARY_HASH = "6c8f9d7b5"
STABLE_HASH = "7f6d8c9b4"
ABORT_MESSAGE = (
    'RolloutAborted: Rollout aborted update to revision 2: Metric "success-rate" assessed '
    "Failed due to failed (1) > failureLimit (0)"
)


def rollout(*, annotations: dict[str, str] | None = None, aborted: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {
        "currentPodHash": CANARY_HASH,
        "stableRS": STABLE_HASH,
        # An abort sets the index back to 0; the failed run says which step it stopped at.
        "currentStepIndex": 0 if aborted else 1,
        "replicas": 2,
        "updatedReplicas": 1,
        "phase": "Degraded" if aborted else "Progressing",
        "canary": {
            "weights": {
                "canary": {"weight": 0 if aborted else 50, "podTemplateHash": CANARY_HASH},
                "stable": {"weight": 100 if aborted else 50, "podTemplateHash": STABLE_HASH},
            }
        },
    }
    if aborted:
        status.update(abort=True, message=ABORT_MESSAGE)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": "shop",
            "namespace": "default",
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "replicas": 2,
            "strategy": {
                "canary": {
                    "steps": [
                        {"setWeight": 50},
                        {"analysis": {"templates": [{"templateName": "success-rate"}]}},
                        {"setWeight": 100},
                    ]
                }
            },
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {
                    "containers": [
                        {"name": "shop", "image": "argoproj/rollouts-demo:bad-red"},
                        {"name": "proxy", "image": 'envoy:"1.30"'},
                    ]
                },
            },
        },
        "status": status,
    }


def analysis_run(
    name: str, *, pod_hash: str, phase: str, created: str, value: str = "0.5", step: int = 1
) -> dict[str, Any]:
    failed = phase in ("Failed", "Error")
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": created,
            "labels": {
                "rollouts-pod-template-hash": pod_hash,
                "rollout-type": "Step",
                "step-index": str(step),
            },
            "ownerReferences": [{"kind": "Rollout", "name": "shop"}],
        },
        "status": {
            "phase": phase,
            "metricResults": [
                {
                    "name": "success-rate",
                    "phase": phase,
                    "measurements": [
                        {"phase": "Successful", "value": "1"},
                        {"phase": phase, "value": value},
                    ],
                    **({"failed": 1} if failed else {}),
                },
                {"name": "latency", "phase": "Successful", "measurements": [{"value": "0.1"}]},
            ],
        },
    }


def runs() -> list[dict[str, Any]]:
    return [
        analysis_run(
            "shop-old-1", pod_hash=STABLE_HASH, phase="Failed", created="2026-01-01T00:00:00Z"
        ),
        analysis_run(
            "shop-6c8f9d7b5-2-1",
            pod_hash=CANARY_HASH,
            phase="Failed",
            created="2026-01-02T00:00:10Z",
        ),
        analysis_run(
            "shop-6c8f9d7b5-2-0",
            pod_hash=CANARY_HASH,
            phase="Successful",
            created="2026-01-02T00:00:00Z",
            value="0.99",
        ),
    ]


def event(reason: str, message: str = "", *, type_: str = "Normal") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "shop.1", "namespace": "default"},
        "involvedObject": {"kind": "Rollout", "name": "shop", "namespace": "default"},
        "type": type_,
        "reason": reason,
        "message": message,
        "count": 1,
        "firstTimestamp": "2026-01-02T00:00:20Z",
        "lastTimestamp": "2026-01-02T00:00:20Z",
    }
