"""Helpers of the kill -9 reliability test (`test_kills.py`): the rollouts it kills, a local
controller started and `kill -9`ed over and over, and the invariants read from the store and
through Traefik.

How a scenario runs (`KillRun`). A home with real Traefik and demo-app processes, a webhook
receiver subscribed to the Rollout's step-completed, completed and aborted notifications, and
`rollwise controller --local`. Each *round* sets a new image, then kills the controller at random
points (a seeded `random.Random`) and starts it again, until the rollout has reached the end it
reaches without kills; one more controller then finishes what the last one left (scale-downs,
notifications), and the round's end is compared with a kill-free run of the same rollout
(`run_reference`). Rounds follow each other until the scenario has its quota of kills.

Starts. A cold start of the controller is ~1 s here, nearly all of it imports: most of a kill
cycle. So most starts are *warm*: a child forked from a zygote process that has imported the CLI
and the controller, running the CLI's own entry point with the argv a person types (~0.05 s to
the ready line); `COLD_SHARE` of them are *cold*: `python -m rollwise ... controller --local` as
a new process (`ControllerProcess`). Both are real processes, killed with SIGKILL, and the next
one knows only what is on disk. A kill falls either around a start (while it opens the store and
adopts Traefik and the pods, or, cold, while it still imports) or at a random moment after it
logged `READY_LINE` (it then adopts pods, reconciles, notifies).

Checked continuously (the store is polled every `POLL_SECONDS` while a controller lives):
- ReplicaSet revision numbers are unique; at most one AnalysisRun per (kind, revision, step);
- within a round, status.canary.weights.canary.weight and currentStepIndex never go down,
  except on abort and at completion.

Checked after each kill, while no controller runs: the same, and that every version answering
`SAMPLE_REQUESTS` requests through Traefik has traffic in the status (`Scenario.allowed`). The
status may lag the proxy, or the proxy the status, only where the status itself says a change is
under way; exactly these are allowed (and counted as `allowances_used`):
- canary: the new version while the current step is a `setWeight` above 0 that the status has
  not recorded yet (killed after the proxy took the step's weight, before the status write);
  both versions the weights name while the status does not record them verified (Traefik
  applies a new file ~0.1 s after it is written; the controller verifies, then records);
- blue-green: the new version once its pre-promotion run passed and the autoPromotionSeconds
  pause (if any) is over (killed between the switch of the active Service and the status write).

Checked at the end of each round: only the final version answers (no allowance); no pod process
of the home runs that no Pod object names (one a kill left behind); the new revision is the next
number; the final status equals the kill-free run's (hashes and revision numbers normalised);
the receiver got exactly the kill-free run's notifications, each once. A send that a kill cut
off before the notifier could record it is sent again with the same `Idempotency-Key` (at least
once: no HTTP sender can do better); such repeats are counted (`resent`) and dropped by key, as a
receiver would, and must repeat the same body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from random import Random
from typing import Any

from tests.e2e.support import IMAGE, ControllerProcess, kill_leftovers, rollwise, web_port
from tests.notify.receiving import Receiver, running_receiver

from rollwise.controller.local import stop_home
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import REVISION_ANNOTATION, ROLLOUT_TYPE_LABEL, STEP_INDEX_LABEL
from rollwise.core.timestamps import parse_time_or_none
from rollwise.platforms.local.store import SqliteStore

POLL_SECONDS = 0.05
SAMPLE_REQUESTS = 20
COLD_SHARE = 0.2
AROUND_START_SHARE = 0.25
LIFE_SECONDS = (0.02, 1.0)
"""How long a controller runs after its ready line before the kill (uniform)."""
MAX_KILLS_PER_ROUND = 80
READY_LINE = "rollwise controller for"
DELIVERY_HEADER = "Idempotency-Key"
SUBSCRIBE = "notifications.argoproj.io/subscribe"
TRIGGERS = ("on-rollout-step-completed", "on-rollout-completed", "on-rollout-aborted")
RawObject = dict[str, Any]


class Cancelled(Exception):
    """Another scenario failed: this one stops where it is."""


# --- what the store says -----------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaSetInfo:
    name: str
    pod_hash: str
    revision: int
    replicas: int
    color: str


@dataclass(frozen=True)
class RunInfo:
    name: str
    kind: str
    step: str
    revision: str
    phase: str


@dataclass(frozen=True)
class Snapshot:
    """The Rollout's status and what it owns, read from the store."""

    status: RawObject
    spec: RawObject
    replica_sets: tuple[ReplicaSetInfo, ...]
    runs: tuple[RunInfo, ...]
    pods: tuple[str, ...]
    """The pod template hash of every pod not being deleted."""
    read_at: datetime

    def color_of(self, pod_hash: str | None) -> str | None:
        return next((rs.color for rs in self.replica_sets if rs.pod_hash == pod_hash), None)

    def hash_of(self, color: str) -> str | None:
        return next((rs.pod_hash for rs in self.replica_sets if rs.color == color), None)

    @property
    def current(self) -> str:
        return str(self.status.get("currentPodHash") or "")

    @property
    def stable(self) -> str:
        return str(self.status.get("stableRS") or "")

    @property
    def steps(self) -> list[RawObject]:
        canary = self.spec.get("strategy", {}).get("canary") or {}
        return list(canary.get("steps") or [])

    @property
    def step_index(self) -> int:
        return int(self.status.get("currentStepIndex") or 0)

    @property
    def weights(self) -> RawObject:
        return dict((self.status.get("canary") or {}).get("weights") or {})

    @property
    def canary_weight(self) -> int:
        return int((self.weights.get("canary") or {}).get("weight") or 0)

    @property
    def blue_green(self) -> RawObject:
        return dict(self.status.get("blueGreen") or {})

    def duplicates(self) -> list[str]:
        """Revision numbers or AnalysisRuns that exist twice."""
        problems: list[str] = []
        for revision, count in Counter(rs.revision for rs in self.replica_sets).items():
            if count > 1:
                names = [rs.name for rs in self.replica_sets if rs.revision == revision]
                problems.append(f"revision {revision} on {count} ReplicaSets: {names}")
        for key, count in Counter((r.kind, r.revision, r.step) for r in self.runs).items():
            if count > 1:
                names = [r.name for r in self.runs if (r.kind, r.revision, r.step) == key]
                problems.append(f"{count} AnalysisRuns for (kind, revision, step) {key}: {names}")
        return problems

    def stage(self) -> str:
        """Where the rollout is, for the report of where kills fell."""
        status = self.status
        if self.steps:
            return f"{status.get('phase')} step {self.step_index}"
        return f"{status.get('phase')}: {status.get('message') or '-'}"


