"""Scale and rollback options of a canary in local mode, with real processes and Traefik:
dynamicStableScale and an abort that is reported done only when no request can reach the
canary (weight, header route and canary Service), pingPong services with scaleDownDelaySeconds
and replicaProgressThreshold, a canary without steps as a rolling update within
maxSurge/maxUnavailable, and a manual pause (`rollwise pause`) that holds a canary in place."""

from __future__ import annotations

import json
import threading
import time
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
    store_of,
    wait_until,
    web_port,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: myapp}}
  ports: [{{port: 80, targetPort: 8080}}]
---
"""


def rollout_manifest(canary: str, *, replicas: int, services: tuple[str, ...] = ()) -> str:
    head = "".join(SERVICE.format(name=name) for name in services)
    return f"""{head}apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: {replicas}
  strategy:
    canary:
{canary}
  selector:
    matchLabels: {{app: myapp}}
  template:
    metadata:
      labels: {{app: myapp}}
    spec:
      containers:
      - name: myapp
        image: {IMAGE}:blue
"""


def status(home: Path) -> dict[str, Any]:
    """The Rollout's status as stored (what `rollwise get rollout -o json` prints), read
    directly so that polling it costs no CLI start-up."""
    store = store_of(home)
    try:
        rollout = store.get("Rollout", "myapp", "default") or {}
    finally:
        store.close()
    return rollout.get("status") or {}  # type: ignore[no-any-return]


def condition(home: Path, type_: str) -> dict[str, Any]:
    for item in status(home).get("conditions") or ():
        if item.get("type") == type_:
            return item  # type: ignore[no-any-return]
    return {}


def replica_sets(home: Path) -> dict[str, dict[str, Any]]:
    """Color -> ReplicaSet of the rollout, from the store."""
    store = store_of(home)
    try:
        found = store.list("ReplicaSet", "default")
    finally:
        store.close()
    return {
        rs["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]: rs
        for rs in found
    }


def events(home: Path) -> list[tuple[str, str]]:
    store = store_of(home)
    try:
        return [
            (event["reason"], event["message"])
            for event in store.events(kind="Rollout", name="myapp", limit=500)
        ]
    finally:
        store.close()


def served(home: Path, host: str, count: int, **headers: str) -> Counter[str]:
    colors: Counter[str] = Counter()
    for _ in range(count):
        request = urllib.request.Request(
            f"http://127.0.0.1:{web_port(home)}/", headers={"Host": host, **headers}
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            colors[json.loads(response.read())["color"]] += 1
    return colors


def start(home: Path, controller: ControllerProcess, tmp_path: Path, manifest: str) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_text(manifest)
    controller.start()
    rollwise(home, "apply", "-f", str(path))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")


DYNAMIC = """\
      canaryService: myapp-canary
      stableService: myapp-stable
      dynamicStableScale: true
      abortScaleDownDelaySeconds: 1
      trafficRouting:
        istio:
          virtualService: {name: myapp, routes: [primary]}
        managedRoutes:
        - name: canary-by-header
      steps:
      - setWeight: 50
      - setHeaderRoute:
          name: canary-by-header
          match:
          - headerName: X-Canary
            headerValue: {exact: "true"}
      - pause: {}"""


def test_dynamic_stable_scale_and_an_abort_verified_at_every_entrance(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    manifest = rollout_manifest(DYNAMIC, replicas=4, services=("myapp-stable", "myapp-canary"))
    start(home, controller, tmp_path, manifest)
    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
    wait_until(lambda: status(home).get("message") == "CanaryPauseStep", what="at the pause")
    # The stable gave up the pods whose traffic went to the canary.
    wait_until(
        lambda: replica_sets(home)["blue"]["spec"]["replicas"] == 2,
        what="stable scaled down to 2 of 4",
    )
    assert replica_sets(home)["yellow"]["spec"]["replicas"] == 2
    assert_split(served(home, "myapp.localhost", 100), {"blue": 50, "yellow": 50})
    # The header route is written with the step; Traefik serves it after its next reload.
    wait_until(
        lambda: served(home, "myapp.localhost", 10, **{"X-Canary": "true"}) == {"yellow": 10},
        timeout=10,
        what="the header route served by Traefik",
    )

    rollwise(home, "abort", "myapp")
    wait_until(
        lambda: condition(home, "AbortVerified").get("status") == "True",
        what="the abort verified",
    )
    # Once the abort says it is done, nothing reaches the canary: not the weighted route, not
    # the header route, not the canary Service itself.
    assert served(home, "myapp.localhost", 40) == {"blue": 40}
    assert served(home, "myapp.localhost", 10, **{"X-Canary": "true"}) == {"blue": 10}
    assert served(home, "myapp-canary.localhost", 10) == {"blue": 10}
    assert replica_sets(home)["yellow"]["spec"]["replicas"] == 0
    assert replica_sets(home)["blue"]["status"]["availableReplicas"] == 4
    current = status(home)
    assert current["phase"] == "Degraded"
    assert current["canary"]["weights"]["canary"]["weight"] == 0

    reasons = [reason for reason, _ in events(home)]
    stages = [
        "AbortShiftingTraffic",
        "AbortSwitchingService",
        "AbortScalingDown",
        "RolloutAbortVerified",
    ]
    assert [reason for reason in reasons if reason in stages] == stages
    weight_back = next(
        i
        for i, (reason, message) in enumerate(events(home))
        if reason == "TrafficWeightUpdated" and message.endswith("to 0")
    )
    assert weight_back < reasons.index("AbortSwitchingService")


PING_PONG = """\
      pingPong: {pingService: myapp-ping, pongService: myapp-pong}
      scaleDownDelaySeconds: 2
      replicaProgressThreshold: {type: Percent, value: 50}
      trafficRouting:
        istio:
          virtualService: {name: myapp}
      steps:
      - setWeight: 50
      - pause: {}"""


def test_ping_pong_services_swap_roles_and_the_old_stable_waits_its_delay(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    manifest = rollout_manifest(PING_PONG, replicas=2, services=("myapp-ping", "myapp-pong"))
    start(home, controller, tmp_path, manifest)
    assert status(home)["canary"]["stablePingPong"] == "pong"

    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
    wait_until(lambda: status(home).get("message") == "CanaryPauseStep", what="at the pause")
    weights = status(home)["canary"]["weights"]
    assert (weights["canary"]["serviceName"], weights["stable"]["serviceName"]) == (
        "myapp-ping",
        "myapp-pong",
    )
    assert_split(served(home, "myapp.localhost", 20), {"blue": 10, "yellow": 10})
    assert served(home, "myapp-ping.localhost", 5) == {"yellow": 5}
    assert served(home, "myapp-pong.localhost", 5) == {"blue": 5}
    tree = rollwise(home, "get", "rollout", "myapp", "--no-color").stdout
    # Argo's CLI shows the roles: the canary on ping, the stable on pong.
    assert "canary,ping" in tree
    assert "stable,pong" in tree

    rollwise(home, "promote", "myapp")
    wait_until(lambda: status(home).get("phase") == "Healthy", what="promoted")
    assert status(home)["canary"]["stablePingPong"] == "ping"

    # The previous stable stays up for scaleDownDelaySeconds, marked with its deadline...
    def delayed() -> dict[str, Any] | None:
        blue = replica_sets(home)["blue"]
        return blue if "scale-down-deadline" in blue["metadata"]["annotations"] else None

    blue = wait_until(delayed, what="the old stable's scale-down deadline")
    assert blue["spec"]["replicas"] == 2
    # ...then goes.
    wait_until(lambda: replica_sets(home)["blue"]["spec"]["replicas"] == 0, what="old stable down")
    assert served(home, "myapp.localhost", 10) == {"yellow": 10}
    assert served(home, "myapp-ping.localhost", 5) == {"yellow": 5}


ROLLING = """\
      maxSurge: 1
      maxUnavailable: 0"""


def test_a_canary_without_steps_rolls_within_max_surge_and_max_unavailable(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    start(home, controller, tmp_path, rollout_manifest(ROLLING, replicas=3, services=("myapp",)))
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        store = store_of(home)
        try:
            while not done.is_set():
                found = store.list("ReplicaSet", "default")
                samples.append(
                    (
                        sum(rs["spec"]["replicas"] for rs in found),
                        sum((rs.get("status") or {}).get("availableReplicas", 0) for rs in found),
                    )
                )
                time.sleep(0.02)
        finally:
            store.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
        wait_until(
            lambda: (
                status(home).get("phase") == "Healthy"
                and (replica_sets(home).get("yellow") or {})
                .get("status", {})
                .get("availableReplicas")
                == 3
            ),
            what="rolled to yellow",
        )
    finally:
        done.set()
        sampler.join(timeout=5)
    assert max(total for total, _ in samples) == 4  # replicas + maxSurge, never more
    assert min(available for _, available in samples) >= 3  # maxUnavailable 0
    assert replica_sets(home)["blue"]["spec"]["replicas"] == 0
    assert colors_served(home, "myapp.localhost", 10) == {"yellow": 10}


PAUSE = """\
      canaryService: myapp-canary
      stableService: myapp-stable
      trafficRouting:
        istio:
          virtualService: {name: myapp}
      steps:
      - setWeight: 50
      - pause: {duration: 2s}
      - setWeight: 100"""


def test_a_manual_pause_holds_the_canary_past_its_timed_pause(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    manifest = rollout_manifest(PAUSE, replicas=2, services=("myapp-stable", "myapp-canary"))
    start(home, controller, tmp_path, manifest)
    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
    wait_until(lambda: status(home).get("message") == "CanaryPauseStep", what="at the timed pause")
    rollwise(home, "pause", "myapp")
    started = status(home)["pauseConditions"][0]["startTime"]
    expiry = time.mktime(time.strptime(started, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone + 2
    wait_until(lambda: time.time() > expiry + 1, what="the timed pause to run out")
    current = status(home)
    assert (current["phase"], current["message"]) == ("Paused", "manually paused")
    assert current["currentStepIndex"] == 1
    assert current["canary"]["weights"]["canary"]["weight"] == 50
    assert_split(served(home, "myapp.localhost", 10), {"blue": 5, "yellow": 5})

    rollwise(home, "promote", "myapp")  # clears spec.paused, as Argo's promote does
    wait_until(lambda: status(home).get("phase") == "Healthy", what="resumed to the end")
    assert served(home, "myapp.localhost", 10) == {"yellow": 10}
