"""Faults injected in the local store: SQLite locked by another process, and a full disk.

What must hold: a write that cannot be made is one clear error (the CLI prints one line and
exits 1, never a traceback), changes nothing, and works again once the fault clears; the
controller logs the failed reconcile in one line, retries it with its capped back-off, keeps
running (before the fix, a pod-status write into a locked store ended the controller), loses
nothing, and the rollout finishes once the fault clears.

How the faults are made:
- locked: a second SQLite connection holds `BEGIN EXCLUSIVE` (what any other process writing
  for long does); in WAL mode reads go on, writers wait out their busy timeout (5 s) and fail;
- disk full: the store lives on a small tmpfs (`mount -t tmpfs -o size=...`, which needs root:
  the tests skip without) that a filler file fills to the last byte, after the store's WAL was
  truncated so the next write must grow a file. `PRAGMA max_page_count` would only limit the
  test's own connection, not the controller's; a tmpfs fills for every process, as a disk does.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from faults import disk_full, holding_the_write_lock, small_filesystem
from tests.e2e.support import (
    IMAGE,
    ControllerProcess,
    controller,
    home,
    rollout_yaml,
    rollwise,
    wait_until,
)

from rollwise.api.errors import TransientError
from rollwise.controller.local import stop_home
from rollwise.platforms.local.store import SqliteStore

__all__ = ["controller", "home"]  # the e2e fixtures, used here

pytestmark = pytest.mark.timeout(120)

BUSY_TIMEOUT_S = 5.0  # SqliteStore's: a writer gives up after waiting this long
LOCK_SECONDS = BUSY_TIMEOUT_S + 1.5
STEPS = 8  # rollout_yaml(): four setWeight steps, each followed by a pause
RETRY = re.compile(r"failed; retrying in (\d+\.\d+)s")


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {}}


# --- the store itself --------------------------------------------------------------------------


def test_a_locked_store_refuses_writes_in_one_sentence_and_changes_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db", busy_timeout=0.2)
    try:
        store.create(service("before"))
        revision = store.revision()
        with holding_the_write_lock(tmp_path / "state.db"):
            with pytest.raises(TransientError) as refused:
                store.create(service("during"))
            assert store.get("Service", "before") is not None  # reads go on
        assert str(refused.value) == (
            f"the local store {tmp_path / 'state.db'} is busy (another rollwise process holds"
            " its lock); retry: database is locked"
        )
        assert store.revision() == revision
        assert store.get("Service", "during") is None
        store.create(service("after"))  # released: writes work again
        assert store.revision() == revision + 1
    finally:
        store.close()


def test_a_full_disk_refuses_writes_in_one_sentence_and_changes_nothing(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", size="4m") as disk:
        store = SqliteStore(disk / "state.db")
        try:
            store.create(service("before"))
            revision = store.revision()
            with disk_full(disk, database=disk / "state.db"):
                with pytest.raises(TransientError) as refused:
                    store.create(service("during") | {"spec": {"note": "x" * 20_000}})
                assert store.get("Service", "before") is not None
            assert str(refused.value) == (
                f"the local store {disk / 'state.db'} cannot be written: its disk is full"
                " (nothing was changed; free some space and retry): database or disk is full"
            )
            assert store.revision() == revision
            assert store.get("Service", "during") is None
            store.create(service("after"))
            assert store.revision() == revision + 1
        finally:
            store.close()


# --- the controller and the CLI ----------------------------------------------------------------


def alive(controller: ControllerProcess) -> bool:
    return controller.process is not None and controller.process.poll() is None


def rollout(home: Path) -> dict[str, Any]:
    result = rollwise(home, "get", "rollout", "myapp", "-o", "json")
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def status(home: Path) -> dict[str, Any]:
    return rollout(home).get("status") or {}  # type: ignore[no-any-return]


def completed(home: Path) -> bool:
    """The update to revision 2 went through every step (not revision 1's old status)."""
    current = rollout(home)
    state = current.get("status") or {}
    return (
        state.get("observedGeneration") == str(current["metadata"]["generation"])
        and state.get("phase") == "Healthy"
        and state.get("currentStepIndex") == STEPS
        and state.get("stableRS") == state.get("currentPodHash")
    )


EXTRA = """\
apiVersion: v1
kind: Service
metadata:
  name: extra
spec:
  selector:
    app: extra
  ports:
  - port: 80
    targetPort: 8080
"""


def apply_extra(home: Path, tmp_path: Path) -> Any:
    """A write that is never a no-op (a no-op write needs no space and no lock for long)."""
    manifest = tmp_path / "extra.yaml"
    manifest.write_text(EXTRA)
    return rollwise(home, "apply", "-f", str(manifest), check=False)


def updating(home: Path, tmp_path: Path, controller: ControllerProcess) -> None:
    """Revision 1 Healthy, then `set image`: the controller is busy writing from here on."""
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(rollout_yaml(pause="1s", replicas=2))
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")
    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")


def assert_one_line(result: Any, fragment: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: the local store "), lines
    assert fragment in lines[0], lines


def assert_recovered(home: Path, controller: ControllerProcess, fragment: str) -> None:
    """The controller lived through it, said so in one line per failure, backed off, and the
    rollout finished with nothing lost or doubled."""
    wait_until(lambda: completed(home), timeout=60, what="the rollout to finish")
    assert alive(controller)
    log = controller.log.read_text()
    failures = [line for line in log.splitlines() if " ERROR " in line]
    assert any(fragment in line for line in failures), log
    assert "Traceback" not in log
    delays = [float(match) for line in failures for match in RETRY.findall(line)]
    assert delays, failures
    assert all(0 < delay <= 10.0 for delay in delays), delays  # capped back-off
    store = SqliteStore.open_home(home)
    try:
        replica_sets = store.list("ReplicaSet")
        revisions = sorted(
            rs["metadata"]["annotations"]["rollout.argoproj.io/revision"] for rs in replica_sets
        )
        assert revisions == ["1", "2"]  # one ReplicaSet per revision: nothing lost or doubled
        rollout = store.require("Rollout", "myapp")
        image = rollout["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"{IMAGE}:yellow"
        assert store.get("Service", "myapp") is not None
        assert store.get("Service", "extra") is None  # the refused apply left nothing behind
        reasons = [event["reason"] for event in store.events(kind="Rollout", name="myapp")]
        assert reasons.count("RolloutCompleted") >= 1
    finally:
        store.close()


@pytest.mark.slow
def test_a_locked_store_stalls_the_controller_which_resumes_when_it_is_released(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    updating(home, tmp_path, controller)
    with holding_the_write_lock(home / "state.db"):
        locked_at = time.monotonic()
        refused = apply_extra(home, tmp_path)
        read = rollwise(home, "get", "rollout", "myapp", check=False)  # reads go on
        time.sleep(max(0.0, LOCK_SECONDS - (time.monotonic() - locked_at)))
        assert alive(controller)
    assert_one_line(refused, "is busy (another rollwise process holds its lock)")
    assert read.returncode == 0, read.stderr
    assert_recovered(home, controller, "is busy (another rollwise process holds its lock)")


@pytest.mark.slow
def test_a_full_disk_stalls_the_controller_which_resumes_when_space_is_freed(
    home: Path, tmp_path: Path
) -> None:
    with small_filesystem(home):
        controller = ControllerProcess(home)
        try:
            updating(home, tmp_path, controller)
            with disk_full(home, database=home / "state.db"):
                refused = apply_extra(home, tmp_path)
                step = status(home).get("currentStepIndex")
                time.sleep(2.0)  # pauses of 1 s fall due meanwhile: no step may be recorded
                assert status(home).get("currentStepIndex") == step
                assert alive(controller)
            assert_one_line(refused, "cannot be written: its disk is full")
            assert_recovered(home, controller, "its disk is full")
        finally:
            controller.stop()
            asyncio.run(asyncio.wait_for(stop_home(home), 30))
            if controller.log.exists():  # kept for a look after the tmpfs is gone
                shutil.copy(controller.log, tmp_path / controller.log.name)