def read_snapshot(store: SqliteStore, rollout: str) -> Snapshot:
    raw = store.require("Rollout", rollout)
    return Snapshot(
        status=dict(raw.get("status") or {}),
        spec=dict(raw["spec"]),
        replica_sets=tuple(
            ReplicaSetInfo(
                name=rs["metadata"]["name"],
                pod_hash=rs["metadata"]["labels"][HASH_LABEL],
                revision=int(rs["metadata"]["annotations"][REVISION_ANNOTATION]),
                replicas=int(rs["spec"].get("replicas") or 0),
                color=str(rs["spec"]["template"]["spec"]["containers"][0]["image"]).rsplit(":", 1)[
                    -1
                ],
            )
            for rs in store.list("ReplicaSet")
        ),
        runs=tuple(
            RunInfo(
                name=run["metadata"]["name"],
                kind=run["metadata"]["labels"].get(ROLLOUT_TYPE_LABEL, ""),
                step=run["metadata"]["labels"].get(STEP_INDEX_LABEL, ""),
                revision=run["metadata"]["annotations"].get(REVISION_ANNOTATION, ""),
                phase=str((run.get("status") or {}).get("phase") or ""),
            )
            for run in store.list("AnalysisRun")
        ),
        pods=tuple(
            pod["metadata"]["labels"].get(HASH_LABEL, "")
            for pod in store.list("Pod")
            if not pod["metadata"].get("deletionTimestamp")
        ),
        read_at=datetime.now(UTC),
    )


# --- the scenarios ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One kind of rollout: its manifest, the colours of its rounds, where its traffic is
    sampled, and how its status reads."""

    name: str
    rollout: str
    host: str
    colors: tuple[str, ...]
    """The first is deployed before any kill; each later one is the image of a round."""
    manifest: Callable[[str], str]
    """The manifest, given the URL of the loopback web-metric server."""
    finished: Callable[[Snapshot, str], bool]
    """Whether the rollout to this colour has reached the end it reaches without kills."""
    settled: Callable[[Snapshot, str], bool]
    """Finished, and what the end leaves to do (scale-downs) done."""
    allowed: Callable[[Snapshot], set[str]]
    """Pod hashes that may answer on `host` while no controller runs (with the allowances)."""
    strict: Callable[[Snapshot], set[str]]
    """Pod hashes the status itself gives traffic on `host`."""
    final_color: Callable[[Snapshot, str], str]
    """The only colour that may answer once the round has settled."""
    background_traffic: bool = False


def _subscriptions() -> str:
    return "".join(f'    {SUBSCRIBE}.{trigger}.receiver: ""\n' for trigger in TRIGGERS)


def notifications_config(receiver: Receiver) -> str:
    """The home's notifications.yaml: each of the three triggers posts the event's reason and
    message (what tells notifications apart) to the receiver."""
    body = (
        '{"trigger": {{ trigger | tojson }}, "reason": {{ event.reason | tojson }},'
        ' "message": {{ event.message | tojson }}}'
    )
    lines = [
        "service.webhook.receiver: |",
        f"  url: {receiver.url}",
        "template.kill-test: |",
        "  message: kill test",
        "  webhook:",
        "    receiver:",
        "      method: POST",
        "      path: /hooks",
        "      body: |",
        f"        {body}",
    ]
    for trigger in TRIGGERS:
        lines += [f"trigger.{trigger}: |", "  - send: [kill-test]"]
    return "\n".join(lines) + "\n"


def _services(*names: str, app: str) -> str:
    return "".join(
        f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {app}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
"""
        for name in names
    )


def _rollout(name: str, strategy: str) -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
  annotations:
{_subscriptions()}\
spec:
  replicas: 2
  revisionHistoryLimit: 10
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {IMAGE}:blue
  strategy:
{strategy}"""


def _canary_manifest(_: str) -> str:
    """(1) A traffic-routed canary with steps and timed pauses."""
    return _services("web-stable", "web-canary", app="web") + _rollout(
        "web",
        """\
    canary:
      canaryService: web-canary
      stableService: web-stable
      scaleDownDelaySeconds: 1
      trafficRouting:
        traefik:
          weightedTraefikServiceName: web
      steps:
      - setWeight: 20
      - pause: {duration: 1s}
      - setWeight: 40
      - pause: {duration: 2s}
      - setWeight: 60
      - pause: {duration: 1s}
      - setWeight: 80
      - pause: {duration: 1s}
