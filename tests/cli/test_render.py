"""`get rollout` and `list rollouts` look like Argo's CLI (reference 5.2), built from objects."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cli_objects import NOW, ago, analysis_run, pod, replica_set, rollout

from rollwise.views.info import human_duration, pod_icon, pod_status
from rollwise.views.render import render_rollout, render_rollout_list, status_line

CHECKOUT_STEPS = [
    {"setWeight": 25},
    {"analysis": {"templates": [{"templateName": "success-rate"}]}},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {"duration": "10m"}},
    {"setWeight": 75},
]


def checkout() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """Reference 5.2's invented example: paused at the indefinite pause after a passed analysis."""
    ro = rollout(
        "checkout",
        namespace="shop",
        created=ago(days=12),
        replicas=4,
        steps=CHECKOUT_STEPS,
        image="registry.local/checkout:2.4.1",
        status={
            "phase": "Paused",
            "message": "CanaryPauseStep",
            "currentStepIndex": 2,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": ago(minutes=4)}],
            "controllerPause": True,
            "stableRS": "68f4c9d5b",
            "currentPodHash": "5c9d7f8b6",
            "replicas": 5,
            "updatedReplicas": 1,
            "readyReplicas": 5,
            "availableReplicas": 5,
        },
    )
    canary = replica_set(
        "checkout",
        "5c9d7f8b6",
        revision=7,
        image="registry.local/checkout:2.4.1",
        replicas=1,
        created=ago(minutes=6),
        namespace="shop",
    )
    stable = replica_set(
        "checkout",
        "68f4c9d5b",
        revision=6,
        image="registry.local/checkout:2.4.0",
        replicas=4,
        created=ago(days=2),
        namespace="shop",
    )
    old = replica_set(
        "checkout",
        "7b8c6d4f9",
        revision=5,
        image="registry.local/checkout:2.3.9",
        replicas=0,
        created=ago(days=9),
        namespace="shop",
    )
    pods = [
        pod(canary, "qx2lp", created=ago(minutes=6)),
        # out of order on purpose: pods are drawn oldest first, then by name
        pod(stable, "wq4ns", created=ago(days=2)),
        pod(stable, "kz7vj", created=ago(days=2)),
        pod(stable, "8hkwd", created=ago(days=2), restarts=1),
        pod(stable, "2mtpz", created=ago(days=2)),
    ]
    runs = [
        analysis_run(
            "checkout",
            "checkout-68f4c9d5b-6-1",
            revision=6,
            phase="Successful",
            created=ago(days=2),
            counts={"successful": 4},
        ),
        analysis_run(
            "checkout",
            "checkout-5c9d7f8b6-7-1",
            revision=7,
            phase="Successful",
            created=ago(minutes=5),
            counts={"successful": 4},
        ),
    ]
    return ro, [old, stable, canary], pods, runs


# The look of reference 5.2, with two corrections where that invented example departs from
# Argo's code: images are listed sorted by name (Argo's `mergeImageAndTags` sorts them), and the
# NAME column is its widest cell plus two spaces (Go's tabwriter; 5.2 has one space too many).
EXPECTED_CHECKOUT = """\
Name:            checkout
Namespace:       shop
Status:          ॥ Paused
Message:         CanaryPauseStep
Strategy:        Canary
  Step:          2/6
  SetWeight:     25
  ActualWeight:  20
Images:          registry.local/checkout:2.4.0 (stable)
                 registry.local/checkout:2.4.1 (canary)
Replicas:
  Desired:       4
  Current:       5
  Updated:       1
  Ready:         5
  Available:     5

NAME                                 KIND         STATUS        AGE  INFO
⟳ checkout                           Rollout      ॥ Paused      12d
├──# revision:7
│  ├──⧉ checkout-5c9d7f8b6           ReplicaSet   ✔ Healthy     6m   canary
│  │  └──□ checkout-5c9d7f8b6-qx2lp  Pod          ✔ Running     6m   ready:1/1
│  └──α checkout-5c9d7f8b6-7-1       AnalysisRun  ✔ Successful  5m   ✔ 4
├──# revision:6
│  ├──⧉ checkout-68f4c9d5b           ReplicaSet   ✔ Healthy     2d   stable
│  │  ├──□ checkout-68f4c9d5b-2mtpz  Pod          ✔ Running     2d   ready:1/1
│  │  ├──□ checkout-68f4c9d5b-8hkwd  Pod          ✔ Running     2d   ready:1/1,restarts:1
│  │  ├──□ checkout-68f4c9d5b-kz7vj  Pod          ✔ Running     2d   ready:1/1
│  │  └──□ checkout-68f4c9d5b-wq4ns  Pod          ✔ Running     2d   ready:1/1
│  └──α checkout-68f4c9d5b-6-1       AnalysisRun  ✔ Successful  2d   ✔ 4
└──# revision:5
   └──⧉ checkout-7b8c6d4f9           ReplicaSet   • ScaledDown  9d
"""


