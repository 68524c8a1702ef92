"""The status a canary decision writes: counts, conditions (reference 1.11), phase (1.12).

Who calls it: the canary engine, last in each decision. Conditions change only when their
status or reason changes (Argo's SetRolloutCondition), except Progressing, whose
lastUpdateTime moves on every sign of progress: the progress deadline counts from there and
skips the time spent paused, in pause/analysis steps, or waiting for a scale-down delay.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from rollwise.core import conditions as cond
from rollwise.core import steps as st
from rollwise.core.canary_state import (
    CanaryFacts,
    Outbox,
    Progress,
    Raw,
    RolloutFacts,
    selector_string,
)
from rollwise.core.experiments_steps import current_experiment_status
from rollwise.core.phases import PhaseFacts, Trigger, rollout_phase
from rollwise.core.timestamps import parse_time_or_none
from rollwise.core.traffic import Traffic

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600


def _counts(facts: CanaryFacts) -> Raw:
    all_rs = list(facts.observed.replica_sets)
    new = facts.new_rs
    updated = 0 if facts.creating or new is None else new.current_pods
    total = sum(rs.current_pods for rs in all_rs)
    return {
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": sum(rs.ready for rs in all_rs),
        "availableReplicas": sum(rs.available for rs in all_rs),
        "HPAReplicas": total,
    }


def _healthy(facts: CanaryFacts, status: Mapping[str, Any]) -> bool:
    steps = len(facts.steps)
    index = status.get("currentStepIndex")
    executed_all = not steps or index is None or index == steps
    stable = status.get("stableRS") or ""
    return (
        status.get("updatedReplicas") == facts.replicas
        and status.get("availableReplicas") == facts.replicas
        and executed_all
        and bool(stable)
        and stable == status.get("currentPodHash")
        and status.get("replicas") == facts.replicas
    )


def _made_progress(prev: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    def num(status: Mapping[str, Any], key: str) -> int:
        return int(status.get(key) or 0)

    old_prev = num(prev, "replicas") - num(prev, "updatedReplicas")
    old_new = num(new, "replicas") - num(new, "updatedReplicas")
    index_changed = (
        prev.get("currentStepIndex") is not None
        and new.get("currentStepIndex") is not None
        and prev.get("currentStepIndex") != new.get("currentStepIndex")
    )
    return (
        num(new, "updatedReplicas") != num(prev, "updatedReplicas")
        or old_new < old_prev
        or num(new, "readyReplicas") > num(prev, "readyReplicas")
        or num(new, "availableReplicas") > num(prev, "availableReplicas")
        or (new.get("stableRS") or "") != (prev.get("stableRS") or "")
        or index_changed
        or new.get("currentStepHash") != prev.get("currentStepHash")
    )


def _indefinite_step(facts: CanaryFacts, progress: Progress) -> bool:
    step = st.current_step(facts.steps, progress.index)
    return step is not None and (
        step.pause is not None or step.analysis is not None or step.experiment is not None
    )


def waiting_for_scale_down(facts: RolloutFacts, progress: Progress) -> bool:
    """Promoted, and an older revision waits for its scale-down deadline (not stuck)."""
    return progress.fully_promoted and any(
        rs.scale_down_deadline is not None and rs.scale_down_deadline > facts.now
        for rs in facts.observed.replica_sets
        if rs.pod_template_hash != facts.pod_hash
    )


def update_conditions(
    facts: RolloutFacts,
    progress: Progress,
    status: Raw,
    conditions: list[Raw],
    out: Outbox,
    *,
    healthy: bool,
    strategy_progress: bool = False,
    waiting: bool = False,
) -> None:
    """Healthy, Progressing (with the progress deadline, which may abort), Available, Paused and
    Completed, for either strategy. The strategy says whether the rollout is `healthy`, whether
    it made progress of its own kind (`strategy_progress`, e.g. a Service switched) and whether
    it is `waiting` on purpose (an indefinite step, a scale-down delay), which stops the
    progress deadline."""
    now = facts.now_text
    prev = facts.prev
    name = facts.new_rs.name if facts.new_rs is not None else facts.rollout.name
    paused = bool(facts.rollout.spec.paused) or bool(progress.pauses)

    # Healthy
    became_unhealthy = False
    if not paused and healthy:
        cond.set_condition(
            conditions,
            type_=cond.HEALTHY,
            status="True",
            reason=cond.ROLLOUT_HEALTHY,
            message=cond.HEALTHY_MESSAGE,
            now=now,
        )
    elif cond.find_condition(conditions, cond.HEALTHY) is not None:
        became_unhealthy = cond.set_condition(
            conditions,
            type_=cond.HEALTHY,
            status="False",
            reason=cond.ROLLOUT_HEALTHY,
            message=cond.NOT_HEALTHY_MESSAGE,
            now=now,
        )

    # Progressing: the deadline first (it may abort), then the condition itself.
    current = cond.find_condition(conditions, cond.PROGRESSING)
    current_reason = current.get("reason") if current else None
    progressed = _made_progress(prev, status) or strategy_progress or became_unhealthy
    exempt = (
        progress.aborted
        or paused
        or healthy
        or progressed
        or current is None
        or current_reason in (cond.ROLLOUT_ABORTED, cond.ROLLOUT_PAUSED)
        or waiting
    )
    if not exempt and current is not None:
        seconds = facts.rollout.spec.progress_deadline_seconds
        seconds = DEFAULT_PROGRESS_DEADLINE_SECONDS if seconds is None else seconds
        last = parse_time_or_none(current.get("lastUpdateTime")) or facts.now
        deadline = last + timedelta(seconds=seconds)
        if current_reason == cond.PROGRESS_DEADLINE_EXCEEDED or facts.now > deadline:
            message = cond.REPLICA_SET_TIMED_OUT_MESSAGE.format(name)
            if facts.rollout.spec.progress_deadline_abort and not progress.fully_promoted:
                progress.fire(Trigger.ABORT, message=message)
            else:
                cond.set_condition(
                    conditions,
                    type_=cond.PROGRESSING,
                    status="False",
                    reason=cond.PROGRESS_DEADLINE_EXCEEDED,
                    message=message,
                    now=now,
                )
        else:
            out.requeue_at(deadline + timedelta(seconds=1))

    if progress.aborted:
        message = cond.ROLLOUT_ABORTED_MESSAGE.format(facts.revision)
        if progress.abort_message:
            message = f"{message}: {progress.abort_message}"
        if cond.set_condition(
            conditions,
            type_=cond.PROGRESSING,
            status="False",
            reason=cond.ROLLOUT_ABORTED,
            message=message,
            now=now,
        ):
            out.event("RolloutAborted", message, warning=True)
    elif paused:
        cond.set_condition(
            conditions,
            type_=cond.PROGRESSING,
            status="Unknown",
            reason=cond.ROLLOUT_PAUSED,
            message=cond.PAUSED_MESSAGE,
            now=now,
        )
    elif healthy:
        cond.set_condition(
            conditions,
            type_=cond.PROGRESSING,
            status="True",
            reason=cond.NEW_REPLICA_SET_AVAILABLE,
            message=cond.REPLICA_SET_COMPLETED_MESSAGE.format(name),
            now=now,
        )
    elif current is None or progressed:
        if current is None and facts.creating:
            reason = cond.NEW_REPLICA_SET_CREATED
            message = cond.NEW_REPLICA_SET_MESSAGE.format(name)
        elif progress.fully_promoted and became_unhealthy:
            reason, message = cond.REPLICA_SET_NOT_AVAILABLE, cond.NOT_AVAILABLE_MESSAGE
        else:
            reason = cond.REPLICA_SET_UPDATED
            message = cond.REPLICA_SET_PROGRESSING_MESSAGE.format(name)
        cond.refresh_progressing(conditions, reason=reason, message=message, now=now)
    elif current_reason == cond.ROLLOUT_PAUSED:
        cond.set_condition(
            conditions,
            type_=cond.PROGRESSING,
            status="Unknown",
            reason=cond.ROLLOUT_RESUMED,
            message=cond.RESUMED_MESSAGE,
            now=now,
        )
    elif current_reason == cond.ROLLOUT_ABORTED:
        cond.set_condition(
            conditions,
            type_=cond.PROGRESSING,
            status="Unknown",
            reason=cond.ROLLOUT_RETRY,
            message=cond.RETRY_MESSAGE,
            now=now,
        )

    # Available
    available = int(status.get("availableReplicas") or 0) >= facts.replicas
    cond.set_condition(
        conditions,
        type_=cond.AVAILABLE,
        status="True" if available else "False",
        reason=cond.AVAILABLE_REASON,
        message=cond.AVAILABLE_MESSAGE if available else cond.NOT_AVAILABLE_MESSAGE,
        now=now,
    )

    # Paused (not touched while the abort condition stands, as in Argo)
    progressing = cond.find_condition(conditions, cond.PROGRESSING)
    abort_standing = progressing is not None and progressing.get("reason") == cond.ROLLOUT_ABORTED
    paused_condition = cond.find_condition(conditions, cond.PAUSED)
    paused_true = paused_condition is not None and paused_condition.get("status") == "True"
    if paused != paused_true and not abort_standing:
        cond.set_condition(
            conditions,
            type_=cond.PAUSED,
            status="True" if paused else "False",
            reason=cond.ROLLOUT_PAUSED,
            message=cond.PAUSED_MESSAGE,
            now=now,
        )

    # Completed
    completed = progress.fully_promoted
    if (
        cond.set_condition(
            conditions,
            type_=cond.COMPLETED,
            status="True" if completed else "False",
            reason=cond.ROLLOUT_COMPLETED,
            message=cond.ROLLOUT_COMPLETED,
            now=now,
        )
        and not completed
    ):
        out.event(
            "RolloutNotCompleted",
            f"Rollout not completed, started update to revision {facts.revision} "
            f"({facts.pod_hash})",
        )


def assemble_status(facts: CanaryFacts, progress: Progress, traffic: Traffic, out: Outbox) -> Raw:
    prev = facts.prev
    status: Raw = {}
    status["currentPodHash"] = facts.pod_hash
    status["currentStepHash"] = facts.step_hash
    if facts.steps and progress.index is not None:
        status["currentStepIndex"] = progress.index
    status.update(_counts(facts))
    status["selector"] = selector_string(facts.rollout.spec.selector)
    if progress.stable_hash:
        status["stableRS"] = progress.stable_hash
    if progress.restarted_at:
        status["restartedAt"] = progress.restarted_at
    if prev.get("collisionCount") is not None:
        status["collisionCount"] = prev["collisionCount"]
    generation = facts.rollout.metadata.generation
    if generation is not None:
        status["observedGeneration"] = str(generation)

    conditions = [
        dict(c) for c in prev.get("conditions") or () if c.get("type") != cond.INVALID_SPEC
    ]
    update_conditions(
        facts,
        progress,
        status,
        conditions,
        out,
        healthy=_healthy(facts, status),
        waiting=_indefinite_step(facts, progress) or waiting_for_scale_down(facts, progress),
    )
    # The progress deadline may have aborted: the stage-owned fields are written after it.
    if facts.steps and progress.index is not None:
        status["currentStepIndex"] = progress.index

    if progress.abort:
        status["abort"] = True
    if progress.aborted_at:
        status["abortedAt"] = progress.aborted_at
    if progress.pauses:
        status["pauseConditions"] = progress.pauses
    if progress.controller_pause:
        status["controllerPause"] = True
    if progress.promote_full and not progress.fully_promoted:
        status["promoteFull"] = True
    status["conditions"] = conditions

    canary_status: Raw = {}
    if progress.step_run is not None:
        canary_status["currentStepAnalysisRunStatus"] = progress.step_run
    if progress.background_run is not None:
        canary_status["currentBackgroundAnalysisRunStatus"] = progress.background_run
    current_experiment = current_experiment_status(facts, progress)
    if current_experiment is not None:
        canary_status["currentExperiment"] = current_experiment
    if traffic.weights is not None:
        canary_status["weights"] = traffic.weights
    status["canary"] = canary_status

    phase, message = rollout_phase(
        PhaseFacts(
            status=status,
            replicas=facts.replicas,
            spec_paused=bool(facts.rollout.spec.paused),
            restart_at=parse_time_or_none(facts.rollout.spec.restart_at),
            traffic_routed=facts.traffic_routed,
        )
    )
    status["phase"] = phase
    if message:
        status["message"] = message

    was_paused = bool(prev.get("pauseConditions"))
    if was_paused != bool(progress.pauses):
        if progress.pauses:
            reason = progress.pauses[0].get("reason")
            out.event("RolloutPaused", f"{cond.PAUSED_MESSAGE} ({reason})")
        elif not progress.aborted:
            out.event("RolloutResumed", cond.RESUMED_MESSAGE)
    return status
