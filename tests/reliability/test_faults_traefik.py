"""Faults injected in the local data plane's Traefik, under a real local controller driving a
traffic-routed canary: Traefik killed, Traefik frozen while a new weight waits to be applied,
and a dynamic-configuration folder that cannot be written.

What must hold: no step completes on a weight Traefik has not been seen to serve (a setWeight
step waits while the weight cannot be verified), the controller restarts a killed Traefik on the
same ports, and the rollout goes on once Traefik serves what it was told.

How the faults are made, for real:
- killed: SIGKILL to the Traefik process (it runs in its own session, as in production);
- slow to reload: SIGSTOP to Traefik before a weight change and SIGCONT a few seconds later.
  The new configuration file is renamed in while Traefik is frozen; its inotify event waits in
  the kernel and Traefik applies it when it runs again - exactly a reload that takes seconds -
  and meanwhile its API (what rollwise verifies against) does not answer;
- unwritable configuration: the watched folder is bind-mounted read-only over itself (needs
  root; that phase is left out without): rollwise cannot rename the new file in, so Traefik keeps
  serving, and reporting, the previous split. `chmod` would not do: the tests run as root.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.support import (
    IMAGE,
    ControllerProcess,
    assert_split,
    colors_served,
    controller,
    home,
    rollwise,
    wait_until,
)

from rollwise.platforms.local.store import SqliteStore

__all__ = ["controller", "home"]  # the e2e fixtures, used here

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# currentStepIndex: 0 setWeight 20, 1 pause, 2 setWeight 40, 3 pause, 4 setWeight 60, 5 pause
MANIFEST = f"""\
apiVersion: v1
kind: Service
metadata:
  name: myapp-stable
spec:
  selector:
    app: myapp
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: myapp-canary
spec:
  selector:
    app: myapp
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: 2
  strategy:
    canary:
      canaryService: myapp-canary
      stableService: myapp-stable
      trafficRouting:
        istio:
          virtualService:
            name: myapp
            routes:
            - primary
      steps:
      - setWeight: 20
      - pause: {{}}
      - setWeight: 40
      - pause: {{}}
      - setWeight: 60
      - pause: {{}}
  selector:
    matchLabels:
      app: myapp
  template:
    metadata:
      labels:
        app: myapp
    spec:
      containers:
      - name: myapp
        image: {IMAGE}:blue
