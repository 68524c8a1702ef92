"""Scale and rollback options of a canary, each walked through the fake world with time passed
in: dynamicStableScale (and its way back on abort), minPodsPerReplicaSet,
replicaProgressThreshold, scaleDownDelaySeconds/RevisionLimit, maxSurge/maxUnavailable without
steps, rollbackWindow and spec.paused."""

from __future__ import annotations

from typing import Any

import pytest
from tests.core.canary_world import World, basic_rollout, deployed, routed_rollout

YELLOW = "argoproj/rollouts-demo:yellow"
BLUE = "argoproj/rollouts-demo:blue"


def available(world: World, color: str, count: int) -> None:
    """`count` pods of the `color` ReplicaSet are available (the others are starting)."""
    for raw in world.replica_sets.values():
        if raw["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{color}"):
            raw["status"].update(readyReplicas=count, availableReplicas=count)


def weight(world: World) -> int:
    return int(world.status["canary"]["weights"]["canary"]["weight"])


def condition(world: World, type_: str) -> dict[str, Any] | None:
    return next((c for c in world.status.get("conditions") or () if c["type"] == type_), None)


# --- dynamicStableScale ---------------------------------------------------------------------------

LADDER = [{"setWeight": 30}, {"setWeight": 60}, {"setWeight": 90}, {"pause": {}}]


def dynamic(**canary: Any) -> World:
    return deployed(routed_rollout(LADDER, dynamicStableScale=True, **canary), router_answer=True)


def test_dynamic_stable_scale_shrinks_the_stable_after_traffic_left_it() -> None:
    world = dynamic()
    world.set_image(YELLOW)
    world.settle()
    assert world.sizes() == {"blue": 1, "yellow": 5}
    assert weight(world) == 90
    # Each stable scale-down comes after the weight that made room for it.
    moves = [
        e.message
        for e in world.events
        if e.reason == "TrafficWeightUpdated" or "revision 1" in e.message
    ]
    assert moves == [
        "Traffic weight updated from 0 to 30",
        "Scaled down ReplicaSet myapp-867c9dd565 (revision 1) from 5 to 4",
        "Traffic weight updated from 30 to 60",
        "Scaled down ReplicaSet myapp-867c9dd565 (revision 1) from 4 to 2",
        "Traffic weight updated from 60 to 90",
        "Scaled down ReplicaSet myapp-867c9dd565 (revision 1) from 2 to 1",
    ]


def test_dynamic_stable_scale_lets_the_old_stable_go_at_once_after_promotion() -> None:
    world = dynamic()
    world.set_image(YELLOW)
    world.settle()
    world.patch_status(pauseConditions=None)
    world.settle()
    # No scaleDownDelaySeconds (it is refused with dynamicStableScale): nothing waits.
    assert world.sizes() == {"yellow": 5}
    assert world.status["phase"] == "Healthy"
    assert world.status["stableRS"] == world.status["currentPodHash"]


def test_dynamic_abort_walks_the_weight_ladder_back_as_the_stable_comes_back() -> None:
    world = dynamic()
    world.set_image(YELLOW)
    world.settle()
    world.pods_come_up = False
    world.patch_status(abort=True)
    world.settle()
    # The stable is asked for all its pods first; the weight waits for them.
    assert world.sizes() == {"blue": 5, "yellow": 5}
    assert weight(world) == 90
    seen = []
    for count in range(2, 6):
        available(world, "blue", count)
        world.settle()
        seen.append(weight(world))
        # The canary keeps every pod until its weight is gone.
        assert world.sizes()["yellow"] == 5
    # 2/5 stable pods serve 40 % -> rung 60; 3/5 -> 60; 4/5 -> rung 30; 5/5 -> 0.
    assert seen == [60, 60, 30, 0]
    assert world.services["myapp-canary"] == world.status["stableRS"]
    world.advance(31)
    world.settle()
    assert world.sizes() == {"blue": 5}


def test_dynamic_abort_with_min_pods_still_returns_the_weight_to_zero() -> None:
    # Argo #4841: with minPodsPerReplicaSet the aborted canary's weight never reached 0.
    world = dynamic(minPodsPerReplicaSet=2)
    world.set_image(YELLOW)
    world.settle()
    assert world.sizes() == {"blue": 2, "yellow": 5}
    world.patch_status(abort=True)
    world.settle()
    assert weight(world) == 0
    assert world.router_weight == 0
    world.advance(31)
    world.settle()
    assert world.sizes() == {"blue": 5}
    verified = condition(world, "AbortVerified")
    assert verified is not None
    assert verified["status"] == "True"


