"""A blue-green update from start to finish (reference 1.8): revision 1, the preview, the pause
before the switch and how it ends (a person, a timer, nothing), the preview count, the switch,
the stable mark and the scale-down delay of the old revision."""

from __future__ import annotations

from typing import Any

import pytest
from tests.core.bluegreen_world import (
    ACTIVE,
    PREVIEW,
    YELLOW,
    blue_green_rollout,
    deployed,
    fresh,
    hash_of,
    serving,
)
from tests.core.canary_world import World

from rollwise.core import actions as act
from rollwise.core.observed import SCALE_DOWN_DEADLINE_ANNOTATION


def scaled(world: World) -> list[tuple[str, int]]:
    return [(a.name, a.replicas) for a in world.log if isinstance(a, act.ScaleReplicaSet)]


def switches(world: World) -> list[tuple[str, str]]:
    return [
        (a.service, a.pod_template_hash)
        for a in world.log
        if isinstance(a, act.SwitchServiceSelector)
    ]


# --- revision 1 -----------------------------------------------------------------------------------


def test_revision_1_is_stable_at_once_and_both_services_select_it() -> None:
    world = fresh(blue_green_rollout())
    first = world.reconcile()
    blue = hash_of(world, "blue")
    # Created at 0 pods, the preview pointed at it straight away, the active left alone.
    assert [type(a).__name__ for a in first.actions if not isinstance(a, act.EmitEvent)] == [
        "CreateReplicaSet",
        "SwitchServiceSelector",
    ]
    assert world.sizes() == {}
    assert world.services == {ACTIVE: None, PREVIEW: blue}
    assert world.status["stableRS"] == blue
    assert world.status["message"] == "more replicas need to be updated"

    world.settle()
    assert world.services == {ACTIVE: blue, PREVIEW: blue}
    status = world.status
    assert (status["phase"], status.get("message")) == ("Healthy", None)
    assert status["blueGreen"] == {"activeSelector": blue, "previewSelector": blue}
    assert status["selector"] == f"app=myapp,rollouts-pod-template-hash={blue}"
    assert (status["HPAReplicas"], status["availableReplicas"]) == (3, 3)
    assert "pauseConditions" not in status
    assert "RolloutPaused" not in world.reasons()


def test_revision_1_is_not_paused_even_without_auto_promotion() -> None:
    world = fresh(blue_green_rollout(autoPromotionEnabled=False, prePromotionAnalysis=TEMPLATE))
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert world.runs == {}


TEMPLATE = {"templates": [{"templateName": "smoke"}]}


# --- the update -----------------------------------------------------------------------------------


def test_an_update_previews_pauses_and_switches_when_promoted() -> None:
    world = deployed(blue_green_rollout(autoPromotionEnabled=False))
    blue = hash_of(world, "blue")
    world.set_image(YELLOW)

    world.reconcile()  # new revision: created at 0, preview switched, nothing else
    yellow = hash_of(world, "yellow")
    assert switches(world) == [(PREVIEW, yellow)]
    assert world.sizes() == {"blue": 3}
    world.reconcile()  # the preview gets its pods
    assert world.sizes() == {"blue": 3, "yellow": 3}
    world.reconcile()  # ready: the controller pauses before the switch
    status = world.status
    assert (status["phase"], status["message"]) == ("Paused", "BlueGreenPause")
    assert status["controllerPause"] is True
    assert [p["reason"] for p in status["pauseConditions"]] == ["BlueGreenPause"]
    assert serving(world, ACTIVE) == "blue"
    assert serving(world, PREVIEW) == "yellow"
    # Counted on the active side, as HPA and Argo CD see it.
    assert (status["replicas"], status["availableReplicas"], status["HPAReplicas"]) == (6, 3, 3)

    world.settle()
    assert world.status["message"] == "BlueGreenPause"  # nothing moves without a person

    world.patch_status(pauseConditions=None)  # rollwise promote
    world.log.clear()
    world.reconcile()
    assert switches(world) == [(ACTIVE, yellow)]
    status = world.status
    assert (status["phase"], status["stableRS"]) == ("Healthy", yellow)
    assert "controllerPause" not in status
    assert world.messages("RolloutCompleted") == [
        f"Rollout completed update to revision 2 ({yellow}): Completed blue-green update"
    ]
    assert world.messages("SwitchService")[-1] == (
        f"Switched selector for service '{ACTIVE}' from '{blue}' to '{yellow}'"
    )


