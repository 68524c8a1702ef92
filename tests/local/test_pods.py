"""The pod supervisor runs ReplicaSets as real local processes.

Every test starts real processes (a tiny HTTP server, or a program that crashes), drives the
supervisor pass by pass, and moves a manual clock for everything timed (back-off, grace periods,
minReadySeconds), so nothing here depends on how fast the machine is. A fixture kills whatever
a test leaves running, even when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rollwise.core.timestamps import ManualClock
from rollwise.platforms.local import processes
from rollwise.platforms.local.images import ImageTable
from rollwise.platforms.local.pods import (
    PID_ANNOTATION,
    PORT_ANNOTATION,
    STARTED_ANNOTATION,
    PodSupervisor,
    log_path,
)
from rollwise.platforms.local.processes import ProcessHandle
from rollwise.platforms.local.store import SqliteStore

T0 = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)
SETTLE_S = 20.0

SERVER_SOURCE = """
import http.server, os, signal, sys
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        gate = os.environ.get("GATE")
        ok = self.path != "/ready" or not gate or os.path.exists(gate)
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(os.environ["POD_NAME"].encode())
    def log_message(self, *args):
        sys.stderr.write("request " + self.path + "\\n")
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
SERVER = [sys.executable, "-c", SERVER_SOURCE]
CRASHER = [sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"]


@pytest.fixture
def reaper() -> Iterator[list[int]]:
    """Kills every process a test started (or adopted: append pids), whatever happened."""
    before = set(processes._CHILDREN)
    extra: list[int] = []
    yield extra
    for pid, (popen, _started) in list(processes._CHILDREN.items()):
        if pid in before:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        popen.wait(timeout=10)
        processes._CHILDREN.pop(pid, None)
    for pid in extra:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path, clock: ManualClock) -> Iterator[SqliteStore]:
    with SqliteStore.open_home(home, clock=clock) as opened:
        yield opened


@pytest.fixture
async def supervisor(
    store: SqliteStore, home: Path, clock: ManualClock, reaper: list[int]
) -> AsyncIterator[PodSupervisor]:
    supervisor = PodSupervisor(store, home, clock=clock)
    try:
        yield supervisor
    finally:
        await supervisor.shutdown(stop_pods=True)


def replica_set(
    name: str = "web-abc",
    *,
    replicas: int = 1,
    command: list[str] | None = None,
    image: str = "test/server:1",
    **container: Any,
) -> dict[str, Any]:
    labels = {"app": "web", "rollouts-pod-template-hash": name.rsplit("-", 1)[-1]}
    spec = {"name": "app", "image": image, **container}
    if command is not None:
        spec["command"] = command
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [spec]}},
        },
    }


def pods_of(store: SqliteStore, rs: str = "web-abc") -> list[dict[str, Any]]:
    return [pod for pod in store.list("Pod") if pod["metadata"]["ownerReferences"][0]["name"] == rs]


def handle_of(pod: dict[str, Any]) -> ProcessHandle:
    annotations = pod["metadata"]["annotations"]
    return ProcessHandle(int(annotations[PID_ANNOTATION]), annotations[STARTED_ANNOTATION])


def alive(pod: dict[str, Any]) -> bool:
    return processes.poll(handle_of(pod)) is None