def test_going_back_to_the_stable_template_mid_update_returns_traffic_as_the_stable_grows() -> None:
    world = dynamic()
    world.set_image(YELLOW)
    world.settle()
    canary_hash = world.status["currentPodHash"]
    world.pods_come_up = False
    world.set_image(BLUE)
    world.settle()
    # Fully promoted again at once, but the weight stays on the canary pods until the stable
    # can take it (Argo's isDynamicallyRollingBackToStable).
    assert world.status["stableRS"] == world.status["currentPodHash"]
    assert weight(world) == 90
    assert world.status["canary"]["weights"]["canary"]["podTemplateHash"] == canary_hash
    assert world.sizes() == {"blue": 5, "yellow": 5}
    available(world, "blue", 5)
    world.settle()
    assert weight(world) == 0
    assert world.sizes() == {"blue": 5}


# --- minPodsPerReplicaSet, replicaProgressThreshold ---------------------------------------------


def test_min_pods_per_replica_set_raises_a_small_canary() -> None:
    world = deployed(
        routed_rollout([{"setWeight": 10}, {"pause": {}}], minPodsPerReplicaSet=2),
        router_answer=True,
    )
    world.set_image(YELLOW)
    world.settle()
    # ceil(10 % of 5) = 1 pod, raised to 2; the stable keeps all 5.
    assert world.sizes() == {"blue": 5, "yellow": 2}
    assert weight(world) == 10


@pytest.mark.parametrize(
    ("threshold", "ready_enough"),
    [({"type": "Percent", "value": 50}, 2), ({"type": "Pods", "value": 1}, 1), (None, 4)],
    ids=["percent", "pods", "all"],
)
def test_replica_progress_threshold_moves_traffic_when_enough_canary_pods_are_up(
    threshold: dict[str, Any] | None, ready_enough: int
) -> None:
    options = {} if threshold is None else {"replicaProgressThreshold": threshold}
    world = deployed(
        routed_rollout([{"setWeight": 100}, {"pause": {}}], replicas=4, **options),
        router_answer=True,
    )
    world.pods_come_up = False
    world.set_image(YELLOW)
    world.settle()
    assert world.sizes() == {"blue": 4, "yellow": 4}
    for count in range(ready_enough):
        available(world, "yellow", count)
        world.settle()
        assert weight(world) == 0
        assert world.status["currentStepIndex"] == 0
    available(world, "yellow", ready_enough)
    world.settle()
    assert weight(world) == 100
    assert world.status["currentStepIndex"] == 1


def test_replica_progress_threshold_also_lets_the_rollout_complete() -> None:
    world = deployed(
        routed_rollout(
            [{"setWeight": 50}],
            replicas=4,
            replicaProgressThreshold={"type": "Percent", "value": 75},
            scaleDownDelaySeconds=0,
        ),
        router_answer=True,
    )
    world.pods_come_up = False
    world.set_image(YELLOW)
    world.settle()
    available(world, "yellow", 2)
    world.settle()
    assert world.status["currentStepIndex"] == 1
    assert world.status["stableRS"] != world.status["currentPodHash"]
    available(world, "yellow", 3)  # 3 of 4 = 75 %
    world.settle()
    assert world.status["stableRS"] == world.status["currentPodHash"]
    assert any("Completed all 1 canary steps" in m for m in world.messages("RolloutCompleted"))


# --- scaleDownDelaySeconds, scaleDownDelayRevisionLimit -----------------------------------------


def test_scale_down_delay_keeps_only_the_newest_old_revisions_up() -> None:
    raw = routed_rollout([], scaleDownDelaySeconds=60, scaleDownDelayRevisionLimit=1)
    world = deployed(raw, router_answer=True)
    world.set_image(YELLOW)
    world.settle()
    # The previous stable stays up for 60 s with its deadline annotation.
    assert world.sizes() == {"blue": 5, "yellow": 5}
    blue = next(rs for rs in world.replica_sets.values() if rs["spec"]["replicas"] == 5)
    assert blue["metadata"]["annotations"]["scale-down-deadline"] == "2026-11-26T02:01:00Z"
    world.advance(10)
    world.set_image("argoproj/rollouts-demo:red")
    world.settle()
    # Only one old revision may wait: yellow (newer) waits, blue goes now.
    assert world.sizes() == {"yellow": 5, "red": 5}
    assert world.decide().requeue_after == 60
    world.advance(60)
    world.settle()
    assert world.sizes() == {"red": 5}


