"""The canary `experiment` step in local mode: a baseline (stable spec) and a canary (new spec)
run next to the Rollout as real processes, each weighted template gets its share of the
Rollout's traffic through Traefik, and the Experiment's verdict moves the Rollout - skipped by
a promote, or aborting the update when its analysis (the builtin provider, Traefik's own
metrics of the canary template's Service) fails."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import IMAGE, ControllerProcess, rollwise, store_of, wait_until, web_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SERVICES = """\
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

BUILTIN_TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: template-success-rate
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
          service: "{{args.service}}"
          window: 2s
"""


def rollout(experiment_step: str) -> str:
    # `smi`, as Argo's weighted-experiment examples name it; local mode serves any router
    # kind with Traefik.
    return f"""\
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
        smi: {{}}
      steps:
      - setWeight: 20
{experiment_step}
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


WEIGHTED_STEP = """\
      - experiment:
          templates:
          - name: baseline
            specRef: stable
            weight: 20
          - name: canary
            specRef: canary
            weight: 20"""

JUDGED_STEP = """\
      - experiment:
          duration: 1h
          templates:
          - name: baseline
            specRef: stable
            weight: 20
          - name: canary
            specRef: canary
            weight: 20
          analyses:
          - name: canary-success-rate
            templateName: template-success-rate
            requiredForCompletion: true
            args:
            - name: service
              value: "{{templates.canary.replicaset.name}}"
      - setWeight: 50"""


def status(home: Path) -> dict[str, Any]:
    result = rollwise(home, "get", "rollout", "shop", "-o", "json")
    return json.loads(result.stdout).get("status") or {}  # type: ignore[no-any-return]


def experiment(home: Path, name: str) -> dict[str, Any]:
    store = store_of(home)
    try:
        return store.get("Experiment", name) or {}
    finally:
        store.close()


def versions_served(home: Path, count: int) -> Counter[str]:
    """Send `count` requests to shop.localhost; how many each version (pod hash) answered."""
    served: Counter[str] = Counter()
    for _ in range(count):
        request = urllib.request.Request(
            f"http://127.0.0.1:{web_port(home)}/", headers={"Host": "shop.localhost"}
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            served[json.loads(response.read())["version"]] += 1
    return served


def start(home: Path, controller: ControllerProcess, tmp_path: Path, step: str) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(SERVICES + "---\n" + BUILTIN_TEMPLATE + "---\n" + rollout(step))
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")


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


def test_weighted_templates_share_the_traffic_until_the_step_is_promoted(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start(home, controller, tmp_path, WEIGHTED_STEP)
    rollwise(home, "set", "image", "shop", f"shop={IMAGE}:yellow")

    def running() -> dict[str, Any] | None:
        current = status(home)
        name = current.get("canary", {}).get("currentExperiment")
        weights = current.get("canary", {}).get("weights", {})
        if name and len(weights.get("additional") or ()) == 2 and weights.get("verified"):
            return current
        return None

    current = wait_until(running, timeout=60, what="the weighted experiment running")
    name = current["canary"]["currentExperiment"]
    assert name == f"shop-{current['currentPodHash']}-2-1"
    templates = {t["name"]: t for t in experiment(home, name)["status"]["templateStatuses"]}
    weights = current["canary"]["weights"]
    assert weights["stable"]["weight"] == 40  # 100 - 20 (canary) - 20 - 20
    assert {(d["serviceName"], d["weight"]) for d in weights["additional"]} == {
        (templates["baseline"]["serviceName"], 20),
        (templates["canary"]["serviceName"], 20),
    }
    # Traefik's weighted round robin: of every 100 requests, 40 stable, 20 canary, and 20 for
    # each experiment template (the baseline runs the stable spec under a hash of its own).
    assert versions_served(home, 100) == {
        current["stableRS"]: 40,
        current["currentPodHash"]: 20,
        templates["baseline"]["podTemplateHash"]: 20,
        templates["canary"]["podTemplateHash"]: 20,
    }
    view = rollwise(home, "get", "rollout", "shop", "--no-color").stdout
    assert f"Σ {name}" in view
    assert f"⧉ {name}-baseline" in view
    assert f"{IMAGE}:blue (stable, baseline)" in view  # the baseline runs the stable's image

    # Promote skips the step: the Experiment is terminated and its share goes back.
    rollwise(home, "promote", "shop")
    wait_until(lambda: status(home).get("phase") == "Healthy", timeout=60, what="promoted")
    assert experiment(home, name)["spec"]["terminate"] is True
    assert "additional" not in status(home)["canary"]["weights"]
    wait_until(
        lambda: set(versions_served(home, 20)) == {status(home)["stableRS"]},
        what="all traffic on the new stable",
    )


@pytest.mark.usefixtures("traffic")
def test_a_failing_experiment_analysis_aborts_the_rollout(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start(home, controller, tmp_path, JUDGED_STEP)
    rollwise(home, "set", "image", "shop", f"shop={IMAGE}:bad-red")
    wait_until(lambda: status(home).get("phase") == "Degraded", timeout=90, what="aborted")
    current = status(home)
    assert current["abort"] is True
    assert current["message"].startswith(
        "RolloutAborted: Rollout aborted update to revision 2: "
        'Metric "success-rate" assessed Failed due to failed (1) > failureLimit (0)'
    )
    name = f"shop-{current['currentPodHash']}-2-1"
    exp = experiment(home, name)
    assert exp["status"]["phase"] == "Failed"
    (run,) = exp["status"]["analysisRuns"]
    assert (run["name"], run["analysisRun"], run["phase"]) == (
        "canary-success-rate",
        f"{name}-canary-success-rate",
        "Failed",
    )
    # The failed Experiment's share of the traffic is back on stable.
    wait_until(
        lambda: set(versions_served(home, 20)) == {status(home)["stableRS"]},
        what="all traffic back on stable",
    )
