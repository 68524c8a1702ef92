"""Who plays which role, and an abort that says what it verified: pingPong services, ephemeral
canary/stable metadata, a pod template taken from a Deployment (workloadRef), the stages of
an abort, background analysis as reference 2.11 has it, and the option combinations the
controller refuses with Argo's messages."""

from __future__ import annotations

import copy
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
from tests.core.test_commands import merge_apply

from rollwise.core import actions as act
from rollwise.core.commands import undo_patch
from rollwise.core.observed import Observed
from rollwise.core.rollouts import decide

YELLOW = "argoproj/rollouts-demo:yellow"


def condition(world: World, type_: str) -> dict[str, Any] | None:
    return next((c for c in world.status.get("conditions") or () if c["type"] == type_), None)


def hash_of(world: World, color: str) -> str:
    for raw in world.replica_sets.values():
        if raw["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{color}"):
            return str(raw["metadata"]["labels"]["rollouts-pod-template-hash"])
    raise AssertionError(f"no {color} ReplicaSet")


# --- pingPong -------------------------------------------------------------------------------------


def ping_pong_world() -> World:
    raw = routed_rollout(
        [{"setWeight": 50}, {"pause": {}}],
        pingPong={"pingService": "myapp-ping", "pongService": "myapp-pong"},
        scaleDownDelaySeconds=0,
    )
    canary = raw["spec"]["strategy"]["canary"]
    del canary["canaryService"], canary["stableService"]
    canary["trafficRouting"] = {"istio": {"virtualService": {"name": "myapp"}}}
    return deployed(raw, services={"myapp-ping": None, "myapp-pong": None}, router_answer=True)


def test_ping_and_pong_swap_roles_at_each_promotion() -> None:
    world = ping_pong_world()
    # Revision 1 went out on pong (the canary role while ping is stable), so pong is stable.
    assert world.status["canary"]["stablePingPong"] == "pong"
    world.set_image(YELLOW)
    world.settle()
    weights = world.status["canary"]["weights"]
    assert (weights["canary"]["serviceName"], weights["canary"]["weight"]) == ("myapp-ping", 50)
    assert (weights["stable"]["serviceName"], weights["stable"]["weight"]) == ("myapp-pong", 50)
    assert world.services == {
        "myapp-ping": hash_of(world, "yellow"),
        "myapp-pong": hash_of(world, "blue"),
    }

    world.patch_status(pauseConditions=None)
    world.settle()
    # Ping carried the canary and now carries the stable: no Service had to switch for it.
    assert world.status["canary"]["stablePingPong"] == "ping"
    weights = world.status["canary"]["weights"]
    assert (weights["stable"]["serviceName"], weights["stable"]["weight"]) == ("myapp-ping", 100)
    assert world.sizes() == {"yellow": 5}

    world.set_image("argoproj/rollouts-demo:red")
    world.settle()
    weights = world.status["canary"]["weights"]
    assert (weights["canary"]["serviceName"], weights["canary"]["weight"]) == ("myapp-pong", 50)
    assert world.services["myapp-pong"] == hash_of(world, "red")


def test_an_abort_points_the_canary_role_service_back_at_stable() -> None:
    world = ping_pong_world()
    world.set_image(YELLOW)
    world.settle()
    world.patch_status(abort=True)
    world.settle()
    assert world.services["myapp-ping"] == hash_of(world, "blue")
    assert world.status["canary"]["stablePingPong"] == "pong"


# --- ephemeral metadata ---------------------------------------------------------------------------


def metadata_world() -> World:
    raw = basic_rollout(
        [{"setWeight": 20}, {"pause": {}}],
        canaryMetadata={"labels": {"role": "canary"}, "annotations": {"team": "web"}},
        stableMetadata={"labels": {"role": "stable"}},
    )
    return deployed(raw)


def template_metadata(world: World, color: str) -> dict[str, Any]:
    for raw in world.replica_sets.values():
        if raw["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{color}"):
            return dict(raw["spec"]["template"].get("metadata") or {})
    raise AssertionError(f"no {color} ReplicaSet")