def container_status(pod: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = pod["status"]["containerStatuses"][0]
    return status


def rs_status(store: SqliteStore, name: str = "web-abc") -> dict[str, Any]:
    status: dict[str, Any] = store.require("ReplicaSet", name).get("status", {})
    return status


async def settle(
    supervisor: PodSupervisor,
    clock: ManualClock,
    condition: Callable[[], bool],
    *,
    what: str,
) -> None:
    """Run passes (the clock standing still) until `condition` holds; fail after SETTLE_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while True:
        await supervisor.reconcile(clock.now())
        if condition():
            return
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


def write_images(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "images.yaml").write_text(text, encoding="utf-8")


def http_get(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


async def test_scales_up_and_down_with_real_processes(
    store: SqliteStore, supervisor: PodSupervisor, clock: ManualClock, home: Path
) -> None:
    store.create(replica_set(replicas=2, command=SERVER))
    await settle(
        supervisor, clock, lambda: rs_status(store).get("readyReplicas") == 2, what="2 ready"
    )
    pods = pods_of(store)
    assert len(pods) == 2
    assert rs_status(store) == {
        "replicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "observedGeneration": 1,
    }
    for pod in pods:
        name = pod["metadata"]["name"]
        assert name.startswith("web-abc-")
        assert len(name) == len("web-abc-") + 5
        assert pod["metadata"]["labels"]["rollouts-pod-template-hash"] == "abc"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["conditions"][0]["status"] == "True"
        assert container_status(pod)["ready"] is True
        assert container_status(pod)["restartCount"] == 0
        assert alive(pod)
        assert os.getsid(handle_of(pod).pid) == handle_of(pod).pid, "its own session"
        port = int(pod["metadata"]["annotations"][PORT_ANNOTATION])
        assert http_get(port) == name, "the app got its PORT and POD_NAME"
        assert log_path(home, "default", name).exists()

    revision = store.revision()
    for _ in range(3):
        await supervisor.reconcile(clock.now())
    assert store.revision() == revision, "a steady pass writes nothing"

    store.patch("ReplicaSet", "web-abc", merge={"spec": {"replicas": 1}})
    await settle(supervisor, clock, lambda: len(pods_of(store)) == 1, what="scale to 1")
    survivor = pods_of(store)[0]
    assert survivor["metadata"]["name"] in {pod["metadata"]["name"] for pod in pods}
    gone = [pod for pod in pods if pod["metadata"]["name"] != survivor["metadata"]["name"]]
    assert not alive(gone[0])
    assert alive(survivor)
    assert rs_status(store)["replicas"] == 1

    store.patch("ReplicaSet", "web-abc", merge={"spec": {"replicas": 0}})
    await settle(supervisor, clock, lambda: pods_of(store) == [], what="scale to 0")
    assert not alive(survivor)
    assert rs_status(store)["readyReplicas"] == 0
    assert await supervisor.reconcile(clock.now()) is None, "nothing left to watch"


async def test_readiness_follows_the_http_probe(
    store: SqliteStore, supervisor: PodSupervisor, clock: ManualClock, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    probe = {"httpGet": {"path": "/ready", "port": 8080}, "failureThreshold": 1}
    store.create(
        replica_set(
            command=SERVER, readinessProbe=probe, env=[{"name": "GATE", "value": str(gate)}]
        )
    )
    await settle(supervisor, clock, lambda: len(pods_of(store)) == 1, what="pod created")
    port = int(pods_of(store)[0]["metadata"]["annotations"][PORT_ANNOTATION])

    def serving() -> bool:
        with contextlib.suppress(OSError):
            return bool(http_get(port))
        return False

    await settle(supervisor, clock, serving, what="the server to listen")
    await supervisor.reconcile(clock.now())  # one probe of /ready while it answers 503
    pod = pods_of(store)[0]
    assert alive(pod)
    assert pod["status"]["conditions"][0]["status"] == "False"
    assert rs_status(store)["readyReplicas"] == 0

    gate.touch()
    await settle(
        supervisor, clock, lambda: rs_status(store).get("readyReplicas") == 1, what="ready"
    )
    gate.unlink()
    await settle(
        supervisor, clock, lambda: rs_status(store).get("readyReplicas") == 0, what="unready"
    )
    assert container_status(pods_of(store)[0])["ready"] is False


async def test_a_crashing_process_restarts_with_capped_backoff(
    store: SqliteStore, supervisor: PodSupervisor, clock: ManualClock, home: Path
) -> None:
    store.create(replica_set(command=CRASHER))

    def waiting_reason() -> str | None:
        pods = pods_of(store)
        state = container_status(pods[0])["state"] if pods else {}
        return state.get("waiting", {}).get("reason")

    await settle(supervisor, clock, lambda: waiting_reason() == "CrashLoopBackOff", what="crash")
    status = container_status(pods_of(store)[0])
    assert status["restartCount"] == 0
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert "back-off 1s" in status["state"]["waiting"]["message"]
    assert pods_of(store)[0]["status"]["phase"] == "Running"
    for _ in range(3):
        await supervisor.reconcile(clock.now())  # the clock stands still: no restart yet
    assert container_status(pods_of(store)[0])["restartCount"] == 0

    delays = []
    for restarts in range(1, 8):
        message = container_status(pods_of(store)[0])["state"]["waiting"]["message"]
        delays.append(int(message.split("back-off ")[1].split("s")[0]))
        clock.advance(delays[-1])

        def restarted(count: int = restarts) -> bool:
            return container_status(pods_of(store)[0])["restartCount"] == count

        await settle(supervisor, clock, restarted, what=f"restart {restarts}")
        await settle(
            supervisor, clock, lambda: waiting_reason() == "CrashLoopBackOff", what="crash"
        )
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    log = log_path(home, "default", pods_of(store)[0]["metadata"]["name"])
    assert log.read_text().splitlines().count("bye") == 8, "each run appends to one log"


async def test_min_ready_seconds_delays_availability(
    store: SqliteStore, supervisor: PodSupervisor, clock: ManualClock
) -> None:
    body = replica_set(command=SERVER)
    body["spec"]["minReadySeconds"] = 10
    store.create(body)
    await settle(
        supervisor, clock, lambda: rs_status(store).get("readyReplicas") == 1, what="ready"
    )
    assert rs_status(store)["availableReplicas"] == 0
    wait = await supervisor.reconcile(clock.now())
    assert wait is not None
    assert wait <= 10
    clock.advance(10)
    await supervisor.reconcile(clock.now())
    assert rs_status(store)["availableReplicas"] == 1


async def test_a_new_supervisor_adopts_running_pods(
    store: SqliteStore, home: Path, clock: ManualClock, reaper: list[int]
) -> None:
    first = PodSupervisor(store, home, clock=clock)
    store.create(replica_set(replicas=2, command=SERVER))
    await settle(first, clock, lambda: rs_status(store).get("readyReplicas") == 2, what="ready")
    await first.shutdown(stop_pods=False)
    before = {pod["metadata"]["name"]: pod for pod in pods_of(store)}
    assert all(alive(pod) for pod in before.values()), "left running"

    # One of them dies while no supervisor runs.
    victim, keeper = sorted(before)
    os.killpg(handle_of(before[victim]).pid, signal.SIGKILL)
    await settle_death(before[victim])

    with SqliteStore.open_home(home, clock=clock) as other_store:
        second = PodSupervisor(other_store, home, clock=clock)
        try:
            await settle(
                second,
                clock,
                lambda: rs_status(other_store).get("readyReplicas") == 2,
                what="adopted and restarted",
            )
            after = {pod["metadata"]["name"]: pod for pod in pods_of(other_store)}
            assert set(after) == set(before), "no new pods"
            kept = after[keeper]
            assert handle_of(kept) == handle_of(before[keeper]), "same process, adopted"
            assert container_status(kept)["restartCount"] == 0
            assert kept["status"] == before[keeper]["status"], "adoption rewrote nothing"
            restarted = after[victim]
            assert handle_of(restarted) != handle_of(before[victim])
            assert container_status(restarted)["restartCount"] == 1
            assert alive(restarted)
            assert "terminated" in container_status(restarted)["lastState"]
        finally:
            await second.shutdown(stop_pods=True)
    assert not alive(before[keeper])


async def settle_death(pod: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while processes.start_time(handle_of(pod).pid) is not None:
        if processes.poll(handle_of(pod)) is not None or loop.time() > deadline:
            return
        await asyncio.sleep(0.02)


async def test_a_recorded_pid_of_another_process_is_not_adopted(
    store: SqliteStore, home: Path, clock: ManualClock, reaper: list[int]
) -> None:
    first = PodSupervisor(store, home, clock=clock)
    store.create(replica_set(command=SERVER))
    await settle(first, clock, lambda: rs_status(store).get("readyReplicas") == 1, what="ready")
    await first.shutdown(stop_pods=False)
    pod = pods_of(store)[0]
    original = handle_of(pod)
    # Same pid, different start time: as if the pid had been reused by another program.
    store.patch(
        "Pod",
        pod["metadata"]["name"],
        merge={"metadata": {"annotations": {STARTED_ANNOTATION: "1"}}},
    )
    second = PodSupervisor(store, home, clock=clock)
    try:
        await settle(
            second, clock, lambda: rs_status(store).get("readyReplicas") == 1, what="replaced"
        )
        replaced = pods_of(store)[0]
        assert handle_of(replaced).pid != original.pid
        assert processes.poll(original) is None, "the other process was left alone"
    finally:
        await second.shutdown(stop_pods=True)


async def test_shutdown_stops_every_pod(
    store: SqliteStore, home: Path, clock: ManualClock, reaper: list[int]
) -> None:
    supervisor = PodSupervisor(store, home, clock=clock)
    store.create(replica_set(replicas=2, command=SERVER))
    await settle(
        supervisor, clock, lambda: rs_status(store).get("readyReplicas") == 2, what="ready"
    )
    pods = pods_of(store)
    await supervisor.shutdown(stop_pods=True)
    assert not any(alive(pod) for pod in pods)
    assert pods_of(store) == []
    assert rs_status(store)["replicas"] == 0
    assert await supervisor.reconcile(clock.now()) is None, "a stopped supervisor does nothing"
    assert pods_of(store) == []


async def test_pods_of_a_deleted_replica_set_are_stopped(
    store: SqliteStore, supervisor: PodSupervisor, clock: ManualClock
) -> None:
    store.create(replica_set(replicas=2, command=SERVER))
    await settle(supervisor, clock, lambda: len(pods_of(store)) == 2, what="created")
    pods = pods_of(store)
    store.delete("ReplicaSet", "web-abc")
    await settle(supervisor, clock, lambda: pods_of(store) == [], what="stopped")
    assert not any(alive(pod) for pod in pods)


async def test_a_process_that_ignores_sigterm_is_killed_after_its_grace(
    store: SqliteStore, supervisor: PodSupervisor, clock: ManualClock
) -> None:
    body = replica_set(command=SERVER, env=[{"name": "IGNORE_TERM", "value": "1"}])
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 5
    store.create(body)
    await settle(
        supervisor, clock, lambda: rs_status(store).get("readyReplicas") == 1, what="ready"
    )
    store.patch("ReplicaSet", "web-abc", merge={"spec": {"replicas": 0}})
    await supervisor.reconcile(clock.now())
    pod = pods_of(store)[0]
    assert pod["metadata"]["deletionTimestamp"] == "2026-11-26T01:50:05Z"
    assert pod["status"]["conditions"][0]["status"] == "False", "not ready while terminating"
    assert rs_status(store)["replicas"] == 0
    for _ in range(5):
        await supervisor.reconcile(clock.now())  # within the grace period it keeps running
        await asyncio.sleep(0.02)
    assert alive(pod)
    clock.advance(5)
    await settle(supervisor, clock, lambda: pods_of(store) == [], what="killed")
    assert not alive(pod)


async def test_restart_pods_replaces_old_pods_one_at_a_time(
    store: SqliteStore, supervisor: PodSupervisor, clock: ManualClock
) -> None:
    store.create(replica_set(replicas=2, command=SERVER))
    await settle(
        supervisor, clock, lambda: rs_status(store).get("availableReplicas") == 2, what="ready"
    )
    old = {pod["metadata"]["name"] for pod in pods_of(store)}
    clock.advance(5)
    before = clock.now()

    first = await supervisor.restart_pods("web-abc", before, 1)
    assert len(first.evicted) == 1
    assert first.remaining == 1
    again = await supervisor.restart_pods("web-abc", before, 1)
    assert again.evicted == (), "one unavailable at a time"
    assert again.remaining == 1

    def replaced(count: int) -> Callable[[], bool]:
        def check() -> bool:
            pods = pods_of(store)
            fresh = [p for p in pods if p["metadata"]["name"] not in old]
            return (
                len(pods) == 2
                and len(fresh) == count
                and rs_status(store).get("availableReplicas") == 2
            )

        return check

    await settle(supervisor, clock, replaced(1), what="first replacement")
    second = await supervisor.restart_pods("web-abc", before, 1)
    assert len(second.evicted) == 1
    assert second.remaining == 0
    assert set(second.evicted) | set(first.evicted) == old
    await settle(supervisor, clock, replaced(2), what="second replacement")
    assert (await supervisor.restart_pods("web-abc", before, 1)).done


async def test_an_image_missing_from_the_table_waits_until_it_is_added(
    store: SqliteStore, supervisor: PodSupervisor, clock: ManualClock, home: Path
) -> None:
    store.create(replica_set(image="myorg/app:v7"))
    await settle(supervisor, clock, lambda: len(pods_of(store)) == 1, what="pod created")
    pod = pods_of(store)[0]
    assert pod["status"]["phase"] == "Pending"
    waiting = container_status(pod)["state"]["waiting"]
    assert waiting["reason"] == "ErrImagePull"
    assert "not in the image table" in waiting["message"]

    # JSON is YAML: the server's source, newlines and all, survives the trip.
    write_images(home, json.dumps({"myorg/app:*": {"command": SERVER}}))
    assert ImageTable.load(home).lookup("myorg/app:v7") is not None
    await settle(
        supervisor, clock, lambda: rs_status(store).get("readyReplicas") == 1, what="started"
    )
    assert container_status(pods_of(store)[0])["restartCount"] == 0


# A controller, in its own process, that runs one ReplicaSet and prints its pods' pids.
CONTROLLER = """
import asyncio, sys
from pathlib import Path
from rollwise.core.timestamps import SystemClock
from rollwise.platforms.local.pods import PodSupervisor, PID_ANNOTATION
from rollwise.platforms.local.store import SqliteStore

async def main():
    home = Path(sys.argv[1])
    store = SqliteStore.open_home(home)
    supervisor = PodSupervisor(store, home, clock=SystemClock())
    printed = False
    while True:
        await supervisor.reconcile(SystemClock().now())
        rs = store.require("ReplicaSet", "web-abc")
        if not printed and rs.get("status", {}).get("readyReplicas") == 2:
            pids = [p["metadata"]["annotations"][PID_ANNOTATION] for p in store.list("Pod")]
            print(" ".join(pids), flush=True)
            printed = True
        await asyncio.sleep(0.05)

asyncio.run(main())
"""


async def test_pods_outlive_a_killed_controller_and_are_adopted(
    store: SqliteStore, home: Path, clock: ManualClock, reaper: list[int]
) -> None:
    store.create(replica_set(replicas=2, command=SERVER))
    controller = subprocess.Popen(  # noqa: ASYNC220 - a test's own short-lived child
        [sys.executable, "-c", CONTROLLER, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert controller.stdout is not None
        line = await asyncio.to_thread(controller.stdout.readline)
        pids = [int(pid) for pid in line.split()]
        reaper.extend(pids)
        assert len(pids) == 2, controller.stderr.read() if controller.stderr else ""
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait(timeout=10)
        for stream in (controller.stdout, controller.stderr):
            if stream is not None:
                stream.close()
    pods = pods_of(store)
    assert all(alive(pod) for pod in pods), "kill -9 of the controller left the pods running"

    supervisor = PodSupervisor(store, home, clock=clock)
    try:
        await supervisor.reconcile(clock.now())
        adopted = pods_of(store)
        assert sorted(handle_of(pod).pid for pod in adopted) == sorted(pids)
        assert all(container_status(pod)["restartCount"] == 0 for pod in adopted)
        assert rs_status(store)["readyReplicas"] == 2
    finally:
        await supervisor.shutdown(stop_pods=True)
    assert not any(alive(pod) for pod in pods), "not our children, stopped all the same"


async def test_the_builtin_demo_image_runs_as_a_pod(
    store: SqliteStore, supervisor: PodSupervisor, clock: ManualClock
) -> None:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}}
    store.create(replica_set(image="argoproj/rollouts-demo:yellow", readinessProbe=probe))
    await settle(
        supervisor, clock, lambda: rs_status(store).get("readyReplicas") == 1, what="ready"
    )
    pod = pods_of(store)[0]
    answer = json.loads(http_get(int(pod["metadata"]["annotations"][PORT_ANNOTATION])))
    assert answer["color"] == "yellow"
    assert answer["pod"] == pod["metadata"]["name"]


async def test_a_broken_image_table_is_reported_on_the_waiting_pod(
    store: SqliteStore, home: Path, clock: ManualClock, reaper: list[int]
) -> None:
    write_images(home, "myorg/app:*: {args: [no command]}\n")
    supervisor = PodSupervisor(store, home, clock=clock)
    try:
        store.create(replica_set(image="myorg/app:v1"))
        await supervisor.reconcile(clock.now())
        waiting = container_status(pods_of(store)[0])["state"]["waiting"]
        assert waiting["reason"] == "ErrImagePull"
        assert "could not be read" in waiting["message"]
        assert "command must be a non-empty list" in waiting["message"]
    finally:
        await supervisor.shutdown(stop_pods=True)
