"""Benchmark: requests per second and added latency through Traefik, against the backend
direct (no DESIGN.md budget; the issue asks for the figures).

A real Traefik (`TraefikProcess`, `DataPlane`) routes `myapp.localhost` to one demo-app backend
(`python -m rollwise.demo.app`, the process behind the demo images: standard library,
`ThreadingHTTPServer`) through the stable Service of a traffic-routed rollout at weight 0, as
the local controller configures it. Each round measures both targets, interleaved: the backend
on its own port, and Traefik's entry point with the Host header.

- Latency: one connection, one request at a time (keep-alive), for `DURATION_S`: p50/p99 per
  request; Traefik's added latency is the difference of the medians.
- Throughput: `CONNECTIONS` connections, each sending its next request as the answer comes
  (closed loop), for `DURATION_S`: answers per second.

The load generator is `wrk` when it is on PATH (Debian: `apt-get install -y wrk`), else a
client in this process on aiohttp (the benchmark needs nothing installed; that client is
slower than wrk and competes for the same 2 CPUs, so its throughput is a lower bound). Every
process started here is stopped in `finally`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import Row, Section, Summary
from bench.traffic import _start_app, start_routed
from rollwise.platforms.local.dataplane import DataPlane
from rollwise.platforms.local.traefik import TraefikProcess

DURATION_S = 5.0
ROUNDS = 3
CONNECTIONS = 32
HOST = "myapp.localhost"


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _wrk(url: str, *, connections: int, host: str | None) -> Load:
    command = [
        "wrk",
        f"-t{min(connections, 2)}",
        f"-c{connections}",
        f"-d{DURATION_S:.0f}s",
        "--latency",
        *(["-H", f"Host: {host}"] if host else []),
        url,
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=DURATION_S + 30
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None or set(percentiles) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    broken = re.search(r"Socket errors: (.*)$", output, re.MULTILINE)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"\d+", broken.group(1))) if broken else 0
    return Load(float(rate.group(1)), _ms(percentiles["50"]), _ms(percentiles["99"]), errors)


async def _aiohttp_load(url: str, *, connections: int, host: str | None) -> Load:
    import aiohttp

    timings: list[float] = []
    errors = 0
    deadline = time.perf_counter() + DURATION_S
    headers = {"Host": host} if host else {}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while (start := time.perf_counter()) < deadline:
            async with session.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            timings.append((time.perf_counter() - start) * 1000)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    summary = Summary.of(timings)
    return Load(len(timings) / elapsed, summary.median, summary.p99, errors)


def _load(url: str, *, connections: int, host: str | None, wrk: bool) -> Load:
    if wrk:
        return _wrk(url, connections=connections, host=host)
    return asyncio.run(_aiohttp_load(url, connections=connections, host=host))


async def _start_traefik(home: Path, port: int) -> tuple[TraefikProcess, DataPlane]:
    traefik, dataplane, _ = await start_routed(home, stable_port=port, canary_port=port)
    return traefik, dataplane


async def _stop_traefik(traefik: TraefikProcess, dataplane: DataPlane) -> None:
    await dataplane.close()
    await traefik.stop()


def run() -> Section:
    wrk = shutil.which("wrk") is not None
    tool = (
        "wrk (`wrk -t2 -c32 --latency`; one thread and one connection for the latency)"
        if wrk
        else "an aiohttp client in the benchmark's process (wrk is not installed)"
    )
    section = Section(
        name="dataplane",
        title="Data plane: requests through Traefik against the backend direct",
        what=(
            "One demo-app backend behind a real Traefik, routed as the local controller "
            "routes a traffic-routed rollout's stable Service; each of "
            f"{ROUNDS} rounds measures the backend direct and through Traefik, "
            f"{DURATION_S:.0f} s each: one connection one request at a time (latency), then "
            f"{CONNECTIONS} connections in a closed loop (throughput). Load generator: {tool}. "
            "Everything (load generator, Traefik, backend) shares the machine's CPUs."
        ),
    )
    results: dict[tuple[str, str], list[Load]] = {}
    busy: dict[str, list[float]] = {}
    """Share of a core each process used during the throughput runs through Traefik."""
    app, port = _start_app("blue")
    try:
        with tempfile.TemporaryDirectory(prefix="rollwise-bench-") as tmp:
            traefik, dataplane = asyncio.run(_start_traefik(Path(tmp) / "home", port))
            try:
                targets = {
                    "direct": (f"http://127.0.0.1:{port}/", None),
                    "through Traefik": (traefik.web_url.rstrip("/") + "/", HOST),
                }
                for _ in range(ROUNDS):
                    for name, (url, host) in targets.items():
                        for mode, connections in (("latency", 1), ("throughput", CONNECTIONS)):
                            pids = {"backend": app.pid}
                            if name != "direct" and traefik.pid:
                                pids["Traefik"] = traefik.pid
                            before = {who: _cpu_s(pid) for who, pid in pids.items() if pid}
                            started = time.perf_counter()
                            load = _load(url, connections=connections, host=host, wrk=wrk)
                            elapsed = time.perf_counter() - started
                            results.setdefault((name, mode), []).append(load)
                            if mode == "throughput":
                                for who, pid in pids.items():
                                    if pid and who in before:
                                        share = (_cpu_s(pid) - before[who]) / elapsed
                                        busy.setdefault(f"{who}, {name}", []).append(share)
            finally:
                asyncio.run(_stop_traefik(traefik, dataplane))
    finally:
        app.terminate()
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
    for name in ("direct", "through Traefik"):
        latency = results[(name, "latency")]
        throughput = results[(name, "throughput")]
        section.rows += [
            Row(
                f"{name}: one request at a time, p50", Summary.of([r.p50_ms for r in latency]), "ms"
            ),
            Row(
                f"{name}: one request at a time, p99", Summary.of([r.p99_ms for r in latency]), "ms"
            ),
            Row(
                f"{name}: requests/s with {CONNECTIONS} connections",
                Summary.of([r.requests_per_s for r in throughput]),
                "/s",
            ),
            Row(
                f"{name}: latency p99 with {CONNECTIONS} connections",
                Summary.of([r.p99_ms for r in throughput]),
                "ms",
            ),
        ]
    direct = [r.p50_ms for r in results[("direct", "latency")]]
    proxied = [r.p50_ms for r in results[("through Traefik", "latency")]]
    added = [p - d for p, d in zip(proxied, direct, strict=True)]
    section.rows.append(
        Row("added by Traefik: p50 through − p50 direct, per round", Summary.of(added), "ms")
    )
    rps_direct = Summary.of([r.requests_per_s for r in results[("direct", "throughput")]]).median
    rps_proxied = Summary.of(
        [r.requests_per_s for r in results[("through Traefik", "throughput")]]
    ).median
    errors = sum(r.errors for loads in results.values() for r in loads)
    p99_direct = Summary.of([r.p99_ms for r in results[("direct", "throughput")]]).median
    p99_proxied = Summary.of([r.p99_ms for r in results[("through Traefik", "throughput")]]).median
    shares = ", ".join(
        f"{who} {statistics.median(values) * 100:.0f} %" for who, values in busy.items()
    )
    section.notes += [
        f"With {CONNECTIONS} connections the backend answered {rps_proxied:,.0f} requests/s "
        f"through Traefik and {rps_direct:,.0f}/s direct (medians), p99 {p99_proxied:.1f} ms "
        f"against {p99_direct:.1f} ms. Share of one core used during those runs (median "
        f"over the rounds): {shares}; the load generator takes the rest. The backend is a "
        f"Python `ThreadingHTTPServer`: direct, each of the {CONNECTIONS} connections is a "
        "thread of its own contending for the interpreter lock (hence its p99); through "
        "Traefik the three processes share the 2 CPUs, so the throughput rows are this "
        "machine's, not Traefik's ceiling. What Traefik adds to one request is the latency "
        "row (one request at a time).",
        f"Errors (non-2xx answers and socket errors) over every run: {errors}.",
    ]
    return section