def test_reference_example_renders_exactly() -> None:
    ro, replica_sets, pods, runs = checkout()
    text = render_rollout(ro, replica_sets, pods, runs, now=NOW, color=False)
    assert text == EXPECTED_CHECKOUT


def test_objects_of_other_rollouts_are_left_out() -> None:
    ro, replica_sets, pods, runs = checkout()
    stranger = replica_set("other", "abc", revision=9, image="x", replicas=1, created=ago(days=1))
    stranger_pod = pod(stranger, "zzzzz", created=ago(days=1))
    text = render_rollout(
        ro, [*replica_sets, stranger], [*pods, stranger_pod], runs, now=NOW, color=False
    )
    assert text == EXPECTED_CHECKOUT


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_colour_marks_icons_and_roles_without_moving_columns() -> None:
    ro, replica_sets, pods, runs = checkout()
    text = render_rollout(ro, replica_sets, pods, runs, now=NOW, color=True)
    assert ANSI.sub("", text) == EXPECTED_CHECKOUT
    assert "\x1b[32m✔\x1b[0m Healthy" in text  # green OK
    assert "(\x1b[33mcanary\x1b[0m)" in text  # yellow canary tag
    assert "\x1b[32mstable\x1b[0m" in text
    assert "⧉ \x1b[33mcheckout-5c9d7f8b6\x1b[0m" in text  # the canary RS's name too


def test_seed_lab_view_step_one_of_eight() -> None:
    steps: list[dict[str, Any]] = []
    for weight in (20, 40, 60, 80):
        steps += [{"setWeight": weight}, {"pause": {"duration": "2m"}}]
    ro = rollout(
        "myapp",
        created=ago(minutes=5),
        replicas=5,
        steps=steps,
        status={
            "phase": "Paused",
            "message": "CanaryPauseStep",
            "currentStepIndex": 1,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": ago(seconds=20)}],
            "stableRS": "6c5c5d8f9b",
            "currentPodHash": "789746c88d",
            "replicas": 6,
            "updatedReplicas": 1,
            "readyReplicas": 6,
            "availableReplicas": 6,
        },
    )
    canary = replica_set(
        "myapp",
        "789746c88d",
        revision=2,
        image="argoproj/rollouts-demo:yellow",
        replicas=1,
        created=ago(seconds=30),
    )
    stable = replica_set(
        "myapp",
        "6c5c5d8f9b",
        revision=1,
        image="argoproj/rollouts-demo:blue",
        replicas=5,
        created=ago(minutes=5),
    )
    pods = [pod(canary, "x", created=ago(seconds=30))]
    pods += [pod(stable, s, created=ago(minutes=5)) for s in "abcde"]
    text = render_rollout(ro, [canary, stable], pods, [], now=NOW, color=False)
    # 1 available canary of 6 available pods
    assert "  ActualWeight:  16\n" in text
    assert text.splitlines()[:10] == [
        "Name:            myapp",
        "Namespace:       default",
        "Status:          ॥ Paused",
        "Message:         CanaryPauseStep",
        "Strategy:        Canary",
        "  Step:          1/8",
        "  SetWeight:     20",
        "  ActualWeight:  16",
        "Images:          argoproj/rollouts-demo:blue (stable)",
        "                 argoproj/rollouts-demo:yellow (canary)",
    ]
    assert text.splitlines()[-12:] == [
        "NAME                           KIND        STATUS     AGE  INFO",
        "⟳ myapp                        Rollout     ॥ Paused   5m",
        "├──# revision:2",
        "│  └──⧉ myapp-789746c88d       ReplicaSet  ✔ Healthy  30s  canary",
        "│     └──□ myapp-789746c88d-x  Pod         ✔ Running  30s  ready:1/1",
        "└──# revision:1",
        "   └──⧉ myapp-6c5c5d8f9b       ReplicaSet  ✔ Healthy  5m   stable",
        "      ├──□ myapp-6c5c5d8f9b-a  Pod         ✔ Running  5m   ready:1/1",
        "      ├──□ myapp-6c5c5d8f9b-b  Pod         ✔ Running  5m   ready:1/1",
        "      ├──□ myapp-6c5c5d8f9b-c  Pod         ✔ Running  5m   ready:1/1",
        "      ├──□ myapp-6c5c5d8f9b-d  Pod         ✔ Running  5m   ready:1/1",
        "      └──□ myapp-6c5c5d8f9b-e  Pod         ✔ Running  5m   ready:1/1",
    ]


