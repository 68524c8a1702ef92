"""A standalone Experiment in local mode (Argo's experiment-with-analysis shape): two templates
run as real processes behind their own Services in Traefik, an analysis reaches one of them
through the proxy using the `{{templates...}}` variables, and the Experiment ends, scales down
and is shown by `get experiment` and `list experiments`."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support import IMAGE, ControllerProcess, rollwise, store_of, wait_until, web_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
COLORS = ("purple", "orange")

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: color-check
spec:
  args:
  - name: url
  - name: host
  - name: color
  metrics:
  - name: color
    count: 2
    interval: 5s
    successCondition: result == "{{args.color}}"
    provider:
      web:
        url: "{{args.url}}"
        headers:
        - key: Host
          value: "{{args.host}}"
"""


def experiment(port: int) -> str:
    templates = "".join(
        f"""\
  - name: {color}
    replicas: {replicas}
    selector:
      matchLabels: {{app: demo, color: {color}}}
    service: {{}}
    template:
      metadata:
        labels: {{app: demo, color: {color}}}
      spec:
        containers:
        - name: demo
          image: {IMAGE}:{color}
          ports:
          - {{name: http, containerPort: 8080, protocol: TCP}}
"""
        for color, replicas in (("purple", 2), ("orange", 1))
    )
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata:
  name: demo
spec:
  duration: 1h
  scaleDownDelaySeconds: 1
  templates:
{templates}  analyses:
  - name: purple
    templateName: color-check
    requiredForCompletion: true
    args:
    - name: url
      value: http://127.0.0.1:{port}/color
    - name: host
      value: "{{{{templates.purple.replicaset.name}}}}.localhost"
    - name: color
      value: purple
"""


def get(home: Path, kind: str, name: str) -> dict[str, Any]:
    """An object as the store holds it ({} when absent)."""
    store = store_of(home)
    try:
        return store.get(kind, name) or {}
    finally:
        store.close()


def in_phase(home: Path, *phases: str) -> dict[str, Any] | None:
    """The Experiment, once it is in one of `phases`."""
    experiment = get(home, "Experiment", "demo")
    return experiment if (experiment.get("status") or {}).get("phase") in phases else None


def served_color(home: Path, host: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{web_port(home)}/", headers={"Host": host})
    with urllib.request.urlopen(request, timeout=2) as response:
        return str(json.loads(response.read())["color"])


def test_an_experiment_runs_its_templates_judges_them_and_scales_down(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    controller.start()
    wait_until(lambda: (home / "traefik" / "state.json").exists(), what="Traefik started")
    manifest = tmp_path / "experiment.yaml"
    manifest.write_text(TEMPLATE + "---\n" + experiment(web_port(home)))
    rollwise(home, "apply", "-f", str(manifest))

    # Running lasts from the templates' readiness until the analysis' second measurement
    # (`interval` later): wide enough for this poll on a loaded machine (at 1s it was missed).
    running = wait_until(lambda: in_phase(home, "Running"), timeout=60, what="experiment Running")
    statuses = {t["name"]: t for t in running["status"]["templateStatuses"]}
    assert statuses["purple"]["availableReplicas"] == 2
    assert statuses["purple"]["serviceName"] == "demo-purple"
    assert statuses["orange"]["serviceName"] == "demo-orange"
    # Each template is served by its own Service, through the real proxy.
    assert served_color(home, "demo-purple.localhost") == "purple"
    assert served_color(home, "demo-orange.localhost") == "orange"
    purple_rs = get(home, "ReplicaSet", "demo-purple")
    purple_hash = purple_rs["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert statuses["purple"]["podTemplateHash"] == purple_hash

    # The required analysis succeeds: the Experiment ends before its hour (Argo #4161).
    done = wait_until(
        lambda: in_phase(home, "Successful", "Failed", "Error"),
        timeout=60,
        what="experiment finished",
    )
    assert done["status"]["phase"] == "Successful"
    assert done["status"]["message"] == "Required AnalysisRuns completed"
    run = get(home, "AnalysisRun", "demo-purple")
    assert {a["name"]: a.get("value") for a in run["spec"]["args"]}["host"] == (
        "demo-purple.localhost"
    )
    assert run["status"]["phase"] == "Successful"

    # After scaleDownDelaySeconds the templates go to 0 and their Services go with the pods.
    def scaled_down() -> bool:
        sizes = [get(home, "ReplicaSet", f"demo-{c}")["spec"]["replicas"] for c in COLORS]
        return sizes == [0, 0] and not get(home, "Service", "demo-purple")

    wait_until(scaled_down, timeout=60, what="templates scaled down, services removed")

    view = rollwise(home, "get", "experiment", "demo", "--no-color").stdout
    assert "Status:          ✔ Successful" in view
    assert "Σ demo" in view
    assert "⧉ demo-purple" in view
    assert "α demo-purple" in view
    listing = rollwise(home, "list", "experiments").stdout.splitlines()
    assert listing[0].split() == ["NAME", "STATUS", "DURATION", "REMAINING", "AGE"]
    assert listing[1].split()[:4] == ["demo", "Successful", "60m", "-"]