def test_the_old_revision_stays_up_for_the_scale_down_delay() -> None:
    world = deployed(blue_green_rollout())
    world.set_image(YELLOW)
    world.settle()
    blue_rs = f"myapp-{hash_of(world, 'blue')}"
    assert world.status["phase"] == "Healthy"
    assert world.sizes() == {"blue": 3, "yellow": 3}
    deadline = world.replica_sets[blue_rs]["metadata"]["annotations"][
        SCALE_DOWN_DEADLINE_ANNOTATION
    ]
    assert deadline == "2026-11-26T02:00:30Z"
    assert world.decide().requeue_after == 30

    world.advance(29)
    world.settle()
    assert world.sizes() == {"blue": 3, "yellow": 3}
    world.advance(1)
    world.settle()
    assert world.sizes() == {"yellow": 3}
    assert scaled(world)[-1] == (blue_rs, 0)


@pytest.mark.parametrize(
    ("blue_green", "waits", "left"),
    [
        ({"scaleDownDelaySeconds": 5}, 5, {"yellow": 3}),
        ({"scaleDownDelaySeconds": 0}, 0, {"yellow": 3}),
        ({}, 30, {"yellow": 3}),
    ],
    ids=["5s", "0 = at once", "default 30s"],
)
def test_scale_down_delay_seconds(
    blue_green: dict[str, Any], waits: int, left: dict[str, int]
) -> None:
    world = deployed(blue_green_rollout(**blue_green))
    world.set_image(YELLOW)
    world.settle()
    if waits:
        assert world.sizes() == {"blue": 3, "yellow": 3}
        world.advance(waits)
        world.settle()
    assert world.sizes() == left


def test_scale_down_delay_revision_limit_lets_only_the_newest_old_revisions_wait() -> None:
    world = deployed(blue_green_rollout(scaleDownDelayRevisionLimit=1))
    world.set_image(YELLOW)
    world.settle()
    world.set_image("argoproj/rollouts-demo:green")
    world.settle()
    # yellow (the newest old revision) waits; blue, beyond the limit, goes at once.
    assert world.sizes() == {"yellow": 3, "green": 3}


def test_automatic_promotion_switches_as_soon_as_the_preview_is_ready() -> None:
    world = deployed(blue_green_rollout())
    world.set_image(YELLOW)
    world.reconcile()
    world.reconcile()
    assert serving(world, ACTIVE) == "blue"
    world.reconcile()
    assert serving(world, ACTIVE) == "yellow"
    assert "RolloutPaused" not in world.reasons()


def test_the_switch_waits_until_every_preview_pod_is_available() -> None:
    world = deployed(blue_green_rollout())
    world.pods_come_up = False
    world.set_image(YELLOW)
    world.settle()
    assert serving(world, ACTIVE) == "blue"
    assert world.status["message"] == "active service cutover pending"
    world.make_ready()
    world.settle()
    assert serving(world, ACTIVE) == "yellow"


def test_auto_promotion_seconds_pause_then_promote_on_their_own() -> None:
    world = deployed(blue_green_rollout(autoPromotionSeconds=20))
    world.set_image(YELLOW)
    world.settle()
    assert world.status["message"] == "BlueGreenPause"
    assert world.decide().requeue_after == 20
    world.advance(19)
    world.settle()
    assert serving(world, ACTIVE) == "blue"
    world.advance(1)
    world.settle()
    assert serving(world, ACTIVE) == "yellow"
    assert world.status["phase"] == "Healthy"
    assert world.reasons().count("RolloutResumed") == 1


def test_auto_promotion_seconds_are_ignored_when_auto_promotion_is_disabled() -> None:
    world = deployed(blue_green_rollout(autoPromotionEnabled=False, autoPromotionSeconds=5))
    world.set_image(YELLOW)
    world.settle()
    world.advance(3600)
    world.settle()
    assert world.status["message"] == "BlueGreenPause"
    assert serving(world, ACTIVE) == "blue"


def test_promote_ends_an_auto_promotion_wait_early() -> None:
    world = deployed(blue_green_rollout(autoPromotionSeconds=600))
    world.set_image(YELLOW)
    world.settle()
    world.patch_status(pauseConditions=None)
    world.settle()
    assert serving(world, ACTIVE) == "yellow"


def test_promote_full_skips_the_pause() -> None:
    world = deployed(blue_green_rollout(autoPromotionEnabled=False))
    world.set_image(YELLOW)
    world.settle()
    world.patch_status(promoteFull=True, pauseConditions=None)  # rollwise promote --full
    world.settle()
    status = world.status
    assert (status["phase"], status["stableRS"]) == ("Healthy", hash_of(world, "yellow"))
    assert "promoteFull" not in status
    assert world.messages("RolloutCompleted")[-1].endswith(": Full promotion requested")


# --- previewReplicaCount --------------------------------------------------------------------------