def test_traffic_routed_weight_comes_from_the_router_status() -> None:
    ro = rollout(
        "web",
        created=ago(hours=1),
        replicas=2,
        steps=[{"setWeight": 30}, {"pause": {}}],
        canary_extra={"trafficRouting": {"traefik": {"weightedTraefikServiceName": "web"}}},
        status={
            "phase": "Progressing",
            "message": "more replicas need to be updated",
            "currentStepIndex": 0,
            "availableReplicas": 2,
            "canary": {"weights": {"canary": {"weight": 10}, "stable": {"weight": 90}}},
        },
    )
    text = render_rollout(ro, [], [], [], now=NOW, color=False)
    assert "  SetWeight:     30\n  ActualWeight:  10\n" in text
    assert "Status:          ◌ Progressing\nMessage:         more replicas need" in text


def test_past_the_last_step_weights_are_full_and_the_step_shows_the_end() -> None:
    ro = rollout(
        "web",
        created=ago(hours=1),
        replicas=1,
        steps=[{"setWeight": 30}],
        status={"phase": "Healthy", "currentStepIndex": 1, "availableReplicas": 1},
    )
    text = render_rollout(ro, [], [], [], now=NOW, color=False)
    assert "Status:          ✔ Healthy\nStrategy:        Canary\n  Step:          1/1\n" in text
    assert "  SetWeight:     100\n  ActualWeight:  100\n" in text


def test_an_aborted_rollout_shows_degraded_with_the_reason() -> None:
    ro = rollout(
        "web",
        created=ago(hours=1),
        replicas=1,
        steps=[{"setWeight": 30}, {"pause": {}}],
        status={
            "phase": "Degraded",
            "message": "RolloutAborted: Rollout aborted update to revision 2",
            "abort": True,
            "currentStepIndex": 0,
        },
    )
    text = render_rollout(ro, [], [], [], now=NOW, color=False)
    assert "Status:          ✖ Degraded\n" in text
    assert "  SetWeight:     0\n" in text


def test_blue_green_has_no_step_lines_and_tags_active_and_preview() -> None:
    ro = rollout(
        "bg",
        created=ago(hours=3),
        replicas=1,
        blue_green={"activeService": "bg-active", "previewService": "bg-preview"},
        status={
            "phase": "Paused",
            "message": "BlueGreenPause",
            "stableRS": "aaa",
            "currentPodHash": "bbb",
            "blueGreen": {"activeSelector": "aaa", "previewSelector": "bbb"},
        },
    )
    active = replica_set("bg", "aaa", revision=1, image="v1", replicas=1, created=ago(hours=3))
    preview = replica_set("bg", "bbb", revision=2, image="v2", replicas=1, created=ago(minutes=1))
    text = render_rollout(ro, [active, preview], [], [], now=NOW, color=False)
    assert "Strategy:        BlueGreen\nImages:          v1 (stable, active)\n" in text
    assert "                 v2 (preview)\n" in text
    assert "ReplicaSet  ✔ Healthy  60s  preview" in text
    assert "ReplicaSet  ✔ Healthy  3h   stable,active" in text
    assert "Step:" not in text


