"""Replica processes: start them detached, recognise them later, signal them safely.

Who uses this: `pods.PodSupervisor`. The one rule that shapes everything here: a pod process
must outlive the controller (a `kill -9` of the controller must not take the app down), and a
later controller must be able to tell whether a pid it reads back from the store is still *that*
process, not an unrelated one that got the same pid. So each process starts in its own session
(its own process group, away from the controller's signals), and is identified by its pid plus
the kernel's start time for it (field 22 of `/proc/<pid>/stat`, in clock ticks since boot),
which no other process can share while the pid is in use.

A controller killed between starting a process and recording it would leave a process nobody
knows, running for ever. So `spawn_gated` starts the program behind a gate: a shell that waits
for one line on a pipe before it execs the program (same pid, same start time). The caller
records the handle, then `release`s it; if the caller dies first, the pipe closes unread and
the shell exits without ever starting the program.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from rollwise.platforms.local.images import ProcessSpec

LOOPBACK = "127.0.0.1"

# Our own children, so that their exit codes can be read and their zombies reaped. A process
# left running on purpose (the controller stops without stopping its pods) stays registered, so
# that the Popen object is never collected while the process lives.
_CHILDREN: dict[int, tuple[subprocess.Popen[bytes], str]] = {}


@dataclass(frozen=True)
class ProcessHandle:
    """A process as the store remembers it: pid plus kernel start time."""

    pid: int
    started: str


@dataclass(frozen=True)
class ProcessExit:
    """How a process ended; `exit_code` is None when it was not our child (adopted)."""

    exit_code: int | None

    @property
    def reason(self) -> str:
        return "Completed" if self.exit_code == 0 else "Error"


# Waits for "go" on stdin, then becomes the program with stdin from /dev/null; exits on EOF.
_GATE = 'read -r go && [ "$go" = go ] && exec "$@" </dev/null'


@dataclass
class GatedProcess:
    """A process started by `spawn_gated`, waiting at its gate until `release`."""

    handle: ProcessHandle
    _gate: IO[bytes] | None

    def release(self) -> None:
        """Let the program start (call once the handle is recorded)."""
        self._close(b"go\n")

    def abandon(self) -> None:
        """Never start it: the gate's shell exits."""
        self._close(b"")

    def _close(self, line: bytes) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            with contextlib.suppress(OSError):  # the shell is already gone
                gate.write(line)
            with contextlib.suppress(OSError):
                gate.close()


def spawn_gated(spec: ProcessSpec, *, log_path: Path, banner: str = "") -> GatedProcess:
    """`spawn`, but the program waits until the caller has recorded the handle and released
    it (see the module docstring). Raises OSError as `spawn` does (for the shell: a program that
    cannot be found is reported by the shell in the log, and the process ends)."""
    _check_program(spec)
    gated = replace(spec, argv=("/bin/sh", "-c", _GATE, "sh", *spec.argv))
    popen, handle = _start(gated, log_path=log_path, banner=banner, stdin=subprocess.PIPE)
    return GatedProcess(handle, popen.stdin)


def spawn(spec: ProcessSpec, *, log_path: Path, banner: str = "") -> ProcessHandle:
    """Start a process detached from ours, stdout and stderr appended to `log_path`.

    Raises OSError when the program cannot be started (not found, not executable, bad cwd).
    """
    return _start(spec, log_path=log_path, banner=banner, stdin=subprocess.DEVNULL)[1]


def _start(
    spec: ProcessSpec, *, log_path: Path, banner: str, stdin: int
) -> tuple[subprocess.Popen[bytes], ProcessHandle]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        if banner:
            log.write(banner.encode() + b"\n")
            log.flush()
        popen = subprocess.Popen(
            list(spec.argv),
            env={**os.environ, **spec.env},
            cwd=spec.cwd,
            stdin=stdin,
            stdout=log,
            stderr=subprocess.STDOUT,
            # A new session: no controlling terminal, its own process group, untouched by a
            # Ctrl-C or kill of the controller.
            start_new_session=True,
            close_fds=True,
        )
    started = start_time(popen.pid)
    if started is None:  # cannot happen for an unreaped child; keep the handle unmatchable
        started = "unknown"
    _CHILDREN[popen.pid] = (popen, started)
    return popen, ProcessHandle(pid=popen.pid, started=started)


def _check_program(spec: ProcessSpec) -> None:
    """Raise the OSError `Popen` would for a program that cannot run (the shell of the gate
    would only say so in the log)."""
    program = spec.argv[0]
    if "/" in program:
        path: str | None = os.path.join(spec.cwd or os.getcwd(), program)
    else:
        path = shutil.which(program, path={**os.environ, **spec.env}.get("PATH"))
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)


def start_time(pid: int) -> str | None:
    """The kernel's start time of a live (or zombie) process, None when there is none."""
    stat = _read_stat(pid)
    return None if stat is None else stat[1]


def poll(handle: ProcessHandle) -> ProcessExit | None:
    """None while the process of `handle` runs; how it ended otherwise.

    A different process that reuses the pid counts as "ended": it is not ours.
    """
    child = _CHILDREN.get(handle.pid)
    if child is not None and child[1] == handle.started:
        popen = child[0]
        code = popen.poll()
        if code is None:
            return None
        del _CHILDREN[handle.pid]
        return ProcessExit(_exit_code(code))
    stat = _read_stat(handle.pid)
    if stat is None or stat[1] != handle.started:
        return ProcessExit(None)
    if stat[0] in ("Z", "X"):
        return ProcessExit(_reap(handle.pid))
    return None


def send_signal(handle: ProcessHandle, sig: int) -> bool:
    """Signal the process and its group, only if it is still the process of `handle`."""
    if poll(handle) is not None:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(handle.pid) == handle.pid:
            os.killpg(handle.pid, sig)
        else:
            os.kill(handle.pid, sig)
        return True
    return False


def terminate(handle: ProcessHandle) -> bool:
    return send_signal(handle, signal.SIGTERM)


def kill(handle: ProcessHandle) -> bool:
    return send_signal(handle, signal.SIGKILL)


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel picks it; we release it at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a server could bind `port` on loopback now (as servers do, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _read_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time) from /proc/<pid>/stat, None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def _reap(pid: int) -> int | None:
    with contextlib.suppress(ChildProcessError):
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return _exit_code(os.waitstatus_to_exitcode(status))
    return None


def _exit_code(code: int) -> int:
    # Kubernetes reports death by signal N as exit code 128 + N.
    return 128 - code if code < 0 else code
