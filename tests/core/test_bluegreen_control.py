"""What people do to a blue-green rollout (reference 1.9): abort before and after the switch and
the abort delay, retry, undo to the stable revision or to one still in its scale-down delay,
restarts - and the specs the engine refuses."""

from __future__ import annotations

from typing import Any

import pytest
from tests.core.bluegreen_world import (
    ACTIVE,
    PREVIEW,
    RED,
    YELLOW,
    blue_green_rollout,
    deployed,
    hash_of,
    run_named,
    serving,
)
from tests.core.canary_world import T0, World, rollout_from

from rollwise.core import actions as act
from rollwise.core.observed import SCALE_DOWN_DEADLINE_ANNOTATION, Observed
from rollwise.core.rollouts import decide

SMOKE = {"templates": [{"templateName": "smoke"}]}


def paused_update(**blue_green: Any) -> World:
    world = deployed(blue_green_rollout(autoPromotionEnabled=False, **blue_green))
    world.set_image(YELLOW)
    world.settle()
    assert world.status["message"] == "BlueGreenPause"
    return world


def deadline_of(world: World, image: str) -> str | None:
    raw = world.replica_sets[f"myapp-{hash_of(world, image)}"]
    return raw["metadata"]["annotations"].get(SCALE_DOWN_DEADLINE_ANNOTATION)


# --- abort --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blue_green", "gone_after"),
    [({}, 30), ({"abortScaleDownDelaySeconds": 1}, 1)],
    ids=["default 30s", "1s"],
)
def test_abort_before_the_switch_keeps_active_and_lets_the_preview_go_after_the_delay(
    blue_green: dict[str, Any], gone_after: int
) -> None:
    world = paused_update(**blue_green)
    world.patch_status(abort=True)
    world.settle()
    status = world.status
    assert (status["phase"], status["message"]) == (
        "Degraded",
        "RolloutAborted: Rollout aborted update to revision 2",
    )
    assert "pauseConditions" not in status
    assert serving(world, ACTIVE) == "blue"
    assert world.sizes() == {"blue": 3, "yellow": 3}
    assert world.decide().requeue_after == gone_after
    world.advance(gone_after)
    world.settle()
    assert world.sizes() == {"blue": 3}
    assert world.messages("RolloutAborted") == ["Rollout aborted update to revision 2"]
    # The preview Service keeps naming the aborted revision, as Argo's does.
    assert world.services[PREVIEW] == hash_of(world, "yellow")


def test_abort_scale_down_delay_zero_keeps_the_preview_up() -> None:
    world = paused_update(abortScaleDownDelaySeconds=0)
    world.patch_status(abort=True)
    world.settle()
    world.advance(3600)
    world.settle()
    assert world.sizes() == {"blue": 3, "yellow": 3}
    assert deadline_of(world, "yellow") is None


def test_retry_after_an_abort_starts_the_update_again() -> None:
    world = paused_update(abortScaleDownDelaySeconds=1)
    world.patch_status(abort=True)
    world.settle()
    world.advance(1)
    world.settle()
    assert world.sizes() == {"blue": 3}

    world.patch_status(abort=False)  # rollwise retry rollout
    world.settle()
    status = world.status
    assert (status["phase"], status["message"]) == ("Paused", "BlueGreenPause")
    assert "abortedAt" not in status
    assert world.sizes() == {"blue": 3, "yellow": 3}
    assert deadline_of(world, "yellow") is None
    assert serving(world, ACTIVE) == "blue"  # a retry is no promotion
    conditions = {c["type"]: c["reason"] for c in status["conditions"]}
    assert conditions["Progressing"] == "RolloutPaused"


def test_retry_within_the_abort_delay_does_not_skip_the_pause() -> None:
    world = paused_update()
    world.patch_status(abort=True)
    world.settle()
    assert deadline_of(world, "yellow") is not None
    world.patch_status(abort=False)
    world.settle()
    assert world.status["message"] == "BlueGreenPause"
    assert serving(world, ACTIVE) == "blue"


def test_aborting_a_fully_promoted_rollout_is_degraded_and_changes_nothing() -> None:
    world = deployed(blue_green_rollout())
    world.patch_status(abort=True)
    world.settle()
    assert world.status["phase"] == "Degraded"
    assert world.sizes() == {"blue": 3}
    assert serving(world, ACTIVE) == "blue"
    world.patch_status(abort=False)
    world.settle()
    assert world.status["phase"] == "Healthy"


# --- undo -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("analysis", [False, True], ids=["paused", "pre-promotion running"])
def test_undo_to_the_stable_revision_before_the_switch_skips_everything(analysis: bool) -> None:
    world = deployed(
        blue_green_rollout(
            autoPromotionEnabled=False, **({"prePromotionAnalysis": SMOKE} if analysis else {})
        )
    )
    world.set_image(YELLOW)
    world.settle()
    world.set_image("argoproj/rollouts-demo:blue")  # rollwise undo
    world.settle()
    if analysis:
        assert world.runs[run_named(world, "-pre")]["spec"].get("terminate") is True
    status = world.status
    assert (status["phase"], status.get("message")) == ("Healthy", None)
    assert "pauseConditions" not in status
    assert serving(world, PREVIEW) == "blue"
    assert serving(world, ACTIVE) == "blue"
    world.advance(30)
    world.settle()
    assert world.sizes() == {"blue": 3}


