"""The seed's baseline-vs-canary comparison (Part 5) as intended, against a real Prometheus: an
experiment step starts a fresh baseline (stable spec) and a canary (new spec) of equal size, and
the seed's `compare-baseline` template - unchanged but for its address - compares their error
rates and latencies through the template hashes the Experiment feeds it.

The demo app labels its metrics `version=<pod-template hash>` and `service=<SERVICE_NAME>`, so
the seed's PromQL (`version="{{args.canary-hash}}"`) finds each template's pods. The Rollout's
`minReadySeconds` (which the experiment templates inherit, as in Argo) keeps the templates
serving traffic before the Experiment counts them available and starts the analysis, so the
first measurement already has data: the bad canary's 5xx rate over the baseline's zero is
`+Inf`, a failed measurement. The template measures once a minute and fails only after four
failures (`failureLimit: 3`); the test checks that the required analysis holds the Rollout
back past the Experiment's duration, then aborts it by hand - the automatic abort would come
three minutes later.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import IMAGE, ControllerProcess, rollwise, store_of, wait_until, web_port
from tests.providers.conftest import PrometheusServer, prometheus_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SEED = Path(__file__).parents[1] / "api" / "fixtures" / "seed" / "part5-compare-baseline.yaml"
MIN_READY_SECONDS = 8

ROLLOUT = f"""\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: 1
  minReadySeconds: {MIN_READY_SECONDS}
  strategy:
    canary:
      steps:
      - experiment:
          duration: 5s
          templates:
          - name: baseline
            specRef: stable
            service: {{name: myapp-baseline}}
          - name: canary
            specRef: canary
            service: {{name: myapp-experiment}}
          analyses:
          - name: compare
            templateName: compare-baseline
            requiredForCompletion: true
            args:
            - name: service-name
              value: myapp
            - name: baseline-hash
              value: "{{{{templates.baseline.podTemplateHash}}}}"
            - name: canary-hash
              value: "{{{{templates.canary.podTemplateHash}}}}"
  selector:
    matchLabels: {{app: myapp}}
  template:
    metadata:
      labels: {{app: myapp}}
    spec:
      containers:
      - name: myapp
        image: {IMAGE}:blue
        env:
        - {{name: SERVICE_NAME, value: myapp}}
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    binary = prometheus_binary()
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), binary=binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def scraping(home: Path, prometheus: PrometheusServer) -> Iterator[None]:
    """Prometheus scrapes every pod of the home, as pods come and go (like the demo does)."""
    stop = threading.Event()

    def follow() -> None:
        seen: list[str] = []
        while not stop.is_set():
            try:
                store = store_of(home)
                try:
                    pods = store.list("Pod", None)
                finally:
                    store.close()
            except Exception:  # the home may not exist yet
                stop.wait(0.2)
                continue
            ports = sorted(
                (pod["metadata"].get("annotations") or {}).get("rollwise.io/port", "")
                for pod in pods
            )
            targets = [f"127.0.0.1:{port}" for port in ports if port]
            if targets != seen:
                prometheus.scrape(targets)
                seen = targets
            stop.wait(0.2)

    worker = threading.Thread(target=follow, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=5)


@pytest.fixture
def template_traffic(home: Path) -> Iterator[None]:
    """Requests to the baseline's and the canary's own Services, in turn, while the test runs."""
    stop = threading.Event()

    def send() -> None:
        hosts = ("myapp-baseline.localhost", "myapp-experiment.localhost")
        sent = 0
        while not stop.is_set():
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{web_port(home)}/", headers={"Host": hosts[sent % 2]}
                )
                sent += 1
                with urllib.request.urlopen(request, timeout=2) as response:
                    response.read()
            except OSError:  # 500s of the bad canary, 503 before the Services exist
                stop.wait(0.01)
            except (ValueError, KeyError):  # Traefik not started yet
                stop.wait(0.1)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=5)


def get(home: Path, kind: str, name: str) -> dict[str, Any]:
    store = store_of(home)
    try:
        return store.get(kind, name) or {}
    finally:
        store.close()