""",
    )


def _bluegreen_manifest(web_url: str) -> str:
    """(2) A blue-green with a pre-promotion analysis (web provider against a loopback
    server) and automatic promotion 2 s after the preview is ready and measured."""
    template = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: health-check}
spec:
  args:
  - name: url
  metrics:
  - name: health
    interval: 1s
    count: 2
    successCondition: result == true
    provider:
      web:
        url: "{{args.url}}"
        jsonPath: "{$.ok}"
---
"""
    return (
        template
        + _services("bg-active", "bg-preview", app="bg")
        + _rollout(
            "bg",
            f"""\
    blueGreen:
      activeService: bg-active
      previewService: bg-preview
      autoPromotionEnabled: true
      autoPromotionSeconds: 2
      scaleDownDelaySeconds: 1
      prePromotionAnalysis:
        templates:
        - templateName: health-check
        args:
        - name: url
          value: {web_url}
""",
        )
    )


def _analysis_manifest(_: str) -> str:
    """(3) An analysis-driven canary: the builtin provider (Traefik's own metrics) measures the
    canary's success rate; every round's image is a `bad-` one (half of its answers are 500s),
    so the analysis fails and the rollout aborts."""
    template = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  args:
  - name: service
  metrics:
  - name: success-rate
    interval: 1s
    count: 3
    successCondition: result >= 0.95
    provider:
      plugin:
        rollwise/builtin:
          metric: success-rate
          service: "{{args.service}}"
          window: 1s
---
"""
    return (
        template
        + _services("shop-stable", "shop-canary", app="shop")
        + _rollout(
            "shop",
            """\
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      abortScaleDownDelaySeconds: 1
      trafficRouting:
        traefik:
          weightedTraefikServiceName: shop
      steps:
      - setWeight: 50
      - pause: {duration: 1s}
      - analysis:
          templates:
          - templateName: success-rate
          args:
          - name: service
            value: shop-canary
      - setWeight: 100
