"""The seed's Part 3 lab, simulated: blue -> yellow through every step, and an abort halfway.

The fake world applies every action at once (pods are ready as soon as they are asked for) and
the test moves time; `decide` is called until it asks for nothing, after each move.
"""

from __future__ import annotations

import pytest
from tests.core.canary_world import World, deployed, seed_rollout

STEPS = 8


def expect(
    world: World,
    *,
    index: int,
    sizes: dict[str, int],
    phase: str,
    message: str | None,
    updated: int,
) -> None:
    status = world.status
    assert status["currentStepIndex"] == index
    assert world.sizes() == sizes
    assert status["phase"] == phase
    assert status.get("message") == message
    assert status["updatedReplicas"] == updated
    assert status["replicas"] == status["availableReplicas"] == status["HPAReplicas"] == 5


def test_first_deploy_skips_the_steps() -> None:
    world = deployed(seed_rollout())
    status = world.status
    assert status["phase"] == "Healthy"
    assert status["currentStepIndex"] == STEPS
    assert status["stableRS"] == status["currentPodHash"]
    assert world.sizes() == {"blue": 5}
    assert status["selector"] == "app=myapp"
    assert status["observedGeneration"] == "1"


def test_blue_to_yellow_through_every_step() -> None:
    world = deployed(seed_rollout())
    stable = world.status["stableRS"]
    world.set_image("argoproj/rollouts-demo:yellow")
    world.settle()
    expect(
        world,
        index=1,
        sizes={"blue": 4, "yellow": 1},
        phase="Paused",
        message="CanaryPauseStep",
        updated=1,
    )
    assert world.status["stableRS"] == stable
    assert world.status["pauseConditions"][0]["reason"] == "CanaryPauseStep"
    assert world.messages("RolloutStepCompleted") == ["Rollout step 1/8 completed (setWeight: 20)"]
    assert world.messages("RolloutUpdated") == ["Rollout updated to revision 2"]

    # The pause holds until its 2 minutes are over, and asks to be woken up at the end.
    world.advance(60)
    decision = world.decide()
    assert decision.actions == ()
    assert decision.requeue_after == pytest.approx(60)

    for index, blue, yellow in ((3, 3, 2), (5, 2, 3), (7, 1, 4)):
        world.advance(61 if index == 3 else 121)
        world.settle()
        expect(
            world,
            index=index,
            sizes={"blue": blue, "yellow": yellow},
            phase="Paused",
            message="CanaryPauseStep",
            updated=yellow,
        )

    world.advance(121)
    world.settle()
    expect(world, index=STEPS, sizes={"yellow": 5}, phase="Healthy", message=None, updated=5)
    assert world.status["stableRS"] == world.status["currentPodHash"] != stable
    assert "pauseConditions" not in world.status
    assert world.messages("RolloutCompleted")[-1].endswith("Completed all 8 canary steps")
    completed = world.messages("RolloutStepCompleted")
    assert completed == [
        "Rollout step 1/8 completed (setWeight: 20)",
        "Rollout step 2/8 completed (pause: 2m)",
        "Rollout step 3/8 completed (setWeight: 40)",
        "Rollout step 4/8 completed (pause: 2m)",
        "Rollout step 5/8 completed (setWeight: 60)",
        "Rollout step 6/8 completed (pause: 2m)",
        "Rollout step 7/8 completed (setWeight: 80)",
        "Rollout step 8/8 completed (pause: 2m)",
    ]
    # A steady world: deciding again asks for nothing and changes nothing.
    decision = world.decide()
    assert decision.actions == ()
    assert decision.status is world.rollout.status


def test_abort_halfway_goes_back_to_blue_and_retry_starts_over() -> None:
    world = deployed(seed_rollout())
    world.set_image("argoproj/rollouts-demo:yellow")
    world.settle()
    world.advance(121)
    world.settle()
    assert world.sizes() == {"blue": 3, "yellow": 2}

    world.patch_status(abort=True)  # `rollwise abort myapp`
    world.settle()
    status = world.status
    assert world.sizes() == {"blue": 5}
    assert status["phase"] == "Degraded"
    assert status["message"] == "RolloutAborted: Rollout aborted update to revision 2"
    assert status["abort"] is True
    assert status["abortedAt"]
    assert status["currentStepIndex"] == 0
    assert "pauseConditions" not in status
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "RolloutAborted")
    assert world.messages("RolloutAborted") == ["Rollout aborted update to revision 2"]

    # Staying aborted is quiet: the same world gives no actions and the same status.
    world.advance(3600)
    decision = world.decide()
    assert decision.actions == ()
    assert decision.status is world.rollout.status

    world.patch_status(abort=False)  # `rollwise retry rollout myapp`
    world.settle()
    expect(
        world,
        index=1,
        sizes={"blue": 4, "yellow": 1},
        phase="Paused",
        message="CanaryPauseStep",
        updated=1,
    )
    assert "abortedAt" not in world.status
