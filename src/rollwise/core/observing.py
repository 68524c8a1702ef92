"""What a Rollout or an Experiment observes, read from any platform's objects.

Who calls it: both platforms' executors (`rollwise.platforms.local.executor`,
`rollwise.platforms.kubernetes.executor`), once per reconcile. Each hands in an `ObjectReader`:
the SQLite store in local mode, the informers' cache in Kubernetes mode. Reading those is a
lookup in memory or in a local file, never a call that waits on a network; what the reader
answers is turned into the core's immutable snapshots (`Observed`, `ExperimentObserved`).
The pure object builders the executors share live here too, so both platforms create the same
ReplicaSets, Experiments and Services for the same actions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from rollwise.api.models import (
    AnalysisTemplate,
    AnalysisTemplateRef,
    ClusterAnalysisTemplate,
    Experiment,
    Rollout,
    RolloutAnalysis,
)
from rollwise.core import actions as act
from rollwise.core.analysis.creation import RunRequest, analysis_run_object, owner_reference
from rollwise.core.canary_metadata import (
    injected_annotation,
    metadata_patch,
    normalized,
    parse_injected,
)
from rollwise.core.experiments import (
    EXPERIMENT_NAME_ANNOTATION,
    TEMPLATE_NAME_ANNOTATION,
    ExperimentObserved,
    observed_from_raw,
)
from rollwise.core.experiments_observed import experiment_view_from_raw
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import (
    EPHEMERAL_METADATA_ANNOTATION,
    REVISION_ANNOTATION,
    SCALE_DOWN_DEADLINE_ANNOTATION,
    Observed,
    analysis_run_view_from_raw,
    replica_set_view_from_raw,
    service_selector_hash,
)
from rollwise.core.timestamps import format_time
from rollwise.core.workloads import resolve_workload

RawObject = dict[str, Any]
EXPERIMENT_OWNED_KINDS = ("ReplicaSet", "Service", "AnalysisRun")


class ObjectReader(Protocol):
    def get(self, kind: str, name: str, namespace: str = "default") -> RawObject | None: ...

    def list(
        self, kind: str, namespace: str | None = "default", *, owner: str | None = None
    ) -> list[RawObject]:
        """Objects of `kind`; with `owner`, those whose first ownerReference names it."""
        ...


def owned_by(obj: Mapping[str, Any], kind: str, name: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return any(ref.get("kind") == kind and ref.get("name") == name for ref in refs)


def owned_objects(
    reader: ObjectReader, kind: str, namespace: str, *, owner_kind: str, owner: str
) -> list[RawObject]:
    return [
        obj for obj in reader.list(kind, namespace, owner=owner) if owned_by(obj, owner_kind, owner)
    ]


# --- a Rollout ---------------------------------------------------------------------------------


def observe_rollout(
    reader: ObjectReader,
    rollout: Rollout,
    *,
    router_weight: int | None,
    router_verified: bool | None,
) -> Observed:
    """The snapshot `rollwise.core.rollouts.decide` starts from; the router fields come from
    what the platform's router executor remembers (see `rollwise.core.observed`)."""
    namespace = rollout.namespace
    services: dict[str, str | None] = {}
    for name in _service_names(rollout):
        raw = reader.get("Service", name, namespace)
        if raw is not None:
            services[name] = service_selector_hash(raw)

    def owned(kind: str) -> list[RawObject]:
        return owned_objects(reader, kind, namespace, owner_kind="Rollout", owner=rollout.name)

    # Pods matter to the core only while a restart is pending; skip reading them otherwise.
    pods = reader.list("Pod", namespace) if rollout.spec.restart_at else []
    return Observed(
        replica_sets=tuple(
            replica_set_view_from_raw(
                rs, [pod for pod in pods if owned_by(pod, "ReplicaSet", rs["metadata"]["name"])]
            )
            for rs in owned("ReplicaSet")
        ),
        analysis_runs=tuple(analysis_run_view_from_raw(run) for run in owned("AnalysisRun")),
        weight_verified=router_verified,
        current_router_weight=router_weight,
        service_selectors=services,
        missing_templates=tuple(missing_templates(reader, rollout)),
        workload=workload_of(reader, rollout),
        experiments=tuple(experiment_view_from_raw(e) for e in owned("Experiment")),
    )


def _service_names(rollout: Rollout) -> list[str]:
    names: list[str] = []
    canary = rollout.spec.strategy.canary
    if canary is not None:
        ping_pong = canary.ping_pong
        role_names = (ping_pong.ping_service, ping_pong.pong_service) if ping_pong else ()
        names += [canary.canary_service or "", canary.stable_service or "", *role_names]
    blue_green = rollout.spec.strategy.blue_green
    if blue_green is not None:
        names += [blue_green.active_service or "", blue_green.preview_service or ""]
    return [name for name in names if name]


def workload_of(reader: ObjectReader, rollout: Rollout) -> RawObject | None:
    """The object the Rollout's workloadRef names (a Deployment...), None if none."""
    ref = rollout.spec.workload_ref
    if ref is None or not ref.kind or not ref.name:
        return None
    return reader.get(ref.kind, ref.name, rollout.namespace)


