"""Each canary step type, revision 1, rollbacks and traffic, decided from a fake world."""

from __future__ import annotations

from typing import Any

import pytest
from tests.core.canary_world import T0, World, basic_rollout, deployed, rollout_from, routed_rollout

from rollwise.core import actions as act
from rollwise.core.observed import Observed
from rollwise.core.rollouts import decide

YELLOW = "argoproj/rollouts-demo:yellow"
ANALYSIS = {
    "templates": [{"templateName": "success-rate"}],
    "args": [{"name": "svc", "value": "a"}],
}


def of(decision_actions: tuple[act.Action, ...], kind: type[Any]) -> list[Any]:
    return [a for a in decision_actions if isinstance(a, kind)]


# --- revision 1 and rollbacks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        basic_rollout([{"setWeight": 20}, {"pause": {}}, {"analysis": ANALYSIS}]),
        routed_rollout(
            [
                {"setWeight": 20},
                {
                    "setHeaderRoute": {
                        "name": "hdr",
                        "match": [{"headerName": "X", "headerValue": {"exact": "1"}}],
                    }
                },
                {"analysis": ANALYSIS},
                {"pause": {}},
            ],
            trafficRouting={"traefik": {}, "managedRoutes": [{"name": "hdr"}]},
        ),
    ],
    ids=["basic", "traffic-routed"],
)
def test_revision_one_is_promoted_at_once_without_steps(raw: dict[str, Any]) -> None:
    world = World(rollout_from(raw), now=T0, services={"myapp-canary": None, "myapp-stable": None})
    first = world.decide()
    created = of(first.actions, act.CreateReplicaSet)
    assert len(created) == 1
    assert created[0].replicas == 5
    assert created[0].revision == 1
    assert created[0].template["metadata"]["labels"]["rollouts-pod-template-hash"] == (
        created[0].pod_template_hash
    )
    assert first.status.stable_rs == first.status.current_pod_hash
    assert first.status.current_step_index == len(raw["spec"]["strategy"]["canary"]["steps"])
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert not world.runs  # no analysis on the first deploy
    assert not world.routes  # no header route on revision 1
    assert not of(tuple(world.log), act.SetHeaderRoute)
    assert "Initial deploy" in world.messages("RolloutCompleted")[0]


def test_rollback_to_the_stable_revision_skips_the_steps() -> None:
    world = deployed(basic_rollout([{"setWeight": 20}, {"pause": {}}]))
    blue = world.status["stableRS"]
    world.set_image(YELLOW)
    world.settle()
    assert world.status["phase"] == "Paused"
    world.set_image("argoproj/rollouts-demo:blue")  # `rollwise undo`
    world.settle()
    assert world.messages("SkipSteps") == ["Rollback to stable ReplicaSets"]
    assert world.status["currentPodHash"] == blue == world.status["stableRS"]
    assert world.status["currentStepIndex"] == 2
    assert world.status["phase"] == "Healthy"
    assert world.sizes() == {"blue": 5}


def test_changing_only_the_steps_of_a_healthy_rollout_rolls_nothing_out() -> None:
    world = deployed(basic_rollout([{"setWeight": 20}, {"pause": {}}]))

    def more_steps(raw: dict[str, Any]) -> None:
        raw["spec"]["strategy"]["canary"]["steps"].append({"setWeight": 50})

    world.edit(more_steps)
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert world.status["currentStepIndex"] == 3
    assert len(world.replica_sets) == 1
    assert not of(tuple(world.log), act.CreateReplicaSet)


def test_an_old_revision_coming_back_gets_the_next_revision_number() -> None:
    world = deployed(basic_rollout([]))
    world.set_image(YELLOW)
    world.settle()
    world.set_image("argoproj/rollouts-demo:blue")
    decision = world.decide()
    assert of(decision.actions, act.SetReplicaSetRevision) == [
        act.SetReplicaSetRevision(next(iter(world.replica_sets)), 3)
    ]
    assert "Rollout updated to revision 3" in [
        a.message for a in of(decision.actions, act.EmitEvent)
    ]


# --- setWeight and the capacity rule --------------------------------------------------------------


