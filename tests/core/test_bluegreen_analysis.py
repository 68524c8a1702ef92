"""Blue-green analysis (reference 1.8, 2.11): the pre-promotion run gates the switch, the
post-promotion run gates the stable mark; Failed/Error abort (after the switch: back to the old
revision), Inconclusive pauses until a person promotes, which measures again."""

from __future__ import annotations

from typing import Any

import pytest
from tests.core.bluegreen_world import (
    ACTIVE,
    PREVIEW,
    YELLOW,
    blue_green_rollout,
    deployed,
    hash_of,
    run_named,
    serving,
)
from tests.core.canary_world import World

from rollwise.core.observed import ROLLOUT_TYPE_LABEL

SMOKE = {"templates": [{"templateName": "smoke"}]}


def updating(**blue_green: Any) -> World:
    world = deployed(blue_green_rollout(**blue_green))
    world.set_image(YELLOW)
    world.settle()
    return world


def bg_status(world: World) -> dict[str, Any]:
    return dict(world.status.get("blueGreen") or {})


# --- pre-promotion ------------------------------------------------------------------------------


def test_the_pre_promotion_run_starts_once_the_preview_is_saturated_and_blocks_the_switch() -> None:
    world = updating(prePromotionAnalysis=SMOKE)
    yellow = hash_of(world, "yellow")
    name = f"myapp-{yellow}-2-pre"
    assert list(world.runs) == [name]
    labels = world.runs[name]["metadata"]["labels"]
    assert labels[ROLLOUT_TYPE_LABEL] == "PrePromotion"
    assert labels["rollouts-pod-template-hash"] == yellow
    assert bg_status(world)["prePromotionAnalysisRunStatus"] == {"name": name, "status": "Running"}
    assert (world.status["phase"], world.status["message"]) == (
        "Progressing",
        "active service cutover pending",
    )
    assert serving(world, ACTIVE) == "blue"
    assert serving(world, PREVIEW) == "yellow"

    world.set_run_phase(name, "Successful")
    world.settle()
    assert serving(world, ACTIVE) == "yellow"
    assert world.status["phase"] == "Healthy"
    assert bg_status(world)["prePromotionAnalysisRunStatus"]["status"] == "Successful"
    assert world.messages("AnalysisRunSuccessful") == [
        f"PrePromotion Analysis Run '{name}' Status New: 'Successful' Previous: 'Running'"
    ]


def test_without_auto_promotion_the_pause_comes_after_the_pre_promotion_run() -> None:
    world = updating(prePromotionAnalysis=SMOKE, autoPromotionEnabled=False)
    assert "pauseConditions" not in world.status
    world.set_run_phase(run_named(world, "-pre"), "Successful")
    world.settle()
    assert world.status["message"] == "BlueGreenPause"
    world.patch_status(pauseConditions=None)
    world.settle()
    assert serving(world, ACTIVE) == "yellow"
    assert len(world.runs) == 1  # the pause did not start a second run


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_a_failed_pre_promotion_run_aborts_before_the_switch(phase: str) -> None:
    world = updating(prePromotionAnalysis=SMOKE)
    world.set_run_phase(run_named(world, "-pre"), phase, 'metric "smoke" assessed Failed')
    world.settle()
    status = world.status
    assert status["abort"] is True
    assert status["phase"] == "Degraded"
    assert status["message"] == (
        'RolloutAborted: Rollout aborted update to revision 2: metric "smoke" assessed Failed'
    )
    assert serving(world, ACTIVE) == "blue"
    # The preview keeps its pods for abortScaleDownDelaySeconds (30 by default).
    assert world.sizes() == {"blue": 3, "yellow": 3}
    world.advance(30)
    world.settle()
    assert world.sizes() == {"blue": 3}
    assert world.status["phase"] == "Degraded"


def test_an_inconclusive_pre_promotion_run_pauses_and_promote_measures_again() -> None:
    world = updating(prePromotionAnalysis=SMOKE)
    first = run_named(world, "-pre")
    world.set_run_phase(first, "Inconclusive")
    world.settle()
    status = world.status
    assert (status["phase"], status["message"]) == ("Paused", "InconclusiveAnalysisRun")
    assert serving(world, ACTIVE) == "blue"

    world.patch_status(pauseConditions=None)  # rollwise promote
    world.settle()
    second = f"{first}.1"
    assert bg_status(world)["prePromotionAnalysisRunStatus"] == {
        "name": second,
        "status": "Running",
    }
    assert serving(world, ACTIVE) == "blue"
    world.set_run_phase(second, "Successful")
    world.settle()
    assert serving(world, ACTIVE) == "yellow"


def test_a_retry_after_a_failed_pre_promotion_run_measures_again() -> None:
    world = updating(prePromotionAnalysis=SMOKE, abortScaleDownDelaySeconds=0)
    first = run_named(world, "-pre")
    world.set_run_phase(first, "Failed")
    world.settle()
    assert world.status["phase"] == "Degraded"

    world.patch_status(abort=False)  # rollwise retry rollout
    world.settle()
    status = world.status
    assert "abort" not in status
    assert status["message"] == "active service cutover pending"
    second = bg_status(world)["prePromotionAnalysisRunStatus"]["name"]
    assert second != first
    world.set_run_phase(second, "Successful")
    world.settle()
    assert serving(world, ACTIVE) == "yellow"


