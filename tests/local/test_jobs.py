"""The local JobRunner runs a Job's container as a real process and reports how it ended, also
to a runner that did not start it (a controller restarted after a kill -9)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from rollwise.api.errors import UserError
from rollwise.platforms.local.jobs import LocalJobRunner


def template(*argv: str) -> dict[str, object]:
    return {"spec": {"containers": [{"name": "check", "command": list(argv)}]}}


async def wait_done(runner: LocalJobRunner, handle: str) -> str:
    for _ in range(200):
        phase = await runner.status(handle)
        if phase != "Running":
            return phase
        await asyncio.sleep(0.05)
    raise AssertionError("the job never ended")


@pytest.mark.parametrize(("code", "phase"), [(0, "Succeeded"), (3, "Failed")])
async def test_exit_code_decides_the_phase(tmp_path: Path, code: int, phase: str) -> None:
    runner = LocalJobRunner(tmp_path)
    handle = await runner.start("check", "default", template(sys.executable, "-c", f"exit({code})"))
    assert await wait_done(runner, handle) == phase


async def test_a_new_runner_reads_how_a_job_it_did_not_start_ended(tmp_path: Path) -> None:
    handle = await LocalJobRunner(tmp_path).start(
        "check", "default", template(sys.executable, "-c", "exit(0)")
    )
    assert await wait_done(LocalJobRunner(tmp_path), handle) == "Succeeded"


async def test_stop_ends_a_running_job(tmp_path: Path) -> None:
    runner = LocalJobRunner(tmp_path)
    handle = await runner.start(
        "sleepy", "default", template(sys.executable, "-c", "import time; time.sleep(60)")
    )
    assert await runner.status(handle) == "Running"
    await runner.stop(handle)
    assert await wait_done(runner, handle) == "Failed"


async def test_an_unknown_image_is_refused(tmp_path: Path) -> None:
    runner = LocalJobRunner(tmp_path)
    with pytest.raises(UserError, match="image table"):
        await runner.start(
            "check", "default", {"spec": {"containers": [{"name": "c", "image": "nope:1"}]}}
        )
