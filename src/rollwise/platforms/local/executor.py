"""Local mode's side of a reconcile: what the core observes, and the actions it asks for, done.

Who calls it: the controller's rollout reconciler, once per reconcile of one Rollout: first
`observe()` (a snapshot built from the store and from what the routers answered), then
`execute()` for each action of the decision, in order. The store is the API server here:
ReplicaSets, Services and AnalysisRuns are objects in it; the `PodSupervisor` turns ReplicaSets
into processes and the `DataPlane` turns Services and Rollout traffic into Traefik routes.

What the executor remembers in memory is only the router's last answers (weight set, verified),
as the core's contract asks (`rollwise.core.observed`). After a restart it knows nothing, which
the core reads as "unknown": it trusts the status and asks for a verification again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollwise.api.errors import ConflictError, NotFoundError
from rollwise.api.models import (
    Experiment,
    Rollout,
)
from rollwise.core import actions as act
from rollwise.core import observing
from rollwise.core.canary_state import role_services
from rollwise.core.experiments import ExperimentObserved
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import (
    REVISION_ANNOTATION,
    Observed,
)
from rollwise.core.timestamps import Clock
from rollwise.platforms.local import experiments
from rollwise.platforms.local.dataplane import DataPlane, LocalRouter
from rollwise.platforms.local.dataplane_config import service_backends
from rollwise.platforms.local.pods import PodSupervisor
from rollwise.platforms.local.store import SqliteStore
from rollwise.routers.base import Router

MANAGED_BY_ANNOTATION = "argo-rollouts.argoproj.io/managed-by-rollouts"
SERVED_WAIT_SECONDS = 1.0
RawObject = dict[str, Any]


@dataclass
class RouterMemory:
    """What the router of one Rollout last did and answered (see `Observed`)."""

    weight: int | None = None
    verified: bool | None = None


class LocalExecutor:
    def __init__(
        self, store: SqliteStore, *, pods: PodSupervisor, dataplane: DataPlane, clock: Clock
    ) -> None:
        self.store = store
        self.clock = clock
        self.pods = pods
        self.dataplane = dataplane
        self._routers: dict[tuple[str, str], RouterMemory] = {}

    # --- observing --------------------------------------------------------------------------

    def observe(self, rollout: Rollout) -> Observed:
        memory = self._routers.get((rollout.namespace, rollout.name), RouterMemory())
        return observing.observe_rollout(
            self.store, rollout, router_weight=memory.weight, router_verified=memory.verified
        )

    # --- routing ----------------------------------------------------------------------------

    def router(self, rollout: Rollout) -> Router | None:
        """The local Traefik router of a traffic-routed Rollout (any `trafficRouting` kind is
        served by the local proxy); None for a basic canary, whose split follows pod counts."""
        canary = rollout.spec.strategy.canary
        if canary is None or canary.traffic_routing is None:
            return None
        # The Services in the stable and canary roles as the status read by the decision
        # has them (pingPong swaps them at each promotion).
        status = rollout.status.canary if rollout.status is not None else None
        stable, canary_service = role_services(canary, status.stable_ping_pong if status else None)
        if not (stable and canary_service):
            return None
        routing = canary.traffic_routing
        return LocalRouter(
            self.dataplane,
            namespace=rollout.namespace,
            rollout=rollout.name,
            stable_service=stable,
            canary_service=canary_service,
            max_weight=routing.max_traffic_weight or 100,
            managed_routes=[route.name for route in routing.managed_routes or ()],
        )

    def forget(self, namespace: str, name: str) -> None:
        self._routers.pop((namespace, name), None)

    async def refresh_endpoints(self) -> bool:
        """Point every Traefik service at the ready pods its Service selects now."""
        services = self.store.list("Service", None)
        pods = self.store.list("Pod", None)
        return await self.dataplane.update_services(service_backends(services, pods))

    async def _until_served(self) -> None:
        """Wait (at most `SERVED_WAIT_SECONDS`: Traefik may be down) until Traefik serves the
        endpoints just written."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SERVED_WAIT_SECONDS):
                while not await self.dataplane.verify():  # noqa: ASYNC110 - nothing to wait on
                    await asyncio.sleep(0.02)

    # --- acting -----------------------------------------------------------------------------

    async def execute(self, rollout_raw: RawObject, rollout: Rollout, action: act.Action) -> None:
        namespace = rollout.namespace
        memory = self._routers.setdefault((namespace, rollout.name), RouterMemory())
        match action:
            case act.CreateReplicaSet():
                self._create_replica_set(rollout_raw, rollout, action)
            case act.ScaleReplicaSet(name=name):
                self.store.patch("ReplicaSet", name, namespace, merge=observing.scale_patch(action))
            case act.SetReplicaSetRevision(name=name, revision=revision):
                self.store.patch(
                    "ReplicaSet",
                    name,
                    namespace,
                    merge={"metadata": {"annotations": {REVISION_ANNOTATION: str(revision)}}},
                )
            case act.DeleteReplicaSet(name=name):
                self.store.delete("ReplicaSet", name, namespace)
            case act.RestartPods(replica_sets=names, before=before, max_unavailable=most):
                for name in names:
                    await self.pods.restart_pods(
                        name, before, max_unavailable=most, namespace=namespace
                    )
            case act.SwitchServiceSelector(service=service, pod_template_hash=pod_hash):
                self.store.patch(
                    "Service",
                    service,
                    namespace,
                    merge={
                        "metadata": {"annotations": {MANAGED_BY_ANNOTATION: rollout.name}},
                        "spec": {"selector": {HASH_LABEL: pod_hash}},
                    },
                )
                if await self.refresh_endpoints():
                    # The status written after this says which pods the Service sends to
                    # (an active switch): not before Traefik does (~0.1 s after the file).
                    await self._until_served()
            case act.SetWeight(weight=weight, additional=additional):
                router = self.router(rollout)
                if router is not None:
                    await router.set_weight(weight, additional)
                memory.weight, memory.verified = weight, None
            case act.VerifyWeight(weight=weight, additional=additional):
                router = self.router(rollout)
                memory.verified = (
                    None if router is None else await router.verify_weight(weight, additional)
                )
            case act.SetHeaderRoute(route=route):
                router = self.router(rollout)
                if router is not None:
                    await router.set_header_route(route)
            case act.SetMirrorRoute(route=route):
                router = self.router(rollout)
                if router is not None:
                    await router.set_mirror_route(route)
            case act.RemoveManagedRoutes():
                router = self.router(rollout)
                if router is not None:
                    await router.remove_managed_routes()
            case act.CreateAnalysisRun():
                run = observing.analysis_run(self.store, action, rollout_raw, now=self.clock.now())
                # An existing run was created by a reconcile whose status write was lost.
                with contextlib.suppress(ConflictError):
                    self.store.create(run)
            case act.TerminateAnalysisRun(name=name):
                self.store.patch(
                    "AnalysisRun", name, namespace, merge={"spec": {"terminate": True}}
                )
            case act.DeleteAnalysisRun(name=name):
                self.store.delete("AnalysisRun", name, namespace)
            case act.SetEphemeralMetadata(replica_set=name, metadata=metadata):
                self._set_ephemeral_metadata(name, namespace, metadata)
            case act.ScaleWorkload(kind=kind, name=name, replicas=replicas):
                self.store.patch(kind, name, namespace, merge={"spec": {"replicas": replicas}})
            case act.CreateExperiment():
                # An existing one was created by a reconcile whose status write was lost.
                with contextlib.suppress(ConflictError):
                    self.store.create(observing.experiment_object(action, rollout_raw))
            case act.TerminateExperiment(name=name):
                with contextlib.suppress(NotFoundError):
                    self.store.patch(
                        "Experiment", name, namespace, merge={"spec": {"terminate": True}}
                    )
            case act.DeleteExperiment(name=name):
                experiments.delete_experiment(self.store, namespace, name)
            case act.EmitEvent(type=event_type, reason=reason, message=message):
                self.store.record_event(
                    kind="Rollout",
                    name=rollout.name,
                    namespace=namespace,
                    type=event_type,
                    reason=reason,
                    message=message,
                    at=self.clock.now(),
                )

    def observe_experiment(self, experiment: Experiment) -> ExperimentObserved:
        """What an Experiment's decision starts from: the objects it owns."""
        return observing.observe_experiment(self.store, experiment)

    async def execute_for_experiment(self, experiment_raw: RawObject, action: act.Action) -> None:
        """Execute one action of an Experiment's decision (`rollwise.core.experiments`)."""
        metadata = experiment_raw.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        match action:
            case act.CreateExperimentReplicaSet():
                # An existing one was created by a reconcile whose status write was lost.
                with contextlib.suppress(ConflictError):
                    self.store.create(observing.template_replica_set(action, experiment_raw))
            case act.ScaleReplicaSet(name=name):
                self.store.patch("ReplicaSet", name, namespace, merge=observing.scale_patch(action))
            case act.CreateService():
                with contextlib.suppress(ConflictError):
                    self.store.create(observing.template_service(action, experiment_raw))
                await self.refresh_endpoints()
            case act.DeleteService(name=name):
                self.store.delete("Service", name, namespace)
                await self.refresh_endpoints()
            case act.CreateExperimentAnalysisRun():
                run = observing.analysis_run(
                    self.store, action, experiment_raw, now=self.clock.now()
                )
                with contextlib.suppress(ConflictError):
                    self.store.create(run)
            case act.TerminateAnalysisRun(name=name):
                with contextlib.suppress(NotFoundError):
                    self.store.patch(
                        "AnalysisRun", name, namespace, merge={"spec": {"terminate": True}}
                    )
            case act.EmitEvent(type=event_type, reason=reason, message=message):
                self.store.record_event(
                    kind="Experiment",
                    name=str(metadata.get("name", "")),
                    namespace=namespace,
                    type=event_type,
                    reason=reason,
                    message=message,
                    at=self.clock.now(),
                )
                for rollout_name in observing.rollout_owners(experiment_raw):
                    if observing.is_run_phase_event(reason):
                        # Argo (#4009) repeats a run's new phase on the Rollout of an experiment
                        # step, as a Warning, so notifications subscribed there hear of it.
                        self.store.record_event(
                            kind="Rollout",
                            name=rollout_name,
                            namespace=namespace,
                            type="Warning",
                            reason=reason,
                            message=message,
                            at=self.clock.now(),
                        )

    def _set_ephemeral_metadata(
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
        with self.store.transaction():
            self.store.patch("ReplicaSet", name, namespace, merge=rs_patch)
            for pod_name, pod_patch in pod_patches:
                with contextlib.suppress(NotFoundError):
                    self.store.patch("Pod", pod_name, namespace, merge=pod_patch)

    def _create_replica_set(
        self, rollout_raw: RawObject, rollout: Rollout, action: act.CreateReplicaSet
    ) -> None:
        replica_set = observing.replica_set_object(
            rollout_raw, observing.resolved(self.store, rollout), action
        )
        try:
            self.store.create(replica_set)
        except ConflictError:
            # A ReplicaSet of this hash exists (a reconcile whose status write was lost, or a
            # rollback to an old revision): adopt it at the size and revision asked for.
            self.store.patch(
                "ReplicaSet", action.name, rollout.namespace, merge=observing.adoption_patch(action)
            )


def rollout_keys_for_change(kind: str, obj: Mapping[str, Any] | None) -> Sequence[str]:
    """The work-queue keys (`Rollout/<namespace>/<name>`) of the Rollouts to reconcile when an
    object of `kind` changed (its owner references)."""
    if obj is None:
        return ()
    metadata = obj.get("metadata", {})
    namespace = metadata.get("namespace") or "default"
    return [
        f"Rollout/{namespace}/{ref.get('name')}"
        for ref in metadata.get("ownerReferences") or ()
        if ref.get("kind") == "Rollout"
    ]


def owner_keys_for_change(kind: str, obj: Mapping[str, Any] | None) -> Sequence[str]:
    """The work-queue keys of the Rollouts and Experiments to reconcile when an object of
    `kind` changed: its owners of those kinds (an Experiment's owner is a Rollout, a template
    ReplicaSet's or AnalysisRun's an Experiment)."""
    if obj is None:
        return ()
    metadata = obj.get("metadata", {})
    namespace = metadata.get("namespace") or "default"
    return [
        f"{ref.get('kind')}/{namespace}/{ref.get('name')}"
        for ref in metadata.get("ownerReferences") or ()
        if ref.get("kind") in ("Rollout", "Experiment")
    ]


def rollout_keys_for_workload(
    store: SqliteStore, kind: str, namespace: str, name: str
) -> Sequence[str]:
    """The work-queue keys of the Rollouts whose `workloadRef` names this object (a Deployment
    whose pod template changed is a new revision for them)."""
    keys: list[str] = []
    for rollout in store.list("Rollout", namespace):
        ref = (rollout.get("spec") or {}).get("workloadRef") or {}
        if ref.get("kind") == kind and ref.get("name") == name:
            keys.append(f"Rollout/{namespace}/{rollout['metadata']['name']}")
    return keys