def test_scale_down_delay_and_a_run_found_by_its_hash_label() -> None:
    ro = rollout(
        "web",
        created=ago(hours=1),
        replicas=1,
        steps=[{"setWeight": 50}],
        status={"phase": "Healthy", "stableRS": "new", "currentPodHash": "new"},
    )
    old = replica_set(
        "web",
        "old",
        revision=1,
        image="v1",
        replicas=1,
        created=ago(hours=1),
        annotations={"scale-down-deadline": ago(seconds=-25)},
    )
    new = replica_set("web", "new", revision=2, image="v2", replicas=1, created=ago(minutes=3))
    run = analysis_run(
        "web",
        "web-new-2-1",
        revision=None,
        pod_hash="new",
        phase="Failed",
        created=ago(minutes=2),
        counts={"successful": 2, "failed": 3, "inconclusive": 1, "error": 1},
    )
    text = render_rollout(ro, [old, new], [], [run], now=NOW, color=False)
    assert "ReplicaSet   ✔ Healthy  60m  delay:25s" in text
    assert "├──# revision:2\n│  ├──⧉ web-new" in text
    assert "│  └──α web-new-2-1  AnalysisRun  ✖ Failed   2m   ✔ 2,✖ 3,? 1,⚠ 1" in text
    old["metadata"]["annotations"]["scale-down-deadline"] = ago(seconds=5)
    assert "delay:passed" in render_rollout(ro, [old, new], [], [run], now=NOW, color=False)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"phase": "Running"}, ("Running", "✔", "1/1", 0)),
        ({"phase": "Pending", "ready": False}, ("Pending", "◌", "0/1", 0)),
        ({"phase": "Failed", "ready": False}, ("Failed", "✖", "0/1", 0)),
        (
            {"ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restarts": 4},
            ("CrashLoopBackOff", "✖", "0/1", 4),
        ),
        (
            {"ready": False, "state": {"terminated": {"exitCode": 3}}},
            ("ExitCode:3", "✖", "0/1", 0),
        ),
        (
            {"ready": False, "state": {"waiting": {"reason": "ErrImagePull"}}},
            ("ErrImagePull", "⚠", "0/1", 0),
        ),
    ],
)
def test_pod_status_reasons(status: dict[str, Any], expected: tuple[str, str, str, int]) -> None:
    rs = replica_set("web", "h", revision=1, image="v1", replicas=1, created=ago(hours=1))
    raw = pod(
        rs,
        "p",
        created=ago(hours=1),
        phase=status.get("phase", "Running"),
        ready=status.get("ready", True),
        restarts=status.get("restarts", 0),
    )
    if "state" in status:
        raw["status"]["containerStatuses"][0]["state"] = status["state"]
    reason, ready, restarts = pod_status(raw)
    assert (reason, pod_icon(reason), ready, restarts) == expected


def test_a_terminating_pod() -> None:
    rs = replica_set("web", "h", revision=1, image="v1", replicas=1, created=ago(hours=1))
    raw = pod(rs, "p", created=ago(hours=1))
    raw["metadata"]["deletionTimestamp"] = ago(seconds=1)
    assert pod_status(raw)[0] == "Terminating"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1.5, "0s"),
        (-5, "<invalid>"),
        (30, "30s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (5 * 60, "5m"),
        (59 * 60, "59m"),
        (3 * 3600 + 60, "3h1m"),
        (12 * 3600, "12h"),
        (47 * 3600, "47h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 5 * 3600, "2d5h"),
        (12 * 86400, "12d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_ages_read_like_kubectl(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_list_rollouts_table() -> None:
    ro, *_ = checkout()
    ro["metadata"]["namespace"] = "default"
    bg = rollout(
        "bg",
        created=ago(hours=3),
        replicas=2,
        blue_green={"activeService": "a"},
        status={"phase": "Healthy", "replicas": 2, "readyReplicas": 2, "availableReplicas": 2},
    )
    table = render_rollout_list([bg, ro], all_namespaces=False)
    assert table.splitlines() == [
        "NAME        STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  "
        "AVAILABLE",
        "bg          BlueGreen  Healthy       -     -           2/2    2        0           2",
        "checkout    Canary     Paused        2/6   25          5/5    4        1           5",
    ]
    wide = render_rollout_list([ro], all_namespaces=True)
    assert wide.splitlines()[1].startswith("default    checkout    Canary     Paused")


@pytest.mark.parametrize(
    ("status", "meta", "line"),
    [
        ({"phase": "Healthy"}, {}, "Healthy"),
        ({"phase": "Paused", "message": "CanaryPauseStep"}, {}, "Paused - CanaryPauseStep"),
        (
            {"phase": "Healthy", "observedGeneration": "1"},
            {"generation": 2},
            "Progressing - waiting for rollout spec update to be observed",
        ),
        (
            {"phase": "Paused", "controllerPause": True},
            {},
            "Progressing - waiting for rollout to unpause",
        ),
        ({}, {}, "Progressing - waiting for rollout spec update to be observed"),
    ],
)
def test_status_line(status: dict[str, Any], meta: dict[str, Any], line: str) -> None:
    ro = rollout("web", created=ago(hours=1), replicas=1, status=status)
    ro["metadata"].update(meta)
    assert status_line(ro) == line
