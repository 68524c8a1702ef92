"""The canary engine: one decision for one canary Rollout (reference sections 1.5-1.12, 4.2).

Who calls it: `rollwise.core.rollouts.decide`, after the spec passed the checks the core depends on.

Flow of one decision (the order is Argo's, `rollout/canary.go`):

1. a new pod template or step list starts a new revision (`phases.Trigger.NEW_REVISION`),
   a rollback to the stable revision skips the steps;
2. the ReplicaSet of the desired revision is created or its revision renumbered;
3. what people asked for in the status (abort, retry, promote) becomes a trigger;
4. pod restarts, revision-history cleanup, Service selectors;
5. the traffic weight (traffic-routed canaries), never ahead of the canary's capacity;
6. analysis runs: create, terminate, and read their verdicts (pause or abort);
7. ReplicaSet scaling - stable, then new, then older ones, one of them per decision - and,
   when nothing had to scale, the pause of a pause step;
8. promotion or completion of the current step;
9. the status: counts, conditions (progress deadline), phase and message.

Stage changes happen only through `canary_state.Progress.fire`, which consults `phases.TRANSITIONS`.
Actions and events are emitted only on transitions or while the world lags behind the
decision, so the same inputs give the same status and no further actions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rollwise.api import models as api
from rollwise.api.errors import IllegalTransitionError
from rollwise.core import actions as act
from rollwise.core import steps as st
from rollwise.core.analysis_runs import (
    DEFAULT_RUN_HISTORY_LIMIT,
    INCONCLUSIVE_PAUSE,
    RunsContext,
    reconcile_runs,
)
from rollwise.core.canary_abort import record_abort_stage
from rollwise.core.canary_metadata import reconcile_ephemeral_metadata
from rollwise.core.canary_state import CANARY_PAUSE, CanaryFacts, Outbox, Progress, gather_facts
from rollwise.core.decisions import Decision
from rollwise.core.experiments_steps import INCONCLUSIVE_EXPERIMENT, reconcile_experiments
from rollwise.core.observed import Observed
from rollwise.core.phases import Stage, Trigger, stage_of
from rollwise.core.rollout_status import assemble_status
from rollwise.core.scaling import clean_history, restart_pods, scale_replica_sets
from rollwise.core.timestamps import parse_time_or_none
from rollwise.core.traffic import (
    Traffic,
    at_desired_counts,
    new_revision_ready,
    reconcile_services,
    reconcile_traffic,
)


def _rollback_within_window(facts: CanaryFacts) -> bool:
    window = facts.rollout.spec.rollback_window
    new, stable = facts.new_rs, facts.stable_rs
    if window is None or not window.revisions or facts.creating or new is None or stable is None:
        return False
    if not new.created_at < stable.created_at:
        return False
    between = sum(
        1
        for rs in facts.observed.replica_sets
        if new.created_at < rs.created_at < stable.created_at
    )
    return between < window.revisions


def _start_revision(facts: CanaryFacts, progress: Progress, out: Outbox) -> None:
    previous_stage = progress.stage
    if progress.stage is Stage.INITIAL:
        progress.fire(Trigger.NEW_REVISION)
        return
    if not facts.creating and facts.pod_hash == progress.stable_hash:
        progress.fire(Trigger.ROLLBACK_TO_STABLE)
        if facts.steps:
            out.event("SkipSteps", "Rollback to stable ReplicaSets")
    elif _rollback_within_window(facts):
        # Argo skips the steps here for a ReplicaSet that still runs, and for one scaled down
        # jumps to the end at its next reconcile: the same end, without the detour.
        progress.fire(Trigger.FAST_ROLLBACK)
        if facts.steps and facts.new_rs is not None and facts.new_rs.replicas:
            out.event("SkipSteps", "Rollback to active ReplicaSets within RollbackWindow")
    else:
        progress.fire(Trigger.NEW_REVISION)
    routing = facts.canary.traffic_routing
    if (
        routing is not None
        and routing.managed_routes
        and previous_stage in (Stage.STEPPING, Stage.PAUSED)
    ):
        # Header and mirror routes of the interrupted update point at a canary that is gone.
        out.actions.append(act.RemoveManagedRoutes())


def _ensure_replica_set(facts: CanaryFacts, out: Outbox) -> None:
    new = facts.new_rs
    assert new is not None
    if facts.creating:
        out.actions.append(
            act.CreateReplicaSet(
                name=new.name,
                pod_template_hash=new.pod_template_hash,
                revision=facts.revision,
                template=new.template,
                replicas=0,
            )
        )
        out.event(
            "NewReplicaSetCreated", f"Created ReplicaSet {new.name} (revision {facts.revision})"
        )
        out.event("RolloutUpdated", f"Rollout updated to revision {facts.revision}")
    elif new.revision != facts.revision:
        # An old revision is the desired one again: it becomes the newest revision.
        out.actions.append(act.SetReplicaSetRevision(new.name, facts.revision))
        out.event("RolloutUpdated", f"Rollout updated to revision {facts.revision}")


def _accept_requests(facts: CanaryFacts, progress: Progress, *, new_revision: bool) -> None:
    """Turn what a person wrote into the status into triggers the table allows."""
    prev = facts.prev
    if progress.stage is Stage.INITIAL:
        return  # revision 1 is promoted at once; abort and promote have nothing to act on
    if new_revision:
        return  # a new revision discards requests made about the previous one
    if prev.get("abort") and not prev.get("abortedAt") and progress.stage is not Stage.ABORTED:
        progress.fire(Trigger.ABORT)
    elif not prev.get("abort") and progress.stage is Stage.ABORTED:
        # Retrying a rollout whose desired revision is the stable one has nothing to redo.
        progress.fire(Trigger.PROMOTE if progress.fully_promoted else Trigger.RETRY)
    if progress.promote_full and not progress.fully_promoted:
        progress.fire(Trigger.PROMOTE_FULL)
    elif progress.promote_full:
        progress.promote_full = False
    if progress.stage is Stage.PAUSED and not progress.pauses and progress.controller_pause:
        step = st.current_step(facts.steps, progress.index)
        if step is None or step.pause is None:
            # The pause conditions were cleared (promote) and no pause step is waiting.
            progress.fire(Trigger.RESUME)


def _reconcile_pause_step(facts: CanaryFacts, progress: Progress, out: Outbox) -> None:
    if facts.rollout.spec.paused or progress.promote_full or progress.aborted:
        return
    if progress.stage in (Stage.INITIAL, Stage.STABLE):
        return
    step = st.current_step(facts.steps, progress.index)
    if step is None or step.pause is None:
        return
    condition = next((p for p in progress.pauses if p.get("reason") == CANARY_PAUSE), None)
    if condition is None:
        if not progress.controller_pause:
            progress.fire(Trigger.PAUSE, reason=CANARY_PAUSE)
        return
    seconds = st.pause_seconds(step.pause)
    start = parse_time_or_none(condition.get("startTime"))
    if seconds is not None and start is not None:
        out.requeue_at(start + timedelta(seconds=seconds))


def _full_promotion_reason(facts: CanaryFacts, progress: Progress) -> str:
    new = facts.new_rs
    if facts.stable_rs is None:
        return "Initial deploy"
    if progress.aborted:
        return ""
    if (
        facts.creating
        or new is None
        or not new_revision_ready(facts, new.available, facts.replicas)
    ):
        return ""
    if progress.promote_full:
        return "Full promotion requested"
    if _rollback_within_window(facts):
        return "Rollback within window"
    if not facts.steps or progress.index == len(facts.steps):
        return f"Completed all {len(facts.steps)} canary steps"
    return ""


def _pause_step_completed(facts: CanaryFacts, progress: Progress, pause: api.RolloutPause) -> bool:
    if progress.baseline_controller_pause and CANARY_PAUSE not in progress.baseline_pause_reasons:
        return True  # promoted by a person
    seconds = st.pause_seconds(pause)
    if seconds is None:
        return False
    condition = next(
        (p for p in facts.prev.get("pauseConditions") or () if p.get("reason") == CANARY_PAUSE),
        None,
    )
    if condition is None or CANARY_PAUSE not in progress.baseline_pause_reasons:
        return False
    start = parse_time_or_none(condition.get("startTime"))
    return start is not None and facts.now >= start + timedelta(seconds=seconds)


def _step_completed(
    facts: CanaryFacts, progress: Progress, traffic: Traffic, step: api.CanaryStep
) -> bool:
    if step.pause is not None:
        return _pause_step_completed(facts, progress, step.pause)
    if step.set_canary_scale is not None:
        return at_desired_counts(facts, progress)
    if step.set_weight is not None:
        return at_desired_counts(facts, progress) and not traffic.verify_pending
    if step.analysis is not None:
        run = progress.step_run or {}
        return run.get("status") == "Successful"
    if step.experiment is not None:
        return (progress.experiment or {}).get("phase") == "Successful"
    return step.set_header_route is not None or step.set_mirror_route is not None


def _promote_or_step(facts: CanaryFacts, progress: Progress, traffic: Traffic, out: Outbox) -> None:
    if progress.stage is Stage.STABLE:
        return
    reason = _full_promotion_reason(facts, progress)
    if reason and facts.traffic_routed and traffic.verify_pending and facts.stable_rs is not None:
        # The last weight must be confirmed before the old revision is let go (reference 4.4).
        reason = ""
    if reason and not progress.fully_promoted:
        progress.fire(Trigger.PROMOTE)
        out.event(
            "RolloutCompleted",
            f"Rollout completed update to revision {facts.revision} ({facts.pod_hash}): {reason}",
        )
        routing = facts.canary.traffic_routing
        if routing is not None and routing.managed_routes:
            out.actions.append(act.RemoveManagedRoutes())
        return
    if progress.aborted or facts.rollout.spec.paused:
        return
    step = st.current_step(facts.steps, progress.index)
    if step is None or progress.index is None:
        return
    if not _step_completed(facts, progress, traffic, step):
        return
    if facts.traffic_routed and facts.stable_rs is not None:
        if step.set_header_route is not None:
            out.actions.append(act.SetHeaderRoute(step.set_header_route))
        if step.set_mirror_route is not None:
            out.actions.append(act.SetMirrorRoute(step.set_mirror_route))
    progress.fire(Trigger.STEP_COMPLETED)
    out.event(
        "RolloutStepCompleted",
        f"Rollout step {progress.index}/{len(facts.steps)} completed ({st.step_label(step)})",
    )


def _runs_context(facts: CanaryFacts, progress: Progress) -> RunsContext:
    step = st.current_step(facts.steps, progress.index)
    new = facts.new_rs
    rollback_into_delay = new is not None and new.scale_down_deadline is not None
    selector = facts.rollout.spec.selector
    return RunsContext(
        rollout_name=facts.rollout.name,
        pod_hash=facts.pod_hash,
        stable_hash=facts.stable_rs.pod_template_hash if facts.stable_rs else "",
        revision=facts.revision,
        step_index=progress.index,
        step_analysis=step.analysis if step is not None else None,
        background=facts.canary.analysis,
        selector_labels=dict((selector.match_labels if selector else None) or {}),
        skip_all=(
            progress.aborted
            or progress.promote_full
            or rollback_into_delay
            or not progress.stable_hash
            or facts.stable_rs is None
        ),
        fully_promoted=progress.fully_promoted,
        paused=bool(progress.pauses) or progress.aborted,
        inconclusive_paused=any(p.get("reason") == INCONCLUSIVE_PAUSE for p in progress.pauses),
        controller_pause=progress.baseline_controller_pause,
        was_aborted=bool(facts.prev.get("abortedAt")),
        runs=facts.observed.analysis_runs,
        step_run_status=progress.step_run,
        background_run_status=progress.background_run,
        **_history_limits(facts.rollout),
    )


def _history_limits(rollout: api.Rollout) -> dict[str, int]:
    limits = rollout.spec.analysis
    successful = limits.successful_run_history_limit if limits else None
    unsuccessful = limits.unsuccessful_run_history_limit if limits else None
    return {
        "successful_history_limit": DEFAULT_RUN_HISTORY_LIMIT if successful is None else successful,
        "unsuccessful_history_limit": (
            DEFAULT_RUN_HISTORY_LIMIT if unsuccessful is None else unsuccessful
        ),
    }


def decide_canary(rollout: api.Rollout, observed: Observed, now: datetime) -> Decision:
    """The decision for a canary Rollout whose spec passed `rollouts` checks."""
    facts = gather_facts(rollout, observed, now)
    progress = Progress.start(facts)
    out = Outbox(facts)

    if (
        facts.prev.get("currentPodHash") != facts.pod_hash
        or facts.prev.get("currentStepHash") != facts.step_hash
    ):
        _start_revision(facts, progress, out)
    _ensure_replica_set(facts, out)
    reconcile_ephemeral_metadata(facts, out)
    _accept_requests(facts, progress, new_revision=bool(progress.fired))
    if progress.stage is Stage.ABORTED and Trigger.ABORT in progress.fired:
        routing = facts.canary.traffic_routing
        if routing is not None and routing.managed_routes:
            out.actions.append(act.RemoveManagedRoutes())

    restart_pods(facts, progress, out)
    clean_history(facts, out)
    reconcile_services(facts, progress, out)
    traffic = reconcile_traffic(facts, progress, out)

    experiments = reconcile_experiments(facts, progress)
    out.actions.extend(experiments.actions)
    progress.experiment = experiments.current

    runs = reconcile_runs(_runs_context(facts, progress))
    out.actions.extend(runs.actions)
    progress.step_run = runs.step_run_status
    progress.background_run = runs.background_run_status
    pause_added = False
    if runs.abort_message is not None and progress.stage is not Stage.ABORTED:
        progress.fire(Trigger.ABORT, message=runs.abort_message)
        routing = facts.canary.traffic_routing
        if routing is not None and routing.managed_routes:
            out.actions.append(act.RemoveManagedRoutes())
    elif (
        runs.pause
        and progress.stage in (Stage.STEPPING, Stage.PAUSED)
        and all(p.get("reason") != INCONCLUSIVE_PAUSE for p in progress.pauses)
    ):
        progress.fire(Trigger.PAUSE, reason=INCONCLUSIVE_PAUSE)
        pause_added = True
    if experiments.abort_message is not None and progress.stage is not Stage.ABORTED:
        progress.fire(Trigger.ABORT, message=experiments.abort_message)
        routing = facts.canary.traffic_routing
        if routing is not None and routing.managed_routes:
            out.actions.append(act.RemoveManagedRoutes())
    elif (
        experiments.pause
        and progress.stage in (Stage.STEPPING, Stage.PAUSED)
        and all(p.get("reason") != INCONCLUSIVE_EXPERIMENT for p in progress.pauses)
    ):
        progress.fire(Trigger.PAUSE, reason=INCONCLUSIVE_EXPERIMENT)
        pause_added = True

    if not pause_added:
        scaled = scale_replica_sets(facts, progress, traffic, out)
        if not scaled:
            _reconcile_pause_step(facts, progress, out)
    _promote_or_step(facts, progress, traffic, out)

    status = assemble_status(facts, progress, traffic, out)
    if progress.stable_ping_pong:
        status["canary"]["stablePingPong"] = progress.stable_ping_pong
    record_abort_stage(facts, progress, traffic, status, out)
    if stage_of(status) is not progress.stage:
        # The status must say what the transitions said; anything else is an engine bug.
        raise IllegalTransitionError(
            f"status reads as {stage_of(status).value}, transitions reached {progress.stage.value}"
        )

    requeue = min(out.requeue) if out.requeue else None
    changed = facts.prev != status
    if changed or any(not isinstance(a, act.VerifyWeight | act.EmitEvent) for a in out.actions):
        # The next decision builds on this one's effects; do not wait for a watch to notice.
        requeue = 0.0
    previous_status = rollout.status
    if previous_status is not None and not changed:
        return Decision(status=previous_status, actions=tuple(out.actions), requeue_after=requeue)
    return Decision(
        status=api.RolloutStatus.model_validate(status),
        actions=tuple(out.actions),
        requeue_after=requeue,
    )
