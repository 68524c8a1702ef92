"""A Rollout whose pod template lives in another object: `spec.workloadRef` (reference 1.2).

Who calls it: `rollwise.core.rollouts.decide`, before any strategy runs, and the executors,
which need the selector of the resolved Rollout to create ReplicaSets. The referenced object
(an `apps/v1` Deployment or ReplicaSet, or a core `PodTemplate`) comes in as
`Observed.workload`; its pod template and selector (unless the Rollout has its own) make the
Rollout the strategies see. Afterwards `workload_outcome` adds what is owed to the referenced
object: `status.workloadObservedGeneration` (its generation, as a string like Argo's) and, with
`scaleDown`, the scaling of the Deployment this Rollout replaces:

| scaleDown       | the referenced object's spec.replicas (revision 1 only, as Argo)          |
|-----------------|---------------------------------------------------------------------------|
| never (default) | left alone                                                                |
| onsuccess       | 0 once the Rollout is Healthy                                             |
| progressively   | `replicas - available` while the Rollout's pods come up, 0 once Healthy   |

The count only ever goes down, so a person scaling the Deployment back up is not fought.
A change of the referenced object requeues the Rollout (the controller watches it), and a new
pod template there is a new revision like a new `spec.template`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rollwise.api import models as api
from rollwise.core import actions as act
from rollwise.core.decisions import Decision
from rollwise.core.observed import Observed

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "PodTemplate")
SCALE_DOWN_MODES = ("never", "onsuccess", "progressively")
TEMPLATE_AND_REF = "template must be empty for workload reference rollout"


def workload_problem(ref: api.WorkloadRef, workload: Mapping[str, Any] | None) -> str | None:
    """Why the referenced object cannot give this Rollout its pods, or None."""
    kind = ref.kind or ""
    if kind not in WORKLOAD_KINDS:
        return (
            f"spec.workloadRef.kind: workload of kind {kind!r} is not supported;"
            f" use one of {', '.join(WORKLOAD_KINDS)}"
        )
    if not ref.name:
        return "spec.workloadRef.name: the name of the referenced object is required"
    mode = (ref.scale_down or "never").lower()
    if mode not in SCALE_DOWN_MODES:
        return (
            f"spec.workloadRef.scaleDown: {ref.scale_down!r} is not one of never, onsuccess,"
            " progressively"
        )
    if workload is None:
        return f'spec.workloadRef: {kind} "{ref.name}" not found'
    if not _template(workload):
        return f'spec.workloadRef: {kind} "{ref.name}" has no pod template'
    return None


def _template(workload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if workload.get("kind") == "PodTemplate":
        template = workload.get("template")
    else:
        template = (workload.get("spec") or {}).get("template")
    return template if isinstance(template, Mapping) and template else None


def resolve_workload(rollout: api.Rollout, workload: Mapping[str, Any]) -> api.Rollout:
    """The Rollout as the strategies see it: the referenced pod template, the Rollout's own
    selector or else the referenced one, no workloadRef (so nothing resolves twice) and no
    workloadObservedGeneration in the status (`workload_outcome` writes it back)."""
    template = dict(_template(workload) or {})
    selector = rollout.spec.selector
    if selector is None:
        raw_selector = (workload.get("spec") or {}).get("selector")
        if isinstance(raw_selector, Mapping):
            selector = api.LabelSelector.model_validate(raw_selector)
    spec = rollout.spec.copy_with(template=template, selector=selector, workload_ref=None)
    status = rollout.status
    if status is not None and status.workload_observed_generation is not None:
        raw = status.to_raw()
        raw.pop("workloadObservedGeneration", None)
        status = api.RolloutStatus.model_validate(raw)
    return rollout.model_copy(update={"spec": spec, "status": status})


def _generation(workload: Mapping[str, Any]) -> str | None:
    generation = (workload.get("metadata") or {}).get("generation")
    return None if generation is None else str(generation)


def _replicas(workload: Mapping[str, Any]) -> int:
    value = (workload.get("spec") or {}).get("replicas")
    try:
        return 1 if value is None else int(value)
    except (TypeError, ValueError):
        return 1


def _revision(observed: Observed, pod_hash: str | None) -> int | None:
    for rs in observed.replica_sets:
        if rs.pod_template_hash == pod_hash:
            return rs.revision
    return None


def scale_down_target(
    rollout: api.Rollout, workload: Mapping[str, Any], status: Mapping[str, Any], observed: Observed
) -> int | None:
    """The spec.replicas the referenced object should have now, None to leave it alone."""
    ref = rollout.spec.workload_ref
    if ref is None or ref.kind == "PodTemplate":
        return None
    mode = (ref.scale_down or "never").lower()
    if mode == "never" or _revision(observed, status.get("currentPodHash")) != 1:
        return None
    current = _replicas(workload)
    if status.get("phase") == "Healthy":
        target = 0
    elif mode == "progressively":
        replicas = rollout.spec.replicas if rollout.spec.replicas is not None else 1
        target = max(0, replicas - int(status.get("availableReplicas") or 0))
    else:
        return None
    target = min(target, current)
    return None if target == current else target


def workload_outcome(
    rollout: api.Rollout, workload: Mapping[str, Any], observed: Observed, decision: Decision
) -> Decision:
    """`decision` (made for the resolved Rollout) plus what the referenced object is owed."""
    status = decision.status
    generation = _generation(workload)
    if status.workload_observed_generation != generation:
        status = status.copy_with(workload_observed_generation=generation)
    actions = list(decision.actions)
    target = scale_down_target(rollout, workload, status.to_raw(), observed)
    ref = rollout.spec.workload_ref
    if target is not None and ref is not None and ref.kind and ref.name:
        actions.append(act.ScaleWorkload(ref.kind, ref.name, target))
        actions.append(
            act.EmitEvent(
                "Normal",
                "ScalingReplicaSet",
                f"Scaled down {ref.kind} {ref.name} from {_replicas(workload)} to {target}"
                f" (workloadRef scaleDown: {ref.scale_down})",
            )
        )
    if status is decision.status and len(actions) == len(decision.actions):
        return decision
    requeue = decision.requeue_after
    if len(actions) != len(decision.actions):
        requeue = 0.0
    return replace(decision, status=status, actions=tuple(actions), requeue_after=requeue)
