"""The typed actions a decision asks for; both platforms execute the same ones.

Who makes them: `rollwise.core.rollouts.decide`. Who executes them: the controller, through the
platform's executors (ReplicaSets, pods, services, analysis runs) and the router, in the order
given, before it writes the decided status. If an action fails the controller must not write the
status: the next decision, made from the same status, asks for the action again. That is what
lets the core emit one-off actions (events, header routes, analysis runs) only on transitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from rollwise.api import models as api
from rollwise.core.observed import AnalysisKind

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class CreateReplicaSet:
    """Create ReplicaSet `name` (`<rollout>-<hash>`) running `template` (hash label already in)."""

    name: str
    pod_template_hash: str
    revision: int
    template: Mapping[str, Any] = field(repr=False)
    replicas: int


@dataclass(frozen=True, slots=True)
class ScaleReplicaSet:
    """Set spec.replicas of `name`; also set (datetime) or remove (None) its scale-down-deadline."""

    name: str
    replicas: int
    scale_down_deadline: datetime | None = None


@dataclass(frozen=True, slots=True)
class SetReplicaSetRevision:
    """Rewrite the revision annotation of `name` (a rollback makes an old ReplicaSet the newest)."""

    name: str
    revision: int


@dataclass(frozen=True, slots=True)
class DeleteReplicaSet:
    """Delete an old, scaled-down ReplicaSet beyond `revisionHistoryLimit`."""

    name: str


@dataclass(frozen=True, slots=True)
class RestartPods:
    """Restart (evict) the pods of these ReplicaSets created before `before`.

    At most `max_unavailable` at a time, each replacement ready before the next goes.
    """

    replica_sets: tuple[str, ...]
    before: datetime
    max_unavailable: int = 1


@dataclass(frozen=True, slots=True)
class SetWeight:
    """Send `weight` (of maxTrafficWeight) of the traffic to the canary, each `additional`
    destination (a running experiment template's Service) its weight, the rest to stable."""

    weight: int
    canary_hash: str
    stable_hash: str
    additional: tuple[api.WeightDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class VerifyWeight:
    """Ask the router whether `weight` is in force; the answer comes back as
    `Observed.weight_verified` (True / False / None = cannot verify)."""

    weight: int
    additional: tuple[api.WeightDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class SetHeaderRoute:
    """Add (or, without `match`, remove) the managed header route of a `setHeaderRoute` step."""

    route: api.SetHeaderRoute


@dataclass(frozen=True, slots=True)
class SetMirrorRoute:
    """Add (or, without `match`, remove) the managed mirror route of a `setMirrorRoute` step."""

    route: api.SetMirrorRoute


@dataclass(frozen=True, slots=True)
class RemoveManagedRoutes:
    """Remove every header/mirror route this rollout added (completion, abort, no canary pods)."""


@dataclass(frozen=True, slots=True)
class SwitchServiceSelector:
    """Point `service`'s selector at pods with `rollouts-pod-template-hash: pod_template_hash`."""

    service: str
    pod_template_hash: str


@dataclass(frozen=True, slots=True)
class CreateAnalysisRun:
    """Create AnalysisRun `name` from `analysis` (templates, args, dryRun...).

    Args with `valueFrom.podTemplateHashValue` are already resolved into values; `fieldRef` and
    `secretKeyRef` args are left for the executor, which has the Rollout and the secrets.
    `labels` are the ones Argo puts on runs (`rollout-type`, `step-index`, pod hash) plus the
    step's analysisRunMetadata; `annotations` carry the revision.
    """

    name: str
    kind: AnalysisKind
    step_index: int | None
    analysis: api.RolloutAnalysis = field(repr=False)
    pod_template_hash: str
    revision: int
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TerminateAnalysisRun:
    """Set spec.terminate on a run that is no longer current (it then ends Successful)."""

    name: str


@dataclass(frozen=True, slots=True)
class DeleteAnalysisRun:
    """Delete a completed run beyond `spec.analysis.*RunHistoryLimit` (5 and 5 by default)."""

    name: str


@dataclass(frozen=True, slots=True)
class EmitEvent:
    """Record an event on the Rollout (Argo's reasons: notifications key on them)."""

    type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class SetEphemeralMetadata:
    """Make `metadata` (`{"labels": {...}, "annotations": {...}}`, None for none) the ephemeral
    metadata of ReplicaSet `replica_set`: in its pod template and on its existing pods, removing
    what its `rollout.argoproj.io/ephemeral-metadata` annotation says was injected before
    (`rollwise.core.canary_metadata.metadata_patch`), and recording `metadata` there."""

    replica_set: str
    metadata: Mapping[str, Mapping[str, str]] | None


@dataclass(frozen=True, slots=True)
class ScaleWorkload:
    """Set spec.replicas of the object a Rollout's `workloadRef` names (`scaleDown`)."""

    kind: str
    name: str
    replicas: int


# --- experiments: the Rollout's side (experiment step) ---------------------------------------


@dataclass(frozen=True, slots=True)
class CreateExperiment:
    """Create Experiment `name` owned by the Rollout; `experiment` is the object without owner
    (`rollwise.core.experiments_steps.experiment_object`). Creating one that exists is a no-op."""

    name: str
    experiment: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class TerminateExperiment:
    """Set spec.terminate on an Experiment that is no longer needed."""

    name: str


@dataclass(frozen=True, slots=True)
class DeleteExperiment:
    """Delete an Experiment (and what it owns) beyond the history limits or of a gone revision."""

    name: str


# --- experiments: the Experiment controller's side -------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateExperimentReplicaSet:
    """Create ReplicaSet `name` for experiment template `template_name`, owned by the
    Experiment; `template` and `selector` (a raw LabelSelector) already carry the hash."""

    name: str
    template_name: str
    pod_template_hash: str
    template: Mapping[str, Any] = field(repr=False)
    selector: Mapping[str, Any] = field(repr=False)
    replicas: int
    min_ready_seconds: int = 0


@dataclass(frozen=True, slots=True)
class CreateService:
    """Create Service `name` owned by the Experiment, selecting `selector` (an experiment
    template's pods), with `ports` (raw ServicePorts) and `annotations`."""

    name: str
    selector: Mapping[str, str]
    ports: tuple[Mapping[str, Any], ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeleteService:
    """Delete a Service the Experiment created (its template's pods are gone)."""

    name: str


@dataclass(frozen=True, slots=True)
class CreateExperimentAnalysisRun:
    """Create AnalysisRun `name` owned by the Experiment from `analysis` (one template ref,
    args already resolved from the experiment's variables)."""

    name: str
    analysis: api.RolloutAnalysis = field(repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


Action = (
    CreateReplicaSet
    | ScaleReplicaSet
    | SetReplicaSetRevision
    | DeleteReplicaSet
    | RestartPods
    | SetWeight
    | VerifyWeight
    | SetHeaderRoute
    | SetMirrorRoute
    | RemoveManagedRoutes
    | SwitchServiceSelector
    | CreateAnalysisRun
    | TerminateAnalysisRun
    | DeleteAnalysisRun
    | EmitEvent
    | SetEphemeralMetadata
    | ScaleWorkload
    | CreateExperiment
    | TerminateExperiment
    | DeleteExperiment
    | CreateExperimentReplicaSet
    | CreateService
    | DeleteService
    | CreateExperimentAnalysisRun
)
