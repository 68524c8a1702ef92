"""Blue-green through the shared stage table: the stages each kind of update walks through
(phases.TRANSITIONS), and the phase messages of reference 1.12 rule 8."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tests.core.bluegreen_world import RED, YELLOW, blue_green_rollout, deployed, run_named
from tests.core.canary_world import World

from rollwise.core.phases import PhaseFacts, Stage, rollout_phase, stage_of

SMOKE = {"templates": [{"templateName": "smoke"}]}


def walk(world: World, *moves: Callable[[World], None]) -> list[Stage]:
    """Apply each move, settle, and record the distinct stages the status passed through (a
    resume and the switch and promotion it allows happen in one decision: Paused -> Stable)."""
    seen = [stage_of(world.status)]
    for move in moves:
        move(world)
        for _ in range(60):
            before = world.status
            decision = world.reconcile()
            stage = stage_of(world.status)
            if stage != seen[-1]:
                seen.append(stage)
            if not decision.actions and world.status == before:
                break
    return seen


def image(name: str) -> Callable[[World], None]:
    return lambda world: world.set_image(name)


def promote(world: World) -> None:
    world.patch_status(pauseConditions=None)


def abort(world: World) -> None:
    world.patch_status(abort=True)


def retry(world: World) -> None:
    world.patch_status(abort=False)


def run(suffix: str, phase: str) -> Callable[[World], None]:
    return lambda world: world.set_run_phase(run_named(world, suffix), phase)


def later(seconds: float) -> Callable[[World], None]:
    return lambda world: world.advance(seconds)


STABLE, STEPPING, PAUSED, ABORTED = Stage.STABLE, Stage.STEPPING, Stage.PAUSED, Stage.ABORTED


@pytest.mark.parametrize(
    ("spec", "moves", "stages"),
    [
        ({}, [image(YELLOW)], [STABLE, STEPPING, STABLE]),
        (
            {"autoPromotionEnabled": False},
            [image(YELLOW), promote],
            [STABLE, STEPPING, PAUSED, STABLE],
        ),
        (
            {"autoPromotionSeconds": 10},
            [image(YELLOW), later(10)],
            [STABLE, STEPPING, PAUSED, STABLE],
        ),
        (
            {"prePromotionAnalysis": SMOKE},
            [image(YELLOW), run("-pre", "Failed")],
            [STABLE, STEPPING, ABORTED],
        ),
        (
            {"prePromotionAnalysis": SMOKE},
            [image(YELLOW), run("-pre", "Inconclusive"), promote, run("-pre", "Successful")],
            [STABLE, STEPPING, PAUSED, STEPPING, STABLE],
        ),
        (
            {"postPromotionAnalysis": SMOKE},
            [image(YELLOW), run("-post", "Successful")],
            [STABLE, STEPPING, STABLE],
        ),
        (
            {"postPromotionAnalysis": SMOKE},
            [image(YELLOW), run("-post", "Error")],
            [STABLE, STEPPING, ABORTED],
        ),
        (
            {"autoPromotionEnabled": False},
            [image(YELLOW), abort, retry, promote],
            [STABLE, STEPPING, PAUSED, ABORTED, PAUSED, STABLE],
        ),
        (
            {"autoPromotionEnabled": False},
            [image(YELLOW), image("argoproj/rollouts-demo:blue")],
            [STABLE, STEPPING, PAUSED, STABLE],
        ),
        (
            {"autoPromotionEnabled": False},
            [image(YELLOW), image(RED), promote],
            [STABLE, STEPPING, PAUSED, STEPPING, PAUSED, STABLE],
        ),
    ],
    ids=[
        "auto promotion",
        "manual promotion",
        "auto promotion seconds",
        "pre-promotion fails",
        "pre-promotion inconclusive then promoted",
        "post-promotion passes",
        "post-promotion errors",
        "abort and retry",
        "undo while paused",
        "new revision while paused",
    ],
)
def test_the_stages_an_update_walks_through(
    spec: dict[str, Any], moves: list[Callable[[World], None]], stages: list[Stage]
) -> None:
    world = deployed(blue_green_rollout(**spec))
    assert walk(world, *moves) == stages


def test_revision_1_goes_from_initial_to_stable_in_its_first_decision() -> None:
    raw = blue_green_rollout()
    world = deployed(raw)
    assert stage_of(world.status) is Stage.STABLE
    assert world.status["stableRS"] == world.status["currentPodHash"]


HEALTHY: dict[str, Any] = {
    "replicas": 5,
    "updatedReplicas": 5,
    "availableReplicas": 5,
    "currentPodHash": "b",
    "stableRS": "b",
    "blueGreen": {"activeSelector": "b", "previewSelector": "b"},
}


@pytest.mark.parametrize(
    ("status", "post_analysis", "expected"),
    [
        ({}, False, ("Healthy", "")),
        ({"replicas": 10}, False, ("Healthy", "")),  # the old revision in its scale-down delay
        ({"blueGreen": {}}, False, ("Progressing", "active service cutover pending")),
        (
            {"blueGreen": {"activeSelector": "a"}},
            False,
            ("Progressing", "active service cutover pending"),
        ),
        (
            {"stableRS": "a"},
            True,
            ("Progressing", "waiting for analysis to complete"),
        ),
        (
            {
                "stableRS": "a",
                "blueGreen": {
                    "activeSelector": "b",
                    "postPromotionAnalysisRunStatus": {"name": "r", "status": "Running"},
                },
            },
            True,
            ("Progressing", "waiting for analysis to complete"),
        ),
        (
            {
                "stableRS": "a",
                "blueGreen": {
                    "activeSelector": "b",
                    "postPromotionAnalysisRunStatus": {"name": "r", "status": "Successful"},
                },
            },
            True,
            ("Progressing", "waiting for post-promotion verification to complete"),
        ),
        (
            {"stableRS": "a"},
            False,
            ("Progressing", "waiting for post-promotion verification to complete"),
        ),
        (
            {"pauseConditions": [{"reason": "BlueGreenPause", "startTime": "x"}]},
            False,
            ("Paused", "BlueGreenPause"),
        ),
    ],
    ids=[
        "healthy",
        "old pods in delay",
        "no active selector",
        "active on the old revision",
        "post-promotion not started",
        "post-promotion running",
        "post-promotion done, not yet stable",
        "no post-promotion analysis, not yet stable",
        "paused before the switch",
    ],
)
def test_blue_green_phase_messages(
    status: dict[str, Any], post_analysis: bool, expected: tuple[str, str]
) -> None:
    facts = PhaseFacts(
        status={**HEALTHY, **status},
        replicas=5,
        blue_green=True,
        post_promotion_analysis=post_analysis,
    )
    assert rollout_phase(facts) == expected
