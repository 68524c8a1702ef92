"""The local controller: `rollwise controller --local`.

Theory of operation. One asyncio loop owns everything in local mode:
- the SQLite store is the API server; the loop watches it by polling its change log
  (`changes_since`), which costs one indexed query per tick;
- a change of a Rollout, or of anything a Rollout owns (ReplicaSets, AnalysisRuns), queues that
  Rollout's key; Pod and Service changes refresh Traefik's endpoints;
- the `PodSupervisor` turns ReplicaSets into processes and reports their readiness;
- the `TraefikProcess` is started or adopted and restarted if it dies;
- each queued key is reconciled by `RolloutReconciler`, requeued when the core asks (pause
  expiry, deadlines) and backed off when it fails (capped at 10 s, as Argo does); the work
  beside the reconciles (change log, pods, endpoints, Traefik) backs off the same way, so a
  store locked or full, or a file that cannot be written, is logged and retried, never the end
  of the controller;
- the `Notifier` (`rollwise.notify`) follows the events the store records and sends the
  notifications the Rollouts subscribe to, in its own task;
- with `metrics_port`, `/metrics` (Argo's series, `rollwise.controller.metrics`) and `/healthz`
  are served on loopback; every reconcile's duration and failure is counted there;
- with `dashboard_port` and a `dashboard` factory (the CLI passes the web dashboard's: this
  layer may not import it), the dashboard is served on loopback too, with its own store.

Kill -9 at any moment is safe: every object and the data-plane snapshot are on disk before they
take effect, pods and Traefik run in their own sessions and are adopted by the next controller,
and the core decides from the stored status, so the rollout goes on from the same step.
A graceful stop (SIGINT/SIGTERM) stops the pods and Traefik too, unless `keep_running`.
Only one controller may own a home at a time (an advisory lock on `<home>/controller.lock`,
released by the kernel even on kill -9).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from rollwise.api.errors import TransientError, UserError
from rollwise.controller.analysis import AnalysisRunReconciler
from rollwise.controller.experiments import ExperimentReconciler
from rollwise.controller.http import ControllerHTTPServer
from rollwise.controller.loop import ReconcileLoop, Reconciler, object_key
from rollwise.controller.metrics import DELETED_GRACE_SECONDS, ControllerMetrics
from rollwise.controller.reconciler import RolloutReconciler
from rollwise.controller.workqueue import Backoff
from rollwise.core.timestamps import Clock, SystemClock
from rollwise.platforms.local.dataplane import DataPlane
from rollwise.platforms.local.executor import (
    LocalExecutor,
    owner_keys_for_change,
    rollout_keys_for_workload,
)
from rollwise.platforms.local.jobs import LocalJobRunner
from rollwise.platforms.local.pods import PodSupervisor
from rollwise.platforms.local.store import Change, ChangeLogExpiredError, SqliteStore
from rollwise.platforms.local.traefik import TraefikProcess
from rollwise.providers.base import ProviderServices
from rollwise.providers.http import shared_session

log = logging.getLogger("rollwise.controller")

TICK_SECONDS = 0.1
POD_SYNC_SECONDS = 0.5
TRAEFIK_CHECK_SECONDS = 2.0
SERVED_WAIT_SECONDS = 1.0
WATCH_PAGE = 1000
"""Changes read from the store's change log per query (the watch reads to the end)."""
STALLED_LOOP_SECONDS = 30.0  # /healthz fails when the loop has not turned for this long


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold `<home>/controller.lock`; a second controller on the same home is refused."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "controller.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        handle.close()
        raise UserError(
            f"another rollwise controller is already running for {home} "
            f"(lock {path}); stop it first or use another --home"
        ) from error
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def key_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return object_key(str(obj.get("kind")), metadata.get("namespace"), metadata["name"])