def test_undo_during_post_promotion_analysis_switches_back_at_once() -> None:
    world = deployed(blue_green_rollout(postPromotionAnalysis=SMOKE))
    world.set_image(YELLOW)
    world.settle()
    assert serving(world, ACTIVE) == "yellow"
    world.set_image("argoproj/rollouts-demo:blue")
    world.settle()
    assert serving(world, ACTIVE) == "blue"
    assert world.status["phase"] == "Healthy"
    assert world.runs[run_named(world, "-post")]["spec"].get("terminate") is True


@pytest.mark.parametrize(
    ("blue_green", "reason"),
    [
        ({}, "Completed blue-green update"),
        ({"postPromotionAnalysis": SMOKE}, "Rollback to 'myapp-{blue}' within scaleDownDelay"),
    ],
    ids=["no analysis", "post-promotion analysis"],
)
def test_undo_to_a_revision_in_its_scale_down_delay_is_fast_tracked(
    blue_green: dict[str, Any], reason: str
) -> None:
    world = deployed(
        blue_green_rollout(autoPromotionEnabled=False, prePromotionAnalysis=SMOKE, **blue_green)
    )
    world.set_image(YELLOW)
    world.settle()
    world.set_run_phase(run_named(world, "-pre"), "Successful")
    world.settle()
    world.patch_status(pauseConditions=None)
    world.settle()
    if "postPromotionAnalysis" in blue_green:
        world.set_run_phase(run_named(world, "-post"), "Successful")
        world.settle()
    blue = hash_of(world, "blue")
    assert world.status["stableRS"] == hash_of(world, "yellow")
    assert deadline_of(world, "blue") is not None
    runs = set(world.runs)

    world.advance(10)
    world.set_image("argoproj/rollouts-demo:blue")
    world.settle()
    # No pause, no analysis: straight back to blue, which never lost its pods.
    assert serving(world, ACTIVE) == "blue"
    assert world.status["stableRS"] == blue
    assert world.status["phase"] == "Healthy"
    assert set(world.runs) == runs
    assert deadline_of(world, "blue") is None
    assert world.messages("RolloutCompleted")[-1].endswith(reason.format(blue=blue))
    revisions = [a.revision for a in world.log if isinstance(a, act.SetReplicaSetRevision)]
    assert revisions == [3]


def test_a_new_revision_during_the_pause_replaces_the_preview() -> None:
    world = paused_update()
    world.set_image(RED)
    world.settle()
    assert world.status["message"] == "BlueGreenPause"
    assert serving(world, PREVIEW) == "red"
    assert serving(world, ACTIVE) == "blue"
    world.advance(30)
    world.settle()
    assert world.sizes() == {"blue": 3, "red": 3}


# --- restart --------------------------------------------------------------------------------------


def test_restart_at_restarts_the_pods_of_every_revision() -> None:
    world = deployed(blue_green_rollout())
    world.advance(60)
    world.edit(lambda raw: raw["spec"].update(restartAt="2026-11-26T02:01:00Z"))
    world.settle()
    restarts = [a for a in world.log if isinstance(a, act.RestartPods)]
    assert [a.replica_sets for a in restarts] == [(f"myapp-{hash_of(world, 'blue')}",)]
    assert world.status["restartedAt"] == "2026-11-26T02:01:00Z"
    assert world.status["phase"] == "Healthy"


# --- specs the engine refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blue_green", "observed", "message"),
    [
        (
            {"previewService": ACTIVE},
            Observed(service_selectors={ACTIVE: None}),
            "spec.strategy.blueGreen.previewService: This rollout uses the same service for the "
            "active and preview services, but two different services are required.",
        ),
        (
            {},
            Observed(service_selectors={PREVIEW: None}),
            f'spec.strategy.blueGreen.activeService: service "{ACTIVE}" not found',
        ),
        (
            {},
            Observed(service_selectors={ACTIVE: None}),
            f'spec.strategy.blueGreen.previewService: service "{PREVIEW}" not found',
        ),
        (
            {"postPromotionAnalysis": SMOKE},
            Observed(service_selectors={ACTIVE: None, PREVIEW: None}, missing_templates=("smoke",)),
            'spec.strategy.blueGreen.postPromotionAnalysis.templates: AnalysisTemplate "smoke" '
            "not found",
        ),
        (
            {"previewReplicaCount": -1},
            Observed(service_selectors={ACTIVE: None, PREVIEW: None}),
            "spec.strategy.blueGreen.previewReplicaCount: must not be negative",
        ),
    ],
    ids=["same services", "no active", "no preview", "no template", "negative count"],
)
def test_specs_the_engine_cannot_run_are_degraded_with_no_actions(
    blue_green: dict[str, Any], observed: Observed, message: str
) -> None:
    decision = decide(rollout_from(blue_green_rollout(**blue_green)), observed, T0)
    status = decision.status.to_raw()
    assert status["phase"] == "Degraded"
    assert status["message"] == f"InvalidSpec: {message}"
    assert [type(a) for a in decision.actions] == [act.EmitEvent]


def test_both_strategies_at_once_are_refused() -> None:
    raw = blue_green_rollout()
    raw["spec"]["strategy"]["canary"] = {"steps": []}
    decision = decide(rollout_from(raw), Observed(service_selectors={ACTIVE: None}), T0)
    assert decision.status.message == (
        "InvalidSpec: spec.strategy: Multiple Strategies can not be listed"
    )