def test_preview_replica_count_previews_few_pods_and_scales_up_before_the_switch() -> None:
    world = deployed(
        blue_green_rollout(replicas=4, previewReplicaCount=1, autoPromotionEnabled=False)
    )
    world.set_image(YELLOW)
    world.settle()
    assert world.sizes() == {"blue": 4, "yellow": 1}
    assert world.status["message"] == "BlueGreenPause"
    assert "scaleUpPreviewCheckPoint" not in world.status["blueGreen"]

    world.patch_status(pauseConditions=None)
    world.reconcile()
    assert world.status["blueGreen"]["scaleUpPreviewCheckPoint"] is True
    assert serving(world, ACTIVE) == "blue"  # not before the preview has the full count
    world.reconcile()
    assert world.sizes() == {"blue": 4, "yellow": 4}
    world.settle()
    assert serving(world, ACTIVE) == "yellow"
    assert world.status["phase"] == "Healthy"
    assert "scaleUpPreviewCheckPoint" not in world.status["blueGreen"]  # reset by promotion


def test_preview_replica_count_does_not_apply_to_revision_1() -> None:
    world = deployed(blue_green_rollout(replicas=4, previewReplicaCount=1))
    assert world.sizes() == {"blue": 4}


# --- halts and deadlines --------------------------------------------------------------------------


def test_a_manual_pause_halts_the_switch() -> None:
    world = deployed(blue_green_rollout())
    world.set_image(YELLOW)
    world.reconcile()
    world.edit(lambda raw: raw["spec"].update(paused=True))
    world.settle()
    assert (world.status["phase"], world.status["message"]) == ("Paused", "manually paused")
    assert serving(world, ACTIVE) == "blue"
    world.edit(lambda raw: raw["spec"].update(paused=False))
    world.settle()
    assert serving(world, ACTIVE) == "yellow"


def test_a_preview_that_never_gets_ready_exceeds_the_progress_deadline() -> None:
    world = deployed(blue_green_rollout())
    world.pods_come_up = False
    world.edit(lambda raw: raw["spec"].update(progressDeadlineSeconds=60))
    world.set_image(YELLOW)
    world.settle()
    world.advance(61)
    world.settle()
    status = world.status
    assert status["phase"] == "Degraded"
    assert status["message"].startswith("ProgressDeadlineExceeded: ")
    assert serving(world, ACTIVE) == "blue"


def test_progress_deadline_abort_aborts_the_update() -> None:
    world = deployed(blue_green_rollout())
    world.pods_come_up = False
    world.edit(
        lambda raw: raw["spec"].update(progressDeadlineSeconds=60, progressDeadlineAbort=True)
    )
    world.set_image(YELLOW)
    world.settle()
    world.advance(61)
    world.settle()
    assert world.status["abort"] is True
    assert world.status["message"].startswith(
        "RolloutAborted: Rollout aborted update to revision 2"
    )


def test_a_settled_rollout_decides_nothing_more() -> None:
    world = deployed(blue_green_rollout(autoPromotionEnabled=False))
    world.set_image(YELLOW)
    world.settle()
    for _ in range(3):
        decision = world.decide()
        assert decision.actions == ()
        assert decision.status == world.rollout.status


# --- shapes and scaling events --------------------------------------------------------------------


def test_without_a_preview_service_the_update_still_pauses_and_switches() -> None:
    world = deployed(blue_green_rollout(preview=False, autoPromotionEnabled=False))
    assert world.status["blueGreen"] == {"activeSelector": hash_of(world, "blue")}
    world.set_image(YELLOW)
    world.settle()
    assert world.status["message"] == "BlueGreenPause"
    world.patch_status(pauseConditions=None)
    world.settle()
    assert serving(world, ACTIVE) == "yellow"
    assert world.status["phase"] == "Healthy"
    assert "previewSelector" not in world.status["blueGreen"]


@pytest.mark.parametrize("during", ["paused", "healthy"])
def test_a_new_replica_count_scales_the_active_and_the_preview(during: str) -> None:
    world = deployed(blue_green_rollout(autoPromotionEnabled=False))
    if during == "paused":
        world.set_image(YELLOW)
        world.settle()
    world.edit(lambda raw: raw["spec"].update(replicas=5))  # e.g. an HPA
    world.settle()
    expected = {"blue": 5, "yellow": 5} if during == "paused" else {"blue": 5}
    assert world.sizes() == expected
    assert world.status["HPAReplicas"] == 5


def test_active_and_preview_metadata_follow_the_roles() -> None:
    world = deployed(
        blue_green_rollout(
            autoPromotionEnabled=False,
            activeMetadata={"labels": {"role": "active"}},
            previewMetadata={"labels": {"role": "preview"}},
        )
    )

    def roles() -> dict[str, str | None]:
        return {
            raw["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[-1]: (
                raw["spec"]["template"]["metadata"].get("labels", {}).get("role")
            )
            for raw in world.replica_sets.values()
        }

    assert roles() == {"blue": "active"}
    world.set_image(YELLOW)
    world.settle()
    assert world.status["message"] == "BlueGreenPause"
    assert roles() == {"blue": "active", "yellow": "preview"}

    world.patch_status(pauseConditions=None)  # rollwise promote
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert roles() == {"blue": None, "yellow": "active"}
