"""Fixtures for end-to-end tests: a home whose processes are all stopped afterwards, a real
local controller (in this process or as a `rollwise controller --local` subprocess), and a
client that sends real requests through Traefik."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from rollwise.controller.local import stop_home
from rollwise.platforms.local.store import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "argoproj/rollouts-demo"


def rollout_yaml(*, pause: str = "1s", replicas: int = 5, image: str = f"{IMAGE}:blue") -> str:
    """The seed's Part 3 Rollout and Service, with shorter pauses."""
    text = (ROOT / "examples" / "rollout.yaml").read_text()
    text = text.replace("{duration: 2m}", f"{{duration: {pause}}}")
    text = text.replace("replicas: 5", f"replicas: {replicas}")
    return text.replace(f"{IMAGE}:blue", image)


def kill_leftovers(home: Path) -> None:
    """Last resort: SIGKILL every process the home's records name."""
    pids: list[int] = []
    db = home / "state.db"
    if db.exists():
        store = SqliteStore(db)
        try:
            for pod in store.list("Pod", None):
                pid = (pod["metadata"].get("annotations") or {}).get("rollwise.io/pid")
                if pid:
                    pids.append(int(pid))
        finally:
            store.close()
    state = home / "traefik" / "state.json"
    if state.exists():
        pid = json.loads(state.read_text()).get("pid")
        if pid:
            pids.append(int(pid))
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "home"
    path.mkdir()
    try:
        yield path
    finally:
        try:
            asyncio.run(asyncio.wait_for(stop_home(path), 30))
        finally:
            kill_leftovers(path)


def rollwise(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real CLI, as a person would."""
    result = subprocess.run(
        [sys.executable, "-m", "rollwise", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"rollwise {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


class ControllerProcess:
    """`rollwise controller --local` in a subprocess, which a test may kill -9."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "controller-test.log"

    def start(self, *options: str) -> None:
        """Start it with a relative `--home`, as a person types it (every path the controller
        hands its children, Traefik's configuration above all, must still resolve), and no
        metrics or dashboard port unless `options` ask for one (tests run side by side)."""
        ports = [] if options else ["--metrics-port", "0", "--dashboard-port", "0"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rollwise",
                    "--home",
                    self.home.name,
                    "controller",
                    "--local",
                    *ports,
                    *options,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home.parent,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def controller(home: Path) -> Iterator[ControllerProcess]:
    process = ControllerProcess(home)
    try:
        yield process
    finally:
        process.stop()
        # pytest shows this only for a failed test: what the controller said last
        if process.log.exists():
            tail = process.log.read_text(errors="replace").splitlines()[-60:]
            print("--- the controller's log, last lines:", *tail, sep="\n")


def store_of(home: Path) -> SqliteStore:
    return SqliteStore.open_home(home)


def wait_until(
    check: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


def web_port(home: Path) -> int:
    state = json.loads((home / "traefik" / "state.json").read_text())
    return int(state["webPort"])


def colors_served(home: Path, host: str, count: int) -> Counter[str]:
    """Send `count` requests through Traefik; how many each color answered."""
    served: Counter[str] = Counter()
    port = web_port(home)
    for _ in range(count):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                served[json.loads(response.read())["color"]] += 1
        except OSError:
            served["error"] += 1
    return served


def assert_split(served: Mapping[str, int], expected: Mapping[str, int], *, slack: int = 2) -> None:
    """`served` matches `expected` to within `slack` requests per colour. Traefik's weighted
    round robin is exact over a whole cycle, but a sample starts wherever the previous requests
    left the cycle, so a split of 50/50 may read 49/51."""
    assert set(served) == {color for color, count in expected.items() if count}, served
    for color, count in expected.items():
        assert abs(served.get(color, 0) - count) <= slack, (served, expected)
