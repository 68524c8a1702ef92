"""The judge end to end, in local mode: a step analysis on `rollwise/judge` reading Traefik's
own counters compares the canary with the stable version while a load thread sends requests;
it rolls back a canary with 5% errors and promotes a healthy one, each as soon as the evidence
is there (the step has no fixed length: the metric has neither count nor interval)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.support import (
    IMAGE,
    ControllerProcess,
    controller,
    home,
    rollwise,
    store_of,
    wait_until,
    web_port,
)

__all__ = ["controller", "home"]  # fixtures

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TEMPLATE = """\
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
          window: 2s
          marginAbs: 1%
---
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
"""

ROLLOUT = """\
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
      - setWeight: 20
      - analysis:
          templates:
          - templateName: canary-judge
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
        - {name: ERROR_RATE, value: "ERRORS"}
"""


def rollout(tag: str, errors: float) -> str:
    return ROLLOUT.replace("IMAGE_TAG", f"{IMAGE}:{tag}").replace("ERRORS", str(errors))


@pytest.fixture
def traffic(home: Path) -> Iterator[None]:
    """Steady requests to shop.localhost while the test runs (the judge compares them)."""
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{web_port(home)}/", headers={"Host": "shop.localhost"}
                )
                with urllib.request.urlopen(request, timeout=2) as response:
                    response.read()
            except (OSError, ValueError, KeyError):  # 500s included: the load goes on
                stop.wait(0.01)

    workers = [threading.Thread(target=send, daemon=True) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=5)


def status(home: Path) -> dict[str, Any]:
    result = rollwise(home, "get", "rollout", "shop", "-o", "json")
    return json.loads(result.stdout).get("status") or {}  # type: ignore[no-any-return]


def judge_measurement(home: Path) -> dict[str, Any]:
    """The judge's (only) measurement of the rollout's latest analysis run, from the store."""
    store = store_of(home)
    try:
        runs = store.list("AnalysisRun", None)
    finally:
        store.close()
    latest = max(runs, key=lambda run: run["metadata"].get("creationTimestamp", ""))
    result = latest["status"]["metricResults"][0]
    assert len(result["measurements"]) == 1  # one judgement, however long it took
    return result["measurements"][0]  # type: ignore[no-any-return]


def deploy(home: Path, controller: ControllerProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(TEMPLATE + "---\n" + rollout("blue", 0))
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")


def update(home: Path, tmp_path: Path, tag: str, errors: float) -> float:
    manifest = tmp_path / "shop-v2.yaml"
    manifest.write_text(rollout(tag, errors))
    rollwise(home, "apply", "-f", str(manifest))
    return time.monotonic()


@pytest.mark.usefixtures("traffic")
def test_the_judge_rolls_back_a_canary_with_five_percent_errors(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    deploy(home, controller, tmp_path)
    began = update(home, tmp_path, "yellow", 0.05)
    wait_until(lambda: status(home).get("phase") == "Degraded", timeout=120, what="rolled back")
    seconds = time.monotonic() - began
    current = status(home)
    assert current.get("abort") is True
    assert 'Metric "judge" assessed Failed' in current.get("message", "")
    assert "→ regression" in current.get("message", "")
    measurement = judge_measurement(home)
    assert measurement["phase"] == "Failed"
    assert measurement["value"] == "fail"
    metadata = measurement["metadata"]
    assert int(metadata["canaryErrors"]) > 0
    assert int(metadata["baselineErrors"]) == 0
    print(
        f"bad canary rolled back {seconds:.1f} s after the update; the judge failed it after "
        f"{metadata['canaryRequests']} canary requests ({metadata['looks']} looks): "
        f"{measurement['message']}"
    )
    view = rollwise(home, "get", "rollout", "shop", "--no-color").stdout
    assert "✖ Failed" in view
    assert "Judge:           judge: fail" in view
    assert f"  Evidence:      {measurement['message']}" in view


@pytest.mark.usefixtures("traffic")
def test_the_judge_promotes_a_healthy_canary_once_the_bound_clears_the_margin(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    deploy(home, controller, tmp_path)
    began = update(home, tmp_path, "yellow", 0)
    wait_until(
        lambda: (
            status(home).get("phase") == "Healthy" and status(home).get("currentStepIndex") == 3
        ),
        timeout=120,
        what="promoted after the judge passed",
    )
    seconds = time.monotonic() - began
    measurement = judge_measurement(home)
    assert measurement["phase"] == "Successful"
    assert measurement["value"] == "pass"
    assert measurement["message"].endswith("→ within margin")
    metadata = measurement["metadata"]
    assert int(metadata["canaryRequests"]) >= 200
    print(
        f"healthy canary promoted {seconds:.1f} s after the update; the judge passed it after "
        f"{metadata['canaryRequests']} canary requests ({metadata['looks']} looks): "
        f"{measurement['message']}"
    )
