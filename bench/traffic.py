"""Benchmark 4: a canary weight decided → verified in Traefik (budget: ≤ 1 s).

A real Traefik (`TraefikProcess`) and `DataPlane` in a temporary home, two demo-app backends
(`python -m rollwise.demo.app --color blue|yellow`, `PORT` in the environment) behind a stable
and a canary Service, and one traffic-routed Rollout's `LocalRouter`. Each change is timed from
`LocalRouter.set_weight` (which writes the dynamic configuration) until `verify_weight` (which
reads Traefik's API) first answers True; verification is polled every `POLL_S`. At the end a
few hundred requests through Traefik show the split it really applies.

Every process started here is stopped in `finally`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.report import Budget, Row, Section, Summary
from rollwise.controller.reconciler import VERIFY_AGAIN_SECONDS
from rollwise.platforms.local.dataplane import DataPlane, LocalRouter, ServiceBackends
from rollwise.platforms.local.traefik import TraefikProcess, free_port

CHANGES = 30
WEIGHTS = (10, 20, 40, 60, 80, 100, 0, 50, 30, 70)
POLL_S = 0.01
GIVE_UP_S = 10.0
BUDGET_MS = 1000.0
REQUESTS = 100
NAGLE_HINT_MS = 20.0


def _start_app(color: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "rollwise.demo.app", "--color", color],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + GIVE_UP_S
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return app, port
        except OSError:
            if time.monotonic() > deadline or app.poll() is not None:
                app.kill()
                app.wait()
                raise RuntimeError(f"the {color} demo app did not come up") from None
            time.sleep(0.01)


async def _until_verified(router: LocalRouter, weight: int) -> tuple[float, int]:
    """Seconds from the write to the first positive verification, and the polls it took."""
    start = time.perf_counter()
    await router.set_weight(weight)
    polls = 0
    while True:
        polls += 1
        if await router.verify_weight(weight):
            return time.perf_counter() - start, polls
        if time.perf_counter() - start > GIVE_UP_S:
            raise RuntimeError(f"Traefik never served weight {weight} within {GIVE_UP_S} s")
        await asyncio.sleep(POLL_S)


async def _colors(url: str, host: str, count: int) -> tuple[Counter[str], list[float]]:
    """The colour of each answer, and each request's milliseconds (one keep-alive client)."""
    import aiohttp

    seen: Counter[str] = Counter()
    timings: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            start = time.perf_counter()
            async with session.get(url, headers={"Host": host}) as response:
                key = (await response.json())["color"] if response.status == 200 else "error"
            timings.append((time.perf_counter() - start) * 1000)
            seen[str(key)] += 1
    return seen, timings


@dataclass
class Measured:
    seconds: list[float]
    polls: list[int]
    request_ms: list[float]
    split: str


async def start_routed(
    home: Path, *, stable_port: int, canary_port: int
) -> tuple[TraefikProcess, DataPlane, LocalRouter]:
    """A real Traefik routing the Rollout `myapp` (Services myapp-stable and myapp-canary) as
    the local controller does, once it serves the route at weight 0."""
    traefik = TraefikProcess(home)
    dataplane = DataPlane(home, traefik)
    try:
        await traefik.start_or_adopt()
        await dataplane.update_services(
            [
                ServiceBackends(name="myapp-stable", endpoints=(f"127.0.0.1:{stable_port}",)),
                ServiceBackends(name="myapp-canary", endpoints=(f"127.0.0.1:{canary_port}",)),
            ]
        )
        router = LocalRouter(
            dataplane,
            namespace="default",
            rollout="myapp",
            stable_service="myapp-stable",
            canary_service="myapp-canary",
        )
        await _until_verified(router, 0)  # Traefik has loaded the first configuration
    except BaseException:
        await dataplane.close()
        await traefik.stop()
        raise
    return traefik, dataplane, router


async def _measure(home: Path, ports: dict[str, int]) -> Measured:
    traefik, dataplane, router = await start_routed(
        home, stable_port=ports["blue"], canary_port=ports["yellow"]
    )
    try:
        seconds: list[float] = []
        polls: list[int] = []
        for i in range(CHANGES):
            elapsed, tries = await _until_verified(router, WEIGHTS[i % len(WEIGHTS)])
            seconds.append(elapsed)
            polls.append(tries)
        last = WEIGHTS[(CHANGES - 1) % len(WEIGHTS)]
        seen, request_ms = await _colors(traefik.web_url, "myapp.localhost", REQUESTS)
        split = (
            f"With the canary at {last} %, {REQUESTS} requests through Traefik answered "
            + ", ".join(f"{color} {n}" for color, n in sorted(seen.items()))
            + "."
        )
        return Measured(seconds, polls, request_ms, split)
    finally:
        await dataplane.close()
        await traefik.stop()


def run() -> Section:
    section = Section(
        name="traffic",
        title="Weight decided → verified in Traefik",
        what=(
            f"{CHANGES} canary-weight changes of one traffic-routed Rollout on a real Traefik "
            "with two demo-app backends, each timed from `LocalRouter.set_weight` (writes "
            "Traefik's dynamic configuration, renamed in) until `LocalRouter.verify_weight` "
            f"(reads Traefik's API) first answers True, polling every {POLL_S * 1000:.0f} ms; "
            "in ms."
        ),
    )
    apps: list[subprocess.Popen[bytes]] = []
    try:
        ports: dict[str, int] = {}
        for color in ("blue", "yellow"):
            app, ports[color] = _start_app(color)
            apps.append(app)
        with tempfile.TemporaryDirectory(prefix="rollwise-bench-") as tmp:
            measured = asyncio.run(_measure(Path(tmp) / "home", ports))
    finally:
        for app in apps:
            app.terminate()
        for app in apps:
            try:
                app.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()
    section.rows.append(
        Row(
            "set_weight → verify_weight True",
            Summary.of([s * 1000 for s in measured.seconds]),
            "ms",
            Budget(BUDGET_MS, on="maximum"),
        )
    )
    section.rows.append(Row("verification polls per change", Summary.of(measured.polls), "polls"))
    section.rows.append(
        Row(
            "one `GET /` through Traefik to a demo app (for scale, no budget)",
            Summary.of(measured.request_ms),
            "ms",
        )
    )
    requests = Summary.of(measured.request_ms)
    if requests.median > NAGLE_HINT_MS:
        section.notes.append(
            f"A request on a kept-alive connection takes ~{requests.median:.0f} ms, against "
            f"{requests.minimum:.1f} ms for the fastest: the typical sign of Nagle's algorithm "
            "meeting delayed ACKs (the demo app sends headers and body in two writes without "
            "TCP_NODELAY)."
        )
    section.notes += [
        measured.split,
        "The controller does not poll this often: after a weight change it reconciles again "
        f"every {VERIFY_AGAIN_SECONDS} s (`VERIFY_AGAIN_SECONDS`), so the step it waits for "
        "moves on at the first multiple of that after the times above.",
    ]
    return section
