"""Kill -9 the local controller at random moments of a canary: each time it comes back, it
adopts the running pods and Traefik and the rollout goes on from the same step, with no
duplicate revision, no step going backwards and no lost status."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from support import IMAGE, ControllerProcess, rollout_yaml, rollwise, wait_until

from rollwise.platforms.local.store import SqliteStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

KILLS = int(os.environ.get("ROLLWISE_KILLS", "8"))


def snapshot(home: Path) -> tuple[int, str, list[tuple[int, str]]]:
    store = SqliteStore.open_home(home)
    try:
        rollout = store.require("Rollout", "myapp")
        status = rollout.get("status") or {}
        revisions = sorted(
            (
                int(rs["metadata"]["annotations"]["rollout.argoproj.io/revision"]),
                rs["metadata"]["name"],
            )
            for rs in store.list("ReplicaSet")
        )
        return int(status.get("currentStepIndex") or 0), str(status.get("phase")), revisions
    finally:
        store.close()


def test_the_canary_survives_random_kills(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    seed = int(os.environ.get("ROLLWISE_SEED", str(time.time_ns())))
    chance = random.Random(seed)
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(rollout_yaml(pause="2s"))
    controller.start()
    rollwise(home, "apply", "-f", str(manifest))
    wait_until(lambda: snapshot(home)[1] == "Healthy", what="revision 1 Healthy")

    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
    highest_step = 0
    for kill in range(KILLS):
        time.sleep(chance.uniform(0.2, 2.0))
        controller.kill()
        step, phase, revisions = snapshot(home)
        assert step >= highest_step, f"seed {seed}, kill {kill}: step went back to {step}"
        highest_step = step
        numbers = [number for number, _ in revisions]
        assert len(numbers) == len(set(numbers)) <= 2, f"seed {seed}: revisions {revisions}"
        if phase == "Healthy" and step == 8:
            break
        controller.start()

    def promoted() -> bool:
        step, phase, revisions = snapshot(home)
        return phase == "Healthy" and step == 8 and len(revisions) == 2

    # The last kill may have come after the promotion: the scale-down of the old revision and
    # the pods it was terminating are then the next controller's to finish.
    if controller.process is None or controller.process.poll() is not None:
        controller.start()
    wait_until(promoted, timeout=90, what=f"promotion after the kills (seed {seed})")
    store = SqliteStore.open_home(home)
    try:
        rollout = store.require("Rollout", "myapp")
        status = rollout["status"]
        assert status["stableRS"] == status["currentPodHash"]
        replica_sets = {rs["metadata"]["name"]: rs for rs in store.list("ReplicaSet")}
        new = replica_sets[f"myapp-{status['currentPodHash']}"]
        assert new["spec"]["replicas"] == 5

        def pods() -> list[str]:
            return [
                f"{pod['metadata']['name']} {pod.get('status', {}).get('phase')}"
                f"{' terminating' if pod['metadata'].get('deletionTimestamp') else ''}"
                for pod in store.list("Pod")
            ]

        try:
            wait_until(lambda: len(store.list("Pod")) == 5, what="old pods gone")
        except AssertionError as error:
            raise AssertionError(f"{error} (seed {seed}); pods: {pods()}") from None
        assert all(
            pod["metadata"]["labels"]["rollouts-pod-template-hash"] == status["currentPodHash"]
            for pod in store.list("Pod")
        )
    finally:
        store.close()