@dataclass
class LocalController:
    home: Path
    port: int | None = None
    clock: Clock = field(default_factory=SystemClock)
    metrics_port: int = 0
    """Port of `/metrics` and `/healthz` on loopback; 0: no HTTP server."""
    metrics_grace_seconds: float = DELETED_GRACE_SECONDS
    dashboard_port: int = 0
    """Port of the web dashboard on loopback; 0, or no `dashboard`: not served."""
    dashboard: Callable[[], web.Application] | None = None

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.store = SqliteStore.open_home(self.home, clock=self.clock)
        self.traefik = TraefikProcess(self.home, web_port=self.port, api_port=None)
        self.dataplane = DataPlane(self.home, self.traefik)
        self.pods = PodSupervisor(self.store, self.home, clock=self.clock, drain=self._drain)
        self.executor = LocalExecutor(
            self.store, pods=self.pods, dataplane=self.dataplane, clock=self.clock
        )
        services = ProviderServices(
            traefik_metrics=self.dataplane.scrape_metrics,
            job_runner=LocalJobRunner(self.home),
        )
        self.reconcilers: dict[str, Reconciler] = {
            "Rollout": RolloutReconciler(self.store, self.executor, clock=self.clock),
            "AnalysisRun": AnalysisRunReconciler(self.store, clock=self.clock, services=services),
            "Experiment": ExperimentReconciler(self.store, self.executor, clock=self.clock),
        }
        self.metrics = ControllerMetrics(
            self.store, clock=self.clock, deleted_grace_seconds=self.metrics_grace_seconds
        )
        self.loop = ReconcileLoop(self.reconcilers, metrics=self.metrics)
        self.queue = self.loop.queue
        self._turned = time.monotonic()
        self.http = ControllerHTTPServer(
            self.metrics,
            port=self.metrics_port,
            healthy=lambda: time.monotonic() - self._turned < STALLED_LOOP_SECONDS,
        )
        # Imported here: jinja2 and apprise load only when a controller is built.
        from rollwise.notify.service import local_notifier

        self.notifier = local_notifier(
            self.home,
            self.store,
            clock=self.clock,
            metrics=self.metrics,
            busy=lambda namespace, name: self.loop.busy(object_key("Rollout", namespace, name)),
        )
        self._stopping = asyncio.Event()
        self._seen_revision = 0
        self._housekeeping = Backoff()
        self._next_pods = self._next_traefik = 0.0
        self._endpoints_stale = False
        self._dashboard: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return self.traefik.web_url

    def stop(self) -> None:
        self._stopping.set()
        self.loop.wake.set()

    async def start(self) -> None:
        how = await self.traefik.start_or_adopt()
        log.info(
            "rollwise controller for %s: Traefik %s; services at http://<service>.localhost:%s/",
            self.home,
            how,
            self.traefik.web_port,
        )
        self._relist()
        await self._guarded(self._first_sync())
        if self.metrics_port:
            try:
                await self.http.start()
            except UserError as error:  # a busy port must not stop the rollouts
                log.warning("%s", error)
            else:
                log.info("controller metrics at %s/metrics", self.http.url)
        if self.dashboard_port and self.dashboard is not None:
            await self._serve_dashboard(self.dashboard())

    async def _serve_dashboard(self, app: web.Application) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self.dashboard_port).start()
        except OSError as error:  # a busy port must not stop the rollouts either
            await runner.cleanup()
            log.warning("cannot serve the dashboard on port %s: %s", self.dashboard_port, error)
            return
        self._dashboard = runner
        log.info("dashboard at http://127.0.0.1:%s/", self.dashboard_port)

    async def run(self, *, keep_running: bool = False) -> None:
        async with shared_session():  # one connection pool for every metric query
            await self._run(keep_running=keep_running)

    async def _run(self, *, keep_running: bool) -> None:
        await self.start()
        # Notifications run beside the loop: a slow or dead service never holds a rollout.
        notifier = asyncio.create_task(self.notifier.run(), name="notifier")
        try:
            while not self._stopping.is_set():
                now = self._turned = time.monotonic()
                if now >= self._housekeeping.retry_at:
                    await self._guarded(self._keep_house(now))
                self.loop.reconcile_due(time.monotonic())
                await self.loop.wait(TICK_SECONDS)
        finally:
            notifier.cancel()
            await asyncio.gather(notifier, return_exceptions=True)
            await self.loop.finish()
            await self.http.stop()
            if self._dashboard is not None:
                await self._dashboard.cleanup()
            await self.pods.shutdown(stop_pods=not keep_running)
            if not keep_running:
                await self.traefik.stop()
            await self.dataplane.close()
            self.store.close()

    async def _first_sync(self) -> None:
        await self.pods.reconcile(self.clock.now())
        await self.executor.refresh_endpoints()

    async def _keep_house(self, now: float) -> None:
        """One turn of the work beside the reconciles: the store's change log, the pods, the
        endpoints in Traefik, Traefik itself."""
        # Sticky until the endpoints are written: a turn that fails half-way (a store locked
        # or full) must not forget that they are stale.
        self._endpoints_stale |= self._watch()
        if now >= self._next_pods or self._endpoints_stale:
            await self.pods.reconcile(self.clock.now())
            self._endpoints_stale |= self._watch()
            self._next_pods = now + POD_SYNC_SECONDS
        if self._endpoints_stale:
            changed = await self.executor.refresh_endpoints()
            self._endpoints_stale = False
            if changed:
                await self._until_served()
        if now >= self._next_traefik:
            await self.traefik.supervise()
            self._next_traefik = now + TRAEFIK_CHECK_SECONDS

    async def _guarded(self, work: Awaitable[None]) -> None:
        """Run housekeeping `work`; a failure (a store locked or full, a file that cannot be
        written, Traefik that will not start) is logged and retried with the reconciles'
        capped back-off, never the end of the controller."""
        try:
            await work
        except Exception as error:
            delay = self._housekeeping.failed(time.monotonic())
            if isinstance(error, TransientError | OSError):
                log.error("controller housekeeping failed; retrying in %.2fs: %s", delay, error)
            else:  # a bug: keep the traceback
                log.exception("controller housekeeping failed; retrying in %.2fs", delay)
        else:
            self._housekeeping.succeeded()

    async def _drain(self) -> None:
        """Take pods that are leaving out of the proxy before they are signalled."""
        if await self.executor.refresh_endpoints():
            await self._until_served()

    async def _until_served(self) -> None:
        """Wait (a little) until Traefik serves the endpoints just written, so no status
        decided after this point claims less traffic on a pod than the proxy still sends it
        (e.g. an aborted canary whose pods are leaving). Traefik applies a change in ~0.1 s."""
        deadline = time.monotonic() + SERVED_WAIT_SECONDS
        while not await self.dataplane.verify() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # Traefik has no change notification to wait on

    def _watch(self) -> bool:
        """Queue the objects whose state changed; True if endpoints may have changed.

        Reads the change log to its end at every turn, a page at a time: reading one page per
        turn fell behind in a wave of updates (each reconcile writes several changes), by more
        than the log keeps at 10,000 rollouts (`python -m bench local-scale`). A watch that
        fell behind the log anyway (the controller stalled) lists everything again, as an
        informer relists after a 410."""
        endpoints_stale = False
        while True:
            try:
                changes = self.store.changes_since(self._seen_revision, limit=WATCH_PAGE)
            except ChangeLogExpiredError as error:
                log.warning("%s: queueing every object again", error)
                self._relist()
                return True
            endpoints_stale |= self._queue_changes(changes)
            if len(changes) < WATCH_PAGE:
                return endpoints_stale

    def _relist(self) -> None:
        # The revision first: a write that lands meanwhile is both listed and seen again.
        self._seen_revision = self.store.revision()
        for kind in self.reconcilers:
            for obj in self.store.list(kind, None):
                self.queue.add(key_of(obj))

    def _queue_changes(self, changes: list[Change]) -> bool:
        endpoints_stale = False
        for change in changes:
            namespace = change.namespace or "default"
            if change.kind in self.reconcilers:
                self.queue.add(object_key(change.kind, namespace, change.name))
            if change.kind in ("ReplicaSet", "AnalysisRun", "Experiment"):
                obj = self.store.get(change.kind, change.name, namespace)
                for owner in owner_keys_for_change(change.kind, obj):
                    self.queue.add(owner)
                if obj is None:  # deleted: its owner is unknown now, look at every rollout
                    self._queue_rollouts(namespace)
            elif change.kind == "Pod":
                for owner in self._pod_owners(namespace, change.name):
                    self.queue.add(owner)
            if change.kind in ("Deployment", "PodTemplate"):
                # An object a Rollout's workloadRef may name: its pod template is theirs.
                keys = rollout_keys_for_workload(self.store, change.kind, namespace, change.name)
                for key in keys:
                    self.queue.add(key)
            if change.kind in ("Pod", "Service"):
                # Sticky at once: a later page that fails to read must not lose it.
                endpoints_stale = self._endpoints_stale = True
            # Only now: a change whose owners could not be read (a failed read) is seen again.
            self._seen_revision = max(self._seen_revision, change.revision)
        return endpoints_stale

    def _pod_owners(self, namespace: str, name: str) -> list[str]:
        """The Rollouts owning the ReplicaSet that owns a pod (all of the namespace's if the
        pod is gone, since a deleted object no longer says who owned it)."""
        pod = self.store.get("Pod", name, namespace)
        if pod is None:
            return [key_of(r) for r in self.store.list("Rollout", namespace)]
        owners: list[str] = []
        for ref in pod.get("metadata", {}).get("ownerReferences") or ():
            if ref.get("kind") == "ReplicaSet":
                replica_set = self.store.get("ReplicaSet", ref.get("name", ""), namespace)
                owners.extend(owner_keys_for_change("ReplicaSet", replica_set))
        return owners

    def _queue_rollouts(self, namespace: str) -> None:
        # (and the Experiments, which own ReplicaSets and AnalysisRuns too)
        for kind in ("Rollout", "Experiment"):
            for owner in self.store.list(kind, namespace):
                self.queue.add(key_of(owner))