def test_traffic_never_outruns_the_canary() -> None:
    world = deployed(routed_rollout([{"setWeight": 20}, {"setWeight": 40}, {"pause": {}}]))
    world.pods_come_up = False
    world.set_image(YELLOW)
    world.settle()
    canary = next(r for r in world.replica_sets.values() if "yellow" in str(r["spec"]["template"]))
    # (pods of the canary that are ready) -> (weight in force, canary pods asked, steps done)
    for ready, weight, pods, done in ((0, 0, 1, 0), (1, 20, 2, 1), (2, 40, 2, 2)):
        canary["status"]["readyReplicas"] = canary["status"]["availableReplicas"] = ready
        world.settle()
        assert world.router_weight == weight, ready
        assert world.status["canary"]["weights"]["stable"]["weight"] == 100 - weight
        assert canary["spec"]["replicas"] == pods
        assert world.status["currentStepIndex"] == done


def test_set_weight_sizes_canary_by_ceiling_and_keeps_stable_full() -> None:
    world = deployed(routed_rollout([{"setWeight": 30}, {"pause": {}}], replicas=10))
    world.set_image(YELLOW)
    world.settle()
    assert world.sizes() == {"blue": 10, "yellow": 3}
    assert world.status["phase"] == "Paused"
    assert world.messages("TrafficWeightUpdated") == ["Traffic weight updated from 0 to 30"]
    weights = world.status["canary"]["weights"]
    assert weights["canary"] == {
        "weight": 30,
        "serviceName": "myapp-canary",
        "podTemplateHash": world.status["currentPodHash"],
    }
    assert weights["stable"]["podTemplateHash"] == world.status["stableRS"]
    assert world.services == {
        "myapp-canary": world.status["currentPodHash"],
        "myapp-stable": world.status["stableRS"],
    }


def test_an_unverified_weight_holds_the_step_and_is_asked_again() -> None:
    world = deployed(routed_rollout([{"setWeight": 20}, {"pause": {}}]), router_answer=False)
    world.set_image(YELLOW)
    for _ in range(5):
        world.reconcile()
    assert world.router_weight == 20
    assert world.status["currentStepIndex"] == 0
    assert world.status["canary"]["weights"]["verified"] is False
    decision = world.decide()
    assert of(decision.actions, act.VerifyWeight) == [act.VerifyWeight(20)]
    assert not of(decision.actions, act.SetWeight)
    assert decision.requeue_after == 10
    world.router_answer = True
    world.settle()
    assert world.status["currentStepIndex"] == 1
    assert world.status["phase"] == "Paused"


def test_a_router_that_cannot_verify_does_not_block() -> None:
    world = deployed(routed_rollout([{"setWeight": 20}, {"pause": {}}]), router_answer=None)
    world.set_image(YELLOW)
    world.settle()
    assert world.status["currentStepIndex"] == 1
    assert "verified" not in world.status["canary"]["weights"]


def test_traffic_routed_completion_switches_stable_and_delays_old_scale_down() -> None:
    world = deployed(routed_rollout([{"setWeight": 50}]), router_answer=True)
    blue = world.status["stableRS"]
    world.set_image(YELLOW)
    world.settle()
    yellow = world.status["currentPodHash"]
    assert world.status["stableRS"] == yellow
    assert world.status["phase"] == "Healthy"
    assert world.services == {"myapp-canary": yellow, "myapp-stable": yellow}
    assert world.router_weight == 0
    # The old stable stays up for scaleDownDelaySeconds (30 by default) ...
    assert world.sizes() == {"blue": 5, "yellow": 5}
    old = next(
        r
        for r in world.replica_sets.values()
        if r["metadata"]["labels"]["rollouts-pod-template-hash"] == blue
    )
    assert old["metadata"]["annotations"]["scale-down-deadline"] == "2026-11-26T02:00:30Z"
    assert world.decide().requeue_after == pytest.approx(30)
    # ... and goes when the deadline passes.
    world.advance(31)
    world.settle()
    assert world.sizes() == {"yellow": 5}


# --- pause ----------------------------------------------------------------------------------------


