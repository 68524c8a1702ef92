"""What people and time do to a canary: abort, retry, promote, pause, deadlines, restarts,
history, specs the core cannot run - and that an unchanged world stays quiet."""

from __future__ import annotations

from typing import Any

import pytest
from tests.core.canary_world import (
    T0,
    World,
    basic_rollout,
    deployed,
    rollout_from,
    routed_rollout,
    seed_rollout,
)

from rollwise.core import actions as act
from rollwise.core.observed import Observed
from rollwise.core.rollouts import decide

YELLOW = "argoproj/rollouts-demo:yellow"


def canary_hash(world: World) -> str:
    return str(world.status["currentPodHash"])


# --- abort ----------------------------------------------------------------------------------------


def aborted_routed(**canary: Any) -> World:
    world = deployed(
        routed_rollout([{"setWeight": 40}, {"pause": {}}], **canary), router_answer=False
    )
    world.set_image(YELLOW)
    world.router_answer = True
    world.settle()
    assert world.router_weight == 40
    world.router_answer = False  # the router will not confirm the way back at first
    world.patch_status(abort=True)
    return world


def test_traffic_routed_abort_moves_traffic_first_and_waits_for_the_router() -> None:
    world = aborted_routed()
    stable = world.status["stableRS"]
    first = world.reconcile()
    assert act.SetWeight(0, canary_hash(world), stable) in first.actions
    assert world.status["phase"] == "Degraded"
    assert world.status["message"] == "RolloutAborted: Rollout aborted update to revision 2"
    for _ in range(3):
        world.reconcile()
    # Not verified: the canary Service still selects the canary and no pod is let go.
    assert world.services["myapp-canary"] == canary_hash(world)
    assert world.sizes() == {"blue": 5, "yellow": 2}
    assert world.decide().requeue_after == 10

    world.router_answer = True
    world.settle()
    assert world.services["myapp-canary"] == stable
    # abortScaleDownDelaySeconds (30 by default) keeps the canary up a little longer.
    assert world.sizes() == {"blue": 5, "yellow": 2}
    world.advance(31)
    world.settle()
    assert world.sizes() == {"blue": 5}
    assert world.status["canary"]["weights"]["canary"]["weight"] == 0


def test_abort_scale_down_delay_zero_keeps_the_canary_warm() -> None:
    world = aborted_routed(abortScaleDownDelaySeconds=0)
    world.router_answer = True
    world.settle()
    world.advance(3600)
    world.settle()
    assert world.sizes() == {"blue": 5, "yellow": 2}
    assert world.router_weight == 0


def test_abort_of_a_healthy_rollout_reports_degraded_until_retry() -> None:
    world = deployed(basic_rollout([{"setWeight": 20}]))
    world.patch_status(abort=True)
    world.settle()
    assert world.status["phase"] == "Degraded"
    assert world.sizes() == {"blue": 5}
    world.patch_status(abort=False)
    world.settle()
    assert world.status["phase"] == "Healthy"


def test_abort_on_revision_one_is_ignored() -> None:
    raw = basic_rollout([{"setWeight": 20}])
    raw["status"] = {"abort": True}
    world = World(rollout_from(raw), now=T0)
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert "abort" not in world.status


# --- promote --------------------------------------------------------------------------------------


def test_promote_full_skips_every_remaining_step() -> None:
    world = deployed(seed_rollout())
    world.set_image(YELLOW)
    world.settle()
    world.patch_status(promoteFull=True, pauseConditions=None)  # `rollwise promote --full`
    world.settle()
    status = world.status
    assert status["phase"] == "Healthy"
    assert status["currentStepIndex"] == 8
    assert "promoteFull" not in status
    assert world.sizes() == {"yellow": 5}
    assert world.messages("RolloutCompleted")[-1].endswith(": Full promotion requested")


def test_promote_full_also_lifts_an_abort() -> None:
    world = deployed(seed_rollout())
    world.set_image(YELLOW)
    world.settle()
    world.patch_status(abort=True)
    world.settle()
    world.patch_status(promoteFull=True)
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert world.sizes() == {"yellow": 5}