def test_scale_down_delay_defaults_to_thirty_seconds_with_a_router() -> None:
    world = deployed(routed_rollout([]), router_answer=True)
    world.set_image(YELLOW)
    world.settle()
    assert world.sizes() == {"blue": 5, "yellow": 5}
    world.advance(29)
    world.settle()
    assert world.sizes() == {"blue": 5, "yellow": 5}
    world.advance(2)
    world.settle()
    assert world.sizes() == {"yellow": 5}


# --- maxSurge / maxUnavailable: a canary without steps is a rolling update -----------------------


@pytest.mark.parametrize(
    ("surge", "unavailable", "most", "fewest"),
    [("25%", 0, 7, 5), (0, 1, 5, 4), (1, "20%", 6, 4)],
    ids=["surge-25%", "unavailable-1", "both"],
)
def test_a_canary_without_steps_is_a_rolling_update_within_surge_and_unavailability(
    surge: int | str, unavailable: int | str, most: int, fewest: int
) -> None:
    world = deployed(basic_rollout([], maxSurge=surge, maxUnavailable=unavailable))
    world.pods_come_up = False
    world.set_image(YELLOW)
    totals, availability = [], []
    for _ in range(40):
        world.settle()
        totals.append(sum(rs["spec"]["replicas"] for rs in world.replica_sets.values()))
        availability.append(
            sum(rs["status"]["availableReplicas"] for rs in world.replica_sets.values())
        )
        if world.sizes() == {"yellow": 5} and world.status["phase"] == "Healthy":
            break
        world.make_ready()  # the pods asked for come up, then the next move
    assert world.sizes() == {"yellow": 5}
    assert world.status["phase"] == "Healthy"
    assert max(totals) == most
    assert min(availability) >= fewest
    # Several moves, not one: the update really was rolled.
    assert len(totals) > 2


# --- rollbackWindow -------------------------------------------------------------------------------


def promoted_twice(**spec: Any) -> World:
    raw = basic_rollout([{"setWeight": 20}, {"pause": {}}])
    raw["spec"].update(spec)
    world = deployed(raw)
    for image in (YELLOW, "argoproj/rollouts-demo:red"):
        world.advance(60)  # the window is counted in ReplicaSets created in between
        world.set_image(image)
        world.settle()
        world.patch_status(promoteFull=True)
        world.settle()
    assert world.sizes() == {"red": 5}
    world.events.clear()
    return world


def test_rollback_within_the_window_skips_the_steps() -> None:
    world = promoted_twice(rollbackWindow={"revisions": 2})
    world.set_image(BLUE)  # two revisions back: blue - yellow - red
    world.settle()
    assert world.sizes() == {"blue": 5}
    assert world.status["phase"] == "Healthy"
    assert world.messages("RolloutCompleted")[-1].endswith("Rollback within window")
    assert "RolloutPaused" not in world.reasons()


def test_rollback_outside_the_window_runs_the_steps() -> None:
    world = promoted_twice(rollbackWindow={"revisions": 1})
    world.set_image(BLUE)
    world.settle()
    assert world.status["message"] == "CanaryPauseStep"
    assert world.sizes() == {"red": 4, "blue": 1}


# --- spec.paused --------------------------------------------------------------------------------


def test_a_manual_pause_holds_the_weight_even_when_the_canary_becomes_ready() -> None:
    world = deployed(routed_rollout([{"setWeight": 40}, {"pause": {}}]), router_answer=True)
    world.pods_come_up = False
    world.set_image(YELLOW)
    world.settle()
    assert weight(world) == 0

    def pause(raw: dict[str, Any]) -> None:
        raw["spec"]["paused"] = True

    def resume(raw: dict[str, Any]) -> None:
        raw["spec"].pop("paused")

    world.edit(pause)
    world.settle()
    world.make_ready()
    world.settle()
    assert weight(world) == 0
    assert world.status["phase"] == "Paused"
    assert world.status["message"] == "manually paused"
    assert world.status["currentStepIndex"] == 0
    world.edit(resume)
    world.settle()
    assert weight(world) == 40
    assert world.status["message"] == "CanaryPauseStep"


def test_an_abort_wins_over_a_manual_pause() -> None:
    world = deployed(routed_rollout([{"setWeight": 40}, {"pause": {}}]), router_answer=True)
    world.set_image(YELLOW)
    world.settle()

    def pause(raw: dict[str, Any]) -> None:
        raw["spec"]["paused"] = True

    world.edit(pause)
    world.patch_status(abort=True)
    world.settle()
    assert world.router_weight == 0
    assert world.services["myapp-canary"] == world.status["stableRS"]