def test_timed_pause_sets_its_condition_and_wakes_up_at_expiry() -> None:
    world = deployed(basic_rollout([{"pause": {"duration": "90s"}}, {"setWeight": 50}]))
    world.set_image(YELLOW)
    world.settle()
    status = world.status
    assert status["pauseConditions"] == [
        {"reason": "CanaryPauseStep", "startTime": "2026-11-26T02:00:00Z"}
    ]
    assert status["controllerPause"] is True
    assert (status["phase"], status["message"]) == ("Paused", "CanaryPauseStep")
    assert world.decide().requeue_after == pytest.approx(90)
    world.advance(89)
    assert world.decide().actions == ()
    world.advance(1)
    world.settle()
    assert world.status["currentStepIndex"] >= 1
    assert "controllerPause" not in world.status
    assert world.messages("RolloutResumed") == ["Rollout is resumed"]


def test_indefinite_pause_waits_for_promote() -> None:
    world = deployed(basic_rollout([{"pause": {}}, {"setWeight": 50}, {"pause": {}}]))
    world.set_image(YELLOW)
    world.settle()
    world.advance(86400)
    decision = world.decide()
    assert (decision.actions, decision.requeue_after) == ((), None)
    # `rollwise promote` clears the pause conditions; controllerPause says we had paused.
    world.patch_status(pauseConditions=None)
    assert world.rollout.status is not None
    assert world.rollout.status.controller_pause
    world.settle()
    assert world.status["currentStepIndex"] == 2
    assert world.sizes() == {"blue": 3, "yellow": 3}  # 50% of 5: 3 of 6 with the surge pod
    assert world.messages("RolloutStepCompleted")[0] == "Rollout step 1/3 completed (pause)"


# --- analysis -------------------------------------------------------------------------------------


def analysis_world(*, background: bool = False) -> World:
    steps = [{"setWeight": 20}, {"analysis": ANALYSIS}, {"setWeight": 60}, {"pause": {}}]
    extra = {"analysis": {"templates": [{"templateName": "bg"}]}} if background else {}
    world = deployed(basic_rollout(steps, **extra))
    world.set_image(YELLOW)
    world.settle()
    return world


def step_run(world: World) -> str:
    return str(world.status["canary"]["currentStepAnalysisRunStatus"]["name"])


def test_analysis_step_creates_one_run_for_the_step() -> None:
    world = analysis_world()
    name = step_run(world)
    status = world.status
    assert name == f"myapp-{status['currentPodHash']}-2-1"
    assert status["currentStepIndex"] == 1
    created = [a for a in world.log if isinstance(a, act.CreateAnalysisRun)]
    assert len(created) == 1
    run = created[0]
    assert (run.kind, run.step_index, run.revision) == ("Step", 1, 2)
    assert run.labels == {
        "rollout-type": "Step",
        "step-index": "1",
        "rollouts-pod-template-hash": status["currentPodHash"],
        "app": "myapp",
    }
    assert run.annotations == {"rollout.argoproj.io/revision": "2"}
    assert [t.template_name for t in run.analysis.templates or ()] == ["success-rate"]
    assert world.decide().actions == ()  # a running run: nothing to do


@pytest.mark.parametrize(
    ("phase", "outcome"),
    [
        ("Successful", "next step"),
        ("Failed", "abort"),
        ("Error", "abort"),
        ("Inconclusive", "pause"),
        ("Running", "wait"),
    ],
)
def test_analysis_run_phase_decides_the_step(phase: str, outcome: str) -> None:
    world = analysis_world()
    name = step_run(world)
    world.set_run_phase(name, phase, "metric success-rate assessed Failed")
    world.settle()
    status = world.status
    if outcome == "next step":
        assert status["currentStepIndex"] == 3
        assert "currentStepAnalysisRunStatus" not in status["canary"]
        assert world.sizes() == {"blue": 2, "yellow": 3}
    elif outcome == "abort":
        assert status["phase"] == "Degraded"
        assert status["message"] == (
            "RolloutAborted: Rollout aborted update to revision 2: "
            "metric success-rate assessed Failed"
        )
        assert world.sizes() == {"blue": 5}
        assert status["canary"]["currentStepAnalysisRunStatus"]["status"] == phase
    elif outcome == "pause":
        assert (status["phase"], status["message"]) == ("Paused", "InconclusiveAnalysisRun")
        assert status["currentStepIndex"] == 1
    else:
        assert (status["phase"], status["currentStepIndex"]) == ("Progressing", 1)
    assert f"AnalysisRun{phase}" in world.reasons() or phase == "Running"


