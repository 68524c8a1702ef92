"""The Kubernetes controller: `rollwise controller --kubernetes`.

Theory of operation. One asyncio loop, as in local mode, but the API server is the store:
- `KubeStore`'s informers list+watch the kinds a rollout touches (filtered by label and, with
  `--namespaced`, by namespace) and call `_changed` for every change; `_changed` queues the keys
  to reconcile (the object itself, the Rollout or Experiment owning it, the Rollouts naming a
  Service, Deployment or template);
- the same reconcilers as local mode (`RolloutReconciler`, `AnalysisRunReconciler`,
  `ExperimentReconciler`) decide through the core and act through `KubeExecutor` (requests to
  the API server, the cluster routers of `rollwise.routers`), at most `workers[kind]` at a time;
- with leader election (the default, as Argo's), only the replica holding the Lease reconciles;
  the others keep their caches warm and take over when the lease expires. A leader that cannot
  renew its lease within the renew deadline stops acting and exits, as client-go's does;
- notifications (`rollwise.platforms.kubernetes.notifications`) follow the events this
  controller records, with Argo's ConfigMap and Secret, in a task of their own;
- `/metrics` and `/healthz` are served on the metrics and health ports (all interfaces, as in a
  pod); a graceful stop (SIGTERM) stops taking keys, lets the writes in flight finish, releases
  the lease and exits.

Kill -9 at any moment is safe: state is only what the API server holds; a new leader lists
everything again and the core decides from the stored status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollwise.api.models import Rollout
from rollwise.controller.analysis import AnalysisRunReconciler
from rollwise.controller.experiments import ExperimentReconciler
from rollwise.controller.http import ControllerHTTPServer
from rollwise.controller.loop import ReconcileLoop, object_key
from rollwise.controller.metrics import ControllerMetrics
from rollwise.controller.reconciler import RolloutReconciler
from rollwise.core.analysis.creation import owner_reference
from rollwise.core.timestamps import Clock, SystemClock
from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.platforms.kubernetes.executor import KubeExecutor, RouterFactory
from rollwise.platforms.kubernetes.jobs import KubeJobRunner
from rollwise.platforms.kubernetes.leader import LeaderElector, LeadershipLost, LeaseTimings
from rollwise.platforms.kubernetes.store import KubeStore
from rollwise.providers.base import ProviderServices
from rollwise.providers.http import shared_session
from rollwise.routers.base import Router
from rollwise.routers.registry import ClusterRouterOptions, cluster_router

log = logging.getLogger("rollwise.controller")
RawObject = dict[str, Any]

TICK_SECONDS = 1.0
STALLED_LOOP_SECONDS = 30.0
SHUTDOWN_GRACE_SECONDS = 20.0
LEASE_NAME = "rollwise-controller-lock"


@dataclass(frozen=True)
class KubeOptions:
    """The flags of `rollwise controller --kubernetes` (Argo's names and defaults)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespaced: bool = False
    namespace: str | None = None
    """The namespace watched with `namespaced` and the Lease's; default: the pod's
    (`POD_NAMESPACE`) or the kubeconfig context's."""
    instance_id: str | None = None
    leader_elect: bool = True
    lease: LeaseTimings = field(default_factory=LeaseTimings)
    qps: float = 40.0
    burst: int = 80
    rollout_threads: int = 10
    experiment_threads: int = 10
    analysis_threads: int = 30
    metrics_port: int = 8090
    healthz_port: int = 8080
    host: str = "0.0.0.0"
    routers: ClusterRouterOptions = field(default_factory=ClusterRouterOptions)


class KubeController:
    def __init__(
        self, client: KubeClient, options: KubeOptions, *, clock: Clock | None = None
    ) -> None:
        self.client = client
        self.options = options
        self.clock = clock or SystemClock()
        self.namespace = options.namespace or os.environ.get("POD_NAMESPACE") or client.namespace
        self.store = KubeStore(
            client,
            namespace=self.namespace if options.namespaced else None,
            instance_id=options.instance_id,
            on_change=self._changed,
        )
        self.executor = KubeExecutor(
            self.store,
            client,
            clock=self.clock,
            routers=self._router_factory(),
            instance_id=options.instance_id,
        )
        services = ProviderServices(job_runner=KubeJobRunner(client))
        self.metrics = ControllerMetrics(self.store, clock=self.clock, mode="kubernetes")
        self.loop = ReconcileLoop(
            {
                "Rollout": RolloutReconciler(self.store, self.executor, clock=self.clock),
                "AnalysisRun": AnalysisRunReconciler(
                    self.store, clock=self.clock, services=services
                ),
                "Experiment": ExperimentReconciler(self.store, self.executor, clock=self.clock),
            },
            metrics=self.metrics,
            workers={
                "Rollout": options.rollout_threads,
                "AnalysisRun": options.analysis_threads,
                "Experiment": options.experiment_threads,
            },
        )
        # Imported here: jinja2 and apprise load only when a controller is built.
        from rollwise.platforms.kubernetes.notifications import kube_notifications

        self.notifications = kube_notifications(
            self.store,
            client,
            namespace=self.namespace,
            clock=self.clock,
            metrics=self.metrics,
            busy=lambda namespace, name: self.loop.busy(object_key("Rollout", namespace, name)),
        )
        identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        self.elector = (
            LeaderElector(
                client,
                name=LEASE_NAME
                if not options.instance_id
                else f"{LEASE_NAME}-{options.instance_id}",
                namespace=self.namespace,
                identity=identity,
                timings=options.lease,
            )
            if options.leader_elect
            else None
        )
        self.leading = asyncio.Event()
        self._stopping = asyncio.Event()
        self._turned = time.monotonic()
        self.http = [
            ControllerHTTPServer(self.metrics, port=port, host=options.host, healthy=self._healthy)
            for port in dict.fromkeys((options.metrics_port, options.healthz_port))
            if port
        ]

    def _router_factory(self) -> RouterFactory:
        options = self.options.routers

        def build(rollout_raw: RawObject, rollout: Rollout) -> Router | None:
            return cluster_router(
                rollout, owner_reference(rollout_raw), self.client, options=options
            )

        return build

    def _healthy(self) -> bool:
        # Only the leader's loop turns: a standby (or a replica still listing) waiting longer
        # than that is healthy, or its liveness probe would restart it again and again.
        if not self.leading.is_set():
            return True
        return time.monotonic() - self._turned < STALLED_LOOP_SECONDS

    def stop(self) -> None:
        self._stopping.set()
        self.loop.wake.set()

    # --- watching ---------------------------------------------------------------------------

    def _changed(self, kind: str, old: RawObject | None, new: RawObject | None) -> None:
        """Queue what must be reconciled because an object of `kind` changed."""
        obj = new if new is not None else old
        if obj is None:
            return
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        name = metadata.get("name", "")
        if kind in self.loop.reconcilers:
            self.loop.add(object_key(kind, namespace, name))
        if kind in ("ReplicaSet", "AnalysisRun", "Experiment"):
            self._queue_owners(obj)
        elif kind == "Pod":
            for ref in metadata.get("ownerReferences") or ():
                if ref.get("kind") == "ReplicaSet":
                    replica_set = self.store.get("ReplicaSet", ref.get("name", ""), namespace)
                    if replica_set is not None:
                        self._queue_owners(replica_set)
        elif kind in ("Service", "Deployment", "AnalysisTemplate"):
            for rollout in self.store.list("Rollout", namespace):
                if _names(rollout, kind, name):
                    self.loop.add(object_key("Rollout", namespace, rollout["metadata"]["name"]))
        elif kind == "ClusterAnalysisTemplate":
            for rollout in self.store.list("Rollout", None):
                if _names(rollout, kind, name):
                    self.loop.add(key_of(rollout))

    def _queue_owners(self, obj: RawObject) -> None:
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        for ref in metadata.get("ownerReferences") or ():
            if ref.get("kind") in ("Rollout", "Experiment"):
                self.loop.add(object_key(ref["kind"], namespace, ref.get("name", "")))

    # --- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()` (or a lost lease, which raises `LeadershipLost`)."""
        async with shared_session():  # one connection pool for every metric query
            await self._run()

    async def _run(self) -> None:
        for server in self.http:
            await server.start()
            log.info("controller metrics and health at %s", server.url)
        informers = asyncio.create_task(self.store.run(), name="informers")
        # Beside the loop: a slow or dead notification service never holds a rollout.
        notifications = asyncio.create_task(self.notifications.run(), name="notifications")
        holding: asyncio.Task[None] | None = None
        try:
            await self._until_stopped(self.store.wait_synced())
            if self.elector is not None and not self._stopping.is_set():
                await self._until_stopped(self.elector.acquire())
                holding = asyncio.create_task(self.elector.hold(), name="lease")
            if self._stopping.is_set():
                return
            self.leading.set()
            for kind in self.loop.reconcilers:
                for obj in self.store.list(kind, None):
                    self.loop.add(key_of(obj))
            log.info(
                "reconciling (namespace %s)", self.namespace if self.options.namespaced else "all"
            )
            while not self._stopping.is_set():
                self._turned = time.monotonic()
                if holding is not None and holding.done():
                    holding.result()  # raises LeadershipLost
                self.loop.reconcile_due(time.monotonic())
                await self.loop.wait(TICK_SECONDS)
        finally:
            # Graceful: finish the writes in flight, then give the lease up.
            await self.loop.finish(grace_seconds=SHUTDOWN_GRACE_SECONDS)
            for task in (holding, notifications, informers):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, LeadershipLost):
                        await task
            if self.elector is not None:
                await self.elector.release()
            for server in self.http:
                await server.stop()
            self.leading.clear()

    async def _until_stopped(self, awaitable: Any) -> None:
        """Await `awaitable` unless a stop comes first."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, stop):
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pending
        if task.done() and not task.cancelled():
            task.result()


def key_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return object_key(str(obj.get("kind")), metadata.get("namespace"), metadata["name"])


def _names(rollout: Mapping[str, Any], kind: str, name: str) -> bool:
    """Does this Rollout's spec name a `kind` called `name`? (A plain scan: Services, the
    workloadRef and templates are named by value in the spec.)"""
    spec = rollout.get("spec") or {}
    if kind == "Deployment":
        ref = spec.get("workloadRef") or {}
        return bool(ref.get("kind") == kind and ref.get("name") == name)
    return _mentions(spec.get("strategy") or {}, name)


def _mentions(value: Any, name: str) -> bool:
    if isinstance(value, str):
        return value == name
    if isinstance(value, Mapping):
        return any(_mentions(item, name) for item in value.values())
    if isinstance(value, list):
        return any(_mentions(item, name) for item in value)
    return False


def run_kubernetes(options: KubeOptions) -> None:
    """Run the Kubernetes controller until SIGINT/SIGTERM (`rollwise controller --kubernetes`).
    Exits non-zero when the lease is lost, so the pod restarts as a candidate."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(options))


async def _serve(options: KubeOptions) -> None:
    client = await KubeClient.connect(
        kubeconfig=options.kubeconfig, context=options.context, qps=options.qps, burst=options.burst
    )
    try:
        controller = KubeController(client, options)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, controller.stop)
        await controller.run()
    finally:
        await client.close()
