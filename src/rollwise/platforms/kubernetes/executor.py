"""Kubernetes mode's side of a reconcile: observe from the cache, act through the API server.

Who calls it: the reconcilers of `rollwise.controller` (the same ones local mode runs), through
the Kubernetes controller. `observe()` reads the informers' cache (`KubeStore`) with the
observation code both platforms share (`rollwise.core.observing`); `execute()` turns each action
of a decision into requests to the API server: ReplicaSets created with Argo's annotations and
owner references and scaled with merge patches, Services' selectors switched, AnalysisRuns and
Experiments created/terminated/deleted (Kubernetes' garbage collector removes what they own),
Events recorded, ephemeral metadata patched onto pods, pods evicted for `restartAt`, and the
traffic actions passed to the cluster routers (`rollwise.routers`), built per reconcile by the
`RouterFactory` the controller gives.

As in local mode, what the executor remembers is only the router's last answers; after a
restart it knows nothing, and the core reads that as "unknown" (it asks for a verification).
Creating an object that exists is not an error (a reconcile whose status write was lost made it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollwise.api.errors import ConflictError, NotFoundError, TransientError, UserError
from rollwise.api.models import Experiment, Rollout
from rollwise.core import actions as act
from rollwise.core import observing
from rollwise.core.experiments import ExperimentObserved
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import (
    REVISION_ANNOTATION,
    Observed,
)
from rollwise.core.timestamps import Clock, parse_time_or_none
from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.platforms.kubernetes.store import (
    ARGO,
    INSTANCE_ID_LABEL,
    KubeStore,
    event_object,
)
from rollwise.routers.base import Router

log = logging.getLogger("rollwise.controller")

MANAGED_BY_ANNOTATION = "argo-rollouts.argoproj.io/managed-by-rollouts"
RawObject = dict[str, Any]
RouterFactory = Callable[[RawObject, Rollout], Router | None]
"""Builds the cluster router of a Rollout for one reconcile (None: no traffic routing). It
raises `UserError` for a router rollwise does not support; the reconcile then fails clearly."""


@dataclass
class RouterMemory:
    weight: int | None = None
    verified: bool | None = None


class KubeExecutor:
    def __init__(
        self,
        store: KubeStore,
        client: KubeClient,
        *,
        clock: Clock,
        routers: RouterFactory,
        instance_id: str | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.clock = clock
        self.routers = routers
        self.instance_id = instance_id
        self._routers: dict[tuple[str, str], RouterMemory] = {}

    # --- observing --------------------------------------------------------------------------

    def observe(self, rollout: Rollout) -> Observed:
        memory = self._routers.get((rollout.namespace, rollout.name), RouterMemory())
        return observing.observe_rollout(
            self.store, rollout, router_weight=memory.weight, router_verified=memory.verified
        )

    def observe_experiment(self, experiment: Experiment) -> ExperimentObserved:
        return observing.observe_experiment(self.store, experiment)

    def forget(self, namespace: str, name: str) -> None:
        self._routers.pop((namespace, name), None)

    # --- acting on a Rollout's decision -------------------------------------------------------

    async def execute(self, rollout_raw: RawObject, rollout: Rollout, action: act.Action) -> None:
        namespace = rollout.namespace
        memory = self._routers.setdefault((namespace, rollout.name), RouterMemory())
        match action:
            case act.CreateReplicaSet():
                await self._create_replica_set(rollout_raw, rollout, action)
            case act.ScaleReplicaSet():
                await self._scale_replica_set(action, namespace)
            case act.SetReplicaSetRevision(name=name, revision=revision):
                await self._patch(
                    "ReplicaSet",
                    name,
                    namespace,
                    {"metadata": {"annotations": {REVISION_ANNOTATION: str(revision)}}},
                )
            case act.DeleteReplicaSet(name=name):
                await self.client.delete("apps/v1", "ReplicaSet", name, namespace)
            case act.RestartPods(replica_sets=names, before=before, max_unavailable=most):
                for name in names:
                    await self._restart_pods(name, namespace, before=before, max_unavailable=most)
            case act.SwitchServiceSelector(service=service, pod_template_hash=pod_hash):
                await self._patch(
                    "Service",
                    service,
                    namespace,
                    {
                        "metadata": {"annotations": {MANAGED_BY_ANNOTATION: rollout.name}},
                        "spec": {"selector": {HASH_LABEL: pod_hash}},
                    },
                )
            case act.SetWeight(weight=weight, canary_hash=canary, stable_hash=stable):
                router = self.routers(rollout_raw, rollout)
                if router is not None:
                    await router.update_hash(canary, stable, action.additional)
                    await router.set_weight(weight, action.additional)
                memory.weight, memory.verified = weight, None
            case act.VerifyWeight(weight=weight, additional=additional):
                router = self.routers(rollout_raw, rollout)
                memory.verified = (
                    None if router is None else await router.verify_weight(weight, additional)
                )
            case act.SetHeaderRoute(route=route):
                router = self.routers(rollout_raw, rollout)
                if router is not None:
                    await router.set_header_route(route)
            case act.SetMirrorRoute(route=route):
                router = self.routers(rollout_raw, rollout)
                if router is not None:
                    await router.set_mirror_route(route)
            case act.RemoveManagedRoutes():
                router = self.routers(rollout_raw, rollout)
                if router is not None:
                    await router.remove_managed_routes()
            case act.CreateAnalysisRun():
                run = observing.analysis_run(self.store, action, rollout_raw, now=self.clock.now())
                await self._create(run)
            case act.TerminateAnalysisRun(name=name):
                with contextlib.suppress(NotFoundError):
                    await self._patch("AnalysisRun", name, namespace, {"spec": {"terminate": True}})
            case act.DeleteAnalysisRun(name=name):
                await self.client.delete(ARGO, "AnalysisRun", name, namespace)
            case act.SetEphemeralMetadata(replica_set=name, metadata=metadata):
                await self._set_ephemeral_metadata(name, namespace, metadata)
            case act.ScaleWorkload(kind=kind, name=name, replicas=replicas):
                ref = rollout.spec.workload_ref
                api_version = (ref.api_version if ref else None) or "apps/v1"
                await self.client.merge_patch(
                    api_version, kind, name, namespace, {"spec": {"replicas": replicas}}
                )
            case act.CreateExperiment():
                await self._create(observing.experiment_object(action, rollout_raw))
            case act.TerminateExperiment(name=name):
                with contextlib.suppress(NotFoundError):
                    await self._patch("Experiment", name, namespace, {"spec": {"terminate": True}})
            case act.DeleteExperiment(name=name):
                # Kubernetes' garbage collector removes its ReplicaSets, Services and runs.
                await self.client.delete(ARGO, "Experiment", name, namespace)
            case act.EmitEvent(type=event_type, reason=reason, message=message):
                await self._record_event(rollout_raw, event_type, reason, message)

    # --- acting on an Experiment's decision ---------------------------------------------------

    async def execute_for_experiment(self, experiment_raw: RawObject, action: act.Action) -> None:
        metadata = experiment_raw.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        match action:
            case act.CreateExperimentReplicaSet():
                await self._create(observing.template_replica_set(action, experiment_raw))
            case act.ScaleReplicaSet():
                await self._scale_replica_set(action, namespace)
            case act.CreateService():
                await self._create(observing.template_service(action, experiment_raw))
            case act.DeleteService(name=name):
                await self.client.delete("v1", "Service", name, namespace)
            case act.CreateExperimentAnalysisRun():
                run = observing.analysis_run(
                    self.store, action, experiment_raw, now=self.clock.now()
                )
                await self._create(run)
            case act.TerminateAnalysisRun(name=name):
                with contextlib.suppress(NotFoundError):
                    await self._patch("AnalysisRun", name, namespace, {"spec": {"terminate": True}})
            case act.EmitEvent(type=event_type, reason=reason, message=message):
                await self._record_event(experiment_raw, event_type, reason, message)
                for rollout_name in observing.rollout_owners(experiment_raw):
                    rollout = self.store.get("Rollout", rollout_name, namespace)
                    if rollout is not None and observing.is_run_phase_event(reason):
                        # Argo (#4009) repeats a run's new phase on the Rollout of an experiment
                        # step, as a Warning, so notifications subscribed there hear of it.
                        await self._record_event(rollout, "Warning", reason, message)

    # --- helpers ------------------------------------------------------------------------------

    async def _patch(self, kind: str, name: str, namespace: str, patch: RawObject) -> RawObject:
        api_version = ARGO if kind in ("AnalysisRun", "Experiment", "Rollout") else None
        if api_version is None:
            api_version = {"ReplicaSet": "apps/v1", "Pod": "v1", "Service": "v1"}[kind]
        return await self.client.merge_patch(api_version, kind, name, namespace, patch)

    async def _create(self, obj: RawObject) -> None:
        """Create `obj` (its status too, through the status subresource, if it carries one:
        an AnalysisRun that cannot be made from its templates is created in phase Error).
        An object that exists was created by a reconcile whose status write was lost."""
        if self.instance_id and obj.get("apiVersion") == ARGO:
            labels = obj.setdefault("metadata", {}).setdefault("labels", {})
            labels[INSTANCE_ID_LABEL] = self.instance_id
        status = obj.get("status")
        try:
            created = await self.client.create(obj)
        except ConflictError:
            return
        if status and created.get("status") != status:
            await self.store.write_status({**created, "status": status})

    async def _scale_replica_set(self, action: act.ScaleReplicaSet, namespace: str) -> None:
        await self._patch("ReplicaSet", action.name, namespace, observing.scale_patch(action))

    async def _create_replica_set(
        self, rollout_raw: RawObject, rollout: Rollout, action: act.CreateReplicaSet
    ) -> None:
        replica_set = observing.replica_set_object(
            rollout_raw, observing.resolved(self.store, rollout), action
        )
        try:
            await self.client.create(replica_set)
        except ConflictError:
            # A ReplicaSet of this hash exists (a lost status write, a rollback to an old
            # revision, or one made before this controller): adopt it at the size and revision
            # asked for, with the Rollout as its owner.
            await self._patch(
                "ReplicaSet",
                action.name,
                rollout.namespace,
                observing.adoption_patch(action, owner=rollout_raw),
            )

    async def _restart_pods(
        self, name: str, namespace: str, *, before: datetime, max_unavailable: int
    ) -> None:
        """Evict (delete) pods of ReplicaSet `name` created before `before`, oldest first, at
        most `max_unavailable` unavailable at a time: the core asks again until none is left."""
        replica_set = self.store.get("ReplicaSet", name, namespace)
        if replica_set is None:
            return
        pods = [
            pod
            for pod in self.store.list("Pod", namespace, owner=name)
            if observing.owned_by(pod, "ReplicaSet", name)
            and not pod["metadata"].get("deletionTimestamp")
        ]
        created = {pod["metadata"]["name"]: _created(pod) for pod in pods}
        stale = sorted(
            (pod for pod in pods if (created[pod["metadata"]["name"]] or before) < before),
            key=lambda pod: (created[pod["metadata"]["name"]] or before, pod["metadata"]["name"]),
        )
        wanted = int((replica_set.get("spec") or {}).get("replicas") or 0)
        available = int((replica_set.get("status") or {}).get("availableReplicas") or 0)
        budget = max(max(max_unavailable, 1) - max(wanted - available, 0), 0)
        for pod in stale[:budget]:
            await self.client.delete("v1", "Pod", pod["metadata"]["name"], namespace)

    async def _set_ephemeral_metadata(
        self, name: str, namespace: str, metadata: Mapping[str, Mapping[str, str]] | None
    ) -> None:
        """Role metadata into a ReplicaSet's pod template and onto its live pods, removing only
        what was injected before (its ephemeral-metadata annotation says what)."""
        replica_set = self.store.get("ReplicaSet", name, namespace)
        if replica_set is None:
            return
        rs_patch, pod_patches = observing.ephemeral_metadata_patches(
            replica_set, self.store.list("Pod", namespace, owner=name), metadata
        )
        await self._patch("ReplicaSet", name, namespace, rs_patch)
        for pod_name, pod_patch in pod_patches:
            with contextlib.suppress(NotFoundError):
                await self._patch("Pod", pod_name, namespace, pod_patch)

    async def _record_event(
        self, involved: RawObject, event_type: str, reason: str, message: str
    ) -> None:
        """Record an Event, best effort as Argo's recorder: an API server that refuses or drops
        it never fails the reconcile, and the controller's own record (metrics, notifications)
        keeps it either way. A repeat of the same event patches the count and lastTimestamp of
        the one created before (`kubectl describe` shows "x3 over 2m"), as client-go does."""
        event = event_object(
            involved, type=event_type, reason=reason, message=message, at=self.clock.now()
        )
        kept = self.store.remember_event(event)
        metadata = kept.setdefault("metadata", {})
        try:
            if int(kept.get("count") or 1) > 1 and metadata.get("name"):
                with contextlib.suppress(NotFoundError):
                    await self.client.merge_patch(
                        "v1",
                        "Event",
                        metadata["name"],
                        metadata.get("namespace"),
                        {"count": kept["count"], "lastTimestamp": kept.get("lastTimestamp")},
                    )
                    return
            created = await self.client.create({**event, "count": kept.get("count", 1)})
            metadata["name"] = (created.get("metadata") or {}).get("name")
        except (TransientError, UserError) as error:
            log.warning("event %s about %s not recorded: %s", reason, _name(involved), error)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _created(pod: Mapping[str, Any]) -> datetime | None:
    return parse_time_or_none((pod.get("metadata") or {}).get("creationTimestamp"))
