"""Watching verbs in a real process follow the store as another process changes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.cli.conftest import Cli

pytestmark = pytest.mark.timeout(60)


class Process:
    """A `rollwise` process whose output is read until what a test waits for appears."""

    def __init__(self, home: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-c", "from rollwise.cli.main import run; run()"]
        self.popen = subprocess.Popen(
            [*command, "--home", str(home), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.output = ""

    def read_until(self, predicate: Callable[[str], bool]) -> str:
        """Output so far once `predicate` holds for it (pytest-timeout bounds the wait)."""
        assert self.popen.stdout is not None
        while not predicate(self.output):
            chunk = os.read(self.popen.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"process ended before expected output: {self.output!r}")
            self.output += chunk.decode()
        return self.output


@contextmanager
def rollwise(home: Path, *args: str) -> Iterator[Process]:
    process = Process(home, *args)
    try:
        yield process
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
        process.popen.wait(timeout=10)
        for stream in (process.popen.stdout, process.popen.stderr):
            if stream is not None:
                stream.close()


def set_status(cli: Cli, **status: object) -> None:
    with cli.store() as store:
        store.patch("Rollout", "myapp", "default", merge=status, status=True)


def test_status_follows_the_rollout_until_healthy(applied: Cli) -> None:
    set_status(applied, phase="Paused", message="CanaryPauseStep")
    with rollwise(applied.home, "status", "myapp", "--timeout", "50s") as process:
        process.read_until(lambda out: "Paused - CanaryPauseStep\n" in out)
        set_status(applied, phase="Progressing", message="more replicas need to be updated")
        process.read_until(lambda out: "Progressing - more replicas" in out)
        set_status(applied, phase="Healthy", message=None)
        assert process.popen.wait(timeout=30) == 0
        process.read_until(lambda out: out.endswith("Healthy\n"))
    assert process.output == (
        "Paused - CanaryPauseStep\nProgressing - more replicas need to be updated\nHealthy\n"
    )


def test_status_exits_1_when_the_rollout_degrades(applied: Cli) -> None:
    set_status(applied, phase="Progressing", message="waiting for all steps to complete")
    with rollwise(applied.home, "status", "myapp") as process:
        process.read_until(lambda out: "Progressing" in out)
        set_status(applied, phase="Degraded", message="RolloutAborted: metric failed")
        assert process.popen.wait(timeout=30) == 1
        process.read_until(lambda out: "Degraded - RolloutAborted: metric failed\n" in out)


def test_get_watch_redraws_on_change_and_ctrl_c_exits_0(applied: Cli) -> None:
    set_status(applied, phase="Paused", message="CanaryPauseStep")
    with rollwise(applied.home, "get", "rollout", "myapp", "-w") as process:
        process.read_until(lambda out: "Status:          ॥ Paused" in out)
        set_status(applied, phase="Healthy", message=None)
        frames = process.read_until(lambda out: "Status:          ✔ Healthy" in out)
        assert frames.count("\x1b[H\x1b[2J") >= 2  # cleared and drawn again
        process.popen.send_signal(signal.SIGINT)
        assert process.popen.wait(timeout=30) == 0
        assert process.popen.stderr is not None
        assert process.popen.stderr.read() == b""
