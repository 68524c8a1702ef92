"""What the controller saw of the world around one Rollout, as an immutable snapshot.

Who builds it: the controller, from its store (ReplicaSets and AnalysisRuns owned by the
Rollout, the Services the Rollout names) and from what its router executor remembers; the
builders below turn raw store objects (Kubernetes shape, camelCase) into views. Who reads it:
`rollwise.core.rollouts.decide`. Nothing here does I/O or reads the clock.

Router fields, and how the controller keeps them:
- `current_router_weight`: the canary weight the router holds now. Set it to `w` after executing
  `SetWeight(w)` (or read it from the router); None when unknown (e.g. after a restart) - the core
  then trusts `status.canary.weights`.
- `weight_verified`: the router's answer to the last `VerifyWeight` for that weight: True / False,
  or None when the router cannot verify (or was not asked since the last `SetWeight`; executing
  `SetWeight` resets it to None and the `VerifyWeight` emitted with it fills it). None counts as
  verified, as in Argo.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from rollwise.core.experiments_observed import ExperimentView
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.timestamps import parse_time_or_none

REVISION_ANNOTATION = "rollout.argoproj.io/revision"
SCALE_DOWN_DEADLINE_ANNOTATION = "scale-down-deadline"
ROLLOUT_TYPE_LABEL = "rollout-type"
STEP_INDEX_LABEL = "step-index"
EPHEMERAL_METADATA_ANNOTATION = "rollout.argoproj.io/ephemeral-metadata"

AnalysisKind = Literal["Step", "Background", "PrePromotion", "PostPromotion"]
"""The `rollout-type` label of a run: canary step or background, blue-green pre/post promotion."""
_ANALYSIS_KINDS: tuple[AnalysisKind, ...] = ("Step", "Background", "PrePromotion", "PostPromotion")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ReplicaSetView:
    """One ReplicaSet owned by the Rollout: a revision of its pod template."""

    name: str
    pod_template_hash: str
    revision: int
    replicas: int
    """spec.replicas: what it was asked to run."""
    ready: int
    available: int
    template: Mapping[str, Any] = field(compare=False, repr=False)
    created_at: datetime
    scale_down_deadline: datetime | None = None
    current: int | None = None
    """status.replicas (pods that exist, ready or not); None when unknown: read `replicas`."""
    oldest_pod_created_at: datetime | None = None
    """Creation time of its oldest pod that is not terminating (None: no pods, or not looked
    at); `restartAt` is done once no ReplicaSet has a pod older than it."""
    ephemeral_metadata: str | None = None
    """Its `rollout.argoproj.io/ephemeral-metadata` annotation: the role metadata injected."""

    @property
    def current_pods(self) -> int:
        return self.replicas if self.current is None else self.current


@dataclass(frozen=True, slots=True)
class AnalysisRunView:
    """One AnalysisRun owned by the Rollout; the core reads only its phase and message."""

    name: str
    phase: str
    """status.phase: "" (not started), Pending, Running, Successful, Failed, Error, Inconclusive."""
    kind: AnalysisKind
    step_index: int | None
    pod_template_hash: str
    revision: int | None = None
    message: str = ""
    created_at: datetime | None = None
    terminate_requested: bool = False
    """spec.terminate is already set: asking again would change nothing."""

    @property
    def completed(self) -> bool:
        return self.phase in ("Successful", "Failed", "Error", "Inconclusive")


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything the core needs besides the Rollout itself and the time."""

    replica_sets: tuple[ReplicaSetView, ...] = ()
    analysis_runs: tuple[AnalysisRunView, ...] = ()
    weight_verified: bool | None = None
    current_router_weight: int | None = None
    service_selectors: Mapping[str, str | None] = field(default_factory=dict)
    """For each Service the Rollout names (canaryService, stableService): the value of
    `rollouts-pod-template-hash` in its selector, None if it has none. A name absent from the
    mapping means the Service does not exist (the Rollout is then InvalidSpec, as in Argo)."""
    missing_templates: tuple[str, ...] = ()
    """Names of (Cluster)AnalysisTemplates the Rollout references that the store does not hold."""
    experiments: tuple[ExperimentView, ...] = ()
    """Experiments owned by the Rollout (experiment steps)."""
    workload: Mapping[str, Any] | None = None
    """The raw object the Rollout's `workloadRef` names (a Deployment...), None if it has no
    workloadRef or the object does not exist."""


# --- builders from raw store objects --------------------------------------------------------


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def oldest_pod_created_at(pods: Iterable[Mapping[str, Any]]) -> datetime | None:
    """The creation time of the oldest of `pods` that is not terminating."""
    created = [
        parse_time_or_none((pod.get("metadata") or {}).get("creationTimestamp"))
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
    ]
    known = [moment for moment in created if moment is not None]
    return min(known) if known else None


def replica_set_view_from_raw(
    raw: Mapping[str, Any], pods: Iterable[Mapping[str, Any]] = ()
) -> ReplicaSetView:
    """A view of a raw ReplicaSet (apps/v1 shape, as stored in both modes); `pods` are its own
    pods, when the caller looked at them."""
    metadata = raw.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    template = spec.get("template") or {}
    pod_hash = labels.get(HASH_LABEL) or ((template.get("metadata") or {}).get("labels") or {}).get(
        HASH_LABEL, ""
    )
    status_replicas = status.get("replicas")
    return ReplicaSetView(
        name=str(metadata.get("name", "")),
        pod_template_hash=str(pod_hash),
        revision=_int(annotations.get(REVISION_ANNOTATION), 0),
        replicas=_int(spec.get("replicas"), 1),
        ready=_int(status.get("readyReplicas")),
        available=_int(status.get("availableReplicas")),
        template=template,
        created_at=parse_time_or_none(metadata.get("creationTimestamp")) or _EPOCH,
        scale_down_deadline=parse_time_or_none(annotations.get(SCALE_DOWN_DEADLINE_ANNOTATION)),
        current=None if status_replicas is None else _int(status_replicas),
        oldest_pod_created_at=oldest_pod_created_at(pods),
        ephemeral_metadata=annotations.get(EPHEMERAL_METADATA_ANNOTATION),
    )


def analysis_run_view_from_raw(raw: Mapping[str, Any]) -> AnalysisRunView:
    """A view of a raw AnalysisRun created for a Rollout (labels say its kind and step)."""
    metadata = raw.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    status = raw.get("status") or {}
    kind: AnalysisKind = next(
        (known for known in _ANALYSIS_KINDS if labels.get(ROLLOUT_TYPE_LABEL) == known),
        "Background",
    )
    step_label = labels.get(STEP_INDEX_LABEL)
    revision = annotations.get(REVISION_ANNOTATION)
    return AnalysisRunView(
        name=str(metadata.get("name", "")),
        phase=str(status.get("phase") or ""),
        kind=kind,
        step_index=None if step_label is None else _int(step_label),
        pod_template_hash=str(labels.get(HASH_LABEL, "")),
        revision=None if revision is None else _int(revision),
        message=str(status.get("message") or ""),
        created_at=parse_time_or_none(metadata.get("creationTimestamp")),
        terminate_requested=bool((raw.get("spec") or {}).get("terminate")),
    )


def service_selector_hash(raw_service: Mapping[str, Any]) -> str | None:
    """The pod-template hash a raw Service selects, or None if its selector has none."""
    selector = (raw_service.get("spec") or {}).get("selector") or {}
    value = selector.get(HASH_LABEL)
    return None if value is None else str(value)
