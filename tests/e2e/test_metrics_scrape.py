"""`/metrics` of a real `rollwise controller --local --metrics-port N`, scraped while a
traffic-routed canary goes through its steps: Argo's series say where the rollout is, rollwise's
say the canary's weight, and the counters count the reconciles and events that happened."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import IMAGE, ControllerProcess, rollwise, store_of, wait_until
from tests.controller.metrics_support import Series, matching, parse_series, value

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MANIFEST = f"""\
apiVersion: v1
kind: Service
metadata:
  name: shop-stable
spec:
  selector:
    app: shop
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: shop-canary
spec:
  selector:
    app: shop
  ports:
  - port: 80
    targetPort: 8080
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
        istio:
          virtualService:
            name: shop
      steps:
      - setWeight: 25
      - pause: {{}}
      - setWeight: 50
  selector:
    matchLabels:
      app: shop
  template:
    metadata:
      labels:
        app: shop
    spec:
      containers:
      - name: shop
        image: {IMAGE}:blue
"""
IDS = {"namespace": "default", "name": "shop"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MetricsController(ControllerProcess):
    """The controller subprocess of `support`, with its metrics on a port of the test's."""

    def __init__(self, home: Path, metrics_port: int) -> None:
        super().__init__(home)
        self.metrics_port = metrics_port

    def start(self) -> None:
        command = [sys.executable, "-m", "rollwise", "--home", str(self.home), "controller"]
        command += ["--local", "--metrics-port", str(self.metrics_port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()

    def scrape(self) -> Series:
        status, text = self.get("/metrics")
        assert status == 200
        return parse_series(text)


@pytest.fixture
def controller(home: Path) -> Iterator[MetricsController]:
    process = MetricsController(home, free_port())
    try:
        yield process
    finally:
        if process.process is not None and process.process.poll() is None:
            process.process.send_signal(signal.SIGTERM)
        process.stop()


def status(home: Path) -> dict[str, Any]:
    result = rollwise(home, "get", "rollout", "shop", "-o", "json")
    return json.loads(result.stdout).get("status") or {}  # type: ignore[no-any-return]


def scrape_in_phase(controller: MetricsController, phase: str) -> Series:
    """The first scrape whose `rollout_info` has this phase label."""

    def scraped() -> Series | None:
        series = controller.scrape()
        found = matching(series, "rollout_info", **IDS)
        return series if [dict(labels)["phase"] for labels in found] == [phase] else None

    found: Series = wait_until(scraped, what=f"rollout_info with phase {phase}")
    return found


def reconciles(series: Series) -> float:
    return value(series, "rollout_reconcile_count", **IDS) or 0.0


def events_in_store(home: Path) -> Counter[tuple[str, str]]:
    """What the store recorded about the rollout: (type, reason) -> how many times."""
    store = store_of(home)
    try:
        recorded = store.events(kind="Rollout", name="shop", namespace="default", limit=10_000)
    finally:
        store.close()
    counted: Counter[tuple[str, str]] = Counter()
    for event in recorded:
        counted[(event["type"], event["reason"])] += int(event["count"])
    return counted


def events_in_metrics(series: Series) -> Counter[tuple[str, str]]:
    return Counter(
        {
            (dict(labels)["type"], dict(labels)["reason"]): int(count)
            for labels, count in matching(series, "rollout_events_total", **IDS).items()
        }
    )


def test_metrics_follow_a_canary(home: Path, controller: MetricsController, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    controller.start()
    wait_until(lambda: _answers(controller), what="the metrics server")
    assert controller.get("/healthz") == (200, "ok\n")

    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")
    healthy = scrape_in_phase(controller, "Completed")
    assert value(healthy, "rollout_info_replicas_desired", **IDS) == 4
    assert value(healthy, "rollout_info_replicas_available", **IDS) == 4
    assert value(healthy, "rollwise_rollout_canary_weight", **IDS) == 0
    assert value(healthy, "argo_rollouts_controller_info", version=_version()) == 1
    first_reconciles = reconciles(healthy)
    assert first_reconciles > 0

    rollwise(home, "set", "image", "shop", f"shop={IMAGE}:yellow")
    wait_until(lambda: status(home).get("message") == "CanaryPauseStep", what="at the pause")
    paused = controller.scrape()
    current = status(home)

    info = {**IDS, "strategy": "canary", "traffic_router": "Istio", "phase": "Paused"}
    assert value(paused, "rollout_info", **info) == 1
    assert value(paused, "rollout_phase", **IDS, strategy="canary", phase="Paused") == 1
    assert value(paused, "rollout_phase", **IDS, strategy="canary", phase="Completed") == 0
    assert value(paused, "rollwise_rollout_canary_weight", **IDS) == 25
    assert value(paused, "rollwise_rollout_set_weight", **IDS) == 25
    assert value(paused, "rollwise_rollout_step", **IDS) == 1
    assert value(paused, "rollwise_rollout_steps", **IDS) == 3
    versions = {
        dict(labels)["role"]: dict(labels)["version"]
        for labels in matching(paused, "rollwise_rollout_version_info", **IDS)
    }
    assert versions == {"canary": current["currentPodHash"], "stable": current["stableRS"]}
    assert versions["canary"] != versions["stable"]
    assert value(paused, "rollout_info_replicas_updated", **IDS) == current["updatedReplicas"]
    assert reconciles(paused) > first_reconciles
    assert not matching(paused, "rollout_reconcile_error", **IDS)

    # Every event the store recorded is counted, with its type and reason.
    counted = events_in_metrics(paused)
    assert counted == events_in_store(home)
    assert counted[("Normal", "RolloutUpdated")] >= 1
    assert counted[("Normal", "RolloutPaused")] >= 1

    rollwise(home, "promote", "shop")
    wait_until(lambda: status(home).get("phase") == "Healthy", what="promoted")
    done = scrape_in_phase(controller, "Completed")
    assert value(done, "rollwise_rollout_canary_weight", **IDS) == 0
    assert value(done, "rollwise_rollout_set_weight", **IDS) == 100
    assert events_in_metrics(done)[("Normal", "RolloutCompleted")] >= 1
    assert events_in_metrics(done) == events_in_store(home)


def _answers(controller: MetricsController) -> bool:
    try:
        return controller.get("/healthz")[0] == 200
    except OSError:
        return False


def _version() -> str:
    from rollwise import __version__

    return __version__
