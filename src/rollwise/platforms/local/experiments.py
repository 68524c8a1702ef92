"""Experiments in the local store: the objects an Experiment owns, built and removed.

Who calls it: the local executor (`rollwise.platforms.local.executor`), which executes the
experiment actions of both decisions - a Rollout's experiment step (create, terminate, delete an
Experiment) and the Experiment controller's (template ReplicaSets, Services and AnalysisRuns) -
and the Experiment reconciler (`rollwise.controller.experiments`), which observes an Experiment
through `observe_experiment`. Objects are raw Kubernetes-shaped dicts; the PodSupervisor runs the
template ReplicaSets' pods like any other, and a template's Service becomes a Traefik service.

A deleted Experiment takes what it owns with it here (Kubernetes' garbage collector does that
in a cluster): its ReplicaSets (whose pods then stop), Services and AnalysisRuns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rollwise.api.models import (
    AnalysisTemplate,
    AnalysisTemplateRef,
    ClusterAnalysisTemplate,
    Experiment,
)
from rollwise.core import actions as act
from rollwise.core.analysis.creation import owner_reference
from rollwise.core.experiments import (
    EXPERIMENT_NAME_ANNOTATION,
    TEMPLATE_NAME_ANNOTATION,
    ExperimentObserved,
    observed_from_raw,
)
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import replica_set_view_from_raw
from rollwise.platforms.local.store import SqliteStore

RawObject = dict[str, Any]
OWNED_KINDS = ("ReplicaSet", "Service", "AnalysisRun")


def owned_by(obj: Mapping[str, Any], kind: str, name: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return any(ref.get("kind") == kind and ref.get("name") == name for ref in refs)


def owned_objects(store: SqliteStore, kind: str, namespace: str, owner: str) -> list[RawObject]:
    """The objects of `kind` whose controller is Experiment `owner`."""
    return [
        obj
        for obj in store.list(kind, namespace, owner=owner)
        if owned_by(obj, "Experiment", owner)
    ]


def template_exists(store: SqliteStore, namespace: str) -> Callable[[bool, str], bool]:
    def exists(cluster_scope: bool, name: str) -> bool:
        kind = "ClusterAnalysisTemplate" if cluster_scope else "AnalysisTemplate"
        return store.get(kind, name, namespace) is not None

    return exists


def observe_experiment(store: SqliteStore, experiment: Experiment) -> ExperimentObserved:
    """What the Experiment reconciler decides from: the objects the Experiment owns."""
    namespace, name = experiment.namespace, experiment.name
    return observed_from_raw(
        experiment,
        replica_sets=owned_objects(store, "ReplicaSet", namespace, name),
        services=owned_objects(store, "Service", namespace, name),
        analysis_runs=owned_objects(store, "AnalysisRun", namespace, name),
        template_exists=template_exists(store, namespace),
        replica_set_view=replica_set_view_from_raw,
    )


def template_model(
    store: SqliteStore, ref: AnalysisTemplateRef, namespace: str
) -> AnalysisTemplate | ClusterAnalysisTemplate | None:
    if ref.cluster_scope:
        raw = store.get("ClusterAnalysisTemplate", ref.template_name, namespace)
        return None if raw is None else ClusterAnalysisTemplate.model_validate(raw)
    raw = store.get("AnalysisTemplate", ref.template_name, namespace)
    return None if raw is None else AnalysisTemplate.model_validate(raw)


def rollout_owners(experiment_raw: Mapping[str, Any]) -> list[str]:
    """The Rollout whose experiment step made this Experiment, if any."""
    refs = (experiment_raw.get("metadata") or {}).get("ownerReferences") or ()
    return [str(ref.get("name")) for ref in refs if ref.get("kind") == "Rollout"]


def is_run_phase_event(reason: str) -> bool:
    """`AnalysisRun<Phase>`: a run of the Experiment reached a new phase."""
    return reason.startswith("AnalysisRun") and reason != "AnalysisRunTerminating"


# --- objects -------------------------------------------------------------------------------------


def experiment_object(action: act.CreateExperiment, rollout_raw: Mapping[str, Any]) -> RawObject:
    """The Experiment a Rollout's experiment step creates: owned by the Rollout."""
    experiment = {key: value for key, value in action.experiment.items()}
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


def delete_experiment(store: SqliteStore, namespace: str, name: str) -> None:
    """Delete an Experiment and everything it owns (what Kubernetes' GC would do)."""
    with store.transaction():
        for kind in OWNED_KINDS:
            for obj in owned_objects(store, kind, namespace, name):
                store.delete(kind, obj["metadata"]["name"], namespace)
        store.delete("Experiment", name, namespace)
