"""Where an update stands, what may move it, and the phase a person sees - all as data.

Theory of operation
-------------------
A canary Rollout is always in one *stage* of its update lifecycle, derived from the fields the
controller owns in its status (never from the flags a person sets):

    Initial   no stable revision yet: revision 1 is promoted at once, steps are skipped
    Stable    the desired revision is the stable one: nothing to do
    Stepping  an update is running its steps
    Paused    the controller paused the update (pause step, inconclusive analysis)
    Aborted   the update was aborted: traffic and pods go back to the stable revision

A decision moves the stage only through `advance(stage, trigger)`, which looks the pair up in
`TRANSITIONS`. A pair that is not in the table is a bug in the engine: `advance` raises
IllegalTransitionError and nothing changes. Requests from people (`status.abort`,
`status.promoteFull`, cleared pause conditions, `spec.paused`) are inputs the engine turns into
triggers; the stage only changes when the controller accepts them.

The phase and message shown to people (Healthy / Progressing / Paused / Degraded) are computed
from the status by `PHASE_RULES`, an ordered table where the first matching rule wins (reference
section 1.12).

Who calls it: the canary engine (`rollwise.core.canary`); the CLI and dashboard may use
`rollout_phase` and the tables to explain a state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from rollwise.api.errors import IllegalTransitionError
from rollwise.core import conditions as cond
from rollwise.core.timestamps import parse_time_or_none


class Stage(StrEnum):
    INITIAL = "Initial"
    STABLE = "Stable"
    STEPPING = "Stepping"
    PAUSED = "Paused"
    ABORTED = "Aborted"


class Trigger(StrEnum):
    NEW_REVISION = "NewRevision"
    """The pod template or the steps changed: the update starts over from step 0."""
    ROLLBACK_TO_STABLE = "RollbackToStable"
    """The template (or only the steps) changed back to the stable revision: steps are skipped."""
    FAST_ROLLBACK = "FastRollback"
    """The template went back to a revision within `rollbackWindow`: steps are skipped."""
    STEP_COMPLETED = "StepCompleted"
    PAUSE = "Pause"
    """A pause step was reached, or an analysis run was Inconclusive."""
    RESUME = "Resume"
    """A person cleared the pause conditions (promote) while no pause step was waiting."""
    ABORT = "Abort"
    """A person set status.abort, or an analysis failed, or the progress deadline aborted."""
    RETRY = "Retry"
    """A person cleared status.abort: the update starts again from step 0."""
    PROMOTE_FULL = "PromoteFull"
    """A person set status.promoteFull: all remaining steps are skipped."""
    PROMOTE = "Promote"
    """The desired revision becomes the stable one."""


TRANSITIONS: Mapping[Stage, Mapping[Trigger, Stage]] = {
    Stage.INITIAL: {
        Trigger.NEW_REVISION: Stage.INITIAL,
        Trigger.PROMOTE: Stage.STABLE,
    },
    Stage.STABLE: {
        Trigger.NEW_REVISION: Stage.STEPPING,
        Trigger.FAST_ROLLBACK: Stage.STEPPING,
        # Only the steps changed: nothing to roll out.
        Trigger.ROLLBACK_TO_STABLE: Stage.STABLE,
        # Argo lets a person abort a fully promoted rollout; it then reports Degraded.
        Trigger.ABORT: Stage.ABORTED,
        # The stable ReplicaSet vanished and was recreated.
        Trigger.PROMOTE: Stage.STABLE,
    },
    Stage.STEPPING: {
        Trigger.NEW_REVISION: Stage.STEPPING,
        Trigger.ROLLBACK_TO_STABLE: Stage.STABLE,
        Trigger.FAST_ROLLBACK: Stage.STEPPING,
        Trigger.STEP_COMPLETED: Stage.STEPPING,
        Trigger.PAUSE: Stage.PAUSED,
        Trigger.ABORT: Stage.ABORTED,
        Trigger.PROMOTE_FULL: Stage.STEPPING,
        Trigger.PROMOTE: Stage.STABLE,
    },
    Stage.PAUSED: {
        Trigger.NEW_REVISION: Stage.STEPPING,
        Trigger.ROLLBACK_TO_STABLE: Stage.STABLE,
        Trigger.FAST_ROLLBACK: Stage.STEPPING,
        # A timed pause ran out, or the pause step was promoted.
        Trigger.STEP_COMPLETED: Stage.STEPPING,
        Trigger.PAUSE: Stage.PAUSED,
        Trigger.RESUME: Stage.STEPPING,
        Trigger.ABORT: Stage.ABORTED,
        Trigger.PROMOTE_FULL: Stage.STEPPING,
        # Pauses never block a promotion that is due (e.g. the stable ReplicaSet vanished).
        Trigger.PROMOTE: Stage.STABLE,
    },
    Stage.ABORTED: {
        Trigger.NEW_REVISION: Stage.STEPPING,
        Trigger.ROLLBACK_TO_STABLE: Stage.STABLE,
        Trigger.FAST_ROLLBACK: Stage.STEPPING,
        Trigger.RETRY: Stage.STEPPING,
        Trigger.PROMOTE_FULL: Stage.STEPPING,
        # Only when the stable ReplicaSet vanished: there is nothing to go back to.
        Trigger.PROMOTE: Stage.STABLE,
    },
}


def advance(stage: Stage, trigger: Trigger) -> Stage:
    """The stage after `trigger`; raises IllegalTransitionError if the table does not allow it."""
    try:
        return TRANSITIONS[stage][trigger]
    except KeyError:
        raise IllegalTransitionError(
            f"no transition from stage {stage.value} on {trigger.value}"
        ) from None


def stage_of(status: Mapping[str, Any]) -> Stage:
    """The stage a raw status is in, from the fields the controller owns."""
    stable = status.get("stableRS") or ""
    if not stable:
        return Stage.INITIAL
    if status.get("abortedAt"):
        return Stage.ABORTED
    if stable == (status.get("currentPodHash") or ""):
        return Stage.STABLE
    if status.get("pauseConditions") or status.get("controllerPause"):
        return Stage.PAUSED
    return Stage.STEPPING


# --- phase and message (reference 1.12) -------------------------------------------------------

HEALTHY = "Healthy"
PROGRESSING = "Progressing"
PAUSED = "Paused"
DEGRADED = "Degraded"


@dataclass(frozen=True, slots=True)
class PhaseFacts:
    """What the phase rules read: a few spec fields and the raw status being written."""

    status: Mapping[str, Any]
    replicas: int
    spec_paused: bool = False
    restart_at: datetime | None = None
    blue_green: bool = False
    traffic_routed: bool = False
    post_promotion_analysis: bool = False
    """Blue-green with `postPromotionAnalysis`: the new revision waits for it after the switch."""


@dataclass(frozen=True, slots=True)
class PhaseRule:
    name: str
    phase: str
    message: Callable[[PhaseFacts], str | None]
    """The message when the rule applies, None when it does not."""


def _invalid_spec(facts: PhaseFacts) -> str | None:
    for condition in facts.status.get("conditions") or ():
        if condition.get("type") == cond.INVALID_SPEC:
            return f"{cond.INVALID_SPEC}: {condition.get('message', '')}"
    return None


def _aborted_or_timed_out(facts: PhaseFacts) -> str | None:
    for condition in facts.status.get("conditions") or ():
        reason = condition.get("reason")
        if reason in (cond.ROLLOUT_ABORTED, cond.PROGRESS_DEADLINE_EXCEEDED):
            return f"{reason}: {condition.get('message', '')}"
    return None


def _manually_paused(facts: PhaseFacts) -> str | None:
    return "manually paused" if facts.spec_paused else None


def _pause_condition(facts: PhaseFacts) -> str | None:
    for pause in facts.status.get("pauseConditions") or ():
        return str(pause.get("reason", ""))
    return None


def _restarting(facts: PhaseFacts) -> str | None:
    if facts.restart_at is None:
        return None
    restarted = parse_time_or_none(facts.status.get("restartedAt"))
    if restarted is None or restarted != facts.restart_at:
        return "rollout is restarting"
    return None


def _more_to_update(facts: PhaseFacts) -> str | None:
    if int(facts.status.get("updatedReplicas") or 0) < facts.replicas:
        return "more replicas need to be updated"
    return None


def _becoming_available(facts: PhaseFacts) -> str | None:
    status = facts.status
    if int(status.get("availableReplicas") or 0) < int(status.get("updatedReplicas") or 0):
        return "updated replicas are still becoming available"
    return None


_COMPLETED_RUN_PHASES = ("Successful", "Failed", "Error", "Inconclusive")


def _blue_green_pending(facts: PhaseFacts) -> str | None:
    if not facts.blue_green:
        return None
    status = facts.status
    active = (status.get("blueGreen") or {}).get("activeSelector") or ""
    if not active or active != status.get("currentPodHash"):
        return "active service cutover pending"
    if not status.get("stableRS") or status.get("stableRS") != status.get("currentPodHash"):
        run = (status.get("blueGreen") or {}).get("postPromotionAnalysisRunStatus") or {}
        if facts.post_promotion_analysis and run.get("status") not in _COMPLETED_RUN_PHASES:
            return "waiting for analysis to complete"
        return "waiting for post-promotion verification to complete"
    return None


def _old_replicas_pending(facts: PhaseFacts) -> str | None:
    if facts.blue_green or facts.traffic_routed:
        # Traffic-routed canaries keep the old stable up for scaleDownDelaySeconds on purpose.
        return None
    status = facts.status
    if int(status.get("replicas") or 0) > int(status.get("updatedReplicas") or 0):
        return "old replicas are pending termination"
    return None


def _steps_pending(facts: PhaseFacts) -> str | None:
    if facts.blue_green:
        return None
    status = facts.status
    if not status.get("stableRS") or status.get("stableRS") != status.get("currentPodHash"):
        return "waiting for all steps to complete"
    return None


PHASE_RULES: tuple[PhaseRule, ...] = (
    PhaseRule("invalid spec", DEGRADED, _invalid_spec),
    PhaseRule("aborted or timed out", DEGRADED, _aborted_or_timed_out),
    PhaseRule("manually paused", PAUSED, _manually_paused),
    PhaseRule("pause condition", PAUSED, _pause_condition),
    PhaseRule("restarting", PROGRESSING, _restarting),
    PhaseRule("more replicas to update", PROGRESSING, _more_to_update),
    PhaseRule("updated replicas becoming available", PROGRESSING, _becoming_available),
    PhaseRule("blue-green cutover", PROGRESSING, _blue_green_pending),
    PhaseRule("old replicas pending termination", PROGRESSING, _old_replicas_pending),
    PhaseRule("steps pending", PROGRESSING, _steps_pending),
)


def rollout_phase(facts: PhaseFacts) -> tuple[str, str]:
    """(phase, message) by the first rule of PHASE_RULES that applies; Healthy otherwise."""
    for rule in PHASE_RULES:
        message = rule.message(facts)
        if message is not None:
            return rule.phase, message
    return HEALTHY, ""