""",
        )
    )


def weighted(snapshot: Snapshot) -> set[str]:
    """Pod hashes with a weight above 0 in status.canary.weights (the stable if none yet)."""
    weights = snapshot.weights
    entries = [weights.get("canary") or {}, weights.get("stable") or {}]
    entries += list(weights.get("additional") or ())
    hashes = {
        str(e["podTemplateHash"])
        for e in entries
        if int(e.get("weight") or 0) > 0 and e.get("podTemplateHash")
    }
    return hashes or {snapshot.stable}


def canary_allowed(snapshot: Snapshot) -> set[str]:
    """`weighted`, with the canary allowances of the module docstring."""
    allowed = weighted(snapshot)
    weights = snapshot.weights
    if weights and weights.get("verified") is not True:
        for key in ("canary", "stable"):
            allowed.add(str((weights.get(key) or {}).get("podTemplateHash") or ""))
    steps, index = snapshot.steps, snapshot.step_index
    in_progress = snapshot.current != snapshot.stable and not snapshot.status.get("abort")
    if in_progress and index < len(steps) and steps[index].get("setWeight"):
        allowed.add(snapshot.current)
    return allowed


def canary_finished(snapshot: Snapshot, color: str) -> bool:
    new = snapshot.hash_of(color)
    return (
        new is not None
        and snapshot.status.get("phase") == "Healthy"
        and snapshot.stable == snapshot.current == new
        and snapshot.step_index == len(snapshot.steps)
    )


def _only(snapshot: Snapshot, pod_hash: str) -> bool:
    """Only `pod_hash` has replicas and pods left."""
    return (
        all(rs.replicas == 0 for rs in snapshot.replica_sets if rs.pod_hash != pod_hash)
        and bool(snapshot.pods)
        and set(snapshot.pods) == {pod_hash}
    )


def canary_settled(snapshot: Snapshot, color: str) -> bool:
    return canary_finished(snapshot, color) and _only(snapshot, snapshot.current)


def active(snapshot: Snapshot) -> set[str]:
    return {str(snapshot.blue_green.get("activeSelector") or snapshot.stable)}


def bluegreen_allowed(snapshot: Snapshot) -> set[str]:
    """`active`, with the blue-green allowance of the module docstring."""
    allowed = active(snapshot)
    pre = snapshot.blue_green.get("prePromotionAnalysisRunStatus") or {}
    if snapshot.current not in allowed and pre.get("status") == "Successful":
        seconds = snapshot.spec["strategy"]["blueGreen"].get("autoPromotionSeconds") or 0
        starts = [
            parse_time_or_none(pause.get("startTime"))
            for pause in snapshot.status.get("pauseConditions") or ()
        ]
        if all(
            s is not None and s + timedelta(seconds=seconds) <= snapshot.read_at for s in starts
        ):
            allowed.add(snapshot.current)
    return allowed


def bluegreen_finished(snapshot: Snapshot, color: str) -> bool:
    new = snapshot.hash_of(color)
    return (
        new is not None
        and snapshot.status.get("phase") == "Healthy"
        and snapshot.stable == snapshot.current == snapshot.blue_green.get("activeSelector") == new
    )


def bluegreen_settled(snapshot: Snapshot, color: str) -> bool:
    return bluegreen_finished(snapshot, color) and _only(snapshot, snapshot.current)


def analysis_finished(snapshot: Snapshot, color: str) -> bool:
    new = snapshot.hash_of(color)
    return (
        new is not None
        and snapshot.current == new != snapshot.stable
        and bool(snapshot.status.get("abort"))
        and snapshot.status.get("phase") == "Degraded"
    )


def analysis_settled(snapshot: Snapshot, color: str) -> bool:
    return (
        analysis_finished(snapshot, color)
        and _only(snapshot, snapshot.stable)
        and weighted(snapshot) == {snapshot.stable}
    )


def _round_color(snapshot: Snapshot, color: str) -> str:
    return color


def _stable_color(snapshot: Snapshot, color: str) -> str:
    return snapshot.color_of(snapshot.stable) or "?"


_COLORS = ("yellow", "green", "purple", "orange", "cyan", "pink", "white", "black", "brown")
CANARY = Scenario(
    name="canary",
    rollout="web",
    host="web.localhost",
    colors=("blue", *_COLORS),
    manifest=_canary_manifest,
    finished=canary_finished,
    settled=canary_settled,
    allowed=canary_allowed,
    strict=weighted,
    final_color=_round_color,
)
BLUE_GREEN = Scenario(
    name="blue-green",
    rollout="bg",
    host="bg-active.localhost",
    colors=("blue", *_COLORS),
    manifest=_bluegreen_manifest,
    finished=bluegreen_finished,
    settled=bluegreen_settled,
    allowed=bluegreen_allowed,
    strict=active,
    final_color=_round_color,
)
ANALYSIS = Scenario(
    name="analysis",
    rollout="shop",
    host="shop.localhost",
    colors=("blue", *(f"bad-{color}" for color in ("red", *_COLORS))),
    manifest=_analysis_manifest,
    finished=analysis_finished,
    settled=analysis_settled,
    allowed=canary_allowed,
    strict=weighted,
    final_color=_stable_color,
    background_traffic=True,
)
SCENARIOS = (CANARY, BLUE_GREEN, ANALYSIS)


# --- the controller -------------------------------------------------------------------------


def controller_argv(home: Path) -> list[str]:
    """The command line after `python -m`, as `ControllerProcess` types it (relative home)."""
    ports = ["--metrics-port", "0", "--dashboard-port", "0"]
    return ["rollwise", "--home", home.name, "controller", "--local", *ports]


# The zygote of warm starts: a process that imported the CLI and the controller once, then for
# each line `{"start": {log, cwd, argv}}` forks a child that runs the CLI's entry point with
# `argv` (output to `log`), answering its pid; `{"poll": pid}` answers its exit status or null.
# (multiprocessing's forkserver would re-import the test's __main__, pytest, in every child.)
_ZYGOTE = """
import json, os, sys
import rollwise.cli.main, rollwise.controller.local, rollwise.notify.service
for line in sys.stdin:
    order = json.loads(line)
    if "start" in order:
        start = order["start"]
        pid = os.fork()
        if pid == 0:
            null = os.open(os.devnull, os.O_RDONLY)
            log = os.open(start["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(null)
            os.close(log)
            os.chdir(start["cwd"])
            sys.argv = start["argv"]
            try:
                rollwise.cli.main.run()
            finally:
                os._exit(1)
        answer = pid
    else:
        done, status = os.waitpid(order["poll"], os.WNOHANG)
        answer = None if done == 0 else os.waitstatus_to_exitcode(status)
    print(json.dumps(answer), flush=True)
"""


class Zygote:
    """The `_ZYGOTE` process of one home."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def _ask(self, order: RawObject) -> Any:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(order) + "\n")
        return json.loads(self.process.stdout.readline())

    def start(self, *, log: Path, cwd: Path, argv: list[str]) -> int:
        return int(self._ask({"start": {"log": str(log), "cwd": str(cwd), "argv": argv}}))

    def exit_code(self, pid: int) -> int | None:
        """The child's exit code once it has ended (reaped then), else None."""
        code = self._ask({"poll": pid})
        return None if code is None else int(code)

    def close(self) -> None:
        """End of input: the zygote exits."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


class Controller:
    """The controller of a home, started warm or cold and killed -9 again and again; it counts
    kills, starts and start times (to the ready line)."""

    def __init__(self, home: Path, *, label: str) -> None:
        self.home = home
        self.label = label
        """What assertion messages start with (the seed and the scenario)."""
        self.cold = ControllerProcess(home)
        self.log = self.cold.log
        self.zygote = Zygote()
        self.warm: int | None = None
        self.warm_exit: int | None = None
        self.kills = 0
        self.kills_before_ready = 0
        self.ready_seconds: dict[str, list[float]] = {"cold": [], "warm": []}
        self._mode = "warm"
        self._offset = 0
        self._started_at = 0.0
        self._ready = False

    @property
    def alive(self) -> bool:
        if self._mode == "cold":
            return self.cold.process is not None and self.cold.process.poll() is None
        if self.warm is not None and self.warm_exit is None:
            self.warm_exit = self.zygote.exit_code(self.warm)
        return self.warm is not None and self.warm_exit is None

    @property
    def started_at(self) -> float:
        return self._started_at

    @property
    def mode(self) -> str:
        return self._mode

    def start(self, *, cold: bool = False) -> None:
        assert not self.alive
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self._ready = False
        self._mode = "cold" if cold else "warm"
        self._started_at = time.monotonic()
        if cold:
            self.cold.start()
        else:
            argv = controller_argv(self.home)
            self.warm = self.zygote.start(log=self.log, cwd=self.home.parent, argv=argv)
            self.warm_exit = None

    def ready(self) -> bool:
        """Whether this start has logged that it adopted Traefik (it reconciles next)."""
        if not self._ready and self.log.exists():
            with self.log.open("rb") as log:
                log.seek(self._offset)
                if READY_LINE.encode() in log.read():
                    self._ready = True
                    self.ready_seconds[self._mode].append(time.monotonic() - self._started_at)
        return self._ready

    def kill(self) -> None:
        ready = self.ready()
        if self._mode == "cold":
            self.cold.kill()
        else:
            assert self.warm is not None
            os.kill(self.warm, signal.SIGKILL)
            self._wait_warm(10)
            assert self.warm_exit == -signal.SIGKILL, f"{self.label}: exit {self.warm_exit}"
        self.kills += 1
        self.kills_before_ready += not ready

    def _wait_warm(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.alive:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """A graceful stop (SIGTERM), as at the end of a test; then the zygote goes."""
        try:
            if self._mode == "cold":
                self.cold.stop()
            elif self.warm is not None and self.alive:
                os.kill(self.warm, signal.SIGTERM)
                if not self._wait_warm(30):
                    os.kill(self.warm, signal.SIGKILL)
                    self._wait_warm(10)
        finally:
            self.zygote.close()

    def log_tail(self, lines: int = 12) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# --- around a scenario ----------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A controller killed while its measurement was in flight leaves a closed connection.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class WebMetric:
    """The web provider's target on loopback: `{"ok": true}` to every GET."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def __enter__(self) -> WebMetric:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@contextlib.contextmanager
def background_traffic(home: Path, host: str) -> Iterator[None]:
    """Steady requests to `host` (what the builtin provider measures)."""
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, ValueError, KeyError):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{web_port(home)}/", headers={"Host": host}
                )
                with urllib.request.urlopen(request, timeout=2) as response:
                    response.read()
            stop.wait(0.02)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=5)