def test_role_metadata_follows_the_role() -> None:
    world = metadata_world()
    assert template_metadata(world, "blue")["labels"]["role"] == "stable"
    world.set_image(YELLOW)
    world.settle()
    yellow = template_metadata(world, "yellow")
    assert yellow["labels"]["role"] == "canary"
    assert yellow["annotations"]["team"] == "web"
    assert template_metadata(world, "blue")["labels"]["role"] == "stable"

    world.patch_status(pauseConditions=None)
    world.settle()
    # The new stable trades its canary metadata for the stable one; the old one keeps none.
    yellow = template_metadata(world, "yellow")
    assert yellow["labels"] == {
        "app": "myapp",
        "role": "stable",
        "rollouts-pod-template-hash": hash_of(world, "yellow"),
    }
    assert "team" not in (yellow.get("annotations") or {})
    assert template_metadata(world, "blue")["labels"] == {
        "app": "myapp",
        "rollouts-pod-template-hash": hash_of(world, "blue"),
    }
    assert world.decide().actions == ()


def test_metadata_it_did_not_inject_is_left_alone() -> None:
    world = metadata_world()
    blue = next(iter(world.replica_sets.values()))
    blue["spec"]["template"]["metadata"]["labels"]["owner"] = "someone-else"
    world.set_image(YELLOW)
    world.settle()
    world.patch_status(pauseConditions=None)
    world.settle()
    assert blue["spec"]["template"]["metadata"]["labels"]["owner"] == "someone-else"
    assert "role" not in blue["spec"]["template"]["metadata"]["labels"]


def test_undo_puts_back_a_template_without_its_role_metadata() -> None:
    world = metadata_world()
    world.set_image(YELLOW)
    world.settle()
    # The stable ReplicaSet wears role=stable; undo must not copy that into the Rollout, or
    # going back to the stable would be a new revision instead of a rollback.
    patches = undo_patch(world.rollout.to_raw(), list(world.replica_sets.values()), None)

    def undo(raw: dict[str, Any]) -> None:
        raw["spec"] = merge_apply(raw["spec"], patches.object_patch["spec"])

    world.edit(undo)
    world.settle()
    assert "role" not in world.rollout.to_raw()["spec"]["template"]["metadata"]["labels"]
    assert world.messages("SkipSteps") == ["Rollback to stable ReplicaSets"]
    assert world.sizes() == {"blue": 5}


# --- workloadRef ---------------------------------------------------------------------------------


def deployment(image: str = "argoproj/rollouts-demo:blue", *, replicas: int = 3) -> dict[str, Any]:
    template = copy.deepcopy(seed_rollout(image)["spec"]["template"])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "myapp", "namespace": "default", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "myapp"}},
            "template": template,
        },
    }


def referencing(scale_down: str | None = None) -> dict[str, Any]:
    raw = basic_rollout([{"setWeight": 20}, {"pause": {}}], replicas=4)
    del raw["spec"]["template"], raw["spec"]["selector"]
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "myapp"}
    if scale_down:
        ref["scaleDown"] = scale_down
    raw["spec"]["workloadRef"] = ref
    return raw


def test_workload_ref_takes_the_deployments_template_and_tracks_its_generation() -> None:
    world = deployed(referencing(), workload=deployment())
    assert world.sizes() == {"blue": 4}
    assert world.status["phase"] == "Healthy"
    assert world.status["workloadObservedGeneration"] == "1"
    assert world.status["selector"] == "app=myapp"
    assert world.workload is not None
    assert world.workload["spec"]["replicas"] == 3  # scaleDown: never

    world.workload = deployment(YELLOW)
    world.workload["metadata"]["generation"] = 2
    world.settle()
    # A new template in the Deployment is a new revision of the Rollout.
    assert world.status["message"] == "CanaryPauseStep"
    assert world.sizes() == {"blue": 4, "yellow": 1}
    assert world.status["workloadObservedGeneration"] == "2"
    assert world.decide().actions == ()


