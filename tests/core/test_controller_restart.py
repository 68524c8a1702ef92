"""A controller that restarts (kill -9) knows nothing but the stored status and objects: its
first decisions must not rewrite a settled status nor repeat what the dead one did."""

from __future__ import annotations

from typing import Any

import pytest
from tests.core import bluegreen_world
from tests.core.canary_world import World, basic_rollout, deployed, routed_rollout

from rollwise.core import actions as act

YELLOW = "argoproj/rollouts-demo:yellow"


def restarted(world: World) -> World:
    """The same world seen by a new controller: the router's answers are forgotten."""
    world.router_weight = None
    world.verified = None
    return world


def of(actions: tuple[act.Action, ...], kind: type[Any]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


@pytest.mark.parametrize("at_pause", [True, False], ids=["paused-at-a-step", "completed"])
def test_a_restart_keeps_the_verified_weight_the_status_recorded(at_pause: bool) -> None:
    steps = [{"setWeight": 20}, {"pause": {"duration": "10s"}}]
    world = deployed(routed_rollout(steps), router_answer=True)
    world.set_image(YELLOW)
    world.settle()
    assert world.status["phase"] == "Paused"
    if not at_pause:
        world.advance(11)
        world.settle()
        assert world.status["phase"] == "Healthy"
    before = world.status
    assert before["canary"]["weights"]["verified"] is True

    decision = restarted(world).decide()

    assert decision.status.to_raw() == before
    assert not of(decision.actions, act.SetWeight)
    assert not of(decision.actions, act.VerifyWeight)


def test_a_restart_asks_again_a_weight_the_router_had_refused() -> None:
    world = deployed(routed_rollout([{"setWeight": 20}, {"pause": {}}]), router_answer=False)
    world.set_image(YELLOW)
    for _ in range(5):
        world.reconcile()
    assert world.status["canary"]["weights"]["verified"] is False

    decision = restarted(world).decide()

    assert of(decision.actions, act.VerifyWeight) == [act.VerifyWeight(20)]
    assert decision.status.to_raw()["canary"]["weights"]["verified"] is False
    assert decision.status.to_raw()["currentStepIndex"] == 0


def test_a_restart_between_setting_a_weight_and_verifying_it_sets_and_verifies_again() -> None:
    world = deployed(routed_rollout([{"setWeight": 20}, {"pause": {}}]), router_answer=True)
    world.set_image(YELLOW)
    while act.SetWeight(20, *hashes(world)) not in world.reconcile().actions:
        pass  # up to the decision that set the weight (its answer is not recorded yet)
    assert "verified" not in world.status["canary"]["weights"]

    decision = restarted(world).decide()

    assert of(decision.actions, act.SetWeight) == [act.SetWeight(20, *hashes(world))]
    assert of(decision.actions, act.VerifyWeight) == [act.VerifyWeight(20)]
    assert not [e for e in of(decision.actions, act.EmitEvent) if e.reason != "RolloutUpdated"]
    assert decision.status.to_raw()["currentStepIndex"] == 0  # the step waits for the answer
    world.settle()
    assert world.status["canary"]["weights"]["verified"] is True
    assert world.status["currentStepIndex"] == 1


def hashes(world: World) -> tuple[str, str]:
    return world.status["currentPodHash"], world.status["stableRS"]


ANALYSIS = {"templates": [{"templateName": "success-rate"}]}


@pytest.mark.parametrize("run_phase", ["", "Running"])
def test_a_run_created_by_a_decision_whose_status_was_lost_is_adopted(run_phase: str) -> None:
    world = deployed(basic_rollout([{"setWeight": 20}, {"analysis": ANALYSIS}, {"pause": {}}]))
    world.set_image(YELLOW)
    while not of((decision := world.decide()).actions, act.CreateAnalysisRun):
        world.reconcile()
    for action in decision.actions:  # done, and the controller is killed before the status
        world.apply(action)
    (created,) = world.runs
    if run_phase:  # the analysis controller may have started measuring it meanwhile
        world.set_run_phase(created, run_phase)

    decision = restarted(world).decide()

    assert all(a.name == created for a in of(decision.actions, act.CreateAnalysisRun))
    assert decision.status.to_raw()["canary"]["currentStepAnalysisRunStatus"]["name"] == created
    world.rollout = world.rollout.model_copy(update={"status": decision.status})
    world.settle()
    assert list(world.runs) == [created]


def test_a_pre_promotion_run_whose_status_was_lost_is_adopted() -> None:
    raw = bluegreen_world.blue_green_rollout(prePromotionAnalysis=ANALYSIS)
    world = bluegreen_world.deployed(raw)
    world.set_image(YELLOW)
    while not of((decision := world.decide()).actions, act.CreateAnalysisRun):
        world.reconcile()
    for action in decision.actions:
        world.apply(action)
    (created,) = world.runs

    decision = restarted(world).decide()

    assert all(a.name == created for a in of(decision.actions, act.CreateAnalysisRun))
    assert decision.status.to_raw()["blueGreen"]["prePromotionAnalysisRunStatus"]["name"] == created
    world.rollout = world.rollout.model_copy(update={"status": decision.status})
    world.settle()
    assert list(world.runs) == [created]
