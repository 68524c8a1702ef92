"""The patches a person's command writes are exactly those of Argo's CLI (reference 5.1)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollwise.api.errors import UserError
from rollwise.core.commands import (
    Patches,
    abort_patch,
    pause_patch,
    promote_patch,
    replacement_patch,
    restart_patch,
    retry_patch,
    set_image_patch,
    undo_patch,
)

STEPS = [{"setWeight": 20}, {"pause": {}}, {"analysis": {"templates": []}}, {"setWeight": 60}]


def rollout(
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    steps: list[dict[str, Any]] | None = STEPS,
    blue_green: bool = False,
) -> dict[str, Any]:
    strategy: dict[str, Any] = (
        {"blueGreen": {"activeService": "active"}}
        if blue_green
        else {"canary": {"steps": steps} if steps is not None else {}}
    )
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "myapp", "namespace": "default"},
        "spec": {"replicas": 5, "strategy": strategy, **(spec or {})},
        "status": status or {},
    }


PAUSED_AT_STEP = [{"reason": "CanaryPauseStep", "startTime": "2026-11-26T01:50:00Z"}]
INCONCLUSIVE = [{"reason": "InconclusiveAnalysisRun", "startTime": "2026-11-26T01:50:00Z"}]


@pytest.mark.parametrize(
    ("case", "ro", "expected_spec", "expected_status"),
    [
        (
            "paused at a pause step: clear the pause conditions only",
            rollout(status={"currentStepIndex": 1, "pauseConditions": PAUSED_AT_STEP}),
            {},
            {"pauseConditions": None},
        ),
        (
            "running a step analysis: move to the next step",
            rollout(status={"currentStepIndex": 2}),
            {},
            {"pauseConditions": None, "currentStepIndex": 3},
        ),
        (
            "no index yet counts as step 0",
            rollout(status={}),
            {},
            {"pauseConditions": None, "currentStepIndex": 1},
        ),
        (
            "past the last step: the index does not move",
            rollout(status={"currentStepIndex": 4}),
            {},
            {"pauseConditions": None, "currentStepIndex": 4},
        ),
        (
            "manually paused with no pause condition: unpause and (like Argo) move on",
            rollout(spec={"paused": True}, status={"currentStepIndex": 1}),
            {"spec": {"paused": False}},
            {"pauseConditions": None, "currentStepIndex": 2},
        ),
        (
            "manually paused at a pause step: unpause and clear conditions",
            rollout(
                spec={"paused": True},
                status={"currentStepIndex": 1, "pauseConditions": PAUSED_AT_STEP},
            ),
            {"spec": {"paused": False}},
            {"pauseConditions": None},
        ),
        (
            "inconclusive step analysis: clear controllerPause and skip the step",
            rollout(
                status={
                    "currentStepIndex": 2,
                    "pauseConditions": INCONCLUSIVE,
                    "controllerPause": True,
                    "canary": {
                        "currentStepAnalysisRunStatus": {"name": "r", "status": "Inconclusive"}
                    },
                }
            ),
            {},
            {"pauseConditions": None, "controllerPause": False, "currentStepIndex": 3},
        ),
        (
            "canary without steps: nothing to advance",
            rollout(steps=None, status={}),
            {},
            {},
        ),
        (
            "blue-green waiting for promotion: clear the pause condition",
            rollout(
                blue_green=True,
                status={"pauseConditions": [{"reason": "BlueGreenPause", "startTime": "x"}]},
            ),
            {},
            {"pauseConditions": None},
        ),
    ],
)
def test_promote(
    case: str,
    ro: dict[str, Any],
    expected_spec: dict[str, Any],
    expected_status: dict[str, Any],
) -> None:
    patches = promote_patch(ro, full=False)
    assert (patches.object_patch, patches.status_patch) == (expected_spec, expected_status), case


def test_full_promote_sets_promote_full_and_unpauses() -> None:
    ro = rollout(
        spec={"paused": True},
        status={
            "currentPodHash": "new",
            "stableRS": "old",
            "currentStepIndex": 1,
            "pauseConditions": PAUSED_AT_STEP,
        },
    )
    patches = promote_patch(ro, full=True)
    assert patches.object_patch == {"spec": {"paused": False}}
    assert patches.status_patch == {"promoteFull": True, "pauseConditions": None}


def test_full_promote_of_a_stable_rollout_writes_nothing_and_says_why() -> None:
    patches = promote_patch(rollout(status={"currentPodHash": "h", "stableRS": "h"}), full=True)
    assert patches.empty
    assert patches.note == "rollout 'myapp' is already fully promoted"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (abort_patch, Patches(status_patch={"abort": True})),
        (retry_patch, Patches(status_patch={"abort": False})),
        (pause_patch, Patches(object_patch={"spec": {"paused": True}})),
    ],
)
def test_abort_retry_pause(command: Any, expected: Patches) -> None:
    assert command(rollout()) == expected


@pytest.mark.parametrize(
    ("delay", "restart_at"),
    [(timedelta(0), "2026-11-26T01:50:00Z"), (timedelta(seconds=30), "2026-11-26T01:50:30Z")],
)
def test_restart_sets_restart_at(delay: timedelta, restart_at: str) -> None:
    now = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)
    assert restart_patch(rollout(), now, delay=delay).object_patch == {
        "spec": {"restartAt": restart_at}
    }


def with_containers() -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"app": "myapp"}},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox:1"}],
            "containers": [
                {"name": "myapp", "image": "argoproj/rollouts-demo:blue", "ports": [{"x": 1}]},
                {"name": "sidecar", "image": "envoy:1"},
            ],
        },
    }
    return rollout(spec={"template": template})


def test_set_image_rewrites_the_whole_container_list_with_one_image_changed() -> None:
    patches = set_image_patch(with_containers(), "myapp", "argoproj/rollouts-demo:yellow")
    assert patches.object_patch == {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "myapp",
                            "image": "argoproj/rollouts-demo:yellow",
                            "ports": [{"x": 1}],
                        },
                        {"name": "sidecar", "image": "envoy:1"},
                    ]
                }
            }
        }
    }
    assert patches.status_patch == {}


def test_set_image_star_changes_every_container_list() -> None:
    patches = set_image_patch(with_containers(), "*", "img:2")
    changed = patches.object_patch["spec"]["template"]["spec"]
    assert [c["image"] for c in changed["containers"]] == ["img:2", "img:2"]
    assert [c["image"] for c in changed["initContainers"]] == ["img:2"]


def test_set_image_of_an_init_container() -> None:
    patches = set_image_patch(with_containers(), "init", "busybox:2")
    assert patches.object_patch == {
        "spec": {"template": {"spec": {"initContainers": [{"name": "init", "image": "busybox:2"}]}}}
    }


def test_set_image_does_not_touch_the_rollout_it_read() -> None:
    ro = with_containers()
    before = copy.deepcopy(ro)
    set_image_patch(ro, "*", "img:2")
    assert ro == before


def test_set_image_of_an_unknown_container_names_the_ones_that_exist() -> None:
    with pytest.raises(UserError) as raised:
        set_image_patch(with_containers(), "web", "img:2")
    assert str(raised.value) == (
        "rollout 'myapp' has no container named 'web' (containers: init, myapp, sidecar)"
    )


def test_set_image_to_the_same_image_writes_nothing() -> None:
    patches = set_image_patch(with_containers(), "sidecar", "envoy:1")
    assert patches.empty
    assert patches.note == "rollout 'myapp' already runs envoy:1"


def replica_set(revision: int, image: str, *, extra_label: bool = False) -> dict[str, Any]:
    labels = {"app": "myapp", "rollouts-pod-template-hash": f"hash{revision}"}
    if extra_label:
        labels["tier"] = "web"
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"myapp-hash{revision}",
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
        },
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "myapp", "image": image}]},
            }
        },
    }


def template_of(image: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "myapp", **labels}},
        "spec": {"containers": [{"name": "myapp", "image": image}]},
    }


HISTORY = [replica_set(1, "blue", extra_label=True), replica_set(2, "green"), replica_set(3, "red")]


def merge_apply(target: Any, patch: Any) -> Any:
    """RFC 7386 applied, to check a patch against the object it is meant to produce."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_apply(result.get(key), value)
    return result