async def stop_home(home: Path, *, clock: Clock | None = None) -> None:
    """Stop every pod process and the Traefik of `home`, e.g. those a killed controller left
    running (a graceful stop does this itself). Adopts them first, so only processes this home
    started are touched."""
    clock = clock or SystemClock()
    store = SqliteStore.open_home(home, clock=clock)
    try:
        pods = PodSupervisor(store, home, clock=clock)
        await pods.reconcile(clock.now())
        await pods.shutdown(stop_pods=True)
        await TraefikProcess(home).stop()
    finally:
        store.close()


def stop_local(*, home: Path) -> None:
    """What `rollwise controller --local --stop` does: refused while a controller runs."""
    with home_lock(home):
        asyncio.run(stop_home(home))


def run_local(
    *,
    home: Path,
    port: int | None = None,
    keep_running: bool = False,
    metrics_port: int = 0,
    dashboard_port: int = 0,
    dashboard: Callable[[], web.Application] | None = None,
) -> None:
    """Run the local controller until SIGINT/SIGTERM (what `rollwise controller --local` does)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with home_lock(home):
        asyncio.run(
            _serve(
                home=home,
                port=port,
                keep_running=keep_running,
                metrics_port=metrics_port,
                dashboard_port=dashboard_port,
                dashboard=dashboard,
            )
        )


async def _serve(
    *,
    home: Path,
    port: int | None,
    keep_running: bool,
    metrics_port: int,
    dashboard_port: int = 0,
    dashboard: Callable[[], web.Application] | None = None,
) -> None:
    controller = LocalController(
        home=home,
        port=port,
        metrics_port=metrics_port,
        dashboard_port=dashboard_port,
        dashboard=dashboard,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, controller.stop)
    await controller.run(keep_running=keep_running)
