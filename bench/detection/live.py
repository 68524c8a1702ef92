"""The live check: the simulation's comparison on real traffic, through a real controller.

Who uses it: `python -m bench detection --live` (through `bench.detection.run`), or
`uv run python -m bench.detection.live` alone. It takes minutes and needs Debian's
`prometheus` binary for the seed template (the demo's `--prometheus` needs it too).

Four runs, each in a throwaway home with its own `rollwise controller --local` process (which
starts Traefik and the pods): the demo app's bad release (`ERROR_RATE=5%`, errors spread
evenly) and a healthy one (`ERROR_RATE=0`), each judged once by the seed's `success-rate`
template (verbatim but for the Prometheus address, behind the seed's `setWeight: 20` and
`pause: {duration: 1m}`; Prometheus scrapes the pods every second) and once by rollwise's
judge (`rollwise/judge` on Traefik's counters, errors and latency, default margins, right after
`setWeight: 20`). A paced load generator sends `RATE` requests/s through Traefik the whole
time. Times come from the controller's events: from `TrafficWeightUpdated` to 20% until
`RolloutAborted` (rollback) or `RolloutCompleted` (promotion). A run with neither is
undecided after `SEED_WAIT_S` (the seed template cannot abort before its fourth measurement,
4 min after the weight is set, and never promotes: `count` unset, an unbounded run) or
`JUDGE_WAIT_S`.

Every process started here is stopped in `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollwise.controller.local import stop_home
from rollwise.core.timestamps import parse_time_or_none
from rollwise.demo.prometheus import PrometheusServer, find_prometheus
from rollwise.demo.scenarios import SEED_SUCCESS_RATE
from rollwise.platforms.local.store import SqliteStore

RATE = 100.0
"""Requests per second through Traefik, the simulation's middle traffic level."""
WEIGHT = 20
SEED_WAIT_S = 300.0
"""Past its fourth measurement (4 min after the weight) the seed template could have aborted."""
JUDGE_WAIT_S = 600.0
"""The judge needs a few thousand canary requests to pass: minutes at 20 canary requests/s."""
IMAGE = "argoproj/rollouts-demo"
LOAD_THREADS = 4

JUDGE_TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: canary-judge
spec:
  metrics:
  - name: judge
    provider:
      plugin:
        rollwise/judge:
          canaryService: shop-canary
          baselineService: shop-stable
          latency: {}
"""

ROLLOUT = """\
apiVersion: v1
kind: Service
metadata:
  name: shop-stable
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: shop-canary
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: shop
spec:
  replicas: 2
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      trafficRouting:
        traefik:
          weightedTraefikServiceName: shop
      steps:
      - setWeight: WEIGHT
STEPS
      - setWeight: 100
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
      - name: shop
        image: IMAGE_TAG
        env:
        - {name: SERVICE_NAME, value: shop}
        - {name: ERROR_RATE, value: "ERRORS"}
"""

SEED_STEPS = """\
      - pause: {duration: 1m}
      - analysis:
          templates:
          - templateName: success-rate
          args:
          - name: service-name
            value: shop"""

JUDGE_STEPS = """\
      - analysis:
          templates:
          - templateName: canary-judge"""


@dataclass(frozen=True, slots=True)
class LiveResult:
    template: str
    release: str
    outcome: str
    """"rolled back", "promoted" or "undecided after N s"."""
    seconds: float | None
    """From the canary's weight to the decision, by the controller's event times."""
    requests: int
    served_rate: float
    message: str
    """The analysis run: each metric's phase, measurement count and last value."""


def rollout(*, steps: str, tag: str, errors: float) -> str:
    return (
        ROLLOUT.replace("WEIGHT", str(WEIGHT))
        .replace("STEPS", steps)
        .replace("IMAGE_TAG", f"{IMAGE}:{tag}")
        .replace("ERRORS", str(errors))
    )


