"""Readiness of a local replica: the container's readinessProbe, against the pod's own port.

Who uses this: `pods.PodSupervisor`, once per pass for every running replica. The probe's own
`port` is ignored on purpose: templates name the container port they would have in a cluster
(8080, "http"), while locally the app listens where `PORT` says. A container without a probe is
ready when its port accepts a TCP connection; `exec` probes are not run locally and fall back to
the TCP check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rollwise.platforms.local.processes import LOOPBACK

_MAX_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ReadinessProbe:
    """The parts of a Kubernetes readinessProbe that local mode honours."""

    kind: Literal["http", "tcp"] = "tcp"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    timeout_seconds: float = 1.0
    initial_delay_seconds: float = 0.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_container(cls, container: Mapping[str, Any]) -> ReadinessProbe:
        raw = container.get("readinessProbe")
        if not isinstance(raw, Mapping):
            return cls()
        common: dict[str, Any] = {
            "timeout_seconds": min(_number(raw.get("timeoutSeconds"), 1.0), _MAX_TIMEOUT_S),
            "initial_delay_seconds": _number(raw.get("initialDelaySeconds"), 0.0),
            "success_threshold": max(int(_number(raw.get("successThreshold"), 1)), 1),
            "failure_threshold": max(int(_number(raw.get("failureThreshold"), 3)), 1),
        }
        http = raw.get("httpGet")
        if isinstance(http, Mapping):
            headers = tuple(
                (str(item.get("name", "")), str(item.get("value", "")))
                for item in http.get("httpHeaders") or []
                if isinstance(item, Mapping) and item.get("name")
            )
            return cls(kind="http", path=str(http.get("path") or "/"), headers=headers, **common)
        return cls(kind="tcp", **common)


async def check_ready(probe: ReadinessProbe, port: int) -> bool:
    """One probe of the replica listening on `port`: True when it answered as ready."""
    try:
        async with asyncio.timeout(probe.timeout_seconds):
            if probe.kind == "http":
                return await _http_get(probe, port)
            return await _tcp_connect(port)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        return False


async def _tcp_connect(port: int) -> bool:
    _reader, writer = await asyncio.open_connection(LOOPBACK, port)
    await _close(writer)
    return True


async def _http_get(probe: ReadinessProbe, port: int) -> bool:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        lines = [
            f"GET {probe.path} HTTP/1.1",
            f"Host: {LOOPBACK}:{port}",
            "User-Agent: rollwise-probe",
            "Accept: */*",
            "Connection: close",
            *(f"{name}: {value}" for name, value in probe.headers),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
    finally:
        await _close(writer)
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return False
    # Kubernetes: any code from 200 to 399 is a success.
    return 200 <= int(parts[1]) < 400


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
