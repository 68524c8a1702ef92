"""A traffic-routed canary in local mode: the Rollout names Istio (as the seed's Part 6 does),
and local mode serves it with Traefik weights and header rules instead, verified at the proxy."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support import (
    IMAGE,
    ControllerProcess,
    assert_split,
    colors_served,
    rollwise,
    wait_until,
    web_port,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

MANIFEST = f"""\
apiVersion: v1
kind: Service
metadata:
  name: myapp-stable
spec:
  selector:
    app: myapp
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: myapp-canary
spec:
  selector:
    app: myapp
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: 5
  strategy:
    canary:
      canaryService: myapp-canary
      stableService: myapp-stable
      trafficRouting:
        istio:
          virtualService:
            name: myapp
            routes:
            - primary
        managedRoutes:
        - name: canary-by-header
      steps:
      - setWeight: 20
      - setHeaderRoute:
          name: canary-by-header
          match:
          - headerName: X-Canary
            headerValue:
              exact: "true"
      - pause: {{}}
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
"""


def status(home: Path) -> dict[str, Any]:
    result = rollwise(home, "get", "rollout", "myapp", "-o", "json")
    return json.loads(result.stdout).get("status") or {}  # type: ignore[no-any-return]


def with_header(home: Path, count: int) -> Counter[str]:
    served: Counter[str] = Counter()
    for _ in range(count):
        request = urllib.request.Request(
            f"http://127.0.0.1:{web_port(home)}/",
            headers={"Host": "myapp.localhost", "X-Canary": "true"},
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            served[json.loads(response.read())["color"]] += 1
    return served


def test_weights_and_header_route_are_served_by_traefik(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(MANIFEST)
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")

    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
    wait_until(lambda: status(home).get("message") == "CanaryPauseStep", what="at the pause")
    weights = status(home)["canary"]["weights"]
    assert weights["canary"]["weight"] == 20
    assert weights["verified"] is True
    # Traefik's weighted round robin: 20 of every 100 requests go to the canary.
    assert_split(colors_served(home, "myapp.localhost", 100), {"blue": 80, "yellow": 20})
    assert with_header(home, 20) == {"yellow": 20}

    rollwise(home, "promote", "myapp")
    wait_until(lambda: status(home).get("phase") == "Healthy", what="promoted")
    wait_until(
        lambda: colors_served(home, "myapp.localhost", 20) == {"yellow": 20},
        what="all traffic on yellow",
    )
    # The managed header route is removed at completion: the header changes nothing now.
    assert with_header(home, 10) == {"yellow": 10}
    assert status(home)["canary"]["weights"]["canary"]["weight"] == 0


def test_abort_moves_traffic_back_before_it_reports_done(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(MANIFEST)
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")
    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:red")
    wait_until(lambda: status(home).get("message") == "CanaryPauseStep", what="at the pause")

    rollwise(home, "abort", "myapp")

    def aborted() -> bool:
        current = status(home)
        weights = current.get("canary", {}).get("weights", {})
        return (
            current.get("phase") == "Degraded"
            and weights.get("canary", {}).get("weight") == 0
            and weights.get("verified") is True
        )

    wait_until(aborted, what="abort reported with the weight verified at 0")
    # Once the status says the canary has no traffic, no request reaches it, header or not.
    assert colors_served(home, "myapp.localhost", 50) == {"blue": 50}
    assert with_header(home, 10) == {"blue": 10}