@pytest.mark.parametrize(
    ("scale_down", "while_starting"),
    [("onsuccess", [3, 3, 3, 3]), ("progressively", [3, 2, 1, 0])],
)
def test_scale_down_of_the_referenced_deployment(
    scale_down: str, while_starting: list[int]
) -> None:
    world = World(rollout_from(referencing(scale_down)), now=T0, workload=deployment())
    world.pods_come_up = False
    world.settle()
    seen = []
    for ready in range(1, 5):
        for rs in world.replica_sets.values():
            rs["status"].update(readyReplicas=ready, availableReplicas=ready)
        world.settle()
        seen.append(world.workload["spec"]["replicas"] if world.workload else None)
    # Healthy at 4/4: the Deployment is scaled to 0 either way.
    assert seen[:-1] == while_starting[:-1]
    assert seen[-1] == 0
    assert world.status["phase"] == "Healthy"
    assert "Scaled down Deployment myapp from" in " ".join(world.messages("ScalingReplicaSet"))


def test_only_revision_one_scales_the_deployment_down() -> None:
    world = deployed(referencing("onsuccess"), workload=deployment())
    assert world.workload is not None
    assert world.workload["spec"]["replicas"] == 0
    # A person scales the Deployment back up and changes its template: revision 2.
    world.workload = deployment(YELLOW, replicas=2)
    world.workload["metadata"]["generation"] = 2
    world.settle()
    world.patch_status(promoteFull=True)
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert world.workload["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("change", "workload", "message"),
    [
        (lambda raw: None, None, 'spec.workloadRef: Deployment "myapp" not found'),
        (
            lambda raw: raw["spec"].update(template=seed_rollout()["spec"]["template"]),
            deployment(),
            "spec.template: template must be empty for workload reference rollout",
        ),
        (
            lambda raw: raw["spec"]["workloadRef"].update(kind="StatefulSet"),
            deployment(),
            "spec.workloadRef.kind: workload of kind 'StatefulSet' is not supported",
        ),
    ],
    ids=["missing", "template-too", "kind"],
)
def test_a_workload_ref_that_cannot_be_resolved_is_invalid(
    change: Any, workload: dict[str, Any] | None, message: str
) -> None:
    raw = referencing()
    change(raw)
    decision = decide(rollout_from(raw), Observed(workload=workload), T0)
    status = decision.status.to_raw()
    assert status["phase"] == "Degraded"
    assert status["message"].startswith(f"InvalidSpec: {message}")


# --- abort as a verified sequence ----------------------------------------------------------------


def stages(world: World) -> list[str]:
    return [
        e.reason
        for e in world.events
        if e.reason.startswith("Abort") or e.reason in ("RolloutAbortVerified", "RolloutAborted")
    ]


def test_a_traffic_routed_abort_reports_each_verified_stage() -> None:
    world = deployed(
        routed_rollout(
            [{"setWeight": 40}, {"pause": {}}],
            abortScaleDownDelaySeconds=5,
            trafficRouting={
                "istio": {"virtualService": {"name": "myapp"}},
                "managedRoutes": [{"name": "beta"}],
            },
        ),
        router_answer=True,
    )
    world.set_image(YELLOW)
    world.settle()
    world.events.clear()
    world.log.clear()
    world.router_answer = False  # the router does not confirm the way back yet
    world.patch_status(abort=True)
    for _ in range(3):
        world.reconcile()
    shifting = condition(world, "AbortVerified")
    assert shifting is not None
    assert (shifting["status"], shifting["reason"]) == ("False", "AbortShiftingTraffic")
    assert "waiting for the router to confirm it" in shifting["message"]
    assert world.services["myapp-canary"] == hash_of(world, "yellow")
    assert world.status["phase"] == "Degraded"

    world.router_answer = True
    world.settle()
    scaling = condition(world, "AbortVerified")
    assert scaling is not None
    assert scaling["reason"] == "AbortScalingDown"
    assert "scales down at 2026-11-26T02:00:05Z" in scaling["message"]
    world.advance(6)
    world.settle()
    done = condition(world, "AbortVerified")
    assert done is not None
    assert (done["status"], done["reason"]) == ("True", "RolloutAbortVerified")
    assert "managed routes removed" in done["message"]
    assert stages(world) == [
        "RolloutAborted",
        "AbortShiftingTraffic",
        "AbortSwitchingService",
        "AbortScalingDown",
        "RolloutAbortVerified",
    ]
    # Each stage was done, in order, before the next began.
    order = [type(a).__name__ for a in world.log if not isinstance(a, act.EmitEvent)]
    first = {name: order.index(name) for name in ("RemoveManagedRoutes", "SwitchServiceSelector")}
    assert first["RemoveManagedRoutes"] < first["SwitchServiceSelector"]
    assert world.sizes() == {"blue": 5}

    world.patch_status(abort=False)
    world.settle()
    assert condition(world, "AbortVerified") is None


