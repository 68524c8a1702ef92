"""`rollwise demo`: whole canaries on this machine, in about a minute, with real traffic.

What it does, as a person would: in a throwaway home it starts the local controller (which
starts Traefik), applies two Rollouts and runs a load generator against each through Traefik,
counting which image answered every request:

- `myapp`, the seed's Part 3 Rollout (5 replicas of `argoproj/rollouts-demo`, steps
  20/40/60/80% with pauses shortened to a few seconds): a basic canary, traffic split by pods;
- `shop`, a traffic-routed canary (Traefik weights) with an analysis step that measures the
  canary's success rate with rollwise's builtin provider (Traefik's own metrics, no Prometheus),
  or, with `--prometheus`, with the seed's `success-rate` template unchanged but for its address,
  against a real Prometheus that scrapes the pods.

Three scenarios:

1. "canary promoted": `set image` blue → yellow on myapp; every step to 100%;
2. "canary aborted": yellow → red, and once the canary serves 60% an `abort` as a person would;
   traffic returns to yellow and the rollout is Degraded (aborted), as in Argo;
3. "auto-rollback": `set image` blue → bad-red on shop (half its answers are 500s); the analysis
   fails and the rollout is aborted with no command from anyone.

It draws the live `get rollout` tree while it runs; `--json` prints one JSON object at the end
instead, and the exit code says whether every scenario ended as expected.
"""

from __future__ import annotations

import asyncio
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
from rollwise.demo.prometheus import PrometheusServer, find_prometheus
from rollwise.views.render import render_rollout

if TYPE_CHECKING:
    import aiohttp

IMAGE = "argoproj/rollouts-demo"
PAUSE = "4s"
SCENARIO_TIMEOUT_SECONDS = 120.0
PROMETHEUS_SCENARIO_TIMEOUT_SECONDS = 420.0
LOAD_WORKERS = 3

MYAPP = f"""\
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

BUILTIN_TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: canary-success-rate
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 1s
    count: 3
    successCondition: result >= 0.95
    provider:
      plugin:
        rollwise/builtin:
          metric: success-rate
          service: "{{args.service-name}}"
          window: 2s
"""

# The seed's Part 4 template, verbatim but for the address (tests check it against the seed).
SEED_SUCCESS_RATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 1m
    successCondition: result[0] >= 0.95
    failureLimit: 3
    provider:
      prometheus:
        address: http://prometheus:9090
        query: |
          sum(rate(
            http_requests_total{
              service="{{args.service-name}}",
              status!~"5.."
            }[5m]
          ))
          /
          sum(rate(
            http_requests_total{
              service="{{args.service-name}}"
            }[5m]
          ))
  - name: latency
    interval: 1m
    successCondition: result[0] <= 500
    failureLimit: 3
    provider:
      prometheus:
        address: http://prometheus:9090
        query: |
          histogram_quantile(0.95,
            sum(rate(
              http_request_duration_seconds_bucket{
                service="{{args.service-name}}"
              }[5m]
            )) by (le)
          ) * 1000
"""


def shop_manifests(*, template: str, service_arg: str) -> str:
    """The traffic-routed `shop` Rollout, its Services and the AnalysisTemplate it uses."""
    name = yaml.safe_load(template)["metadata"]["name"]
    return f"""\
{template}---
apiVersion: v1
kind: Service
metadata:
  name: shop-stable