"""
HOST = "myapp.localhost"


def traefik_state(home: Path) -> dict[str, Any]:
    return json.loads((home / "traefik" / "state.json").read_text())  # type: ignore[no-any-return]


def rollout_status(home: Path) -> dict[str, Any]:
    with SqliteStore.open_home(home) as store:  # reads only: WAL readers never wait
        rollout = store.require("Rollout", "myapp")
    return rollout.get("status") or {}  # type: ignore[no-any-return]


def weights_of(status: dict[str, Any]) -> tuple[int | None, bool | None]:
    weights = (status.get("canary") or {}).get("weights") or {}
    return (weights.get("canary") or {}).get("weight"), weights.get("verified")


def at_pause(home: Path, index: int, weight: int) -> bool:
    status = rollout_status(home)
    return status.get("currentStepIndex") == index and weights_of(status) == (weight, True)


def watch(
    home: Path, *, until: Callable[[dict[str, Any]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Every status the store holds, read every 10 ms until `until(status)` (or `timeout`: then
    what was seen so far)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = rollout_status(home)
        if not seen or status != seen[-1]:
            seen.append(status)
        if until(status):
            break
        time.sleep(0.01)
    return seen


def assert_no_step_passed_unverified(seen: list[dict[str, Any]], *, step: int, weight: int) -> None:
    """Once the rollout is past setWeight step `step`, Traefik was seen to serve `weight`."""
    for status in seen:
        if (status.get("currentStepIndex") or 0) > step:
            assert weights_of(status) == (weight, True), status


def start_canary(home: Path, controller: ControllerProcess, tmp_path: Path) -> None:
    """Revision 1 Healthy, then revision 2 at its first pause with 20% verified in Traefik."""
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(MANIFEST)
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: rollout_status(home).get("phase") == "Healthy", what="revision 1")
    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
    wait_until(lambda: at_pause(home, 1, 20), what="the first pause, 20% verified")


def finish(home: Path, controller: ControllerProcess) -> None:
    rollwise(home, "promote", "myapp", "--full")
    wait_until(
        lambda: (
            rollout_status(home).get("phase") == "Healthy"
            and colors_served(home, HOST, 20) == {"yellow": 20}
        ),
        what="revision 2 Healthy, all traffic on yellow",
    )
    assert controller.process is not None
    assert controller.process.poll() is None


def test_a_killed_traefik_is_restarted_on_its_ports_and_no_step_outruns_its_weight(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start_canary(home, controller, tmp_path)
    before = traefik_state(home)

    os.kill(before["pid"], signal.SIGKILL)
    rollwise(home, "promote", "myapp")  # on to setWeight 40, with Traefik dead
    seen = watch(home, until=lambda status: at_pause(home, 3, 40) or False, timeout=30)

    assert at_pause(home, 3, 40), seen[-1]
    assert_no_step_passed_unverified(seen, step=2, weight=40)
    after = traefik_state(home)
    assert after["pid"] != before["pid"]  # restarted by the controller...
    assert (after["webPort"], after["apiPort"]) == (before["webPort"], before["apiPort"])
    assert_split(colors_served(home, HOST, 100), {"blue": 60, "yellow": 40})  # ...same URL
    finish(home, controller)


def read_only(directory: Path) -> bool:
    """Bind-mount `directory` read-only over itself; False where mounting is not allowed."""
    bound = subprocess.run(
        ["mount", "--bind", str(directory), str(directory)], capture_output=True, check=False
    )
    if bound.returncode != 0:
        return False
    remounted = subprocess.run(
        ["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True, check=False
    )
    if remounted.returncode != 0:
        subprocess.run(["umount", str(directory)], capture_output=True, check=False)
        return False
    return True


def test_a_weight_traefik_is_slow_to_apply_holds_the_step_until_it_is_served(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start_canary(home, controller, tmp_path)
    pid = traefik_state(home)["pid"]

    # 1. Frozen for 3 s: the new weight is written, but nothing can see it served.
    os.kill(pid, signal.SIGSTOP)
    try:
        rollwise(home, "promote", "myapp")
        seen = watch(home, until=lambda status: False, timeout=3.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert all((status.get("currentStepIndex") or 0) <= 2 for status in seen), seen[-1]
    assert seen[-1].get("currentStepIndex") == 2  # at setWeight 40, waiting
    assert weights_of(seen[-1]) in ((40, False), (40, None)), seen[-1]
    seen += watch(home, until=lambda status: at_pause(home, 3, 40), timeout=20)
    assert at_pause(home, 3, 40), seen[-1]
    assert_no_step_passed_unverified(seen, step=2, weight=40)
    assert traefik_state(home)["pid"] == pid  # frozen is not dead: adopted, not replaced
    assert_split(colors_served(home, HOST, 100), {"blue": 60, "yellow": 40})

    # 2. The configuration folder cannot be written: Traefik goes on serving 40%.
    dynamic = home / "traefik" / "dynamic"
    if read_only(dynamic):
        try:
            rollwise(home, "promote", "myapp")
            seen = watch(home, until=lambda status: False, timeout=2.0)
            assert all((status.get("currentStepIndex") or 0) <= 4 for status in seen), seen[-1]
            assert all(weights_of(status)[0] == 40 for status in seen), seen[-1]
            assert_split(colors_served(home, HOST, 100), {"blue": 60, "yellow": 40})
        finally:
            subprocess.run(["umount", str(dynamic)], capture_output=True, check=True)
        seen += watch(home, until=lambda status: at_pause(home, 5, 60), timeout=20)
        assert at_pause(home, 5, 60), seen[-1]
        assert_no_step_passed_unverified(seen, step=4, weight=60)
        assert_split(colors_served(home, HOST, 100), {"blue": 40, "yellow": 60})
        log = controller.log.read_text()
        assert "cannot write Traefik's configuration" in log, log
    finish(home, controller)