def test_a_controller_restarted_mid_abort_verifies_the_router_again() -> None:
    world = deployed(routed_rollout([{"setWeight": 40}, {"pause": {}}]), router_answer=True)
    world.set_image(YELLOW)
    world.settle()
    world.router_answer = False
    world.patch_status(abort=True)
    for _ in range(2):
        world.reconcile()
    # A new controller: it remembers nothing of what the router said.
    world.router_weight = world.verified = None
    world.router_answer = True
    decision = world.decide()
    assert act.SetWeight(0, hash_of(world, "yellow"), hash_of(world, "blue")) in decision.actions
    assert act.VerifyWeight(0) in decision.actions
    assert not any(isinstance(a, act.SwitchServiceSelector) for a in decision.actions)
    world.settle()
    done = condition(world, "AbortVerified")
    assert done is not None
    assert done["reason"] == "AbortScalingDown"


def test_a_basic_canary_abort_starts_at_the_service_stage() -> None:
    raw = basic_rollout([{"setWeight": 40}, {"pause": {}}], canaryService="myapp-canary")
    world = deployed(raw, services={"myapp-canary": None})
    world.set_image(YELLOW)
    world.settle()
    world.events.clear()
    world.patch_status(abort=True)
    world.settle()
    assert stages(world)[:2] == ["RolloutAborted", "AbortSwitchingService"]
    done = condition(world, "AbortVerified")
    assert done is not None
    assert done["status"] == "True"
    assert world.sizes() == {"blue": 5}


def test_abort_scale_down_delay_zero_is_verified_with_the_canary_kept() -> None:
    world = deployed(
        routed_rollout([{"setWeight": 40}, {"pause": {}}], abortScaleDownDelaySeconds=0),
        router_answer=True,
    )
    world.set_image(YELLOW)
    world.settle()
    world.patch_status(abort=True)
    world.settle()
    done = condition(world, "AbortVerified")
    assert done is not None
    assert done["status"] == "True"
    assert "kept running (abortScaleDownDelaySeconds: 0)" in done["message"]
    assert world.sizes() == {"blue": 5, "yellow": 2}


# --- background analysis (reference 2.11) -----------------------------------------------------


def background(starting_step: int | None = None) -> World:
    analysis: dict[str, Any] = {"templates": [{"templateName": "rate"}]}
    if starting_step is not None:
        analysis["startingStep"] = starting_step
    raw = basic_rollout(
        [{"setWeight": 20}, {"pause": {"duration": "10s"}}, {"setWeight": 60}, {"pause": {}}],
        analysis=analysis,
    )
    return deployed(raw)


def test_background_analysis_starts_at_its_starting_step() -> None:
    world = background(starting_step=2)
    world.set_image(YELLOW)
    world.settle()
    assert world.runs == {}
    assert world.status["currentStepIndex"] == 1
    world.advance(11)
    world.settle()
    assert world.status["currentStepIndex"] == 3
    [run] = world.runs.values()
    assert run["metadata"]["labels"]["rollout-type"] == "Background"
    assert (
        world.status["canary"]["currentBackgroundAnalysisRunStatus"]["name"]
        == run["metadata"]["name"]
    )


