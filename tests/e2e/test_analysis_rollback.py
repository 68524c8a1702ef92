"""Automated analysis end to end: a step analysis on the builtin provider (Traefik's own
metrics, no Prometheus) promotes a healthy canary and rolls a bad one back with no human."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import IMAGE, ControllerProcess, rollwise, wait_until, web_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

MANIFEST = f"""\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: canary-success-rate
spec:
  args:
  - name: service
  metrics:
  - name: success-rate
    interval: 1s
    count: 2
    successCondition: result >= 0.95
    provider:
      plugin:
        rollwise/builtin:
          metric: success-rate
          service: "{{{{args.service}}}}"
          window: 2s
---
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
  replicas: 2
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      trafficRouting:
        traefik:
          weightedTraefikServiceName: shop
      steps:
      - setWeight: 50
      - analysis:
          templates:
          - templateName: canary-success-rate
          args:
          - name: service
            value: shop-canary
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
"""


@pytest.fixture
def traffic(home: Path) -> Iterator[None]:
    """Steady requests to shop.localhost while the test runs (the analysis measures them)."""
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{web_port(home)}/", headers={"Host": "shop.localhost"}
                )
                with urllib.request.urlopen(request, timeout=2) as response:
                    response.read()
            except (OSError, ValueError, KeyError):
                stop.wait(0.05)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=5)


def status(home: Path) -> dict[str, Any]:
    result = rollwise(home, "get", "rollout", "shop", "-o", "json")
    return json.loads(result.stdout).get("status") or {}  # type: ignore[no-any-return]


def start(home: Path, controller: ControllerProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")


@pytest.mark.usefixtures("traffic")
def test_a_healthy_canary_passes_its_analysis_and_is_promoted(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start(home, controller, tmp_path)
    rollwise(home, "set", "image", "shop", f"shop={IMAGE}:yellow")
    wait_until(
        lambda: (
            status(home).get("phase") == "Healthy" and status(home).get("currentStepIndex") == 3
        ),
        timeout=90,
        what="promoted after a successful analysis",
    )
    view = rollwise(home, "get", "rollout", "shop", "--no-color").stdout
    assert "AnalysisRun" in view
    assert "✔ Successful" in view


@pytest.mark.usefixtures("traffic")
def test_a_bad_canary_is_rolled_back_by_its_analysis(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start(home, controller, tmp_path)
    rollwise(home, "set", "image", "shop", f"shop={IMAGE}:bad-red")
    wait_until(lambda: status(home).get("phase") == "Degraded", timeout=90, what="rolled back")
    current = status(home)
    assert current["abort"] is True
    assert "success-rate" in current["message"]
    assert current["canary"]["weights"]["canary"]["weight"] == 0
