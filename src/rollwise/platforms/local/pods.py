"""The local ReplicaSet controller: keeps as many pod processes running as each ReplicaSet asks.

Who calls it: the local controller, which owns one `PodSupervisor` per home, calls `reconcile`
whenever ReplicaSets or Pods change and again after the delay `reconcile` returns, executes the
core's `RestartPods` action with `restart_pods`, and calls `shutdown` when it stops.

Theory of operation. The store holds the truth a person or another process can see: one `Pod`
object per replica (Kubernetes-shaped, owned by its ReplicaSet), whose `rollwise.io/pid`,
`rollwise.io/started` and `rollwise.io/port` annotations say which process serves it. The
supervisor's memory holds only what cannot be read back cheaply (exit codes of its own children,
probe counters, back-off timers), so any supervisor can take over from a dead one: on its first
look at a Pod it adopts the process when the pid is alive *and* has the recorded start time,
and restarts it otherwise. Processes run in their own session, so they outlive the controller.

One pass of `reconcile`:
1. take in Pod objects it does not know yet (adoption) and stop processes whose Pod vanished;
2. notice processes that ended: a crash schedules a restart with capped exponential back-off
   (1 s, 2 s, 4 s ... 30 s; `CrashLoopBackOff` while waiting; `restartCount` grows on restart);
3. finish terminations: a Pod being deleted (`metadata.deletionTimestamp`) got SIGTERM; it is
   removed once its process is gone, after SIGKILL when the grace period ran out;
4. for each ReplicaSet, create Pods up to `spec.replicas` or terminate the surplus (not running
   first, then not ready, then newest); Pods whose ReplicaSet is gone are terminated;
5. start what should run (new pods, restarts whose back-off is over);
6. probe readiness of every running replica (concurrently);
7. write Pod and ReplicaSet status, only where it changed;
8. keep each pod's labels and annotations in `<home>/pods/<namespace>/<pod>/labels` and
   `annotations`, in the format of Kubernetes' downward API volume (`key="value"` lines, sorted),
   the directory given to the process as `ROLLWISE_PODINFO_DIR`: labels the Rollout adds while
   a pod plays a role (canaryMetadata/stableMetadata) reach the running process there.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollwise.api.errors import ManifestError, NotFoundError, UserError
from rollwise.core.timestamps import Clock, format_time, parse_time
from rollwise.platforms.local import processes
from rollwise.platforms.local.images import IMAGES_FILE, ImageTable, ProcessSpec
from rollwise.platforms.local.probes import ReadinessProbe, check_ready
from rollwise.platforms.local.processes import ProcessExit, ProcessHandle

if TYPE_CHECKING:
    from rollwise.api.models import RawObject
    from rollwise.platforms.local.store import SqliteStore

PID_ANNOTATION = "rollwise.io/pid"
STARTED_ANNOTATION = "rollwise.io/started"
PORT_ANNOTATION = "rollwise.io/port"
HASH_LABEL = "rollouts-pod-template-hash"
LOGS_DIR = "logs"
PODINFO_DIR = "pods"
PODINFO_ENV = "ROLLWISE_PODINFO_DIR"

BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0
# A process that ran this long before it crashed starts the back-off over.
BACKOFF_RESET_S = 60.0

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def log_path(home: Path, namespace: str, name: str) -> Path:
    """Where a pod's stdout and stderr go: `<home>/logs/<pod>.log`."""
    file_name = f"{name}.log" if namespace == "default" else f"{namespace}_{name}.log"
    return Path(home) / LOGS_DIR / file_name


def podinfo_path(home: Path, namespace: str, name: str) -> Path:
    """Where a pod's downward-API files live: `<home>/pods/<namespace>/<pod>/`."""
    return Path(home) / PODINFO_DIR / namespace / name