# --- manual pause ---------------------------------------------------------------------------------


def test_manual_pause_holds_the_steps_and_wins_over_pause_conditions() -> None:
    world = deployed(seed_rollout())
    world.set_image(YELLOW)
    world.settle()

    def pause(raw: dict[str, Any]) -> None:
        raw["spec"]["paused"] = True

    world.edit(pause)  # `rollwise pause myapp`
    world.settle()
    assert (world.status["phase"], world.status["message"]) == ("Paused", "manually paused")
    world.advance(600)  # the 2m pause step is long over
    world.settle()
    assert world.status["currentStepIndex"] == 1
    paused = next(c for c in world.status["conditions"] if c["type"] == "Paused")
    assert paused["status"] == "True"

    def unpause(raw: dict[str, Any]) -> None:
        raw["spec"]["paused"] = False

    world.edit(unpause)
    world.settle()
    assert world.status["currentStepIndex"] == 3


# --- progress deadline ----------------------------------------------------------------------------


@pytest.mark.parametrize("abort", [False, True])
def test_progress_deadline(abort: bool) -> None:
    raw = basic_rollout([{"setWeight": 20}, {"pause": {}}], progressDeadlineSeconds=None)
    raw["spec"]["progressDeadlineSeconds"] = 120
    raw["spec"]["progressDeadlineAbort"] = abort
    world = deployed(raw)
    world.pods_come_up = False
    world.set_image(YELLOW)
    world.settle()
    decision = world.decide()
    assert decision.requeue_after is not None
    assert decision.requeue_after == pytest.approx(121)
    world.advance(100)
    world.settle()
    assert world.status["phase"] == "Progressing"
    world.advance(30)
    world.settle()
    status = world.status
    assert status["phase"] == "Degraded"
    name = f"myapp-{status['currentPodHash']}"
    if abort:
        assert status["message"] == (
            f'RolloutAborted: Rollout aborted update to revision 2: ReplicaSet "{name}" '
            "has timed out progressing."
        )
        assert status["abort"] is True
    else:
        assert status["message"] == (
            f'ProgressDeadlineExceeded: ReplicaSet "{name}" has timed out progressing.'
        )
        assert "abort" not in status


def test_time_spent_in_a_pause_step_does_not_count() -> None:
    raw = basic_rollout([{"setWeight": 20}, {"pause": {}}])
    raw["spec"]["progressDeadlineSeconds"] = 60
    world = deployed(raw)
    world.set_image(YELLOW)
    world.settle()
    world.advance(3600)
    world.settle()
    assert world.status["phase"] == "Paused"
    world.patch_status(pauseConditions=None)
    world.settle()
    assert world.status["phase"] == "Healthy"


# --- restart and history --------------------------------------------------------------------------


def test_restart_asks_once_for_the_pods_started_before_restart_at() -> None:
    world = deployed(seed_rollout())

    def restart(raw: dict[str, Any]) -> None:
        raw["spec"]["restartAt"] = "2026-11-26T02:05:00Z"

    world.edit(restart)
    world.settle()
    assert world.status["phase"] == "Progressing"
    assert world.status["message"] == "rollout is restarting"
    assert world.decide().requeue_after == pytest.approx(300)
    world.advance(300)
    decision = world.decide()
    restarts = [a for a in decision.actions if isinstance(a, act.RestartPods)]
    assert len(restarts) == 1
    assert restarts[0].replica_sets == tuple(world.replica_sets)
    assert restarts[0].before.isoformat() == "2026-11-26T02:05:00+00:00"
    assert restarts[0].max_unavailable == 1
    world.settle()
    assert world.status["restartedAt"] == "2026-11-26T02:05:00Z"
    assert world.status["phase"] == "Healthy"
    assert not any(isinstance(a, act.RestartPods) for a in world.decide().actions)