def status(home: Path) -> dict[str, Any]:
    return get(home, "Rollout", "myapp").get("status") or {}


@pytest.mark.usefixtures("scraping", "template_traffic")
def test_seed_compare_baseline_flags_a_bad_canary_through_the_experiments_hashes(
    home: Path, controller: ControllerProcess, tmp_path: Path, prometheus: PrometheusServer
) -> None:
    template = SEED.read_text().replace("http://prometheus:9090", prometheus.url)
    manifest = tmp_path / "myapp.yaml"
    manifest.write_text(template + "---\n" + ROLLOUT)
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")

    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:bad-red")
    name = wait_until(
        lambda: status(home).get("canary", {}).get("currentExperiment"),
        what="the experiment step started",
    )
    current = status(home)
    assert name == f"myapp-{current['currentPodHash']}-2-0"
    run_name = f"{name}-compare"

    def first_measurements() -> dict[str, Any] | None:
        results = (get(home, "AnalysisRun", run_name).get("status") or {}).get("metricResults")
        done = {r["name"]: r for r in results or () if r.get("measurements")}
        return done if len(done) == 2 else None

    results = wait_until(first_measurements, timeout=60, what="the first measurements")
    run = get(home, "AnalysisRun", run_name)
    args = {arg["name"]: arg.get("value") for arg in run["spec"]["args"]}
    experiment = get(home, "Experiment", name)
    hashes = {t["name"]: t["podTemplateHash"] for t in experiment["status"]["templateStatuses"]}
    assert args == {
        "service-name": "myapp",
        "baseline-hash": hashes["baseline"],
        "canary-hash": hashes["canary"],
    }
    # Fresh pods under hashes of their own, not the Rollout's stable and canary ReplicaSets.
    assert not {hashes["baseline"], hashes["canary"]} & {
        current["stableRS"],
        current["currentPodHash"],
    }
    # The canary answers 500 to half its requests, the baseline to none: x / 0 is +Inf.
    error_rate = results["error-rate-comparison"]["measurements"][0]
    assert (error_rate["value"], error_rate["phase"]) == ("[+Inf]", "Failed")
    # Both answer in a few milliseconds: a ratio of their 95th percentiles, judged by the
    # seed's own condition (<= 1.2).
    latency = results["latency-comparison"]["measurements"][0]
    (ratio,) = json.loads(latency["value"])
    assert ratio > 0
    assert latency["phase"] == ("Successful" if ratio <= 1.2 else "Failed")
    assert run["status"]["phase"] == "Running"  # one failure of the four the template allows

    # The duration passes, the templates are done, but the required analysis holds the step.
    def templates_done() -> bool:
        statuses = get(home, "Experiment", name)["status"]["templateStatuses"]
        return all(t["status"] == "Successful" for t in statuses)

    wait_until(templates_done, timeout=60, what="the experiment's duration passed")
    assert get(home, "Experiment", name)["status"]["phase"] == "Running"
    current = status(home)
    assert current["currentStepIndex"] == 0
    assert current["stableRS"] != current["currentPodHash"]  # the bad canary is not promoted
    view = rollwise(home, "get", "rollout", "myapp", "--no-color").stdout
    assert f"Σ {name}" in view
    assert f"α {run_name}" in view
    assert "✖ 1" in view  # the failed measurement, on the run under the Experiment

    # A person aborts (the template would abort it after its fourth failure, minutes later):
    # the Experiment and its run are terminated.
    rollwise(home, "abort", "myapp")
    wait_until(lambda: status(home).get("phase") == "Degraded", what="aborted")
    wait_until(
        lambda: get(home, "Experiment", name).get("spec", {}).get("terminate") is True,
        what="experiment terminated",
    )
    wait_until(
        lambda: get(home, "AnalysisRun", run_name)["spec"].get("terminate") is True,
        what="its run terminated",
    )
    view = rollwise(home, "get", "experiment", name, "--no-color").stdout
    assert f"Σ {name}" in view
    assert f"⧉ {name}-baseline" in view