def test_inconclusive_background_analysis_pauses_and_a_promote_measures_again() -> None:
    world = background()
    world.set_image(YELLOW)
    world.settle()
    [name] = world.runs
    world.set_run_phase(name, "Inconclusive", "no data")
    world.settle()
    reasons = [pause["reason"] for pause in world.status["pauseConditions"]]
    assert "InconclusiveAnalysisRun" in reasons
    assert world.status["phase"] == "Paused"
    world.patch_status(pauseConditions=None)
    world.settle()
    assert len(world.runs) == 2  # a fresh run, not the old verdict


def test_background_analysis_is_terminated_as_a_success_at_full_promotion() -> None:
    world = background()
    world.set_image(YELLOW)
    world.settle()
    [name] = world.runs
    world.patch_status(promoteFull=True)
    world.settle()
    assert world.runs[name]["spec"].get("terminate") is True
    assert world.runs[name]["status"]["phase"] == "Successful"
    assert world.status["phase"] == "Healthy"


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_failed_or_errored_background_analysis_aborts(phase: str) -> None:
    world = background()
    world.set_image(YELLOW)
    world.settle()
    [name] = world.runs
    world.set_run_phase(name, phase, "success-rate 0.5 < 0.95")
    world.settle()
    assert world.status["abort"] is True
    assert world.status["message"].endswith("success-rate 0.5 < 0.95")
    assert world.sizes() == {"blue": 5}


# --- option combinations the controller refuses ------------------------------------------------


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        (
            {"dynamicStableScale": True, "scaleDownDelaySeconds": 30},
            "spec.strategy.canary.dynamicStableScale: Canary dynamicStableScale cannot be used"
            " with scaleDownDelaySeconds",
        ),
        (
            {"canaryService": "myapp-stable"},
            "spec.strategy.canary.stableService: This rollout uses the same service for the"
            " stable and canary services, but two different services are required.",
        ),
        (
            {"pingPong": {"pingService": "myapp-stable", "pongService": "myapp-stable"}},
            "spec.strategy.canary.pingPong.pingService: This rollout uses the same service for"
            " the ping and pong services, but two different services are required.",
        ),
    ],
    ids=["dynamic-and-delay", "same-services", "same-ping-pong"],
)
def test_routed_option_combinations_are_invalid(canary: dict[str, Any], message: str) -> None:
    raw = routed_rollout([{"setWeight": 20}], **canary)
    observed = Observed(service_selectors={"myapp-canary": None, "myapp-stable": None})
    status = decide(rollout_from(raw), observed, T0).status.to_raw()
    assert status["phase"] == "Degraded"
    assert status["message"] == f"InvalidSpec: {message}"


@pytest.mark.parametrize(
    ("canary", "steps", "message"),
    [
        (
            {"dynamicStableScale": True},
            [],
            "spec.strategy.canary.dynamicStableScale: Canary dynamicStableScale can only be used"
            " with traffic routing",
        ),
        (
            {"scaleDownDelaySeconds": 10},
            [],
            "spec.strategy.canary.scaleDownDelaySeconds: Canary scaleDownDelaySeconds can only be"
            " used with traffic routing",
        ),
        (
            {},
            [{"setCanaryScale": {"replicas": 1}}],
            "spec.strategy.canary.steps[0].setCanaryScale: SetCanaryScale requires TrafficRouting"
            " to be set",
        ),
        (
            {"pingPong": {"pingService": "a", "pongService": "b"}},
            [],
            "spec.strategy.canary.pingPong: pingPong needs trafficRouting with istio, alb (with"
            " rootService) or plugins",
        ),
    ],
    ids=["dynamic", "delay", "set-canary-scale", "ping-pong"],
)
def test_options_that_need_a_router_are_invalid_without_one(
    canary: dict[str, Any], steps: list[dict[str, Any]], message: str
) -> None:
    raw = basic_rollout(steps, **canary)
    status = decide(rollout_from(raw), Observed(), T0).status.to_raw()
    assert status["message"] == f"InvalidSpec: {message}"