def test_revision_history_limit_deletes_the_oldest_scaled_down_replica_sets() -> None:
    raw = basic_rollout([])
    raw["spec"]["revisionHistoryLimit"] = 1
    world = deployed(raw)
    first = set(world.replica_sets)
    for color in ("yellow", "green", "purple"):
        world.set_image(f"argoproj/rollouts-demo:{color}")
        world.advance(10)
        world.settle()
    # Kept: the stable (purple) and one old revision (green).
    assert world.sizes() == {"purple": 5}
    assert len(world.replica_sets) == 2
    assert not first & set(world.replica_sets)
    deleted = [a.name for a in world.log if isinstance(a, act.DeleteReplicaSet)]
    assert len(deleted) == 2


# --- specs the core cannot run --------------------------------------------------------------------


def blue_green() -> dict[str, Any]:
    raw = seed_rollout()
    raw["spec"]["strategy"] = {"blueGreen": {"activeService": "myapp"}}
    return raw


def with_experiment() -> dict[str, Any]:
    # A weighted experiment template needs traffic routing (Argo's validation).
    step = {"experiment": {"templates": [{"name": "c", "specRef": "canary", "weight": 20}]}}
    return basic_rollout([{"setWeight": 20}, step])


@pytest.mark.parametrize(
    ("raw", "observed", "message"),
    [
        (
            blue_green(),
            Observed(),
            'spec.strategy.blueGreen.activeService: service "myapp" not found',
        ),
        (
            with_experiment(),
            Observed(),
            "spec.strategy.canary.steps[1].experiment.templates[0].weight: Invalid value: 20: "
            "Experiment template weight cannot be set unless TrafficRouting is enabled",
        ),
        (
            routed_rollout([{"setWeight": 20}]),
            Observed(service_selectors={"myapp-stable": None}),
            'spec.strategy.canary.canaryService: service "myapp-canary" not found',
        ),
        (
            basic_rollout([{"analysis": {"templates": [{"templateName": "rate"}]}}]),
            Observed(missing_templates=("rate",)),
            'spec.strategy.canary.steps[0].analysis.templates: AnalysisTemplate "rate" not found',
        ),
        (
            basic_rollout([{"pause": {"duration": "2 minutes"}}]),
            Observed(),
            "spec.strategy.canary.steps[0].pause.duration: invalid duration",
        ),
    ],
    ids=["blue-green", "experiment", "missing-service", "missing-template", "bad-duration"],
)
def test_specs_the_core_cannot_run_are_degraded_with_no_actions(
    raw: dict[str, Any], observed: Observed, message: str
) -> None:
    rollout = rollout_from(raw)
    decision = decide(rollout, observed, T0)
    status = decision.status.to_raw()
    assert status["phase"] == "Degraded"
    assert status["message"].startswith(f"InvalidSpec: {message}")
    condition = status["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "InvalidSpec",
        "True",
        "InvalidSpec",
    )
    assert [type(a) for a in decision.actions] == [act.EmitEvent]
    again = decide(rollout.model_copy(update={"status": decision.status}), observed, T0)
    assert again.actions == ()
    assert again.status.to_raw() == status


def test_a_fixed_spec_drops_the_invalid_spec_condition() -> None:
    raw = basic_rollout([{"pause": {"duration": "2 minutes"}}])
    world = World(rollout_from(raw), now=T0)
    world.settle()
    assert world.status["phase"] == "Degraded"

    def fix(raw: dict[str, Any]) -> None:
        raw["spec"]["strategy"]["canary"]["steps"][0]["pause"]["duration"] = "2m"

    world.edit(fix)
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert all(c["type"] != "InvalidSpec" for c in world.status["conditions"])


# --- idempotence ----------------------------------------------------------------------------------


def test_every_steady_state_of_a_rollout_is_quiet() -> None:
    """At each point where the world has caught up, deciding again changes nothing."""
    world = deployed(seed_rollout())
    world.set_image(YELLOW)
    checkpoints = 0
    for _ in range(12):
        world.settle()
        for _ in range(3):
            decision = world.decide()
            assert decision.actions == ()
            assert decision.status is world.rollout.status
        checkpoints += 1
        world.advance(121)
    assert checkpoints == 12
    assert world.status["phase"] == "Healthy"
