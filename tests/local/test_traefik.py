"""One real Traefik per home: started once, adopted by the next controller, restarted when it
dies, on ports that stay the same."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from rollwise.api.errors import TransientError
from rollwise.platforms.local.traefik import (
    LATENCY_BUCKETS,
    TraefikProcess,
    free_port,
    pid_alive,
    process_start_time,
)


@pytest.fixture
async def traefiks(tmp_path: Path) -> AsyncIterator[Callable[..., TraefikProcess]]:
    """Make TraefikProcess objects for one home; each is stopped afterwards, newest first."""
    made: list[TraefikProcess] = []

    def make(*, web_port: int | None = None, api_port: int | None = None) -> TraefikProcess:
        made.append(TraefikProcess(tmp_path, web_port=web_port, api_port=api_port))
        return made[-1]

    try:
        yield make
    finally:
        for traefik in reversed(made):
            await traefik.stop()


def read_state(home: Path) -> dict[str, object]:
    state: dict[str, object] = json.loads((home / "traefik" / "state.json").read_text())
    return state


def test_the_static_configuration_has_the_settings_the_data_plane_relies_on(
    tmp_path: Path,
) -> None:
    config = TraefikProcess(tmp_path).static_config(web_port=8000, api_port=8001)
    assert config["entryPoints"]["web"]["address"] == "127.0.0.1:8000"
    assert config["entryPoints"]["traefik"]["address"] == "127.0.0.1:8001"
    assert config["providers"]["providersThrottleDuration"] == "0s"
    assert config["providers"]["file"] == {
        "directory": str(tmp_path / "traefik" / "dynamic"),
        "watch": True,
    }
    prometheus = config["metrics"]["prometheus"]
    assert prometheus["buckets"] == list(LATENCY_BUCKETS)
    assert prometheus["addServicesLabels"]
    assert prometheus["addRoutersLabels"]
    assert config["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    assert config["log"]["filePath"] == str(tmp_path / "logs" / "traefik.log")


async def test_start_records_pid_start_time_and_ports(
    traefiks: Callable[..., TraefikProcess], tmp_path: Path
) -> None:
    traefik = traefiks()
    assert await traefik.start_or_adopt() == "started"
    assert await traefik.ping()
    assert traefik.pid is not None
    assert read_state(tmp_path) == {
        "webPort": traefik.web_port,
        "apiPort": traefik.api_port,
        "pid": traefik.pid,
        "started": process_start_time(traefik.pid),
    }
    assert (tmp_path / "logs" / "traefik.log").exists()


async def test_a_second_controller_adopts_the_running_traefik(
    traefiks: Callable[..., TraefikProcess],
) -> None:
    first = traefiks()
    await first.start_or_adopt()
    second = traefiks()
    assert await second.start_or_adopt() == "adopted"
    assert (second.pid, second.web_port, second.api_port) == (
        first.pid,
        first.web_port,
        first.api_port,
    )
    assert second.is_running()


def run_controller_killed_after_start(home: Path) -> int:
    """A controller process that starts Traefik and is then killed with SIGKILL; Traefik's pid."""
    program = f"""
import asyncio, time
from pathlib import Path
from rollwise.platforms.local.traefik import TraefikProcess
traefik = TraefikProcess(Path({str(home)!r}))
asyncio.run(traefik.start_or_adopt())
print(traefik.pid, flush=True)
time.sleep(60)
"""
    controller = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE)
    try:
        assert controller.stdout is not None
        return int(controller.stdout.readline())
    finally:
        controller.kill()
        controller.wait(timeout=10)
        if controller.stdout is not None:
            controller.stdout.close()


async def test_traefik_outlives_a_controller_killed_with_sigkill(
    traefiks: Callable[..., TraefikProcess], tmp_path: Path
) -> None:
    pid = run_controller_killed_after_start(tmp_path)
    assert pid_alive(pid)
    successor = traefiks()
    assert await successor.start_or_adopt() == "adopted"
    assert successor.pid == pid
    assert await successor.ping()


async def test_supervise_restarts_a_dead_traefik_on_the_same_ports(
    traefiks: Callable[..., TraefikProcess],
) -> None:
    traefik = traefiks()
    await traefik.start_or_adopt()
    old_pid, ports = traefik.pid, (traefik.web_port, traefik.api_port)
    assert not await traefik.supervise()  # alive: nothing to do
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while traefik.is_running():  # the signal takes a moment to land
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert await traefik.supervise()
    assert traefik.pid != old_pid
    assert (traefik.web_port, traefik.api_port) == ports
    assert await traefik.ping()


async def test_a_stopped_traefik_comes_back_on_the_remembered_ports(
    traefiks: Callable[..., TraefikProcess],
) -> None:
    first = traefiks()
    await first.start_or_adopt()
    ports = (first.web_port, first.api_port)
    await first.stop()
    assert not await first.ping()
    again = traefiks()
    assert await again.start_or_adopt() == "started"
    assert (again.web_port, again.api_port) == ports


async def test_a_port_given_by_the_user_wins_over_the_running_one(
    traefiks: Callable[..., TraefikProcess],
) -> None:
    first = traefiks()
    await first.start_or_adopt()
    wanted = free_port()
    second = traefiks(web_port=wanted)
    assert await second.start_or_adopt() == "started"
    assert second.web_port == wanted
    assert first.pid is not None
    assert not pid_alive(first.pid)  # replaced, not left running beside the new one
    assert await second.ping()


async def test_a_reused_pid_is_not_adopted(
    traefiks: Callable[..., TraefikProcess], tmp_path: Path
) -> None:
    # state.json names a live process that is not our Traefik (this test process).
    state_dir = tmp_path / "traefik"
    state_dir.mkdir(parents=True)
    state = {"webPort": free_port(), "apiPort": free_port(), "pid": os.getpid(), "started": "1"}
    (state_dir / "state.json").write_text(json.dumps(state))
    traefik = traefiks()
    assert await traefik.start_or_adopt() == "started"
    assert traefik.pid != os.getpid()
    assert await traefik.ping()


async def test_a_busy_port_fails_with_traefiks_reason(
    traefiks: Callable[..., TraefikProcess],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        traefik = traefiks(web_port=taken.getsockname()[1])
        with pytest.raises(TransientError, match="address already in use"):
            await traefik.start_or_adopt()
    assert not traefik.is_running()
