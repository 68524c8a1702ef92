"""A pod's program runs only once the supervisor has recorded its pid: a supervisor killed in
between leaves no process that no Pod object names (found by the kill -9 reliability test:
demo-app processes outlived every controller and every `--stop`, unknown to the store)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rollwise.platforms.local import processes
from rollwise.platforms.local.images import ProcessSpec
from rollwise.platforms.local.store import SqliteStore

pytestmark = pytest.mark.slow

# Writes its pid to a file, then waits.
PROGRAM = [
    sys.executable,
    "-c",
    "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)",
]


def gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while processes.start_time(pid) is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_for_file(path: Path, seconds: float = 10) -> str:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.02)
    return path.read_text()


def test_the_program_runs_when_released_as_the_process_recorded(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    spec = ProcessSpec(argv=(*PROGRAM, str(ran)), env={})
    gate = processes.spawn_gated(spec, log_path=tmp_path / "log")
    try:
        time.sleep(0.3)
        assert not ran.exists()  # held at the gate
        assert processes.poll(gate.handle) is None
        gate.release()
        assert int(wait_for_file(ran)) == gate.handle.pid
        assert processes.start_time(gate.handle.pid) == gate.handle.started
    finally:
        processes.kill(gate.handle)
    assert gone(gate.handle.pid)


def test_an_abandoned_process_never_runs_its_program(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    gate = processes.spawn_gated(
        ProcessSpec(argv=(*PROGRAM, str(ran)), env={}), log_path=tmp_path / "log"
    )
    gate.abandon()
    assert gone(gate.handle.pid)
    assert not ran.exists()


def test_a_program_that_cannot_run_is_an_oserror_as_with_spawn(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        processes.spawn_gated(
            ProcessSpec(argv=("no-such-program-x",), env={}), log_path=tmp_path / "log"
        )
    (tmp_path / "plain").write_text("")
    with pytest.raises(PermissionError):
        processes.spawn_gated(
            ProcessSpec(argv=("./plain",), env={}, cwd=tmp_path), log_path=tmp_path / "log"
        )


# A supervisor that is killed (SIGKILL, by itself) right after it started a pod's process.
DYING_SUPERVISOR = """
import asyncio, json, os, signal, sys
from pathlib import Path
from rollwise.core.timestamps import SystemClock
from rollwise.platforms.local import processes, pods
from rollwise.platforms.local.store import SqliteStore

home = Path(sys.argv[1])
spawn_gated = processes.spawn_gated

def spawn_and_die(*args, **kwargs):
    gate = spawn_gated(*args, **kwargs)
    print(json.dumps(gate.handle.pid), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

processes.spawn_gated = spawn_and_die
store = SqliteStore.open_home(home)
asyncio.run(pods.PodSupervisor(store, home, clock=SystemClock()).reconcile(SystemClock().now()))
"""


def test_a_supervisor_killed_right_after_starting_a_pod_leaves_no_process_behind(
    tmp_path: Path,
) -> None:
    ran = tmp_path / "ran"
    labels = {"app": "web", "rollouts-pod-template-hash": "abc"}
    container = {"name": "app", "image": "test:1", "command": [*PROGRAM, str(ran)]}
    with SqliteStore.open_home(tmp_path) as store:
        store.create(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "web-abc", "labels": labels},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [container]},
                    },
                },
            }
        )
    dying = subprocess.run(
        [sys.executable, "-c", DYING_SUPERVISOR, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dying.returncode == -signal.SIGKILL, dying.stderr
    pid = json.loads(dying.stdout)
    try:
        assert gone(pid), "the pod's process outlived the supervisor that never recorded it"
        assert not ran.exists()
    finally:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