def test_the_pre_promotion_run_waits_for_the_preview_replica_count() -> None:
    world = deployed(
        blue_green_rollout(replicas=4, previewReplicaCount=2, prePromotionAnalysis=SMOKE)
    )
    world.pods_come_up = False
    world.set_image(YELLOW)
    world.settle()
    assert world.sizes() == {"blue": 4, "yellow": 2}
    assert world.runs == {}
    world.make_ready()
    world.settle()
    name = run_named(world, "-pre")
    world.set_run_phase(name, "Successful")
    world.pods_come_up = True
    world.settle()
    # Passed with 2 pods: the preview grows to 4, then takes the traffic.
    assert world.sizes() == {"blue": 4, "yellow": 4}
    assert serving(world, ACTIVE) == "yellow"
    assert list(world.runs) == [name]


# --- post-promotion -------------------------------------------------------------------------------


def test_the_post_promotion_run_gates_the_stable_mark() -> None:
    world = updating(postPromotionAnalysis=SMOKE)
    yellow = hash_of(world, "yellow")
    blue = hash_of(world, "blue")
    name = f"myapp-{yellow}-2-post"
    assert list(world.runs) == [name]
    assert world.runs[name]["metadata"]["labels"][ROLLOUT_TYPE_LABEL] == "PostPromotion"
    assert serving(world, ACTIVE) == "yellow"
    status = world.status
    assert status["stableRS"] == blue
    assert (status["phase"], status["message"]) == (
        "Progressing",
        "waiting for analysis to complete",
    )
    # The old revision keeps its pods: it may have to take the traffic back.
    world.advance(60)
    world.settle()
    assert world.sizes() == {"blue": 3, "yellow": 3}

    world.set_run_phase(name, "Successful")
    world.settle()
    assert (world.status["phase"], world.status["stableRS"]) == ("Healthy", yellow)
    assert world.messages("RolloutCompleted")[-1].endswith(": Completed blue-green update")
    world.advance(30)
    world.settle()
    assert world.sizes() == {"yellow": 3}


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_a_failed_post_promotion_run_switches_active_back(phase: str) -> None:
    world = updating(postPromotionAnalysis=SMOKE, abortScaleDownDelaySeconds=5)
    blue = hash_of(world, "blue")
    world.set_run_phase(run_named(world, "-post"), phase, "error rate too high")
    world.settle()
    status = world.status
    assert world.services[ACTIVE] == blue
    assert serving(world, ACTIVE) == "blue"
    assert status["stableRS"] == blue
    assert status["message"] == (
        "RolloutAborted: Rollout aborted update to revision 2: error rate too high"
    )
    assert status["blueGreen"]["activeSelector"] == blue
    assert world.sizes() == {"blue": 3, "yellow": 3}
    world.advance(5)
    world.settle()
    assert world.sizes() == {"blue": 3}
    # The preview still names the aborted revision (Argo's behaviour): it has no pods now.
    assert serving(world, PREVIEW) is None


def test_an_inconclusive_post_promotion_run_pauses_and_promote_measures_again() -> None:
    world = updating(postPromotionAnalysis=SMOKE)
    first = run_named(world, "-post")
    world.set_run_phase(first, "Inconclusive")
    world.settle()
    assert world.status["message"] == "InconclusiveAnalysisRun"
    world.advance(120)
    world.settle()
    assert world.sizes() == {"blue": 3, "yellow": 3}
    world.patch_status(pauseConditions=None)
    world.settle()
    second = bg_status(world)["postPromotionAnalysisRunStatus"]["name"]
    assert second == f"{first}.1"
    world.set_run_phase(second, "Successful")
    world.settle()
    assert world.status["phase"] == "Healthy"


def test_a_manual_abort_during_post_promotion_analysis_switches_back_and_ends_the_run() -> None:
    world = updating(postPromotionAnalysis=SMOKE)
    name = run_named(world, "-post")
    world.patch_status(abort=True)  # rollwise abort
    world.settle()
    assert serving(world, ACTIVE) == "blue"
    assert world.runs[name]["spec"].get("terminate") is True
    assert world.status["message"] == "RolloutAborted: Rollout aborted update to revision 2"


def test_promote_full_skips_and_terminates_the_analysis() -> None:
    world = updating(prePromotionAnalysis=SMOKE, postPromotionAnalysis=SMOKE)
    name = run_named(world, "-pre")
    world.patch_status(promoteFull=True)
    world.settle()
    assert world.runs[name]["spec"].get("terminate") is True
    assert world.status["phase"] == "Healthy"
    assert not any(run.endswith("-post") for run in world.runs)


def test_both_runs_in_order() -> None:
    world = updating(prePromotionAnalysis=SMOKE, postPromotionAnalysis=SMOKE)
    world.set_run_phase(run_named(world, "-pre"), "Successful")
    world.settle()
    assert serving(world, ACTIVE) == "yellow"
    world.set_run_phase(run_named(world, "-post"), "Successful")
    world.settle()
    status = bg_status(world)
    assert status["prePromotionAnalysisRunStatus"]["status"] == "Successful"
    assert status["postPromotionAnalysisRunStatus"]["status"] == "Successful"
    assert world.status["phase"] == "Healthy"