def test_retry_after_a_failed_analysis_measures_again_with_a_fresh_run() -> None:
    world = analysis_world()
    first = step_run(world)
    world.set_run_phase(first, "Failed")
    world.settle()
    world.patch_status(abort=False)
    world.settle()
    assert step_run(world) == f"{first}.1"
    assert world.status["currentStepIndex"] == 1


def test_skipping_an_analysis_step_terminates_its_run() -> None:
    world = analysis_world()
    name = step_run(world)
    world.patch_status(currentStepIndex=2)  # `rollwise promote` while the analysis runs
    decision = world.decide()
    assert act.TerminateAnalysisRun(name) in decision.actions


def test_background_analysis_runs_during_the_update_and_stops_at_the_end() -> None:
    world = analysis_world(background=True)
    background = world.status["canary"]["currentBackgroundAnalysisRunStatus"]["name"]
    assert background == f"myapp-{world.status['currentPodHash']}-2"
    world.set_run_phase(step_run(world), "Successful")
    world.settle()
    world.patch_status(pauseConditions=None)
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert act.TerminateAnalysisRun(background) in world.log


def test_failed_background_analysis_aborts() -> None:
    world = analysis_world(background=True)
    background = world.status["canary"]["currentBackgroundAnalysisRunStatus"]["name"]
    world.set_run_phase(background, "Error", "prometheus unreachable")
    world.settle()
    assert world.status["phase"] == "Degraded"
    assert world.status["message"].endswith(": prometheus unreachable")


# --- setCanaryScale, header and mirror routes -----------------------------------------------------


HEADER = {
    "name": "canary-by-header",
    "match": [{"headerName": "X-Canary", "headerValue": {"exact": "true"}}],
}
MIRROR = {"name": "mirror", "percentage": 50, "match": [{"method": {"exact": "GET"}}]}


def routes_world() -> World:
    steps = [
        {"setCanaryScale": {"weight": 25}},
        {"setHeaderRoute": HEADER},
        {"setMirrorRoute": MIRROR},
        {"pause": {}},
        {"setCanaryScale": {"matchTrafficWeight": True}},
        {"setWeight": 40},
        {"pause": {}},
    ]
    routing = {"traefik": {}, "managedRoutes": [{"name": "canary-by-header"}, {"name": "mirror"}]}
    world = deployed(routed_rollout(steps, trafficRouting=routing))
    world.set_image(YELLOW)
    world.settle()
    return world


def test_set_canary_scale_runs_pods_without_traffic_and_routes_go_to_the_canary() -> None:
    world = routes_world()
    assert world.status["currentStepIndex"] == 3
    assert world.sizes() == {"blue": 5, "yellow": 2}  # ceil(25% of 5) at 0% traffic
    assert world.router_weight == 0
    assert world.routes == {"canary-by-header", "mirror"}
    header = of(tuple(world.log), act.SetHeaderRoute)
    assert len(header) == 1
    assert header[0].route.name == "canary-by-header"
    world.patch_status(pauseConditions=None)
    world.settle()
    # matchTrafficWeight ends the override: 40% of 5 -> 2 pods, and traffic follows.
    assert world.sizes() == {"blue": 5, "yellow": 2}
    assert world.router_weight == 40


def test_managed_routes_are_removed_on_completion() -> None:
    world = routes_world()
    world.patch_status(promoteFull=True)
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert world.routes == set()
    assert "Full promotion requested" in world.messages("RolloutCompleted")[-1]


def test_managed_routes_are_removed_on_abort() -> None:
    world = routes_world()
    world.patch_status(abort=True)
    world.settle()
    assert world.routes == set()


def test_decide_never_mutates_its_inputs() -> None:
    world = analysis_world()
    before_rollout = world.rollout.to_raw()
    observed = world.observe()
    snapshot = repr(observed)
    decide(world.rollout, observed, world.now)
    decide(world.rollout, Observed(), world.now)
    assert world.rollout.to_raw() == before_rollout
    assert repr(observed) == snapshot