_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(text: str) -> str:
    """`text` quoted as Go's `%q` does (what the downward API writes): backslash escapes for
    quotes, backslashes and control characters; printable characters as they are."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def downward_api_text(values: Mapping[str, Any]) -> str:
    """Labels or annotations as a downward API volume file holds them (Kubernetes' FormatMap):
    one `key="value"` line per key, sorted by key, no newline after the last."""
    return "\n".join(f"{key}={go_quote(str(values[key]))}" for key in sorted(values))


@dataclass(frozen=True)
class RestartProgress:
    """What one `restart_pods` call did: pods evicted now, pods still to restart."""

    evicted: tuple[str, ...]
    remaining: int

    @property
    def done(self) -> bool:
        return self.remaining == 0 and not self.evicted


@dataclass
class _Replica:
    """What the supervisor knows about one pod beyond its stored object."""

    namespace: str
    name: str
    port: int
    created_at: datetime
    handle: ProcessHandle | None = None
    ever_started: bool = False
    running_since: datetime | None = None
    start_time: str | None = None
    restart_count: int = 0
    crashes_in_a_row: int = 0
    restart_at: datetime | None = None
    waiting: tuple[str, str] | None = None
    last_exit: RawObject | None = None
    ready: bool = False
    ready_changed_at: datetime | None = None
    successes: int = 0
    failures: int = 0
    terminate_sent: bool = False
    kill_sent: bool = False
    probe: ReadinessProbe = field(default_factory=ReadinessProbe)
    podinfo: tuple[str, str] | None = None
    """The labels and annotations files as last written."""
    gate: processes.GatedProcess | None = None
    """The process just started, held at its gate until its pid is in the store."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def open_gate(self, *, start: bool) -> None:
        """Its pid is recorded (`start`): let the program run; or never run it."""
        gate, self.gate = self.gate, None
        if gate is None:
            return
        if start:
            gate.release()
        else:
            gate.abandon()

    def set_ready(self, ready: bool, now: datetime) -> None:
        if ready != self.ready:
            self.ready = ready
            self.ready_changed_at = now


@dataclass
class _Stray:
    """A process whose Pod object disappeared: stopped, then killed after its grace."""

    handle: ProcessHandle
    kill_at: datetime


class PodSupervisor:
    """Runs the pods of every ReplicaSet in a local store as processes. One per home."""

    def __init__(
        self,
        store: SqliteStore,
        home: Path,
        *,
        clock: Clock,
        images: ImageTable | None = None,
        grace_seconds: float = 10.0,
        probe_interval: float = 0.5,
        idle_interval: float = 1.0,
        drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        # Called after pods were marked terminating and before their processes get SIGTERM:
        # the controller takes them out of the proxy there, so a leaving pod serves no request
        # after its ReplicaSet's status says it is gone (Kubernetes' endpoint removal).
        self._drain = drain
        self._to_signal: list[_Replica] = []
        self._home = Path(home)
        self._clock = clock
        self._fixed_images = images
        self._images = images if images is not None else ImageTable(path=home / IMAGES_FILE)
        self._images_problem: str | None = None
        self._images_mtime: float | None = None
        if images is None:
            self._reload_images(force=True)
        self._grace = grace_seconds
        self._probe_interval = probe_interval
        self._idle_interval = idle_interval
        self._replicas: dict[tuple[str, str], _Replica] = {}
        self._strays: list[_Stray] = []
        self._lock = asyncio.Lock()
        self._closed = False

    # --- the pass ----------------------------------------------------------------------------

    async def reconcile(self, now: datetime) -> float | None:
        """One pass over every ReplicaSet and Pod; the seconds until it wants the next one
        (None: nothing to watch until something changes in the store)."""
        async with self._lock:
            if self._closed:
                return None
            self._reload_images()
            replica_sets = {_key(rs): rs for rs in self._store.list("ReplicaSet", None)}
            pods = {_key(pod): pod for pod in self._store.list("Pod", None)}
            self._take_in(pods, now)
            self._notice_exits(pods, now)
            self._finish_terminations(pods, now)
            self._stop_strays(now)
            for pod in list(pods.values()):
                if not _terminating(pod) and _owner(pod, replica_sets) is None and _owned(pod):
                    self._terminate(pods, pod, now)
            for rs in replica_sets.values():
                self._scale(rs, pods, now)
            await self._signal_terminating()
            self._start_due(pods, now)
            await self._probe(pods, now)
            self._write_status(replica_sets, pods, now)
            self._write_podinfo(pods)
            return self._next_wake(replica_sets, pods, now)

    async def restart_pods(
        self,
        rs_name: str,
        before: datetime,
        max_unavailable: int,
        *,
        namespace: str = "default",
    ) -> RestartProgress:
        """Evict the pods of a ReplicaSet created before `before`, oldest first, as many as
        availability allows: at most `max(max_unavailable, 1)` unavailable at a time, so each
        replacement must be available before the next pod goes. Call again (after reconciles)
        until `done`."""
        async with self._lock:
            now = self._clock.now()
            rs = self._store.get("ReplicaSet", rs_name, namespace)
            if rs is None or self._closed:
                return RestartProgress(evicted=(), remaining=0)
            pods = [
                pod
                for pod in self._store.list("Pod", namespace)
                if _owner_name(pod) == rs_name and not _terminating(pod)
            ]
            stale = sorted(
                (pod for pod in pods if _created(pod) < before),
                key=lambda pod: (_created(pod), _key(pod)),
            )
            min_ready = _number(rs.get("spec", {}).get("minReadySeconds"), 0.0)
            available = sum(1 for pod in pods if self._available(_key(pod), min_ready, now))
            unavailable = max(_replicas(rs) - available, 0)
            budget = max(max(max_unavailable, 1) - unavailable, 0)
            evicted = tuple(
                pod["metadata"]["name"] for pod in stale[:budget] if self._terminate({}, pod, now)
            )
            await self._signal_terminating()
            return RestartProgress(evicted=evicted, remaining=len(stale) - len(evicted))

    async def shutdown(self, *, stop_pods: bool) -> None:
        """Stop supervising. `stop_pods=True` (a graceful stop of local mode) terminates every
        pod process, SIGKILL after the grace period, and removes the Pod objects;
        `stop_pods=False` leaves the processes running for the next supervisor to adopt."""
        async with self._lock:
            self._closed = True
            if not stop_pods:
                return
            # Also the pods of a previous run that this supervisor has not looked at yet.
            pods = {_key(pod): pod for pod in self._store.list("Pod", None)}
            self._take_in(pods, self._clock.now())
            handles = [r.handle for r in self._replicas.values() if r.handle is not None]
            handles += [stray.handle for stray in self._strays]
            for handle in handles:
                processes.terminate(handle)
            await _wait_for_exit(handles, seconds=self._grace)
            for handle in handles:
                processes.kill(handle)
            await _wait_for_exit(handles, seconds=5.0)
            with self._store.transaction():
                for namespace, name in self._replicas:
                    self._store.delete("Pod", name, namespace)
                    self._remove_podinfo(namespace, name)
                for rs in self._store.list("ReplicaSet", None):
                    status = dict(rs.get("status") or {})
                    status.update(replicas=0, readyReplicas=0, availableReplicas=0)
                    self._store.update_status({**_identity(rs), "status": status})
            self._replicas.clear()
            self._strays.clear()

    # --- steps -------------------------------------------------------------------------------

    def _take_in(self, pods: dict[tuple[str, str], RawObject], now: datetime) -> None:
        for pod_key, pod in pods.items():
            if pod_key not in self._replicas and _owned(pod):
                self._replicas[pod_key] = self._adopt(pod, now)
        for pod_key in [k for k in self._replicas if k not in pods]:
            self._forget(pod_key, now)

    def _adopt(self, pod: RawObject, now: datetime) -> _Replica:
        """Rebuild what a previous supervisor knew about a pod from its stored object."""
        metadata = pod["metadata"]
        annotations = metadata.get("annotations") or {}
        status = pod.get("status") or {}
        container_status = (status.get("containerStatuses") or [{}])[0]
        container = _container(pod)
        replica = _Replica(
            namespace=_key(pod)[0],
            name=metadata["name"],
            port=_int(annotations.get(PORT_ANNOTATION)) or processes.free_port(),
            created_at=_created(pod),
            start_time=status.get("startTime"),
            restart_count=_int(container_status.get("restartCount")),
            last_exit=(container_status.get("lastState") or {}).get("terminated"),
            probe=ReadinessProbe.from_container(container),
        )
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        transitions = [
            c.get("lastTransitionTime")
            for c in status.get("conditions") or []
            if c.get("type") == "Ready" and c.get("lastTransitionTime")
        ]
        replica.ready_changed_at = parse_time(transitions[0]) if transitions else now
        pid = _int(annotations.get(PID_ANNOTATION))
        started = annotations.get(STARTED_ANNOTATION)
        if pid and started:
            replica.ever_started = True
            handle = ProcessHandle(pid=pid, started=str(started))
            if processes.poll(handle) is None:
                running = (container_status.get("state") or {}).get("running") or {}
                replica.handle = handle
                replica.running_since = (
                    parse_time(running["startedAt"]) if running.get("startedAt") else now
                )
                replica.ready = ready
                if ready:
                    replica.successes = replica.probe.success_threshold
            else:
                # It died while nobody watched: restart now, and say so in lastState.
                replica.last_exit = {
                    "reason": "Error",
                    "message": "the process ended while no rollwise controller was running",
                    "finishedAt": format_time(now),
                }
                replica.set_ready(False, now)
        return replica

    def _notice_exits(self, pods: dict[tuple[str, str], RawObject], now: datetime) -> None:
        for replica in self._replicas.values():
            if replica.handle is None:
                continue
            ended = processes.poll(replica.handle)
            if ended is not None:
                self._record_exit(replica, ended, now, pod=pods.get(replica.key))

    def _record_exit(
        self, replica: _Replica, ended: ProcessExit, now: datetime, *, pod: RawObject | None
    ) -> None:
        replica.handle = None
        replica.set_ready(False, now)
        replica.successes = replica.failures = 0
        terminated: RawObject = {"reason": ended.reason, "finishedAt": format_time(now)}
        if ended.exit_code is not None:
            terminated["exitCode"] = ended.exit_code
        if replica.running_since is not None:
            terminated["startedAt"] = format_time(replica.running_since)
        replica.last_exit = terminated
        if pod is None or _terminating(pod):
            return
        ran_for = (now - replica.running_since).total_seconds() if replica.running_since else 0
        if ran_for >= BACKOFF_RESET_S:
            replica.crashes_in_a_row = 0
        self._schedule_restart(replica, now, detail="")

    def _schedule_restart(self, replica: _Replica, now: datetime, *, detail: str) -> None:
        replica.crashes_in_a_row += 1
        delay = min(BACKOFF_INITIAL_S * 2 ** (replica.crashes_in_a_row - 1), BACKOFF_MAX_S)
        replica.restart_at = now + timedelta(seconds=delay)
        message = f"back-off {delay:g}s restarting failed container of pod {replica.name}"
        replica.waiting = ("CrashLoopBackOff", f"{message}: {detail}" if detail else message)

    def _finish_terminations(self, pods: dict[tuple[str, str], RawObject], now: datetime) -> None:
        for pod_key, pod in list(pods.items()):
            if not _terminating(pod) or not _owned(pod):
                continue
            replica = self._replicas.get(pod_key)
            if replica is None or replica.handle is None:
                self._store.delete("Pod", pod_key[1], pod_key[0])
                self._replicas.pop(pod_key, None)
                self._remove_podinfo(*pod_key)
                del pods[pod_key]
                continue
            if not replica.terminate_sent:
                # Also for a termination a previous supervisor began but could not finish.
                processes.terminate(replica.handle)
                replica.terminate_sent = True
            if now >= _deletion_deadline(pod) and not replica.kill_sent:
                processes.kill(replica.handle)
                replica.kill_sent = True

    def _stop_strays(self, now: datetime) -> None:
        remaining = []
        for stray in self._strays:
            if processes.poll(stray.handle) is not None:
                continue
            if now >= stray.kill_at:
                processes.kill(stray.handle)
            remaining.append(stray)
        self._strays = remaining

    def _scale(self, rs: RawObject, pods: dict[tuple[str, str], RawObject], now: datetime) -> None:
        rs_key = _key(rs)
        active = [
            pod
            for pod in pods.values()
            if _key(pod)[0] == rs_key[0]
            and _owner_name(pod) == rs_key[1]
            and _owner_matches(pod, rs)
            and not _terminating(pod)
        ]
        want = _replicas(rs)
        if len(active) > want:
            for pod in sorted(active, key=lambda p: self._deletion_rank(p))[: len(active) - want]:
                self._terminate(pods, pod, now)
        for _ in range(want - len(active)):
            pod = self._create_pod(rs, now)
            pods[_key(pod)] = pod

    def _deletion_rank(self, pod: RawObject) -> tuple[int, int, float, str]:
        """Sort key: the pods to remove first come first (Kubernetes' order, simplified)."""
        replica = self._replicas.get(_key(pod))
        running = replica is not None and replica.handle is not None
        ready = replica is not None and replica.ready
        return (int(running), int(ready), -_created(pod).timestamp(), _key(pod)[1])

    def _terminate(
        self, pods: dict[tuple[str, str], RawObject], pod: RawObject, now: datetime
    ) -> bool:
        """Begin deleting a pod: mark its object, SIGTERM its process. False if it was gone."""
        pod_key = _key(pod)
        namespace, name = pod_key
        grace = _number(pod.get("spec", {}).get("terminationGracePeriodSeconds"), self._grace)
        replica = self._replicas.get(pod_key)
        try:
            # Kubernetes' deletionTimestamp is when the grace period ends; the object stays
            # until the process is gone, so a successor can finish the job after a crash.
            pods[pod_key] = self._store.patch(
                "Pod",
                name,
                namespace,
                merge={
                    "metadata": {
                        "deletionTimestamp": format_time(now + timedelta(seconds=grace)),
                        "deletionGracePeriodSeconds": int(grace),
                    }
                },
            )
        except NotFoundError:
            pods.pop(pod_key, None)
            self._forget(pod_key, now)
            return False
        if replica is not None:
            replica.set_ready(False, now)
            replica.restart_at = None
            if replica.handle is not None:
                self._to_signal.append(replica)
        return True

    async def _signal_terminating(self) -> None:
        """SIGTERM the processes of pods just marked terminating, once they are drained."""
        if not self._to_signal:
            return
        if self._drain is not None:
            await self._drain()
        for replica in self._to_signal:
            if replica.handle is not None and not replica.terminate_sent:
                processes.terminate(replica.handle)
                replica.terminate_sent = True
        self._to_signal.clear()

    def _forget(self, pod_key: tuple[str, str], now: datetime) -> None:
        """The Pod object is gone: stop its process, SIGKILL after the grace period."""
        replica = self._replicas.pop(pod_key, None)
        self._remove_podinfo(*pod_key)
        if replica is not None and replica.handle and processes.terminate(replica.handle):
            kill_at = now + timedelta(seconds=self._grace)
            self._strays.append(_Stray(replica.handle, kill_at))

    def _create_pod(self, rs: RawObject, now: datetime) -> RawObject:
        namespace, rs_name = _key(rs)
        template = rs.get("spec", {}).get("template") or {}
        template_metadata = template.get("metadata") or {}
        name = self._new_pod_name(rs_name, namespace)
        pod_spec = dict(template.get("spec") or {})
        labels = dict(template_metadata.get("labels") or {})
        replica = _Replica(
            namespace=namespace,
            name=name,
            port=processes.free_port(),
            created_at=now,
            ready_changed_at=now,
            probe=ReadinessProbe.from_container((pod_spec.get("containers") or [{}])[0]),
        )
        pod: RawObject = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": dict(template_metadata.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs_name,
                        "uid": rs["metadata"].get("uid", ""),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
        }
        self._start(replica, pod, now)
        pod["metadata"]["annotations"].update(self._annotations(replica))
        pod["status"] = self._pod_status(replica, pod)
        try:
            created = self._store.create(pod)
        except BaseException:
            replica.open_gate(start=False)
            raise
        replica.open_gate(start=True)
        self._replicas[replica.key] = replica
        return created

    def _new_pod_name(self, rs_name: str, namespace: str) -> str:
        while True:
            name = f"{rs_name}-" + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
            if self._store.get("Pod", name, namespace) is None and (namespace, name) not in (
                self._replicas
            ):
                return name

    def _start_due(self, pods: dict[tuple[str, str], RawObject], now: datetime) -> None:
        for pod_key, replica in self._replicas.items():
            pod = pods.get(pod_key)
            if pod is None or _terminating(pod) or replica.handle is not None:
                continue
            if replica.restart_at is not None and now < replica.restart_at:
                continue
            self._start(replica, pod, now)
            # At once, not with the status: a successor must find the new pid even if this
            # supervisor dies before the end of the pass; the program runs once it is written.
            recorded = False
            try:
                self._record_process(pods, replica, now)
                recorded = replica.key in pods  # not when the Pod went away meanwhile
            finally:
                replica.open_gate(start=recorded)

    def _record_process(
        self, pods: dict[tuple[str, str], RawObject], replica: _Replica, now: datetime
    ) -> None:
        """Write the pod's pid, start time and port annotations where they are out of date."""
        pod = pods.get(replica.key)
        if pod is None:
            return
        stored = pod["metadata"].get("annotations") or {}
        wanted = self._annotations(replica)
        if all(stored.get(key) == value for key, value in wanted.items()):
            return
        try:
            pods[replica.key] = self._store.patch(
                "Pod",
                replica.name,
                replica.namespace,
                merge={"metadata": {"annotations": wanted}},
            )
        except NotFoundError:
            pods.pop(replica.key, None)
            self._forget(replica.key, now)

    def _start(self, replica: _Replica, pod: RawObject, now: datetime) -> None:
        """Start (or restart) the process of a pod, or record why it cannot start."""
        container = _container(pod)
        labels = pod["metadata"].get("labels") or {}
        if not processes.port_is_free(replica.port):
            replica.port = processes.free_port()
        try:
            spec = self._images.resolve(
                container,
                port=replica.port,
                pod_name=replica.name,
                template_hash=str(labels.get(HASH_LABEL, "")),
            )
        except UserError as error:
            # Like an image that cannot be pulled: retried on every pass, e.g. after the person
            # added the image to images.yaml.
            problem = f" (the table could not be read: {self._images_problem})"
            replica.waiting = (
                "ErrImagePull",
                str(error) + (problem if self._images_problem else ""),
            )
            replica.restart_at = None
            return
        directory = podinfo_path(self._home, replica.namespace, replica.name)
        self._write_podinfo_files(replica, pod["metadata"])
        spec = replace(spec, env={**spec.env, PODINFO_ENV: str(directory)})
        try:
            # Held at its gate until the caller has recorded its pid: a supervisor killed in
            # between leaves no process that no Pod names (see `processes`).
            gate = processes.spawn_gated(
                spec,
                log_path=log_path(self._home, replica.namespace, replica.name),
                banner=_banner(spec, replica, now),
            )
        except OSError as error:
            replica.last_exit = {
                "reason": "StartError",
                "message": f"cannot start {spec.argv[0]!r}: {error}",
                "exitCode": 128,
                "finishedAt": format_time(now),
            }
            if replica.ever_started:
                replica.restart_count += 1
            replica.ever_started = True
            self._schedule_restart(replica, now, detail=str(error))
            return
        if replica.ever_started:
            replica.restart_count += 1
        replica.ever_started = True
        replica.handle, replica.gate = gate.handle, gate
        replica.running_since = now
        replica.start_time = replica.start_time or format_time(now)
        replica.waiting = None
        replica.restart_at = None
        replica.successes = replica.failures = 0
        replica.terminate_sent = replica.kill_sent = False
        replica.set_ready(False, now)

    async def _probe(self, pods: dict[tuple[str, str], RawObject], now: datetime) -> None:
        due: list[_Replica] = []
        for pod_key, replica in self._replicas.items():
            pod = pods.get(pod_key)
            if pod is None or _terminating(pod) or replica.handle is None:
                continue
            since = replica.running_since or now
            if (now - since).total_seconds() < replica.probe.initial_delay_seconds:
                continue
            due.append(replica)
        results = await asyncio.gather(*(check_ready(r.probe, r.port) for r in due))
        for replica, passed in zip(due, results, strict=True):
            if passed:
                replica.successes += 1
                replica.failures = 0
                if replica.successes >= replica.probe.success_threshold:
                    replica.set_ready(True, now)
            else:
                replica.failures += 1
                replica.successes = 0
                if not replica.ready or replica.failures >= replica.probe.failure_threshold:
                    replica.set_ready(False, now)

    def _write_status(
        self,
        replica_sets: Mapping[tuple[str, str], RawObject],
        pods: dict[tuple[str, str], RawObject],
        now: datetime,
    ) -> None:
        with self._store.transaction():
            for known in list(self._replicas.values()):
                self._record_process(pods, known, now)
            for pod_key, pod in pods.items():
                replica = self._replicas.get(pod_key)
                if replica is None:
                    continue
                status = self._pod_status(replica, pod)
                if status != pod.get("status"):
                    with contextlib.suppress(NotFoundError):  # deleted meanwhile; forgotten next
                        self._store.update_status({**_identity(pod), "status": status})
            for rs in replica_sets.values():
                status = self._replica_set_status(rs, pods, now)
                if status != rs.get("status"):
                    with contextlib.suppress(NotFoundError):  # deleted meanwhile
                        self._store.update_status({**_identity(rs), "status": status})

    def _pod_status(self, replica: _Replica, pod: RawObject) -> RawObject:
        container = _container(pod)
        running = replica.handle is not None
        ready = running and replica.ready and not _terminating(pod)
        state: RawObject
        if running and replica.running_since is not None:
            state = {"running": {"startedAt": format_time(replica.running_since)}}
        elif replica.waiting is not None:
            state = {"waiting": {"reason": replica.waiting[0], "message": replica.waiting[1]}}
        elif replica.last_exit is not None:
            state = {"terminated": replica.last_exit}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        container_status: RawObject = {
            "name": container.get("name", ""),
            "image": container.get("image", ""),
            "ready": ready,
            "restartCount": replica.restart_count,
            "started": running,
            "state": state,
        }
        if replica.last_exit is not None and "terminated" not in state:
            container_status["lastState"] = {"terminated": replica.last_exit}
        status: RawObject = {
            "phase": "Running" if replica.ever_started else "Pending",
            "hostIP": processes.LOOPBACK,
            "podIP": processes.LOOPBACK,
        }
        if replica.start_time:
            status["startTime"] = replica.start_time
        changed_at = replica.ready_changed_at or replica.created_at
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": format_time(changed_at),
            }
        ]
        status["containerStatuses"] = [container_status]
        return status

    def _replica_set_status(
        self, rs: RawObject, pods: Mapping[tuple[str, str], RawObject], now: datetime
    ) -> RawObject:
        rs_key = _key(rs)
        min_ready = _number(rs.get("spec", {}).get("minReadySeconds"), 0.0)
        active = [
            _key(pod)
            for pod in pods.values()
            if _key(pod)[0] == rs_key[0]
            and _owner_name(pod) == rs_key[1]
            and _owner_matches(pod, rs)
            and not _terminating(pod)
        ]
        ready = [key for key in active if self._is_ready(key)]
        status = dict(rs.get("status") or {})
        status.update(
            replicas=len(active),
            readyReplicas=len(ready),
            availableReplicas=sum(1 for key in ready if self._available(key, min_ready, now)),
            observedGeneration=rs["metadata"].get("generation", 1),
        )
        return status

    def _is_ready(self, pod_key: tuple[str, str]) -> bool:
        replica = self._replicas.get(pod_key)
        return replica is not None and replica.handle is not None and replica.ready

    def _available(self, pod_key: tuple[str, str], min_ready: float, now: datetime) -> bool:
        if not self._is_ready(pod_key):
            return False
        changed_at = self._replicas[pod_key].ready_changed_at
        return changed_at is None or (now - changed_at).total_seconds() >= min_ready

    def _next_wake(
        self,
        replica_sets: Mapping[tuple[str, str], RawObject],
        pods: Mapping[tuple[str, str], RawObject],
        now: datetime,
    ) -> float | None:
        waits: list[float] = []
        if self._strays:
            waits.append(self._probe_interval)
        for pod_key, replica in self._replicas.items():
            pod = pods.get(pod_key)
            if pod is None:
                continue
            if _terminating(pod):
                waits.append(self._probe_interval)
            elif replica.handle is not None:
                waits.append(self._idle_interval if replica.ready else self._probe_interval)
            elif replica.restart_at is not None:
                waits.append(max((replica.restart_at - now).total_seconds(), 0.0))
            else:
                waits.append(self._idle_interval * 2)  # an image not yet in the table
            if replica.ready and replica.handle is not None and replica.ready_changed_at:
                rs = replica_sets.get((pod_key[0], _owner_name(pod) or ""))
                min_ready = _number((rs or {}).get("spec", {}).get("minReadySeconds"), 0.0)
                due = (replica.ready_changed_at - now).total_seconds() + min_ready
                if due > 0:
                    waits.append(due)  # it becomes available then
        return min(waits) if waits else None

    # --- small helpers -----------------------------------------------------------------------

    def _write_podinfo(self, pods: Mapping[tuple[str, str], RawObject]) -> None:
        for pod_key, replica in self._replicas.items():
            pod = pods.get(pod_key)
            if pod is not None and not _terminating(pod):
                self._write_podinfo_files(replica, pod["metadata"])

    def _write_podinfo_files(self, replica: _Replica, metadata: Mapping[str, Any]) -> None:
        """Write the pod's labels and annotations files if they changed, each by a rename so a
        reader never sees half a file (as the kubelet's atomic writer does)."""
        wanted = (
            downward_api_text(metadata.get("labels") or {}),
            downward_api_text(metadata.get("annotations") or {}),
        )
        if replica.podinfo == wanted:
            return
        directory = podinfo_path(self._home, replica.namespace, replica.name)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for file_name, text in zip(("labels", "annotations"), wanted, strict=True):
                temporary = directory / f".{file_name}.tmp"
                temporary.write_text(text)
                temporary.replace(directory / file_name)
        except OSError:
            return  # tried again on the next pass
        replica.podinfo = wanted

    def _remove_podinfo(self, namespace: str, name: str) -> None:
        shutil.rmtree(podinfo_path(self._home, namespace, name), ignore_errors=True)

    def _annotations(self, replica: _Replica) -> dict[str, str]:
        annotations = {PORT_ANNOTATION: str(replica.port)}
        if replica.handle is not None:
            annotations[PID_ANNOTATION] = str(replica.handle.pid)
            annotations[STARTED_ANNOTATION] = replica.handle.started
        return annotations

    def _table_mtime(self) -> float | None:
        try:
            return (self._home / IMAGES_FILE).stat().st_mtime
        except OSError:
            return None

    def _reload_images(self, *, force: bool = False) -> None:
        """Read images.yaml again when it changed, so a person can add an image while pods
        wait in ErrImagePull. A broken file keeps the last table that worked."""
        if self._fixed_images is not None:
            return
        mtime = self._table_mtime()
        if mtime == self._images_mtime and not force:
            return
        self._images_mtime = mtime
        try:
            self._images = ImageTable.load(self._home)
        except ManifestError as error:
            self._images_problem = str(error)
        else:
            self._images_problem = None


