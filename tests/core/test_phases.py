"""The stage table, the stage a status is in, and the phase rules of reference 1.12."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.core.canary_world import T0, basic_rollout, rollout_from

from rollwise.api.errors import IllegalTransitionError
from rollwise.core.canary_state import Progress, gather_facts
from rollwise.core.observed import Observed
from rollwise.core.phases import (
    PHASE_RULES,
    TRANSITIONS,
    PhaseFacts,
    Stage,
    Trigger,
    advance,
    rollout_phase,
    stage_of,
)

ALLOWED = [
    (stage, trigger, target)
    for stage, row in TRANSITIONS.items()
    for trigger, target in row.items()
]
FORBIDDEN = [
    (stage, trigger)
    for stage in Stage
    for trigger in Trigger
    if trigger not in TRANSITIONS.get(stage, {})
]


@pytest.mark.parametrize(("stage", "trigger", "target"), ALLOWED)
def test_every_listed_transition_leads_where_the_table_says(
    stage: Stage, trigger: Trigger, target: Stage
) -> None:
    assert advance(stage, trigger) is target


@pytest.mark.parametrize(("stage", "trigger"), FORBIDDEN)
def test_every_other_transition_is_illegal(stage: Stage, trigger: Trigger) -> None:
    with pytest.raises(IllegalTransitionError, match=stage.value):
        advance(stage, trigger)


def test_table_covers_every_stage_and_reaches_every_stage() -> None:
    assert set(TRANSITIONS) == set(Stage)
    reached = {target for row in TRANSITIONS.values() for target in row.values()}
    assert reached == set(Stage)


@pytest.mark.parametrize(
    ("stage", "trigger"),
    [
        (Stage.INITIAL, Trigger.ABORT),  # revision 1 is promoted at once, never aborted
        (Stage.INITIAL, Trigger.PAUSE),  # revision 1 skips the steps
        (Stage.STABLE, Trigger.STEP_COMPLETED),  # nothing to step through
        (Stage.ABORTED, Trigger.STEP_COMPLETED),  # an aborted update does not move on
        (Stage.ABORTED, Trigger.PAUSE),
        (Stage.STEPPING, Trigger.RETRY),  # only an abort can be retried
        (Stage.STEPPING, Trigger.RESUME),  # only a pause can be resumed
    ],
)
def test_the_transitions_that_must_never_happen(stage: Stage, trigger: Trigger) -> None:
    assert (stage, trigger) in FORBIDDEN


@pytest.mark.parametrize(
    ("status", "stage"),
    [
        ({}, Stage.INITIAL),
        ({"currentPodHash": "a", "abort": True}, Stage.INITIAL),
        ({"stableRS": "a", "currentPodHash": "a"}, Stage.STABLE),
        ({"stableRS": "a", "currentPodHash": "b"}, Stage.STEPPING),
        ({"stableRS": "a", "currentPodHash": "b", "controllerPause": True}, Stage.PAUSED),
        (
            {
                "stableRS": "a",
                "currentPodHash": "b",
                "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "x"}],
            },
            Stage.PAUSED,
        ),
        # The controller's abortedAt decides, not the flag a person sets.
        ({"stableRS": "a", "currentPodHash": "b", "abort": True}, Stage.STEPPING),
        ({"stableRS": "a", "currentPodHash": "b", "abortedAt": "t"}, Stage.ABORTED),
        ({"stableRS": "a", "currentPodHash": "a", "abortedAt": "t"}, Stage.ABORTED),
    ],
)
def test_stage_of_a_status(status: dict[str, Any], stage: Stage) -> None:
    assert stage_of(status) is stage


def _cond(type_: str, reason: str, message: str = "m") -> dict[str, str]:
    return {"type": type_, "status": "False", "reason": reason, "message": message}


HEALTHY_STATUS: dict[str, Any] = {
    "replicas": 5,
    "updatedReplicas": 5,
    "availableReplicas": 5,
    "stableRS": "a",
    "currentPodHash": "a",
}


@pytest.mark.parametrize(
    ("name", "status", "spec", "expected"),
    [
        ("healthy", {}, {}, ("Healthy", "")),
        (
            "invalid spec beats everything",
            {
                "conditions": [
                    _cond("Progressing", "RolloutAborted"),
                    _cond("InvalidSpec", "InvalidSpec", "bad"),
                ],
                "pauseConditions": [{"reason": "CanaryPauseStep"}],
            },
            {"spec_paused": True},
            ("Degraded", "InvalidSpec: bad"),
        ),
        (
            "aborted beats manual pause",
            {"conditions": [_cond("Progressing", "RolloutAborted", "Rollout aborted update")]},
            {"spec_paused": True},
            ("Degraded", "RolloutAborted: Rollout aborted update"),
        ),
        (
            "timed out beats manual pause",
            {"conditions": [_cond("Progressing", "ProgressDeadlineExceeded", "too slow")]},
            {"spec_paused": True},
            ("Degraded", "ProgressDeadlineExceeded: too slow"),
        ),
        (
            "manual pause beats pause conditions",
            {"pauseConditions": [{"reason": "CanaryPauseStep"}]},
            {"spec_paused": True},
            ("Paused", "manually paused"),
        ),
        (
            "pause condition",
            {"pauseConditions": [{"reason": "InconclusiveAnalysisRun"}]},
            {},
            ("Paused", "InconclusiveAnalysisRun"),
        ),
        (
            "restart pending",
            {"restartedAt": "2026-11-26T01:00:00Z"},
            {"restart_at": datetime(2026, 11, 26, 2, tzinfo=UTC)},
            ("Progressing", "rollout is restarting"),
        ),
        (
            "more to update",
            {"updatedReplicas": 4},
            {},
            ("Progressing", "more replicas need to be updated"),
        ),
        (
            "becoming available",
            {"availableReplicas": 4},
            {},
            ("Progressing", "updated replicas are still becoming available"),
        ),
        (
            "basic canary with old pods",
            {"replicas": 6},
            {},
            ("Progressing", "old replicas are pending termination"),
        ),
        (
            "traffic-routed keeps the old stable up",
            {"replicas": 6},
            {"traffic_routed": True},
            ("Healthy", ""),
        ),
        (
            "steps pending",
            {"stableRS": "b"},
            {},
            ("Progressing", "waiting for all steps to complete"),
        ),
        (
            "blue-green cutover",
            {"blueGreen": {"activeSelector": "b"}},
            {"blue_green": True},
            ("Progressing", "active service cutover pending"),
        ),
    ],
)
def test_phase_rules_first_match_wins(
    name: str, status: dict[str, Any], spec: dict[str, Any], expected: tuple[str, str]
) -> None:
    facts = PhaseFacts(status={**HEALTHY_STATUS, **status}, replicas=5, **spec)
    assert rollout_phase(facts) == expected, name


def test_phase_rules_are_listed_in_reference_order() -> None:
    names = [rule.name for rule in PHASE_RULES]
    assert names.index("invalid spec") < names.index("aborted or timed out")
    assert names.index("aborted or timed out") < names.index("manually paused")
    assert names.index("manually paused") < names.index("pause condition")
    assert names.index("pause condition") < names.index("restarting")
    assert names.index("more replicas to update") < names.index("steps pending")


def test_an_illegal_trigger_changes_nothing_in_a_decision() -> None:

    facts = gather_facts(rollout_from(basic_rollout([{"setWeight": 20}])), Observed(), T0)
    progress = Progress.start(facts)
    assert progress.stage is Stage.INITIAL
    before = vars(progress).copy()
    with pytest.raises(IllegalTransitionError):
        progress.fire(Trigger.ABORT, message="no")
    assert vars(progress) == before
