"""`rollwise demo`: a whole canary on this machine, in about a minute, with real traffic.

What it does, as a person would: in a throwaway home it starts the local controller (which
starts Traefik), applies the seed's Part 3 Rollout (5 replicas of `argoproj/rollouts-demo`, steps
20/40/60/80% with pauses shortened to a few seconds) behind its Service, and runs a load
generator against `http://myapp.localhost:<port>/` through Traefik, counting which image
answered each request. Then two scenarios:

1. `set image` blue → yellow: the canary goes through every step to 100% and is promoted;
2. `set image` yellow → red, and once the canary serves 60% an `abort`, as a person would:
   traffic returns to yellow and the rollout is Degraded (aborted), as in Argo.

It draws the live `get rollout` tree while it runs; `--json` prints one JSON object at the end
instead and the exit code says whether every scenario ended as expected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rollwise.controller.local import LocalController, home_lock
from rollwise.core.commands import abort_patch, set_image_patch
from rollwise.views.render import render_rollout

if TYPE_CHECKING:
    import aiohttp

IMAGE = "argoproj/rollouts-demo"
PAUSE = "4s"
SCENARIO_TIMEOUT_SECONDS = 120.0
LOAD_WORKERS = 4

MANIFESTS = f"""\
apiVersion: v1
kind: Service
metadata:
  name: myapp
spec:
  ports:
  - port: 80
    targetPort: 8080
    protocol: TCP
    name: http
  selector:
    app: myapp
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: 5
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {{duration: {PAUSE}}}
      - setWeight: 40
      - pause: {{duration: {PAUSE}}}
      - setWeight: 60
      - pause: {{duration: {PAUSE}}}
      - setWeight: 80
      - pause: {{duration: {PAUSE}}}
  revisionHistoryLimit: 2
  selector:
    matchLabels:
      app: myapp
  template:
    metadata:
      labels:
        app: myapp
    spec:
      containers:
      - name: myapp
        image: {IMAGE}:blue
        ports:
        - name: http
          containerPort: 8080
          protocol: TCP
"""


@dataclass
class Scenario:
    name: str
    from_image: str
    to_image: str
    outcome: str = ""
    seconds: float = 0.0
    weights: list[int] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    expected: str = "promoted"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from_image": self.from_image,
            "to_image": self.to_image,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 1),
            "weights": self.weights,
            "served": dict(self.served),
        }


class LoadGenerator:
    """Steady requests through Traefik; counts the image that answered each one."""

    def __init__(self, url: str, host: str) -> None:
        self.url = url
        self.host = host
        self.served: Counter[str] = Counter()
        self.failed = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(LOAD_WORKERS)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    async def answer(self) -> str | None:
        """One request: the image that served it (None if it failed)."""
        import aiohttp

        assert self._session is not None
        try:
            async with self._session.get(self.url, headers={"Host": self.host}) as response:
                if response.status != 200:
                    return None
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return f"{IMAGE}:{body.get('color')}"

    async def _worker(self) -> None:
        while True:
            image = await self.answer()
            if image is None:
                self.failed += 1
                await asyncio.sleep(0.05)
            else:
                self.served[image] += 1
            await asyncio.sleep(0.01)


class Demo:
    def __init__(self, home: Path, *, live: bool) -> None:
        self.home = home
        self.live = live
        self.controller = LocalController(home=home)
        self.store = self.controller.store

    def rollout(self) -> dict[str, Any]:
        return self.store.require("Rollout", "myapp")

    def draw(self) -> str:
        rollout = self.rollout()
        owned = self.controller.executor.owned
        from rollwise.api.models import Rollout

        model = Rollout.model_validate(rollout)
        replica_sets = owned("ReplicaSet", model)
        names = {rs["metadata"]["name"] for rs in replica_sets}
        pods = [
            pod
            for pod in self.store.list("Pod")
            if any(ref.get("name") in names for ref in pod["metadata"].get("ownerReferences", []))
        ]
        return render_rollout(
            rollout,
            replica_sets,
            pods,
            owned("AnalysisRun", model),
            now=self.controller.clock.now(),
            color=sys.stdout.isatty(),
        )

    async def apply_manifests(self) -> None:
        for document in yaml.safe_load_all(MANIFESTS):
            self.store.apply(document)

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, on_tick: Callable[[], Awaitable[None]]
    ) -> bool:
        deadline = time.monotonic() + SCENARIO_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if predicate(self.rollout()):
                return True
            await on_tick()
            await asyncio.sleep(0.25)
        return False


def _phase(rollout: dict[str, Any]) -> str:
    return str((rollout.get("status") or {}).get("phase") or "")


def _observed(rollout: dict[str, Any]) -> bool:
    """Whether the controller's status describes the current spec (not the previous one)."""
    status = rollout.get("status") or {}
    return status.get("observedGeneration") == str(rollout["metadata"].get("generation"))


def _healthy_on(image: str) -> Callable[[dict[str, Any]], bool]:
    def check(rollout: dict[str, Any]) -> bool:
        status = rollout.get("status") or {}
        containers = rollout["spec"]["template"]["spec"]["containers"]
        return (
            _phase(rollout) == "Healthy"
            and containers[0]["image"] == image
            and status.get("stableRS") == status.get("currentPodHash")
            and _observed(rollout)
        )

    return check


