"""Helpers of the fault-injection tests: faulty endpoints, real servers to kill, and a bench that
drives the controller's own AnalysisRunReconciler over a real SQLite store.

Who uses it: `test_faults_providers.py`, `test_faults_traefik.py`, `test_faults_store.py`.
Every fault is a real one: a loopback HTTP server that answers what the fault says (or nothing
at all), a port nobody listens on, a real Prometheus or Traefik killed with SIGKILL and started
again on the same port, a second SQLite connection holding the write lock, a file system that
is full. Nothing in rollwise is patched.

The end-to-end tests here share `tests/e2e/support.py` (the local controller in a subprocess,
the CLI runner, `wait_until`), imported as `tests.e2e.support`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rollwise.controller.analysis import AnalysisRunReconciler
from rollwise.controller.reconciler import Outcome
from rollwise.core.timestamps import ManualClock
from rollwise.demo.prometheus import PrometheusServer
from rollwise.platforms.local.dataplane import DataPlane
from rollwise.platforms.local.store import SqliteStore
from rollwise.platforms.local.traefik import TraefikProcess, TraefikState, process_start_time
from rollwise.providers.base import ProviderServices

RawObject = dict[str, Any]
COMPLETED = frozenset({"Successful", "Failed", "Error", "Inconclusive"})


def free_port() -> int:
    """A loopback port nobody listens on (bound and released: connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- an endpoint that misbehaves on demand -------------------------------------------------------


@dataclass
class Answer:
    """What the faulty endpoint answers: a status and a body, or nothing at all (`hang`)."""

    status: int = 200
    body: str = ""
    content_type: str = "application/json"
    hang: bool = False


@dataclass
class FaultyEndpoint:
    """A loopback HTTP server that answers every path with `answer` (and `/ping` with 200, so a
    TraefikProcess can adopt it as a Traefik). `hits` counts the requests per path."""

    answer: Answer = field(default_factory=Answer)
    hits: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _runner: web.AppRunner | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        if request.path == "/ping":
            return web.Response(text="OK")
        answer = self.answer
        if answer.hang:
            await self._released.wait()  # until the test ends: the client's timeout must fire
        return web.Response(
            status=answer.status, text=answer.body, content_type=answer.content_type
        )

    async def start(self) -> FaultyEndpoint:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()


# --- a Traefik stand-in for the platform's metrics reader ----------------------------------------


@dataclass
class FakeTraefik:
    """The local platform's real metrics reader (`DataPlane.scrape_metrics`) pointed at a
    FaultyEndpoint: `<home>/traefik/state.json` names a placeholder process (a `sleep` this
    helper owns) and the endpoint's port, and `TraefikProcess.start_or_adopt` adopts it as it
    adopts a Traefik a killed controller left behind (same pid, same start time, /ping)."""

    dataplane: DataPlane
    placeholder: subprocess.Popen[bytes]

    @classmethod
    async def adopt(cls, home: Path, endpoint: FaultyEndpoint) -> FakeTraefik:
        placeholder = subprocess.Popen(["sleep", "600"], start_new_session=True)  # noqa: ASYNC220
        state = TraefikState(
            web_port=free_port(),
            api_port=endpoint.port,
            pid=placeholder.pid,
            started=process_start_time(placeholder.pid),
        )
        (home / "traefik").mkdir(parents=True, exist_ok=True)
        (home / "traefik" / "state.json").write_text(json.dumps(state.to_raw()))
        traefik = TraefikProcess(home)
        how = await traefik.start_or_adopt()
        assert how == "adopted", how
        return cls(DataPlane(home, traefik), placeholder)

    def services(self) -> ProviderServices:
        return ProviderServices(traefik_metrics=self.dataplane.scrape_metrics)

    async def close(self) -> None:
        await self.dataplane.close()
        if self.placeholder.poll() is None:
            self.placeholder.kill()
        self.placeholder.wait(timeout=10)


# --- real servers killed and started again -------------------------------------------------------


class RestartablePrometheus(PrometheusServer):
    """Debian's Prometheus (the demo's runner), which a test may SIGKILL and start again on the
    same port and data directory."""

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()


def kill_process_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


# --- the analysis bench ---------------------------------------------------------------------------


def analysis_run(name: str, *metrics: RawObject) -> RawObject:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"metrics": list(metrics)},
    }