class Load:
    """`RATE` requests/s to shop.localhost through Traefik, over keep-alive connections."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, daemon=True) for _ in range(LOAD_THREADS)
        ]

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def rate(self) -> float:
        return self.sent / max(time.monotonic() - self.started, 1e-9)

    def _send(self) -> None:
        connection: http.client.HTTPConnection | None = None
        period = LOAD_THREADS / RATE
        due = time.monotonic()
        while not self._stop.is_set():
            due += period
            try:
                connection = connection or http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=2
                )
                connection.request("GET", "/", headers={"Host": "shop.localhost"})
                connection.getresponse().read()
                with self._lock:
                    self.sent += 1
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
            self._stop.wait(max(0.0, due - time.monotonic()))


class Home:
    """A throwaway home with `rollwise controller --local` running in it."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="rollwise-live-"))
        self.controller: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "rollwise", "--home", str(self.path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rollwise {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def apply(self, text: str) -> None:
        manifest = self.path / "manifest.yaml"
        manifest.write_text(text)
        self.cli("apply", "-f", str(manifest))

    def start(self) -> None:
        with (self.path / "controller.log").open("ab") as log:
            self.controller = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rollwise",
                    "--home",
                    str(self.path),
                    "controller",
                    "--local",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def status(self) -> dict[str, Any]:
        raw: dict[str, Any] = json.loads(self.cli("get", "rollout", "shop", "-o", "json"))
        status: dict[str, Any] = raw.get("status") or {}
        return status

    def web_port(self) -> int:
        return int(json.loads((self.path / "traefik" / "state.json").read_text())["webPort"])

    def pod_ports(self) -> list[str]:
        store = SqliteStore.open_home(self.path)
        try:
            pods = store.list("Pod", None)
        finally:
            store.close()
        ports = [(p["metadata"].get("annotations") or {}).get("rollwise.io/port") for p in pods]
        return [f"127.0.0.1:{port}" for port in ports if port]

    def analysis(self) -> str:
        """The latest AnalysisRun in a line: each metric's phase, measurements and last value
        (the judge's reason for its one measurement)."""
        store = SqliteStore.open_home(self.path)
        try:
            runs = store.list("AnalysisRun", None)
        finally:
            store.close()
        if not runs:
            return "no analysis run"
        latest = max(runs, key=lambda run: run["metadata"].get("creationTimestamp", ""))
        status = latest.get("status") or {}
        parts = []
        for metric in status.get("metricResults") or []:
            measurements = metric.get("measurements") or []
            last = measurements[-1] if measurements else {}
            shown = last.get("message") or last.get("value", "")
            parts.append(
                f"{metric.get('name')}: {metric.get('phase')}, {metric.get('count', 0)} "
                f"measurement(s), {metric.get('failed', 0)} failed, last: {shown}"
            )
        return f"run {status.get('phase', 'Pending')}; " + "; ".join(parts)

    def events(self) -> list[dict[str, Any]]:
        store = SqliteStore.open_home(self.path)
        try:
            return store.events(kind="Rollout", name="shop", limit=500)
        finally:
            store.close()

    def close(self) -> None:
        try:
            if self.controller is not None and self.controller.poll() is None:
                self.controller.send_signal(signal.SIGTERM)
                try:
                    self.controller.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.controller.kill()
                    self.controller.wait(timeout=10)
            with contextlib.suppress(Exception):
                asyncio.run(asyncio.wait_for(stop_home(self.path), 30))
        finally:
            shutil.rmtree(self.path, ignore_errors=True)


def _wait(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _weight_event(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The event of the canary's weight being set (the update starts there)."""
    return next(
        (
            e
            for e in events
            if e["reason"] == "TrafficWeightUpdated" and e["message"].endswith(f" to {WEIGHT}")
        ),
        None,
    )


def timed_outcome(events: list[dict[str, Any]]) -> tuple[str, float | None, str]:
    """(outcome, seconds from the canary's weight to the decision, the deciding message)."""
    start = _weight_event(events)
    if start is None:
        return "undecided", None, ""
    after = events[events.index(start) + 1 :]
    decision = next(
        (e for e in after if e["reason"] in ("RolloutAborted", "RolloutCompleted")), None
    )
    if decision is None:
        return "undecided", None, ""
    # A repeated event keeps its first time; the decision is its latest recording.
    began = parse_time_or_none(start.get("firstTimestamp"))
    ended = parse_time_or_none(decision.get("lastTimestamp"))
    seconds = None if began is None or ended is None else (ended - began).total_seconds()
    outcome = "rolled back" if decision["reason"] == "RolloutAborted" else "promoted"
    return outcome, seconds, str(decision["message"])


def run_one(*, template: str, release: str, errors: float) -> LiveResult:
    seed = template == "seed"
    home = Home()
    prometheus: PrometheusServer | None = None
    load: Load | None = None
    stop_scraping = threading.Event()
    scraper: threading.Thread | None = None
    try:
        steps = SEED_STEPS if seed else JUDGE_STEPS
        if seed:
            prometheus = PrometheusServer(home.path / "prometheus", binary=find_prometheus())
            prometheus.start()
            analysis = SEED_SUCCESS_RATE.replace("http://prometheus:9090", prometheus.url)
            server = prometheus

            def scrape() -> None:
                while not stop_scraping.is_set():
                    with contextlib.suppress(Exception):
                        server.scrape(home.pod_ports())
                    stop_scraping.wait(0.5)

            scraper = threading.Thread(target=scrape, daemon=True)
            scraper.start()
        else:
            analysis = JUDGE_TEMPLATE
        home.start()
        home.apply(analysis + "---\n" + rollout(steps=steps, tag="blue", errors=0))
        _wait(lambda: home.status().get("phase") == "Healthy", timeout=120, what="revision 1")
        load = Load(home.web_port())
        load.start()
        time.sleep(5)  # the stable version serves alone for a moment, as in production
        tag = "bad-red" if errors else "yellow"
        home.apply(rollout(steps=steps, tag=tag, errors=errors))
        wait = SEED_WAIT_S if seed else JUDGE_WAIT_S
        deadline = time.monotonic() + wait + 120
        outcome, seconds, message = "undecided", None, ""
        weight_seen_at: float | None = None
        while time.monotonic() < deadline:
            events = home.events()
            outcome, seconds, message = timed_outcome(events)
            if outcome != "undecided":
                break
            if weight_seen_at is None and _weight_event(events) is not None:
                weight_seen_at = time.monotonic()
            if weight_seen_at is not None and time.monotonic() - weight_seen_at > wait:
                break
            time.sleep(1)
        if outcome == "undecided":
            outcome = f"undecided after {wait / 60:.0f} min"
        message = home.analysis()
        return LiveResult(
            template="seed success-rate" if seed else "rollwise judge",
            release=release,
            outcome=outcome,
            seconds=seconds,
            requests=load.sent,
            served_rate=load.rate,
            message=message,
        )
    finally:
        if load is not None:
            load.stop()
        stop_scraping.set()
        if scraper is not None:
            scraper.join(timeout=5)
        home.close()
        if prometheus is not None:
            prometheus.stop()


def run() -> list[LiveResult]:
    results = []
    for template in ("seed", "judge"):
        for release, errors in (("bad (5% errors)", 0.05), ("healthy", 0.0)):
            print(f"  live: {template} template, {release} ...", flush=True)
            results.append(run_one(template=template, release=release, errors=errors))
            print(f"    {results[-1].outcome} {results[-1].seconds}", flush=True)
    return results


def markdown(results: list[LiveResult]) -> list[str]:
    lines = [
        f"**Live check** (`python -m bench detection --live`): a real `rollwise controller "
        f"--local`, Traefik and demo-app pods; about {RATE:.0f} requests/s through Traefik, "
        f"canary at {WEIGHT}%; times from the controller's events (TrafficWeightUpdated to "
        "RolloutAborted / RolloutCompleted), whole seconds:",
        "",
        "| template | release | outcome | time from canary weight | load | analysis |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in results:
        seconds = "—" if r.seconds is None else f"{r.seconds:.0f} s"
        message = r.message.replace("|", "\\|")[:400]
        lines.append(
            f"| {r.template} | {r.release} | {r.outcome} | {seconds} | "
            f"{r.served_rate:.0f} req/s | {message} |"
        )
    lines += [
        "",
        "Unlike the simulation, the demo app's stable version never fails and its bad release "
        "fails exactly every 20th answer (errors spread evenly, not at random). With a "
        "baseline at 0% the judge promotes once the canary's upper bound is under the "
        "absolute margin (0.1%): a few thousand error-free canary requests. The seed template "
        "sees the whole service (about 1% errors with the bad canary at 20%), so it passes "
        "every measurement and, unbounded, never ends.",
        "",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(markdown(run())))