spec:
  selector: {{app: shop}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: shop-canary
spec:
  selector: {{app: shop}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: shop
spec:
  replicas: 4
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      trafficRouting:
        traefik:
          weightedTraefikServiceName: shop
      steps:
      - setWeight: 25
      - analysis:
          templates:
          - templateName: {name}
          args:
          - name: service-name
            value: {service_arg}
      - setWeight: 100
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
      containers:
      - name: shop
        image: {IMAGE}:blue
        env:
        - name: SERVICE_NAME
          value: shop
"""


@dataclass
class Scenario:
    name: str
    rollout: str
    from_image: str
    to_image: str
    expected: str
    abort_at_weight: int | None = None
    """A person aborts once the canary has this weight; None: nobody does anything."""
    outcome: str = ""
    seconds: float = 0.0
    weights: list[int] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    analysis_runs: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from_image": self.from_image,
            "to_image": self.to_image,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 1),
            "weights": self.weights,
            "served": dict(self.served),
            "analysis_runs": self.analysis_runs,
        }


class LoadGenerator:
    """Steady requests to one host through Traefik; counts the image that answered each (a
    500 from a `bad-` colour counts for its image too: it was served by it)."""

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
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def answer(self) -> str | None:
        """One request: the image that served it (None if no version answered)."""
        import aiohttp

        assert self._session is not None
        try:
            async with self._session.get(self.url, headers={"Host": self.host}) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        color = body.get("color") if isinstance(body, dict) else None
        return None if color is None else f"{IMAGE}:{color}"

    async def _worker(self) -> None:
        while True:
            image = await self.answer()
            if image is None:
                self.failed += 1
                await asyncio.sleep(0.05)
            else:
                self.served[image] += 1
            await asyncio.sleep(0.01)


def _status(rollout: dict[str, Any]) -> dict[str, Any]:
    return rollout.get("status") or {}


def _observed(rollout: dict[str, Any]) -> bool:
    """Whether the controller's status describes the current spec (not the previous one)."""
    return _status(rollout).get("observedGeneration") == str(rollout["metadata"].get("generation"))


def _healthy_on(image: str) -> Callable[[dict[str, Any]], bool]:
    def check(rollout: dict[str, Any]) -> bool:
        status = _status(rollout)
        containers = rollout["spec"]["template"]["spec"]["containers"]
        return (
            status.get("phase") == "Healthy"
            and containers[0]["image"] == image
            and status.get("stableRS") == status.get("currentPodHash")
            and _observed(rollout)
        )

    return check


def _aborted(rollout: dict[str, Any]) -> bool:
    status = _status(rollout)
    return _observed(rollout) and status.get("phase") == "Degraded" and bool(status.get("abort"))


def _step_weight(rollout: dict[str, Any]) -> int | None:
    """The canary weight the rollout's plan puts in force now (None before the first)."""
    status = _status(rollout)
    if status.get("abort"):
        return 0
    steps = rollout["spec"]["strategy"]["canary"].get("steps") or []
    index = status.get("currentStepIndex") or 0
    if index >= len(steps) and status.get("stableRS") == status.get("currentPodHash"):
        return 100
    weight = None
    for step in steps[: index + 1]:
        if "setWeight" in step:
            weight = int(step["setWeight"])
    return weight


DashboardFactory = Callable[[Path], Callable[[], Any]]
"""Given the demo's home, the web dashboard's app factory (built by the CLI: this layer may not
import the dashboard)."""


class Demo:
    def __init__(
        self,
        home: Path,
        *,
        live: bool,
        prometheus: bool,
        dashboard: DashboardFactory | None = None,
        dashboard_port: int = 0,
    ) -> None:
        self.home = home
        self.live = live
        self.controller = LocalController(
            home=home,
            dashboard_port=dashboard_port if dashboard is not None else 0,
            dashboard=dashboard(home) if dashboard is not None else None,
        )
        self.store = self.controller.store
        self.prometheus: PrometheusServer | None = None
        if prometheus:
            self.prometheus = PrometheusServer(home / "prometheus", binary=find_prometheus())
        self.loads: dict[str, LoadGenerator] = {}
        self.showing = "myapp"
        self.timeout = (
            PROMETHEUS_SCENARIO_TIMEOUT_SECONDS if prometheus else SCENARIO_TIMEOUT_SECONDS
        )

    def rollout(self, name: str) -> dict[str, Any]:
        return self.store.require("Rollout", name)

    def owned(self, kind: str, name: str) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.store.list(kind, owner=name)
            if any(r.get("kind") == "Rollout" for r in obj["metadata"].get("ownerReferences", []))
        ]

    def draw(self) -> str:
        name = self.showing
        replica_sets = self.owned("ReplicaSet", name)
        names = {rs["metadata"]["name"] for rs in replica_sets}
        pods = [
            pod
            for pod in self.store.list("Pod")
            if any(ref.get("name") in names for ref in pod["metadata"].get("ownerReferences", []))
        ]
        served = self.loads.get(name)
        counts = ", ".join(
            f"{image.split(':')[-1]}={count}"
            for image, count in sorted((served.served if served else Counter()).items())
        )
        tree = render_rollout(
            self.rollout(name),
            replica_sets,
            pods,
            self.owned("AnalysisRun", name),
            now=self.controller.clock.now(),
            color=sys.stdout.isatty(),
        )
        return f"{tree}\n\nserved by {name}.localhost: {counts}\n"

    def apply(self, text: str) -> None:
        for document in yaml.safe_load_all(text):
            self.store.apply(document)

    def manifests(self) -> str:
        if self.prometheus is None:
            shop = shop_manifests(template=BUILTIN_TEMPLATE, service_arg="shop-canary")
        else:
            template = SEED_SUCCESS_RATE.replace("http://prometheus:9090", self.prometheus.url)
            shop = shop_manifests(template=template, service_arg="shop")
        return f"{MYAPP}---\n{shop}"

    def scrape_pods(self) -> None:
        """Point Prometheus at every pod that runs now."""
        if self.prometheus is None:
            return
        ports = [
            (pod["metadata"].get("annotations") or {}).get("rollwise.io/port")
            for pod in self.store.list("Pod", None)
        ]
        self.prometheus.scrape([f"127.0.0.1:{port}" for port in ports if port])

    async def wait_for(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        on_tick: Callable[[], Awaitable[None]],
    ) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if predicate(self.rollout(name)):
                return True
            self.scrape_pods()
            await on_tick()
            await asyncio.sleep(0.25)
        return False

    async def only_stable_answers(self, name: str, image: str) -> bool:
        """After an abort: 50 requests in a row, every one answered by the stable image."""
        answers = [await self.loads[name].answer() for _ in range(50)]
        return all(answer == image for answer in answers)

    async def run_scenario(self, scenario: Scenario, show: Callable[[], Awaitable[None]]) -> None:
        self.showing = scenario.rollout
        started = time.monotonic()
        load = self.loads[scenario.rollout]
        before = Counter(load.served)
        known_runs = {
            run["metadata"]["name"] for run in self.owned("AnalysisRun", scenario.rollout)
        }
        rollout = self.rollout(scenario.rollout)
        container = rollout["spec"]["template"]["spec"]["containers"][0]["name"]
        patch = set_image_patch(rollout, container, scenario.to_image)
        self.store.patch("Rollout", scenario.rollout, merge=patch.object_patch)

        def record(current: dict[str, Any]) -> None:
            weight = _step_weight(current)
            if weight is not None and _observed(current) and weight not in scenario.weights[-1:]:
                scenario.weights.append(weight)

        async def tick() -> None:
            record(self.rollout(scenario.rollout))
            await show()

        def done(current: dict[str, Any]) -> bool:
            return _healthy_on(scenario.to_image)(current) or _aborted(current)

        if scenario.abort_at_weight is not None:
            reached = await self.wait_for(
                scenario.rollout,
                lambda r: (
                    _observed(r) and (_step_weight(r) or 0) >= (scenario.abort_at_weight or 0)
                ),
                on_tick=tick,
            )
            record(self.rollout(scenario.rollout))
            if reached:
                abort = abort_patch(self.rollout(scenario.rollout))
                self.store.patch("Rollout", scenario.rollout, merge=abort.status_patch, status=True)
        finished = await self.wait_for(scenario.rollout, done, on_tick=tick)
        final = self.rollout(scenario.rollout)
        record(final)
        if not finished:
            scenario.outcome = "timed out"
        elif _aborted(final):
            await self.wait_for(scenario.rollout, self._stable_only(scenario.rollout), on_tick=show)
            back = await self.only_stable_answers(scenario.rollout, scenario.from_image)
            scenario.outcome = (
                "aborted" if back else "aborted, but traffic still reaches the canary"
            )
        else:
            scenario.outcome = "promoted"
        scenario.seconds = time.monotonic() - started
        scenario.served = Counter(load.served) - before
        scenario.analysis_runs = [
            {"name": run["metadata"]["name"], "phase": (run.get("status") or {}).get("phase", "")}
            for run in self.owned("AnalysisRun", scenario.rollout)
            if run["metadata"]["name"] not in known_runs
        ]

    def _stable_only(self, name: str) -> Callable[[dict[str, Any]], bool]:
        """The aborted canary gets no traffic: a traffic-routed rollout reports weight 0
        verified at the proxy (its canary pods may stay up for abortScaleDownDelaySeconds);
        a basic canary has no ready pod left outside the stable ReplicaSet."""

        def check(rollout: dict[str, Any]) -> bool:
            weights = (_status(rollout).get("canary") or {}).get("weights")
            if weights is not None:
                return weights["canary"]["weight"] == 0 and weights.get("verified") is True
            stable = _status(rollout).get("stableRS")
            return all(
                rs["metadata"].get("labels", {}).get("rollouts-pod-template-hash") == stable
                or not (rs.get("status") or {}).get("readyReplicas")
                for rs in self.owned("ReplicaSet", name)
            )

        return check


async def _run(demo: Demo, scenarios: list[Scenario]) -> None:
    if demo.prometheus is not None:
        demo.prometheus.start()
    controller_task = asyncio.create_task(demo.controller.run())
    live_display: Any = None

    async def show() -> None:
        if live_display is not None:
            from rich.text import Text

            live_display.update(Text.from_ansi(demo.draw()))

    try:
        demo.apply(demo.manifests())
        for name in ("myapp", "shop"):
            if not await demo.wait_for(name, _healthy_on(f"{IMAGE}:blue"), on_tick=show):
                raise RuntimeError(f"the first revision of {name} never became Healthy")
        if demo.live:
            from rich.console import Console
            from rich.live import Live

            live_display = Live(console=Console(), refresh_per_second=4)
            live_display.start()
        for name in ("myapp", "shop"):
            demo.loads[name] = LoadGenerator(demo.controller.url + "/", f"{name}.localhost")
            await demo.loads[name].start()
        for scenario in scenarios:
            await demo.run_scenario(scenario, show)
    finally:
        for load in demo.loads.values():
            await load.stop()
        if live_display is not None:
            live_display.stop()
        demo.controller.stop()
        await controller_task
        if demo.prometheus is not None:
            demo.prometheus.stop()


def main(
    *,
    json_output: bool = False,
    prometheus: bool = False,
    keep: bool = False,
    dashboard: DashboardFactory | None = None,
    dashboard_port: int = 0,
) -> int:
    """Run the demo; 0 if every scenario ended as expected. With `dashboard`, the local
    controller also serves the web dashboard on `dashboard_port` while the demo runs."""
    home = Path(tempfile.mkdtemp(prefix="rollwise-demo-"))
    scenarios = [
        Scenario("canary promoted", "myapp", f"{IMAGE}:blue", f"{IMAGE}:yellow", "promoted"),
        Scenario(
            "canary aborted",
            "myapp",
            f"{IMAGE}:yellow",
            f"{IMAGE}:red",
            "aborted",
            abort_at_weight=60,
        ),
        Scenario("auto-rollback", "shop", f"{IMAGE}:blue", f"{IMAGE}:bad-red", "aborted"),
    ]
    error = ""
    try:
        demo = Demo(
            home,
            live=not json_output,
            prometheus=prometheus,
            dashboard=dashboard,
            dashboard_port=dashboard_port,
        )
        with home_lock(home):
            asyncio.run(_run(demo, scenarios))
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
            runs = ", ".join(f"{r['name']} {r['phase']}" for r in s.analysis_runs)
            print(f"{s.name}: {s.outcome} in {s.seconds:.0f}s; weights {s.weights}; {served}")
            if runs:
                print(f"  analysis: {runs}")
        print("demo OK" if ok else f"demo FAILED {error}")
    return 0 if ok else 1