def resolved(reader: ObjectReader, rollout: Rollout) -> Rollout:
    """The Rollout with the pod template and selector its workloadRef names, if it has one."""
    workload = workload_of(reader, rollout)
    if rollout.spec.template or workload is None:
        return rollout
    return resolve_workload(rollout, workload)


def template_model(
    reader: ObjectReader, ref: AnalysisTemplateRef, namespace: str
) -> AnalysisTemplate | ClusterAnalysisTemplate | None:
    if ref.cluster_scope:
        raw = reader.get("ClusterAnalysisTemplate", ref.template_name, namespace)
        return None if raw is None else ClusterAnalysisTemplate.model_validate(raw)
    raw = reader.get("AnalysisTemplate", ref.template_name, namespace)
    return None if raw is None else AnalysisTemplate.model_validate(raw)


def _template_exists(reader: ObjectReader, namespace: str) -> Callable[[bool, str], bool]:
    def exists(cluster_scope: bool, name: str) -> bool:
        kind = "ClusterAnalysisTemplate" if cluster_scope else "AnalysisTemplate"
        return reader.get(kind, name, namespace) is not None

    return exists


def missing_templates(reader: ObjectReader, rollout: Rollout) -> list[str]:
    """Names of the (Cluster)AnalysisTemplates the Rollout references that do not exist."""
    canary = rollout.spec.strategy.canary
    blue_green = rollout.spec.strategy.blue_green
    analyses: list[RolloutAnalysis] = []
    if canary is not None:
        analyses += [step.analysis for step in canary.steps or () if step.analysis is not None]
        if canary.analysis is not None:
            analyses.append(canary.analysis)
    if blue_green is not None:
        promotion = (blue_green.pre_promotion_analysis, blue_green.post_promotion_analysis)
        analyses += [analysis for analysis in promotion if analysis is not None]
    refs = [ref for analysis in analyses for ref in analysis.templates or ()]
    for step in (canary.steps or ()) if canary is not None else ():
        for experiment_analysis in (step.experiment.analyses or ()) if step.experiment else ():
            refs.append(
                AnalysisTemplateRef(
                    template_name=experiment_analysis.template_name,
                    cluster_scope=experiment_analysis.cluster_scope,
                )
            )
    exists = _template_exists(reader, rollout.namespace)
    missing: list[str] = []
    for ref in refs:
        if not exists(bool(ref.cluster_scope), ref.template_name) and (
            ref.template_name not in missing
        ):
            missing.append(ref.template_name)
    return missing


def replica_set_object(
    rollout_raw: Mapping[str, Any], rollout: Rollout, action: act.CreateReplicaSet
) -> RawObject:
    """The ReplicaSet of a new revision; `rollout` is already resolved (`resolved`)."""
    template = dict(action.template)
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    selector = dict((rollout.spec.selector and rollout.spec.selector.match_labels) or {})
    selector[HASH_LABEL] = action.pod_template_hash
    replica_set: RawObject = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": action.name,
            "namespace": rollout.namespace,
            "labels": labels,
            "annotations": {REVISION_ANNOTATION: str(action.revision)},
            "ownerReferences": [owner_reference(rollout_raw)],
        },
        "spec": {
            "replicas": action.replicas,
            "selector": {"matchLabels": selector},
            "template": template,
        },
    }
    if rollout.spec.min_ready_seconds:
        replica_set["spec"]["minReadySeconds"] = rollout.spec.min_ready_seconds
    return replica_set


# --- an Experiment -----------------------------------------------------------------------------


def observe_experiment(reader: ObjectReader, experiment: Experiment) -> ExperimentObserved:
    """What the Experiment reconciler decides from: the objects the Experiment owns."""
    namespace, name = experiment.namespace, experiment.name

    def owned(kind: str) -> list[RawObject]:
        return owned_objects(reader, kind, namespace, owner_kind="Experiment", owner=name)

    return observed_from_raw(
        experiment,
        replica_sets=owned("ReplicaSet"),
        services=owned("Service"),
        analysis_runs=owned("AnalysisRun"),
        template_exists=_template_exists(reader, namespace),
        replica_set_view=replica_set_view_from_raw,
    )


def rollout_owners(experiment_raw: Mapping[str, Any]) -> list[str]:
    """The Rollout whose experiment step made this Experiment, if any."""
    refs = (experiment_raw.get("metadata") or {}).get("ownerReferences") or ()
    return [str(ref.get("name")) for ref in refs if ref.get("kind") == "Rollout"]


def is_run_phase_event(reason: str) -> bool:
    """`AnalysisRun<Phase>`: a run of the Experiment reached a new phase."""
    return reason.startswith("AnalysisRun") and reason != "AnalysisRunTerminating"


def experiment_object(action: act.CreateExperiment, rollout_raw: Mapping[str, Any]) -> RawObject:
    """The Experiment a Rollout's experiment step creates: owned by the Rollout."""
    experiment = dict(action.experiment.items())
    metadata = dict(experiment.get("metadata") or {})
    metadata["name"] = action.name
    metadata["namespace"] = (rollout_raw.get("metadata") or {}).get("namespace") or "default"
    metadata["ownerReferences"] = [owner_reference(rollout_raw)]
    experiment["metadata"] = metadata
    return experiment