class AnalysisBench:
    """The controller's AnalysisRunReconciler over a real SQLite store, on a manual clock that
    jumps to each time the reconciler asks to come back (the 10 s retry after an Error, a
    metric's interval, a measurement's resumeAt), so a run of many measurements takes no longer
    than its HTTP calls."""

    def __init__(self, root: Path, services: ProviderServices | None = None) -> None:
        self.clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
        self.store = SqliteStore(root / "state.db", clock=self.clock)
        self.reconciler = AnalysisRunReconciler(
            self.store, clock=self.clock, services=services or ProviderServices()
        )
        self.reconciles = 0

    def close(self) -> None:
        self.store.close()

    def create(self, name: str, *metrics: RawObject) -> None:
        self.store.create(analysis_run(name, *metrics))

    def run(self, name: str) -> RawObject:
        return self.store.require("AnalysisRun", name)

    async def step(self, name: str) -> Outcome:
        """One reconcile (which must not raise), then the clock moves to its requeue time."""
        outcome = await self.reconciler.reconcile("default", name)
        self.reconciles += 1
        if outcome.requeue_after:
            self.clock.advance(outcome.requeue_after)
        return outcome

    async def until_measured(self, name: str, count: int, *, steps: int = 50) -> RawObject:
        """Reconcile until the run holds `count` finished measurements (or completes)."""
        for _ in range(steps):
            run = self.run(name)
            if phase_of(run) in COMPLETED or len(finished_measurements(run)) >= count:
                return run
            await self.step(name)
        raise AssertionError(f"run {name} took more than {steps} reconciles: {self.run(name)}")

    async def until_completed(
        self,
        name: str,
        *,
        steps: int = 50,
        between: Callable[[RawObject], None] | None = None,
    ) -> RawObject:
        """Reconcile until the run completes; `between(run)` is called after each reconcile."""
        for _ in range(steps):
            run = self.run(name)
            if phase_of(run) in COMPLETED:
                return run
            outcome = await self.step(name)
            if between is not None:
                between(self.run(name))
            if outcome.requeue_after is None and phase_of(self.run(name)) not in COMPLETED:
                raise AssertionError(f"run {name} will never be reconciled again: {run}")
        raise AssertionError(f"run {name} did not complete in {steps} reconciles")


def phase_of(run: RawObject) -> str | None:
    phase = (run.get("status") or {}).get("phase")
    return str(phase) if phase is not None else None


def metric_result(run: RawObject, metric: str = "m") -> RawObject:
    for result in (run.get("status") or {}).get("metricResults") or ():
        if result["name"] == metric:
            return dict(result)
    raise AssertionError(f"no result for metric {metric}: {run.get('status')}")


def finished_measurements(run: RawObject, metric: str = "m") -> list[RawObject]:
    results = (run.get("status") or {}).get("metricResults") or ()
    return [
        m
        for result in results
        if result["name"] == metric
        for m in result.get("measurements") or ()
        if m.get("finishedAt")
    ]


def wait_for(check: Callable[[], Any], *, seconds: float, what: str) -> Any:
    """Poll `check` until truthy (for processes outside the test's control)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def placeholder_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


# --- store faults --------------------------------------------------------------------------------


@contextlib.contextmanager
def holding_the_write_lock(database: Path) -> Iterator[sqlite3.Connection]:
    """Another process's view of the store: a connection in `BEGIN EXCLUSIVE` until the block
    ends (in WAL mode readers go on; every writer waits, then gives up after its timeout)."""
    connection = sqlite3.connect(database, isolation_level=None, timeout=10)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield connection
        connection.execute("COMMIT")
    finally:
        connection.close()


@contextlib.contextmanager
def small_filesystem(path: Path, *, size: str = "32m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on the (empty) directory `path`, unmounted afterwards. Needs
    root (CAP_SYS_ADMIN): the tests that need it skip without."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def disk_full(directory: Path, *, database: Path | None = None) -> Iterator[Path]:
    """Fill the file system of `directory` to the last byte until the block ends.

    With `database`, its write-ahead log is first checkpointed and truncated to zero bytes, so
    the very next write to the store has to grow a file: SQLite keeps a WAL file's size and
    reuses it, and a write that fits in the space it already holds would not see the fault.
    """
    if database is not None:
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0, "the WAL could not be truncated"
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        free = os.statvfs(directory)
        with contextlib.suppress(OSError):
            os.posix_fallocate(handle.fileno(), 0, free.f_bavail * free.f_frsize)
        with contextlib.suppress(OSError):
            while True:  # the last pages posix_fallocate left
                handle.write(b"\0" * 4096)
    try:
        yield filler
    finally:
        filler.unlink()