# --- functions on raw objects ------------------------------------------------------------------


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or "default"), str(metadata.get("name", "")))


def _identity(obj: RawObject) -> RawObject:
    namespace, name = _key(obj)
    return {"kind": obj["kind"], "metadata": {"name": name, "namespace": namespace}}


def _controller_ref(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet" and ref.get("controller", True):
            return ref  # type: ignore[no-any-return]
    return None


def _owned(pod: Mapping[str, Any]) -> bool:
    """Pods without a ReplicaSet owner are not ours to run (nor to stop)."""
    return _controller_ref(pod) is not None


def _owner_name(pod: Mapping[str, Any]) -> str | None:
    ref = _controller_ref(pod)
    return None if ref is None else str(ref.get("name", ""))


def _owner_matches(pod: Mapping[str, Any], rs: Mapping[str, Any]) -> bool:
    ref = _controller_ref(pod) or {}
    uid, rs_uid = ref.get("uid"), (rs.get("metadata") or {}).get("uid")
    return not uid or not rs_uid or uid == rs_uid


def _owner(
    pod: Mapping[str, Any], replica_sets: Mapping[tuple[str, str], RawObject]
) -> RawObject | None:
    name = _owner_name(pod)
    if name is None:
        return None
    rs = replica_sets.get((_key(pod)[0], name))
    return rs if rs is not None and _owner_matches(pod, rs) else None


def _terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _deletion_deadline(pod: Mapping[str, Any]) -> datetime:
    # Kubernetes' deletionTimestamp is the moment the grace period ends.
    return parse_time(pod["metadata"]["deletionTimestamp"])


def _created(pod: Mapping[str, Any]) -> datetime:
    return parse_time(pod["metadata"]["creationTimestamp"])


def _container(pod: Mapping[str, Any]) -> RawObject:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    first: RawObject = containers[0]
    return first


def _replicas(rs: Mapping[str, Any]) -> int:
    value = (rs.get("spec") or {}).get("replicas")
    return 1 if value is None else max(_int(value), 0)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _banner(spec: ProcessSpec, replica: _Replica, now: datetime) -> str:
    return (
        f"--- rollwise {format_time(now)}: starting pod {replica.name} on port {replica.port}:"
        f" {' '.join(spec.argv)}"
    )


async def _wait_for_exit(handles: list[ProcessHandle], *, seconds: float) -> None:
    """Wait (real time: these are real processes) until all have ended, at most `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    for handle in handles:
        for _ in range(int(seconds / 0.02) + 1):
            if processes.poll(handle) is not None or loop.time() >= deadline:
                break
            await asyncio.sleep(0.02)