def _experiment_metadata(
    experiment_raw: Mapping[str, Any], template_name: str, extra: Mapping[str, str] | None = None
) -> RawObject:
    metadata = experiment_raw.get("metadata") or {}
    return {
        "namespace": metadata.get("namespace") or "default",
        "annotations": {
            **(extra or {}),
            EXPERIMENT_NAME_ANNOTATION: str(metadata.get("name", "")),
            TEMPLATE_NAME_ANNOTATION: template_name,
        },
        "ownerReferences": [owner_reference(experiment_raw)],
    }


def template_replica_set(
    action: act.CreateExperimentReplicaSet, experiment_raw: Mapping[str, Any]
) -> RawObject:
    """The ReplicaSet of an experiment template (Argo's newReplicaSetFromTemplate)."""
    metadata = _experiment_metadata(experiment_raw, action.template_name)
    metadata["name"] = action.name
    metadata["labels"] = {HASH_LABEL: action.pod_template_hash}
    spec: RawObject = {
        "replicas": action.replicas,
        "selector": dict(action.selector),
        "template": dict(action.template),
    }
    if action.min_ready_seconds:
        spec["minReadySeconds"] = action.min_ready_seconds
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata, "spec": spec}


def template_service(action: act.CreateService, experiment_raw: Mapping[str, Any]) -> RawObject:
    """The Service in front of an experiment template's pods."""
    template_name = action.annotations.get(TEMPLATE_NAME_ANNOTATION, "")
    metadata = _experiment_metadata(experiment_raw, template_name, action.annotations)
    metadata["name"] = action.name
    spec: RawObject = {"selector": dict(action.selector)}
    if action.ports:
        spec["ports"] = [dict(port) for port in action.ports]
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


# --- patches both executors write ------------------------------------------------------------


def scale_patch(action: act.ScaleReplicaSet) -> RawObject:
    """The merge patch of `ScaleReplicaSet`: spec.replicas and the scale-down deadline (None
    removes the annotation)."""
    deadline = action.scale_down_deadline
    return {
        "metadata": {
            "annotations": {
                SCALE_DOWN_DEADLINE_ANNOTATION: None if deadline is None else format_time(deadline)
            }
        },
        "spec": {"replicas": action.replicas},
    }


def adoption_patch(
    action: act.CreateReplicaSet, *, owner: Mapping[str, Any] | None = None
) -> RawObject:
    """The merge patch that makes an existing ReplicaSet of this hash the one `action` asks
    for (a lost status write, or a rollback to an old revision): its revision and size, and,
    with `owner`, the Rollout as its owner (one made before this controller)."""
    metadata: RawObject = {"annotations": {REVISION_ANNOTATION: str(action.revision)}}
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner)]
    return {"metadata": metadata, "spec": {"replicas": action.replicas}}


def ephemeral_metadata_patches(
    replica_set: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    metadata: Mapping[str, Mapping[str, str]] | None,
) -> tuple[RawObject, list[tuple[str, RawObject]]]:
    """`SetEphemeralMetadata` as merge patches: the ReplicaSet's (its pod template and the
    annotation recording what was injected) and, for each of its live pods that needs one,
    (pod name, patch). Only what was injected before is removed."""
    desired = normalized(metadata)
    rs_metadata = replica_set.get("metadata") or {}
    injected = parse_injected(
        (rs_metadata.get("annotations") or {}).get(EPHEMERAL_METADATA_ANNOTATION)
    )
    template_metadata = ((replica_set.get("spec") or {}).get("template") or {}).get("metadata")
    rs_patch: RawObject = {
        "metadata": {"annotations": {EPHEMERAL_METADATA_ANNOTATION: injected_annotation(desired)}},
        "spec": {
            "template": {"metadata": metadata_patch(template_metadata or {}, injected, desired)}
        },
    }
    pod_patches: list[tuple[str, RawObject]] = []
    for pod in pods:
        pod_metadata = pod.get("metadata") or {}
        if not owned_by(pod, "ReplicaSet", str(rs_metadata.get("name"))) or pod_metadata.get(
            "deletionTimestamp"
        ):
            continue
        patch = metadata_patch(pod_metadata, injected, desired)
        if patch:
            pod_patches.append((str(pod_metadata["name"]), {"metadata": patch}))
    return rs_patch, pod_patches


def analysis_run(
    reader: ObjectReader, action: RunRequest, owner: Mapping[str, Any], *, now: datetime
) -> RawObject:
    """The AnalysisRun a Rollout's or an Experiment's decision asks for, its templates read
    through `reader` (`rollwise.core.analysis.creation.analysis_run_object`)."""
    namespace = (owner.get("metadata") or {}).get("namespace") or "default"
    return analysis_run_object(
        action,
        rollout=owner,
        lookup=lambda ref: template_model(reader, ref, namespace),
        now=now,
    )
