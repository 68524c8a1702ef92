"""A person's canary on one machine: the seed's Part 3 Rollout, driven by the real CLI against a
real controller, Traefik and demo-app processes, with traffic checked through the proxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import (
    IMAGE,
    ControllerProcess,
    colors_served,
    rollout_yaml,
    rollwise,
    store_of,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def get(home: Path) -> dict[str, Any]:
    result = rollwise(home, "get", "rollout", "myapp", "-o", "json")
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def status(home: Path) -> dict[str, Any]:
    return get(home).get("status") or {}


def healthy_on(home: Path, image: str) -> bool:
    rollout = get(home)
    current = rollout.get("status") or {}
    return (
        current.get("phase") == "Healthy"
        and rollout["spec"]["template"]["spec"]["containers"][0]["image"] == image
        and current.get("stableRS") == current.get("currentPodHash")
        and current.get("availableReplicas") == 5
    )


def test_canary_steps_through_the_plan_and_moves_real_traffic(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(rollout_yaml(pause="30s"))
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: healthy_on(home, f"{IMAGE}:blue"), what="revision 1 Healthy")
    assert colors_served(home, "myapp.localhost", 20) == {"blue": 20}

    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
    # The first step: 1 of 5 pods is yellow, paused for 30 s.
    wait_until(
        lambda: (
            status(home).get("message") == "CanaryPauseStep"
            and status(home).get("currentStepIndex") == 1
        ),
        what="paused at step 1",
    )
    wait_until(lambda: (status(home).get("readyReplicas") or 0) >= 5, what="pods ready")
    served = colors_served(home, "myapp.localhost", 60)
    assert served["yellow"] > 0
    assert served["blue"] > served["yellow"]
    view = rollwise(home, "get", "rollout", "myapp", "--no-color").stdout
    assert "Step:          1/8" in view
    assert "SetWeight:     20" in view

    rollwise(home, "promote", "myapp")  # skip the pause: on to 40%
    wait_until(lambda: status(home).get("currentStepIndex") == 3, what="paused at step 3")

    rollwise(home, "promote", "myapp", "--full")
    wait_until(lambda: healthy_on(home, f"{IMAGE}:yellow"), what="promoted to yellow")
    wait_until(
        lambda: colors_served(home, "myapp.localhost", 20) == {"yellow": 20},
        what="all traffic on yellow",
    )

    rollwise(home, "restart", "myapp")
    restart_at = get(home)["spec"]["restartAt"]
    wait_until(lambda: status(home).get("restartedAt") == restart_at, what="pods restarted")
    store = store_of(home)
    try:
        # The last pod replaced may still be terminating; it no longer receives traffic.
        pods = [p for p in store.list("Pod") if not p["metadata"].get("deletionTimestamp")]
        assert len(pods) == 5
        assert all(pod["metadata"]["creationTimestamp"] >= restart_at for pod in pods)
    finally:
        store.close()


def test_abort_returns_traffic_to_stable_and_retry_goes_again(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(rollout_yaml(pause="60s"))
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: healthy_on(home, f"{IMAGE}:blue"), what="revision 1 Healthy")

    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:red")
    wait_until(lambda: status(home).get("currentStepIndex") == 1, what="at step 1")
    rollwise(home, "abort", "myapp")
    wait_until(lambda: status(home).get("phase") == "Degraded", what="Degraded after abort")
    assert status(home)["message"].startswith("RolloutAborted")
    wait_until(
        lambda: colors_served(home, "myapp.localhost", 20) == {"blue": 20},
        what="traffic back on blue",
    )

    rollwise(home, "retry", "rollout", "myapp")
    wait_until(lambda: status(home).get("message") == "CanaryPauseStep", what="retried")
    rollwise(home, "undo", "myapp")  # back to blue: the steps are skipped
    wait_until(lambda: healthy_on(home, f"{IMAGE}:blue"), what="undone to blue")
