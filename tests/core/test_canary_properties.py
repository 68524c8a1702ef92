"""Whatever people do and however time moves, a decision keeps its promises: it never breaks
the stage table, settles, and then stays quiet - and an aborted canary always ends on stable."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from tests.core.canary_world import World, deployed, routed_rollout, seed_rollout

ANALYSIS = {"templates": [{"templateName": "rate"}]}
MOVES = hs.sampled_from(
    [
        "new-image",
        "wait-a-minute",
        "wait-an-hour",
        "promote",
        "promote-full",
        "abort",
        "retry",
        "pause",
        "unpause",
        "analysis-passes",
        "analysis-fails",
        "analysis-inconclusive",
    ]
)


def _move(world: World, move: str, counter: list[int]) -> None:
    if move == "new-image":
        counter[0] += 1
        world.set_image(f"argoproj/rollouts-demo:v{counter[0]}")
    elif move == "wait-a-minute":
        world.advance(61)
    elif move == "wait-an-hour":
        world.advance(3600)
    elif move == "promote":
        world.patch_status(pauseConditions=None)
    elif move == "promote-full":
        world.patch_status(promoteFull=True)
    elif move == "abort":
        world.patch_status(abort=True)
    elif move == "retry":
        world.patch_status(abort=False)
    elif move in ("pause", "unpause"):

        def paused(raw: dict[str, Any]) -> None:
            raw["spec"]["paused"] = move == "pause"

        world.edit(paused)
    else:
        phase = {"passes": "Successful", "fails": "Failed", "inconclusive": "Inconclusive"}
        wanted = phase[move.split("-")[1]]
        for name, run in world.runs.items():
            if run["status"].get("phase") == "Running" and not run["spec"].get("terminate"):
                world.set_run_phase(name, wanted, "decided by the test")


def _check_quiet(world: World) -> None:
    decision = world.decide()
    assert decision.actions == ()
    assert decision.status is world.rollout.status


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(moves=hs.lists(MOVES, min_size=1, max_size=12), routed=hs.booleans())
def test_any_sequence_of_moves_settles_and_stays_quiet(moves: list[str], routed: bool) -> None:
    steps: list[dict[str, Any]] = [
        {"setWeight": 20},
        {"pause": {"duration": "1m"}},
        {"analysis": ANALYSIS},
        {"setWeight": 60},
        {"pause": {}},
    ]
    raw = routed_rollout(steps) if routed else seed_rollout()
    if not routed:
        raw["spec"]["strategy"]["canary"]["steps"] = steps
    world = deployed(raw, router_answer=True)
    counter = [0]
    for move in moves:
        _move(world, move, counter)
        world.settle()
        _check_quiet(world)
        status = world.status
        replicas = sum(r["spec"]["replicas"] for r in world.replica_sets.values())
        assert replicas >= 5  # never below the desired size once settled
        if status.get("abortedAt") and status.get("stableRS") != status["currentPodHash"]:
            stable = status["stableRS"]
            sizes = {
                r["metadata"]["labels"]["rollouts-pod-template-hash"]: r["spec"]["replicas"]
                for r in world.replica_sets.values()
            }
            assert sizes[stable] == 5
            if routed:
                assert world.router_weight == 0
                assert world.services["myapp-canary"] == stable