@contextlib.contextmanager
def scenario_home(path: Path) -> Iterator[Path]:
    """A home whose pods and Traefik are stopped when the block ends, however it ends."""
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        try:
            asyncio.run(asyncio.wait_for(stop_home(path), 30))
        finally:
            kill_leftovers(path)


@contextlib.contextmanager
def scenario_fixtures(scenario: Scenario, home: Path) -> Iterator[tuple[Receiver, str]]:
    """The receiver and its configuration, the web-metric server, background traffic."""
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(running_receiver())
        web = stack.enter_context(WebMetric())
        (home / "notifications.yaml").write_text(notifications_config(receiver))
        if scenario.background_traffic:
            stack.enter_context(background_traffic(home, scenario.host))
        yield receiver, web.url


def sample_colors(home: Path, host: str, count: int = SAMPLE_REQUESTS) -> Counter[str]:
    """Send `count` requests through Traefik; how many each colour answered (a bad version's
    500 names its colour too)."""
    served: Counter[str] = Counter()
    port = web_port(home)
    for _ in range(count):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
        except OSError as error:
            served[f"error: {error}"] += 1
            continue
        try:
            served[str(json.loads(body)["color"])] += 1
        except (ValueError, KeyError):
            served[f"error: {body[:60]!r}"] += 1
    return served


@dataclass(frozen=True)
class Hook:
    """One request the receiver got: the notifier's delivery key and the body."""

    key: str | None
    body: str


def hooks(receiver: Receiver, start: int = 0) -> list[Hook]:
    with receiver.lock:
        return [
            Hook(r.headers.get(DELIVERY_HEADER), r.body)
            for r in receiver.requests[start:]
            if r.path == "/hooks"
        ]


def deliveries(received: list[Hook]) -> tuple[list[str], list[Hook]]:
    """The bodies of the distinct deliveries (by their key), and the requests that repeated a
    delivery already received (a send cut off by a kill before the notifier could record it is
    sent again, with the same key; the receiver drops it by that key)."""
    seen: set[str] = set()
    bodies: list[str] = []
    repeats: list[Hook] = []
    for hook in received:
        if hook.key is not None and hook.key in seen:
            repeats.append(hook)
            continue
        if hook.key is not None:
            seen.add(hook.key)
        bodies.append(hook.body)
    return bodies, repeats


def unknown_pod_processes(home: Path, store: SqliteStore) -> list[str]:
    """Pod processes of this home (by the podinfo directory in their environment) that no Pod
    object names: started by a controller killed before it could record them, and left running
    where nobody will ever stop them."""
    recorded = {
        int(pid)
        for pod in store.list("Pod", None)
        if (pid := (pod["metadata"].get("annotations") or {}).get("rollwise.io/pid"))
    }
    marker = f"ROLLWISE_PODINFO_DIR={home.resolve() / 'pods'}/".encode()
    unknown = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in recorded:
            continue
        with contextlib.suppress(OSError):
            environ = (entry / "environ").read_bytes().split(b"\0")
            if any(item.startswith(marker) for item in environ):
                unknown.append(f"{entry.name} {(entry / 'cmdline').read_bytes()!r}")
    return unknown


