"""Blue-green in local mode with Argo's own example (`examples/rollout-bluegreen.yaml`: active and
preview Services, a manual gate): real controller, real demo-app processes, real Traefik. Each
Service answers at `http://<service>.localhost/`, so the preview is tried before it serves, and
the active address flips when the controller switches its selector."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import (
    IMAGE,
    ControllerProcess,
    colors_served,
    rollwise,
    store_of,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

NAME = "rollout-bluegreen"
ACTIVE = "rollout-bluegreen-active.localhost"
PREVIEW = "rollout-bluegreen-preview.localhost"

# Argo's examples/rollout-bluegreen.yaml, unchanged but for the comments and `extra`.
EXAMPLE = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: rollout-bluegreen
spec:
  replicas: 2
  revisionHistoryLimit: 2
  selector:
    matchLabels:
      app: rollout-bluegreen
  template:
    metadata:
      labels:
        app: rollout-bluegreen
    spec:
      containers:
      - name: rollouts-demo
        image: argoproj/rollouts-demo:blue
        imagePullPolicy: Always
        ports:
        - containerPort: 8080
  strategy:
    blueGreen:
      activeService: rollout-bluegreen-active
      previewService: rollout-bluegreen-preview
      autoPromotionEnabled: false
{extra}
---
kind: Service
apiVersion: v1
metadata:
  name: rollout-bluegreen-active
spec:
  selector:
    app: rollout-bluegreen
  ports:
  - protocol: TCP
    port: 80
    targetPort: 8080
---
kind: Service
apiVersion: v1
metadata:
  name: rollout-bluegreen-preview
spec:
  selector:
    app: rollout-bluegreen
  ports:
  - protocol: TCP
    port: 80
    targetPort: 8080
"""


def status(home: Path) -> dict[str, Any]:
    result = rollwise(home, "get", "rollout", NAME, "-o", "json")
    return json.loads(result.stdout).get("status") or {}  # type: ignore[no-any-return]


def start(home: Path, controller: ControllerProcess, tmp_path: Path, extra: str = "") -> None:
    manifest = tmp_path / "rollout-bluegreen.yaml"
    manifest.write_text(EXAMPLE.format(extra=extra))
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")
    assert colors_served(home, ACTIVE, 10) == {"blue": 10}
    assert colors_served(home, PREVIEW, 10) == {"blue": 10}


def update_to(home: Path, color: str) -> None:
    rollwise(home, "set", "image", NAME, f"rollouts-demo={IMAGE}:{color}")
    wait_until(
        lambda: status(home).get("message") == "BlueGreenPause", what="paused before the switch"
    )


def replica_set_of(home: Path, color: str) -> dict[str, Any]:
    store = store_of(home)
    try:
        for raw in store.list("ReplicaSet", "default"):
            image = raw["spec"]["template"]["spec"]["containers"][0]["image"]
            if image.endswith(f":{color}"):
                return raw
    finally:
        store.close()
    raise AssertionError(f"no ReplicaSet runs {color}")


def pods_of(home: Path, replica_set: str) -> list[str]:
    store = store_of(home)
    try:
        return [
            pod["metadata"]["name"]
            for pod in store.list("Pod", "default")
            if any(ref.get("name") == replica_set for ref in pod["metadata"]["ownerReferences"])
        ]
    finally:
        store.close()


def test_the_preview_serves_the_new_color_until_promote_switches_active(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start(home, controller, tmp_path)
    update_to(home, "yellow")
    # Production stays on blue; the new version is reachable at the preview address.
    assert colors_served(home, ACTIVE, 20) == {"blue": 20}
    assert colors_served(home, PREVIEW, 20) == {"yellow": 20}

    view = rollwise(home, "get", "rollout", NAME, "--no-color").stdout
    assert "Strategy:        BlueGreen\n" in view
    assert "Step:" not in view
    assert "SetWeight:" not in view
    assert f"{IMAGE}:blue (stable, active)" in view
    assert f"{IMAGE}:yellow (preview)" in view
    assert "stable,active" in view

    rollwise(home, "promote", NAME)
    wait_until(
        lambda: (
            status(home).get("phase") == "Healthy"
            and status(home).get("stableRS") == status(home).get("currentPodHash")
        ),
        what="promoted",
    )
    # Traefik applies a selector switch within ~0.1 s of the controller writing it.
    wait_until(lambda: colors_served(home, ACTIVE, 20) == {"yellow": 20}, timeout=10)
    assert colors_served(home, PREVIEW, 10) == {"yellow": 10}
    view = rollwise(home, "get", "rollout", NAME, "--no-color").stdout
    assert f"{IMAGE}:yellow (stable, active)" in view
    # The old revision waits for its scale-down delay (30 s by default), shown as such.
    assert "delay:" in view


def test_abort_keeps_active_on_the_old_color_and_the_preview_goes_after_the_delay(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start(home, controller, tmp_path, extra="      abortScaleDownDelaySeconds: 1")
    update_to(home, "red")
    red = replica_set_of(home, "red")["metadata"]["name"]
    assert pods_of(home, red)

    rollwise(home, "abort", NAME)
    wait_until(lambda: status(home).get("phase") == "Degraded", what="aborted")
    assert status(home)["message"] == "RolloutAborted: Rollout aborted update to revision 2"
    assert colors_served(home, ACTIVE, 20) == {"blue": 20}
    wait_until(
        lambda: replica_set_of(home, "red")["spec"]["replicas"] == 0 and not pods_of(home, red),
        what="the preview ReplicaSet scaled down after abortScaleDownDelaySeconds",
    )
    assert colors_served(home, ACTIVE, 20) == {"blue": 20}


POST_PROMOTION = """\
      postPromotionAnalysis:
        templates:
        - templateName: success-rate
        args:
        - name: service
          value: rollout-bluegreen-active
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
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
          window: 2s"""


@pytest.fixture
def production_traffic(home: Path) -> Iterator[None]:
    """Steady requests to the active address while the test runs (the analysis measures them)."""
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, ValueError, KeyError):
                colors_served(home, ACTIVE, 1)
            stop.wait(0.02)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=5)


@pytest.mark.usefixtures("production_traffic")
def test_a_failed_post_promotion_analysis_switches_active_back(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start(home, controller, tmp_path, extra=POST_PROMOTION)
    update_to(home, "bad-red")
    rollwise(home, "promote", NAME)
    # bad-red answers 500s once it is active: the post-promotion run fails and the rollout
    # goes back to blue on its own.
    wait_until(lambda: status(home).get("phase") == "Degraded", timeout=90, what="aborted")
    current = status(home)
    assert current["abort"] is True
    assert current["stableRS"] == current["blueGreen"]["activeSelector"]
    assert current["blueGreen"]["postPromotionAnalysisRunStatus"]["status"] == "Failed"
    wait_until(
        lambda: colors_served(home, ACTIVE, 20) == {"blue": 20},
        what="active back on blue",
    )