def _step_weight(rollout: dict[str, Any]) -> int | None:
    """The setWeight in force at the current step (None before the first)."""
    status = rollout.get("status") or {}
    steps = rollout["spec"]["strategy"]["canary"].get("steps") or []
    index = status.get("currentStepIndex") or 0
    weight = None
    for step in steps[: index + 1]:
        if "setWeight" in step:
            weight = int(step["setWeight"])
    if index >= len(steps) and status.get("stableRS") == status.get("currentPodHash"):
        weight = 100
    return weight


async def _run_scenarios(demo: Demo, scenarios: list[Scenario]) -> None:
    controller_task = asyncio.create_task(demo.controller.run())
    await demo.apply_manifests()
    show: Callable[[], Awaitable[None]]
    live_display: Any = None
    if demo.live:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        console = Console()
        live_display = Live(console=console, refresh_per_second=4, transient=False)
        live_display.start()

        async def show() -> None:
            counts = load.served if load is not None else {}
            served = ", ".join(f"{k.split(':')[-1]}={v}" for k, v in sorted(counts.items()))
            live_display.update(Text.from_ansi(f"{demo.draw()}\n\nserved: {served}\n"))

    else:

        async def show() -> None:
            return None

    load: LoadGenerator | None = None
    try:
        if not await demo.wait_for(_healthy_on(f"{IMAGE}:blue"), on_tick=show):
            raise RuntimeError("the first revision never became Healthy")
        load = LoadGenerator(demo.controller.url + "/", "myapp.localhost")
        await load.start()
        for scenario in scenarios:
            await _scenario(demo, scenario, load, show)
    finally:
        if load is not None:
            await load.stop()
        if live_display is not None:
            live_display.stop()
        demo.controller.stop()
        await controller_task


async def _scenario(
    demo: Demo, scenario: Scenario, load: LoadGenerator, show: Callable[[], Awaitable[None]]
) -> None:
    started = time.monotonic()
    before = Counter(load.served)
    rollout = demo.rollout()
    container = rollout["spec"]["template"]["spec"]["containers"][0]["name"]
    patches = set_image_patch(rollout, container, scenario.to_image)
    demo.store.patch("Rollout", "myapp", merge=patches.object_patch)

    def record(current: dict[str, Any]) -> None:
        weight = _step_weight(current)
        if weight is not None and _observed(current) and weight not in scenario.weights[-1:]:
            scenario.weights.append(weight)

    async def tick() -> None:
        record(demo.rollout())
        await show()

    if scenario.expected == "promoted":
        done = await demo.wait_for(_healthy_on(scenario.to_image), on_tick=tick)
        record(demo.rollout())
        scenario.outcome = "promoted" if done else "timed out"
    else:
        reached = await demo.wait_for(
            lambda r: _observed(r) and (_step_weight(r) or 0) >= 60, on_tick=tick
        )
        record(demo.rollout())
        current = demo.rollout()
        abort = abort_patch(current)
        demo.store.patch("Rollout", "myapp", merge=abort.status_patch, status=True)
        scenario.weights.append(0)
        aborted = await demo.wait_for(_aborted_back_on(demo), on_tick=show)
        scenario.outcome = "aborted" if reached and aborted else "timed out"
        if scenario.outcome == "aborted":
            # What users get after the abort: every answer from the stable image.
            answers = [await load.answer() for _ in range(50)]
            if any(image != scenario.from_image for image in answers):
                scenario.outcome = "aborted, but traffic still reaches the canary"
    scenario.seconds = time.monotonic() - started
    scenario.served = Counter(load.served) - before


def _aborted_back_on(demo: Demo) -> Callable[[dict[str, Any]], bool]:
    """Aborted, and no ReplicaSet but the stable one has a ready pod."""

    def check(rollout: dict[str, Any]) -> bool:
        status = rollout.get("status") or {}
        if not (_phase(rollout) == "Degraded" and status.get("abort")):
            return False
        stable = status.get("stableRS")
        for replica_set in demo.store.list("ReplicaSet"):
            rs_hash = replica_set["metadata"].get("labels", {}).get("rollouts-pod-template-hash")
            ready = (replica_set.get("status") or {}).get("readyReplicas") or 0
            if rs_hash != stable and ready > 0:
                return False
        return True

    return check


def main(*, json_output: bool = False, keep: bool = False) -> int:
    """Run the demo; 0 if every scenario ended as expected."""
    home = Path(tempfile.mkdtemp(prefix="rollwise-demo-"))
    scenarios = [
        Scenario("canary promoted", f"{IMAGE}:blue", f"{IMAGE}:yellow"),
        Scenario("canary aborted", f"{IMAGE}:yellow", f"{IMAGE}:red", expected="aborted"),
    ]
    demo = Demo(home, live=not json_output)
    error = ""
    try:
        with home_lock(home):
            asyncio.run(_run_scenarios(demo, scenarios))
    except Exception as exc:  # reported in the JSON and the exit code, never swallowed
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    ok = not error and all(s.outcome == s.expected for s in scenarios)
    result: dict[str, Any] = {"ok": ok, "scenarios": [s.to_json() for s in scenarios]}
    if error:
        result["error"] = error
    if json_output:
        print(json.dumps(result))
    else:
        for s in scenarios:
            served = ", ".join(f"{k}: {v}" for k, v in sorted(s.served.items()))
            print(f"{s.name}: {s.outcome} in {s.seconds:.0f}s; weights {s.weights}; {served}")
        print("demo OK" if ok else f"demo FAILED {error}")
    return 0 if ok else 1