def notifier_idle(home: Path, store: SqliteStore) -> bool:
    """Every recorded event collected, nothing pending (the notifier's saved state)."""
    path = home / "notifier-state.json"
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    return not state.get("pending") and int(state.get("cursor", -1)) >= store.event_counter()


def wait_for(
    check: Callable[[], Any],
    *,
    timeout: float,
    what: Callable[[], str],
    stop: threading.Event | None = None,
    interval: float = POLL_SECONDS,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if stop is not None and stop.is_set():
            raise Cancelled
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what()}")
        time.sleep(interval)


# --- comparing with the kill-free run ---------------------------------------------------------


def final_fields(snapshot: Snapshot) -> RawObject:
    """The status fields whose final value does not depend on timing."""
    status = snapshot.status
    canary = status.get("canary") or {}
    blue_green = snapshot.blue_green
    return {
        "phase": status.get("phase"),
        "message": status.get("message"),
        "abort": status.get("abort"),
        "currentStepIndex": status.get("currentStepIndex"),
        "stableRS": status.get("stableRS"),
        "currentPodHash": status.get("currentPodHash"),
        "replicas": [status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas")],
        "weights": canary.get("weights"),
        "stepRun": canary.get("currentStepAnalysisRunStatus"),
        "activeSelector": blue_green.get("activeSelector"),
        "previewSelector": blue_green.get("previewSelector"),
        "preRun": blue_green.get("prePromotionAnalysisRunStatus"),
        "pauseConditions": [c.get("reason") for c in status.get("pauseConditions") or ()],
        "conditions": sorted(
            (c.get("type"), c.get("status"), c.get("reason"))
            for c in status.get("conditions") or ()
        ),
    }


@dataclass
class RoundEnd:
    """How a round ended, with its hashes and revision number replaced by role names."""

    fields: RawObject
    notifications: Counter[str]
    """Distinct deliveries (by key), normalised."""
    resent: int = 0
    """Requests that repeated a delivery the receiver already had (same key)."""
    altered: list[Hook] = field(default_factory=list)
    """Repeats whose body differs from the first sending's (must be none)."""


def round_end(snapshot: Snapshot, color: str, received: list[Hook], *, stable: str) -> RoundEnd:
    new = snapshot.hash_of(color) or "?"
    revision = next(rs.revision for rs in snapshot.replica_sets if rs.pod_hash == new)

    def normalized(value: Any) -> Any:
        text = json.dumps(value, sort_keys=True)
        text = text.replace(f"{new}-{revision}", "<new>-<revision>")
        text = text.replace(new, "<new>").replace(stable, "<stable>")
        return json.loads(re.sub(rf"\brevision {revision}\b", "revision <revision>", text))

    bodies, repeats = deliveries(received)
    first = {hook.key: hook.body for hook in reversed(received)}
    return RoundEnd(
        fields=normalized(final_fields(snapshot)),
        notifications=Counter(
            json.dumps(normalized(json.loads(b)), sort_keys=True) for b in bodies
        ),
        resent=len(repeats),
        altered=[hook for hook in repeats if hook.body != first[hook.key]],
    )


def deploy_first(
    scenario: Scenario,
    home: Path,
    store: SqliteStore,
    web_url: str,
    *,
    stop: threading.Event,
    context: str,
) -> None:
    """Apply the scenario's manifest and wait until revision 1 is up and notified."""
    manifest = home / f"{scenario.name}.yaml"
    manifest.write_text(scenario.manifest(web_url))
    rollwise(home, "apply", "-f", str(manifest))
    first = scenario.colors[0]

    def up(snapshot: Snapshot) -> bool:
        healthy = snapshot.status.get("phase") == "Healthy"
        return healthy and snapshot.current == snapshot.stable == snapshot.hash_of(first)

    wait_for(
        lambda: quiet(store, scenario.rollout, up) and notifier_idle(home, store),
        timeout=60,
        what=lambda: f"{context}: revision 1 up",
        stop=stop,
    )


def quiet(
    store: SqliteStore, rollout: str, check: Callable[[Snapshot], bool], seconds: float = 1.0
) -> bool:
    """`check` holds, and the Rollout has not changed for `seconds` (its status has settled
    too: the status is written after the objects it describes)."""
    version = store.require("Rollout", rollout)["metadata"]["resourceVersion"]
    if not check(read_snapshot(store, rollout)):
        return False
    time.sleep(seconds)
    return bool(store.require("Rollout", rollout)["metadata"]["resourceVersion"] == version)


def set_image(scenario: Scenario, home: Path, color: str) -> None:
    rollwise(home, "set", "image", scenario.rollout, f"app={IMAGE}:{color}")


def run_reference(scenario: Scenario, home: Path, *, stop: threading.Event, seed: int) -> RoundEnd:
    """The scenario's first round without kills: how it ends, what it notifies."""
    color = scenario.colors[1]
    context = f"seed {seed}, {scenario.name} without kills"
    with (
        scenario_fixtures(scenario, home) as (receiver, web_url),
        SqliteStore.open_home(home) as store,
    ):
        controller = ControllerProcess(home)
        controller.start()
        try:
            deploy_first(scenario, home, store, web_url, stop=stop, context=context)
            stable = read_snapshot(store, scenario.rollout).stable
            start = len(hooks(receiver))
            set_image(scenario, home, color)
            wait_for(
                lambda: quiet(
                    store,
                    scenario.rollout,
                    lambda snapshot: (
                        scenario.settled(snapshot, color) and notifier_idle(home, store)
                    ),
                ),
                timeout=60,
                what=lambda: f"{context}: settled on {color}",
                stop=stop,
            )
            snapshot = read_snapshot(store, scenario.rollout)
            assert not snapshot.duplicates(), f"{context}: {snapshot.duplicates()}"
            return round_end(snapshot, color, hooks(receiver, start), stable=stable)
        finally:
            controller.stop()


# --- the kill run -------------------------------------------------------------------------------


@dataclass
class Report:
    """What a kill run did and saw."""

    scenario: str
    kills: int = 0
    kills_before_ready: int = 0
    cold_kills: int = 0
    rounds: int = 0
    samples: int = 0
    allowances_used: int = 0
    resent: int = 0
    observations: int = 0
    seconds: float = 0.0
    ready_seconds: dict[str, list[float]] = field(default_factory=dict)
    stages: Counter[str] = field(default_factory=Counter)
    """Where the kills fell (phase and step, or phase and message)."""

    def line(self) -> str:
        def median(values: list[float]) -> str:
            return f"{sorted(values)[len(values) // 2]:.2f}s" if values else "-"

        ready = self.ready_seconds
        return (
            f"{self.scenario}: {self.kills} kills ({self.cold_kills} of cold starts,"
            f" {self.kills_before_ready} before the ready line) over {self.rounds} rounds in"
            f" {self.seconds:.0f}s; {self.samples} traffic samples, {self.allowances_used} within"
            f" the mid-change allowance; {self.resent} notifications sent again (same key);"
            f" {self.observations} status reads; start to ready median"
            f" warm {median(ready.get('warm', []))}, cold {median(ready.get('cold', []))};"
            f" kills at {dict(sorted(self.stages.items()))}"
        )


class RoundWatch:
    """What can be checked from the store at any moment of a round: no duplicates; the canary
    weight and the step index never go back, except on abort or at completion."""

    def __init__(self, scenario: Scenario, store: SqliteStore, report: Report) -> None:
        self.scenario = scenario
        self.store = store
        self.report = report
        self.context = ""
        self.weight = self.step = 0
        self.pod_hash = ""
        self.history: list[tuple[Any, ...]] = []

    def observe(self) -> Snapshot:
        snapshot = read_snapshot(self.store, self.scenario.rollout)
        self.report.observations += 1
        status = snapshot.status
        entry = (
            snapshot.step_index,
            snapshot.canary_weight,
            bool(status.get("abort")),
            status.get("phase"),
            status.get("message"),
        )
        if not self.history or self.history[-1] != entry:
            self.history.append(entry)
        assert not snapshot.duplicates(), f"{self.context}: {snapshot.duplicates()}"
        if snapshot.current != self.pod_hash:  # the update itself: the new revision starts at 0
            self.pod_hash, self.weight, self.step = snapshot.current, 0, 0
        if not (status.get("abort") or snapshot.stable == snapshot.current):
            went_back = (
                f"{self.context}: went back from step {self.step} at weight {self.weight} to"
                f" step {snapshot.step_index} at {snapshot.canary_weight};"
                f" (step, weight, abort, phase, message) history {self.history}"
            )
            assert snapshot.canary_weight >= self.weight, went_back
            assert snapshot.step_index >= self.step, went_back
            self.weight, self.step = snapshot.canary_weight, snapshot.step_index
        return snapshot


@dataclass
class KillRun:
    """One scenario's kill run (see the module docstring)."""

    scenario: Scenario
    home: Path
    seed: int
    quota: int
    reference: Callable[[], RoundEnd]
    stop: threading.Event
    rng: Random = field(init=False)
    report: Report = field(init=False)

    def __post_init__(self) -> None:
        self.rng = Random(f"{self.seed}/{self.scenario.name}")
        self.report = Report(self.scenario.name)

    def run(self) -> Report:
        began = time.monotonic()
        scenario = self.scenario
        with (
            scenario_fixtures(scenario, self.home) as (receiver, web_url),
            SqliteStore.open_home(self.home) as store,
        ):
            label = f"seed {self.seed}, {scenario.name}"
            controller = Controller(self.home, label=label)
            try:
                controller.start(cold=True)
                deploy_first(scenario, self.home, store, web_url, stop=self.stop, context=label)
                trace(f"{scenario.name}: revision 1 up")
                for color in scenario.colors[1:]:
                    if controller.kills >= self.quota:
                        break
                    self.report.rounds += 1
                    self._round(color, controller, store, receiver)
            finally:
                controller.stop()
                self.report.kills = controller.kills
                self.report.kills_before_ready = controller.kills_before_ready
                self.report.ready_seconds = controller.ready_seconds
                self.report.seconds = time.monotonic() - began
        assert self.report.kills >= self.quota, f"seed {self.seed}: {self.report.line()}"
        return self.report

    def _round(
        self, color: str, controller: Controller, store: SqliteStore, receiver: Receiver
    ) -> None:
        scenario, rng = self.scenario, self.rng
        context = f"seed {self.seed}, {scenario.name} round {self.report.rounds} (to {color})"
        watch = RoundWatch(scenario, store, self.report)
        watch.context = context
        before = watch.observe()
        stable = before.stable
        start = len(hooks(receiver))
        set_image(scenario, self.home, color)
        kills: list[tuple[int, int]] = []
        # The controller runs: the first kill falls at a random point after the update.
        deadline = time.monotonic() + rng.uniform(0.05, 1.5)
        for kill in range(1, MAX_KILLS_PER_ROUND + 1):
            while time.monotonic() < deadline:
                watch.observe()
                time.sleep(POLL_SECONDS)
            if self.stop.is_set():
                raise Cancelled
            cold = controller.mode == "cold"
            controller.kill()
            kills.append((kill, len(hooks(receiver, start))))
            trace(f"{context}: kill {kill} ({controller.mode})")
            self.report.cold_kills += cold
            watch.context = f"{context}, kill {kill}"
            snapshot = watch.observe()
            self.report.stages[snapshot.stage()] += 1
            self._check_traffic(snapshot, watch.context)
            if scenario.finished(snapshot, color):
                break
            deadline = self._start_and_pick_kill_point(controller, watch.context)
        else:
            raise AssertionError(f"{context}: not finished after {kill} kills: {watch.history}")
        # The end is reached; the next controller finishes what the last one left, and the
        # status must come to the kill-free run's end.
        controller.start()
        expected = self.reference()

        def ended() -> RoundEnd | None:
            snapshot = watch.observe()
            if not (scenario.settled(snapshot, color) and notifier_idle(self.home, store)):
                return None
            end = round_end(snapshot, color, hooks(receiver, start), stable=stable)
            return end if end.fields == expected.fields else None

        try:
            wait_for(ended, timeout=30, what=lambda: f"{context}: the end", stop=self.stop)
        except AssertionError:
            snapshot = watch.observe()
            end = round_end(snapshot, color, hooks(receiver, start), stable=stable)
            raise AssertionError(
                f"{context}: after the kills the rollout did not come to the kill-free run's"
                f" end:\n{end.fields}\n!=\n{expected.fields}\nhistory {watch.history}\n"
                f"settled: {scenario.settled(snapshot, color)}; controller log:\n"
                f"{controller.log_tail()}"
            ) from None
        end = round_end(watch.observe(), color, hooks(receiver, start), stable=stable)
        self.report.resent += end.resent
        assert not end.altered, f"{context}: a delivery sent again with another body {end.altered}"
        assert end.notifications == expected.notifications, (
            f"{context}: notifications differ from the kill-free run's (each must come once):"
            f" extra {dict(end.notifications - expected.notifications)},"
            f" missing {dict(expected.notifications - end.notifications)};"
            f" events {[(e['reason'], e['message'], e['count']) for e in notified(store)]};"
            f" kills (kill, hooks received before it) {kills}; hooks {hooks(receiver, start)}"
        )
        snapshot = watch.observe()
        revision = next(rs.revision for rs in snapshot.replica_sets if rs.color == color)
        highest = max(rs.revision for rs in before.replica_sets)
        assert revision == highest + 1, f"{context}: revision {revision} after {highest}"
        leaked = unknown_pod_processes(self.home, store)
        assert not leaked, f"{context}: pod processes no Pod object names: {leaked}"
        final = scenario.final_color(snapshot, color)
        served = sample_colors(self.home, scenario.host, 2 * SAMPLE_REQUESTS)
        assert set(served) == {final}, f"{context}: once settled, Traefik served {dict(served)}"

    def _check_traffic(self, snapshot: Snapshot, context: str) -> None:
        scenario = self.scenario
        served = sample_colors(self.home, scenario.host)
        self.report.samples += 1
        allowed = {snapshot.color_of(h) for h in scenario.allowed(snapshot)}
        assert set(served) <= allowed, (
            f"{context}: Traefik served {dict(served)} while the status gives traffic to"
            f" {sorted(c for c in allowed if c)} only; status {json.dumps(snapshot.status)}"
        )
        if not set(served) <= {snapshot.color_of(h) for h in scenario.strict(snapshot)}:
            self.report.allowances_used += 1

    def _start_and_pick_kill_point(self, controller: Controller, context: str) -> float:
        """Start the controller (cold or warm) and say when to kill it."""
        rng = self.rng
        controller.start(cold=rng.random() < COLD_SHARE)
        if rng.random() < AROUND_START_SHARE:
            # While it imports (cold), opens the store, adopts Traefik and the pods.
            cold = controller.mode == "cold"
            return controller.started_at + rng.uniform(*((0.3, 1.5) if cold else (0.0, 0.2)))
        wait_for(
            lambda: controller.ready() or not controller.alive,
            timeout=30,
            what=lambda: f"{context}: the controller to start:\n{controller.log_tail()}",
            stop=self.stop,
            interval=0.01,
        )
        assert controller.alive, f"{context}: the controller died:\n{controller.log_tail()}"
        return time.monotonic() + rng.uniform(*LIFE_SECONDS)


def notified(store: SqliteStore) -> list[RawObject]:
    """The recorded events of the reasons the receiver is subscribed to (with their counts)."""
    reasons = {"RolloutStepCompleted", "RolloutCompleted", "RolloutAborted"}
    return [event for event in store.events() if event["reason"] in reasons]


def trace(line: str) -> None:
    """With `ROLLWISE_KILL_TRACE` set, each kill is printed as it happens (run with `-s`)."""
    if os.environ.get("ROLLWISE_KILL_TRACE"):
        print(f"{time.monotonic():.2f} {line}", flush=True)
