"""End to end: a real local controller rolls a bad canary out, its analysis fails, the rollout
aborts, and a webhook receiver on loopback gets every notification the Rollout subscribed to,
rendered (Argo's catalog, a trigger of our own, the Slack message of the abort)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter
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
    wait_until,
    web_port,
)
from tests.notify.receiving import Received, Receiver

__all__ = ["controller", "home"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SUBSCRIBE = "notifications.argoproj.io/subscribe"
CATALOG_TRIGGERS = (
    "on-rollout-updated",
    "on-rollout-step-completed",
    "on-analysis-run-running",
    "on-analysis-run-failed",
    "on-rollout-aborted",
)

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
  annotations:
{"".join(f'    {SUBSCRIBE}.{trigger}.receiver: ""{chr(10)}' for trigger in CATALOG_TRIGGERS)}\
    {SUBSCRIBE}.on-traffic-weight-updated.receiver: ""
    {SUBSCRIBE}.on-rollout-aborted.slack: "#deploys"
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


def configuration(receiver: Receiver) -> str:
    """Argo's ConfigMap keys: two services, a trigger and a template of our own."""
    return f"""\
service.webhook.receiver: |
  url: {receiver.url}/hooks
  headers:
  - name: X-Token
    value: $receiver-token
service.slack: |
  token: $slack-token
  apiURL: {receiver.url}/api/
trigger.on-traffic-weight-updated: |
  - send: [weight-changed]
template.weight-changed: |
  message: weight of {{{{ rollout.metadata.name }}}} changed
  webhook:
    receiver:
      method: POST
      path: /weights
      body: |
        {{"trigger": {{{{ trigger | tojson }}}}, "event": {{{{ event.message | tojson }}}}}}
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


@pytest.mark.usefixtures("traffic")
def test_a_rollout_aborted_by_its_analysis_notifies_every_subscriber(
    home: Path, controller: ControllerProcess, receiver: Receiver, tmp_path: Path
) -> None:
    (home / "notifications.yaml").write_text(configuration(receiver))
    rollwise(
        home,
        "create",
        "secret",
        "generic",
        "argo-rollouts-notification-secret",
        "--from-literal",
        "slack-token=xoxb-test",
        "--from-literal",
        "receiver-token=t0k",
    )
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")
    rollwise(home, "set", "image", "shop", f"shop={IMAGE}:bad-red")
    wait_until(lambda: status(home).get("phase") == "Degraded", timeout=90, what="rolled back")

    def hooks() -> Counter[str]:
        return Counter(r.body for r in receiver.requests if r.path == "/hooks")

    def weight_events() -> set[str]:
        return {r.json()["event"] for r in receiver.requests if r.path == "/hooks/weights"}

    def slack_posts() -> list[Received]:
        return [r for r in receiver.requests if r.path == "/api/chat.postMessage"]

    # Argo's catalog, rendered in Jinja2: one message per event, each once (the sends run
    # concurrently, so they are compared as a multiset).
    expected = Counter(
        {
            "Rollout shop has been updated.": 2,  # revision 1, then revision 2
            "Rollout shop step number 1/3 has been completed.": 1,
            "Rollout shop's analysis run is running.": 1,
            "Rollout shop's analysis run failed.": 1,
            "Rollout shop has been aborted.": 1,
        }
    )

    def pending() -> list[Any]:
        state = json.loads((home / "notifier-state.json").read_text())
        return state["pending"]  # type: ignore[no-any-return]

    wait_until(
        lambda: (
            hooks() >= expected
            and "Traffic weight updated from 50 to 0" in weight_events()
            and slack_posts()
            and pending() == []
        ),
        timeout=30,
        what="the rollout's notifications, all answered",
    )
    assert hooks() == expected, "each once"
    hooks_requests = [r for r in receiver.requests if r.path.startswith("/hooks")]
    assert all(r.headers["X-Token"] == "t0k" for r in hooks_requests)
    assert {r.method for r in hooks_requests if r.path == "/hooks"} == {"GET"}

    # Every event reason is a trigger: ours, with its own template and trigger name.
    weights = [r.json() for r in receiver.requests if r.path == "/hooks/weights"]
    assert {w["trigger"] for w in weights} == {"on-traffic-weight-updated"}
    assert "Traffic weight updated from 50 to 0" in {w["event"] for w in weights}
    assert all(r.method == "POST" for r in receiver.requests if r.path == "/hooks/weights")

    # The abort's Slack message: the rollout, the step, the weights, the failing metric.
    (slack,) = slack_posts()
    assert slack.headers["Authorization"] == "Bearer xoxb-test"
    body = slack.json()
    assert (body["channel"], body["text"]) == ("#deploys", "Rollout shop has been aborted.")
    (attachment,) = body["attachments"]
    fields = {field["title"]: field["value"] for field in attachment["fields"]}
    assert attachment["title"] == "shop"
    assert fields["Step"] == "2/3 (analysis)"
    assert fields["Weights"] == "canary 0%, stable 100%"
    assert fields["Failed metric: success-rate"].startswith("Failed, value ")
    assert "success-rate" in fields["Message"]
    assert fields["shop"] == f"{IMAGE}:bad-red"