@pytest.mark.parametrize(
    ("to_revision", "image", "labels"),
    [(None, "green", {}), (0, "green", {}), (1, "blue", {"tier": "web"})],
)
def test_undo_restores_the_template_of_a_revision_without_the_hash_label(
    to_revision: int | None, image: str, labels: dict[str, str]
) -> None:
    ro = rollout(spec={"template": template_of("red", team="a")})
    patches = undo_patch(ro, HISTORY, to_revision)
    assert patches.status_patch == {}
    restored = merge_apply(ro, patches.object_patch)["spec"]["template"]
    assert restored == template_of(image, **labels)


def test_undo_to_the_current_template_is_a_no_op_with_a_message() -> None:
    patches = undo_patch(rollout(spec={"template": template_of("red")}), HISTORY, 3)
    assert patches.empty
    assert patches.note == "skipped rollback (current template already matches revision 3)"


def test_undo_to_a_missing_revision_lists_the_revisions_that_exist() -> None:
    with pytest.raises(UserError) as raised:
        undo_patch(rollout(spec={"template": template_of("red")}), HISTORY, 9)
    assert str(raised.value) == "revision 9 of rollout 'myapp' not found (revisions: 1, 2, 3)"


def test_undo_with_a_single_revision_has_nowhere_to_go() -> None:
    with pytest.raises(UserError, match=r"no previous revision .* \(revisions: 1\)"):
        undo_patch(rollout(spec={"template": template_of("blue")}), HISTORY[:1], None)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 5}}),
        ({"a": [1, 2]}, {"a": [2]}),
        ({"x": 1}, {"y": {"z": [1]}}),
        ({"a": {"b": 1}}, {"a": 2}),
    ],
)
def test_replacement_patch_turns_current_into_target(
    current: dict[str, Any], target: dict[str, Any]
) -> None:
    assert merge_apply(current, replacement_patch(current, target)) == target
