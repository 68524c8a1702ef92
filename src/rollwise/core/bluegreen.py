"""The blue-green engine: one decision for one blue-green Rollout (reference 1.8-1.12, 2.11).

Who calls it: `rollwise.core.rollouts.decide`, after `blue_green_problem` found nothing wrong.

Flow of one decision (the order is Argo's, `rollout/bluegreen.go`):

1. a new pod template starts a new revision (`phases.Trigger.NEW_REVISION`); going back to the
   stable revision or within `rollbackWindow` skips the pause and the analysis;
2. the ReplicaSet of the desired revision is created at 0 pods (or its revision renumbered) and
   the preview Service is pointed at it at once; the decision that saw the new template stops
   there, as Argo's does;
3. what people asked for in the status (abort, retry, promote, promote --full) becomes a trigger;
4. pod restarts, revision-history cleanup;
5. analysis runs: pre-promotion once the preview is saturated, post-promotion once the active
   Service selects the new revision; Failed/Error aborts, Inconclusive pauses;
6. ReplicaSet sizes (`bluegreen_scaling`);
7. the BlueGreenPause before the switch (`autoPromotionEnabled: false`, `autoPromotionSeconds`);
8. the active Service: to the new revision once it is saturated, its pre-promotion analysis
   passed and the pause is over - or back to the stable revision on abort;
9. promotion: the new revision becomes stable once the active Service selects it and its
   post-promotion analysis passed (`RolloutCompleted`);
10. the status: counts (of the active ReplicaSet, as Argo reports them), conditions, phase.

The stages, triggers and their effects on the status are the canary's (`phases.TRANSITIONS`
through `canary_state.Progress`): Initial (revision 1, promoted at once), Stable, Stepping (an
update in flight), Paused (BlueGreenPause or an inconclusive run), Aborted. The world in local
mode needs nothing new: each Service is served at `http://<service>.localhost:<port>/` by the
pods its selector matches, so the active address flips when the active selector's
`rollouts-pod-template-hash` changes, and the preview has its own address.

`antiAffinity` is accepted and has no effect in local mode (all pods run on one machine);
`activeMetadata`/`previewMetadata` are accepted and left to the ephemeral-metadata mechanism.
"""

from __future__ import annotations

from datetime import datetime

from rollwise.api import models as api
from rollwise.api.errors import IllegalTransitionError
from rollwise.core import actions as act
from rollwise.core import conditions as cond
from rollwise.core.analysis_runs import (
    DEFAULT_RUN_HISTORY_LIMIT,
    INCONCLUSIVE_PAUSE,
    PromotionRuns,
    RunsContext,
    reconcile_runs,
)
from rollwise.core.bluegreen_scaling import scale_blue_green
from rollwise.core.bluegreen_state import (
    BLUE_GREEN_PAUSE,
    BlueGreenFacts,
    BlueGreenProgress,
    auto_promotion_deadline,
    gather_facts,
    needs_controller_pause,
    preview_count,
    previous_pause_start,
    ready_for_pause,
    rollback_within_window,
    saturated,
)
from rollwise.core.canary_state import Outbox, Progress, Raw, selector_string
from rollwise.core.decisions import Decision
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import Observed
from rollwise.core.phases import PhaseFacts, Stage, Trigger, rollout_phase, stage_of
from rollwise.core.rollout_status import update_conditions, waiting_for_scale_down
from rollwise.core.scaling import clean_history, restart_pods
from rollwise.core.timestamps import parse_time_or_none

DUPLICATED_SERVICES_MESSAGE = (
    "This rollout uses the same service for the active and preview services, "
    "but two different services are required."
)


def blue_green_problem(blue_green: api.BlueGreenStrategy, observed: Observed) -> str | None:
    """Why the engine cannot run this blue-green strategy, or None (Argo's InvalidSpec checks
    that need the live objects; `rollwise lint` checks the rest with line numbers)."""
    where = "spec.strategy.blueGreen"
    if blue_green.preview_service and blue_green.preview_service == blue_green.active_service:
        return f"{where}.previewService: {DUPLICATED_SERVICES_MESSAGE}"
    for key, value in (
        ("previewReplicaCount", blue_green.preview_replica_count),
        ("autoPromotionSeconds", blue_green.auto_promotion_seconds),
        ("scaleDownDelaySeconds", blue_green.scale_down_delay_seconds),
        ("abortScaleDownDelaySeconds", blue_green.abort_scale_down_delay_seconds),
    ):
        if value is not None and value < 0:
            return f"{where}.{key}: must not be negative"
    for key, service in (
        ("activeService", blue_green.active_service),
        ("previewService", blue_green.preview_service),
    ):
        if service and service not in observed.service_selectors:
            return f'{where}.{key}: service "{service}" not found'
    missing = set(observed.missing_templates)
    for key, analysis in (
        ("prePromotionAnalysis", blue_green.pre_promotion_analysis),
        ("postPromotionAnalysis", blue_green.post_promotion_analysis),
    ):
        for ref in (analysis.templates or ()) if analysis is not None else ():
            if ref.template_name in missing:
                kind = "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate"
                return f'{where}.{key}.templates: {kind} "{ref.template_name}" not found'
    return None


# --- the steps of one decision ----------------------------------------------------------------


def _start_revision(facts: BlueGreenFacts, progress: Progress) -> None:
    if progress.stage is Stage.INITIAL:
        progress.fire(Trigger.NEW_REVISION)
    elif not facts.creating and facts.pod_hash == progress.stable_hash:
        progress.fire(Trigger.ROLLBACK_TO_STABLE)
    elif rollback_within_window(facts) and facts.new_rs.replicas:
        progress.fire(Trigger.FAST_ROLLBACK)
    else:
        progress.fire(Trigger.NEW_REVISION)


def _ensure_replica_set(facts: BlueGreenFacts, out: Outbox) -> None:
    new = facts.new_rs
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


def _accept_requests(
    facts: BlueGreenFacts, progress: Progress, state: BlueGreenProgress, *, new_revision: bool
) -> None:
    """Turn what a person wrote into the status into triggers the table allows."""
    prev = facts.prev
    if progress.stage is Stage.INITIAL or new_revision:
        return  # revision 1 is promoted at once; a new revision discards earlier requests
    if prev.get("abort") and not prev.get("abortedAt") and progress.stage is not Stage.ABORTED:
        progress.fire(Trigger.ABORT)
    elif not prev.get("abort") and progress.stage is Stage.ABORTED:
        if progress.fully_promoted:
            progress.fire(Trigger.PROMOTE)
        else:
            progress.fire(Trigger.RETRY)
            # The failed run of the aborted attempt must not abort the retry (Argo #2824).
            state.forget_runs()
    if progress.promote_full and not progress.fully_promoted:
        progress.fire(Trigger.PROMOTE_FULL)
    elif progress.promote_full:
        progress.promote_full = False
    if progress.stage is Stage.PAUSED and not progress.pauses and progress.controller_pause:
        # The pause conditions were cleared by `promote`: the pause is over.
        progress.fire(Trigger.RESUME)
        state.person_resumed = True


def _halted(facts: BlueGreenFacts, progress: Progress) -> bool:
    """Argo's haltProgress: a manual pause or an inconclusive run stops Service switching."""
    inconclusive = any(p.get("reason") == INCONCLUSIVE_PAUSE for p in progress.pauses)
    return bool(facts.rollout.spec.paused) or inconclusive


def _switch(out: Outbox, service: str, current: str | None, target: str) -> None:
    out.actions.append(act.SwitchServiceSelector(service, target))
    out.event(
        "SwitchService",
        f"Switched selector for service '{service}' from '{current or ''}' to '{target}'",
    )


def _reconcile_preview(
    facts: BlueGreenFacts, progress: Progress, state: BlueGreenProgress, out: Outbox
) -> None:
    service = facts.blue_green.preview_service
    if not service or _halted(facts, progress) or state.preview == facts.pod_hash:
        return
    # Right after the ReplicaSet exists, even with no pod ready yet (reference 1.8).
    _switch(out, service, state.preview, facts.pod_hash)
    state.preview = facts.pod_hash


def _history_limits(rollout: api.Rollout) -> tuple[int, int]:
    limits = rollout.spec.analysis
    successful = limits.successful_run_history_limit if limits else None
    unsuccessful = limits.unsuccessful_run_history_limit if limits else None
    return (
        DEFAULT_RUN_HISTORY_LIMIT if successful is None else successful,
        DEFAULT_RUN_HISTORY_LIMIT if unsuccessful is None else unsuccessful,
    )


def _runs_context(facts: BlueGreenFacts, progress: Progress, *, into_delay: bool) -> RunsContext:
    selector = facts.rollout.spec.selector
    successful, unsuccessful = _history_limits(facts.rollout)
    return RunsContext(
        rollout_name=facts.rollout.name,
        pod_hash=facts.pod_hash,
        stable_hash=facts.stable_rs.pod_template_hash if facts.stable_rs else "",
        revision=facts.revision,
        step_index=None,
        step_analysis=None,
        background=None,
        selector_labels=dict((selector.match_labels if selector else None) or {}),
        skip_all=(
            progress.aborted
            or progress.promote_full
            or into_delay
            or not progress.stable_hash
            or facts.stable_rs is None
            or rollback_within_window(facts)
        ),
        fully_promoted=progress.fully_promoted,
        paused=False,
        inconclusive_paused=any(p.get("reason") == INCONCLUSIVE_PAUSE for p in progress.pauses),
        controller_pause=progress.baseline_controller_pause,
        was_aborted=bool(facts.prev.get("abortedAt")),
        runs=facts.observed.analysis_runs,
        step_run_status=None,
        background_run_status=None,
        successful_history_limit=successful,
        unsuccessful_history_limit=unsuccessful,
    )


def _promotion_runs(facts: BlueGreenFacts, state: BlueGreenProgress) -> PromotionRuns:
    """Argo's skip{Pre,Post}PromotionAnalysisRun, read from the status the decision found."""
    blue_green = facts.blue_green
    prev_active = facts.prev_blue_green.get("activeSelector") or ""
    already_stable = facts.prev.get("stableRS") == facts.pod_hash
    new = facts.new_rs
    count = blue_green.preview_replica_count
    if count is not None:
        preview_ready = not facts.creating and new.replicas == count and new.available == count
    else:
        preview_ready = saturated(facts)
    return PromotionRuns(
        pre_promotion=blue_green.pre_promotion_analysis,
        post_promotion=blue_green.post_promotion_analysis,
        pre_run_status=state.pre_run,
        post_run_status=state.post_run,
        skip_pre=(
            already_stable or not prev_active or prev_active == facts.pod_hash or not preview_ready
        ),
        skip_post=already_stable or prev_active != facts.pod_hash or not saturated(facts),
    )


def _run_phase(run: Raw | None) -> str:
    return str((run or {}).get("status") or "")


def _pause_completed(facts: BlueGreenFacts, state: BlueGreenProgress) -> bool:
    """Argo's CompletedBlueGreenPause: nothing to wait for, a person promoted, or the
    autoPromotionSeconds ran out."""
    if state.pause_added:
        return False
    if state.checkpoint or state.person_resumed or not needs_controller_pause(facts.blue_green):
        return True
    deadline = auto_promotion_deadline(facts)
    return deadline is not None and facts.now >= deadline


def _reconcile_pause(
    facts: BlueGreenFacts,
    progress: Progress,
    state: BlueGreenProgress,
    out: Outbox,
    *,
    desired_new: int,
    fast_tracked: bool,
    pre_completed: bool,
) -> None:
    """Argo's reconcileBlueGreenPause: pause once the preview is ready (and its pre-promotion
    analysis passed) if the strategy asks for it, and end the pause when it is over."""
    if progress.aborted or _halted(facts, progress):
        return
    if not ready_for_pause(facts, desired_new):
        return
    paused_here = any(p.get("reason") == BLUE_GREEN_PAUSE for p in progress.pauses)
    if fast_tracked or state.checkpoint or not needs_controller_pause(facts.blue_green):
        if paused_here:
            progress.fire(Trigger.RESUME)
        return
    if not pre_completed:
        return
    if previous_pause_start(facts) is not None and paused_here:
        if _pause_completed(facts, state):
            progress.fire(Trigger.RESUME)
        else:
            deadline = auto_promotion_deadline(facts)
            if deadline is not None:
                out.requeue_at(deadline)
    elif not progress.baseline_controller_pause and not paused_here:
        # controllerPause already set means a person resumed: do not pause again.
        progress.fire(Trigger.PAUSE, reason=BLUE_GREEN_PAUSE)
        state.pause_added = True
        seconds = facts.blue_green.auto_promotion_seconds or 0
        if seconds > 0 and facts.blue_green.auto_promotion_enabled is not False:
            out.requeue.append(float(seconds))


def _reconcile_active(
    facts: BlueGreenFacts,
    progress: Progress,
    state: BlueGreenProgress,
    out: Outbox,
    *,
    desired_new: int,
    open_gate: bool,
) -> None:
    """Argo's reconcileActiveService."""
    service = facts.blue_green.active_service
    if _halted(facts, progress):
        return
    if progress.aborted:
        stable = facts.stable_rs
        # Back to the stable revision - never to a ReplicaSet with nothing to serve.
        if stable is not None and stable.available > 0 and state.active != stable.pod_template_hash:
            _switch(out, service, state.active, stable.pod_template_hash)
            state.active = stable.pod_template_hash
        return
    if not (ready_for_pause(facts, desired_new) and saturated(facts)):
        return
    if open_gate and state.active != facts.pod_hash:
        _switch(out, service, state.active, facts.pod_hash)
        state.active = facts.pod_hash


def _checkpoint(
    facts: BlueGreenFacts, state: BlueGreenProgress, *, pre_completed: bool, pause_completed: bool
) -> bool:
    """Argo's calculateScaleUpPreviewCheckPoint: a one-way trip-wire, set once the preview ran
    its previewReplicaCount and passed its gates; the preview then grows to the full count."""
    count = facts.blue_green.preview_replica_count
    if count is None:
        return False
    if state.checkpoint:
        return True
    if not (pre_completed and pause_completed) or facts.creating:
        return False
    return facts.new_rs.available == count


def _update(
    facts: BlueGreenFacts,
    progress: Progress,
    state: BlueGreenProgress,
    out: Outbox,
    *,
    into_delay: bool,
) -> None:
    """Steps 4-8 of a decision that did not just see a new template."""
    restart_pods(facts, progress, out)
    clean_history(facts, out)

    promotion = _promotion_runs(facts, state)
    runs = reconcile_runs(_runs_context(facts, progress, into_delay=into_delay), promotion)
    out.actions.extend(runs.actions)
    state.pre_run, state.post_run = runs.pre_run_status, runs.post_run_status
    if runs.abort_message is not None and progress.stage is not Stage.ABORTED:
        progress.fire(Trigger.ABORT, message=runs.abort_message)
    elif (
        runs.pause
        and progress.stage in (Stage.STEPPING, Stage.PAUSED)
        and all(p.get("reason") != INCONCLUSIVE_PAUSE for p in progress.pauses)
    ):
        progress.fire(Trigger.PAUSE, reason=INCONCLUSIVE_PAUSE)

    blue_green = facts.blue_green
    desired_new = preview_count(
        facts, checkpoint=state.checkpoint, promote_full=progress.promote_full
    )
    post_pending = (
        blue_green.post_promotion_analysis is not None
        and blue_green.scale_down_delay_seconds is None
        and not promotion.skip_post
        and _run_phase(state.post_run) != "Successful"
    )
    scale_blue_green(
        facts, progress, state, out, desired_new=desired_new, post_promotion_pending=post_pending
    )

    fast_tracked = (
        into_delay
        or progress.promote_full
        or progress.fully_promoted
        or facts.active_hash is None
        or facts.active_hash == facts.pod_hash
        or rollback_within_window(facts)
    )
    pre_completed = (
        blue_green.pre_promotion_analysis is None or _run_phase(state.pre_run) == "Successful"
    )
    _reconcile_pause(
        facts,
        progress,
        state,
        out,
        desired_new=desired_new,
        fast_tracked=fast_tracked,
        pre_completed=pre_completed,
    )
    pause_completed = _pause_completed(facts, state)
    _reconcile_active(
        facts,
        progress,
        state,
        out,
        desired_new=desired_new,
        open_gate=fast_tracked or (pre_completed and pause_completed),
    )
    state.checkpoint = _checkpoint(
        facts, state, pre_completed=pre_completed, pause_completed=pause_completed
    )


def _full_promotion_reason(
    facts: BlueGreenFacts, progress: Progress, state: BlueGreenProgress, *, into_delay: bool
) -> str:
    """Argo's shouldFullPromote for blue-green; "" while the update is in flight."""
    if facts.stable_rs is None:
        return "Initial deploy"
    if not state.active:
        # Argo: an active Service without a hash selector takes the desired revision as is.
        return "Initial deploy"
    if state.active != facts.pod_hash:
        return ""
    if progress.promote_full:
        return "Full promotion requested"
    if rollback_within_window(facts):
        return "Rollback within window"
    if progress.aborted:
        return ""
    if facts.blue_green.post_promotion_analysis is not None:
        if into_delay:
            return f"Rollback to '{facts.new_rs.name}' within scaleDownDelay"
        if _run_phase(state.post_run) != "Successful":
            return ""
    return "Completed blue-green update"


def _promote(
    facts: BlueGreenFacts,
    progress: Progress,
    state: BlueGreenProgress,
    out: Outbox,
    *,
    into_delay: bool,
) -> None:
    reason = _full_promotion_reason(facts, progress, state, into_delay=into_delay)
    if not reason or progress.fully_promoted:
        return
    progress.fire(Trigger.PROMOTE)
    state.checkpoint = False
    out.event(
        "RolloutCompleted",
        f"Rollout completed update to revision {facts.revision} ({facts.pod_hash}): {reason}",
    )


# --- the status -------------------------------------------------------------------------------


def _active_selector(facts: BlueGreenFacts, active_hash: str) -> str:
    selector = facts.rollout.spec.selector
    if selector is None:
        return f"{HASH_LABEL}={active_hash}"
    labels = {**(selector.match_labels or {}), HASH_LABEL: active_hash}
    return selector_string(selector.copy_with(match_labels=labels))


def _assemble_status(
    facts: BlueGreenFacts, progress: Progress, state: BlueGreenProgress, out: Outbox
) -> Raw:
    prev = facts.prev
    all_rs = facts.observed.replica_sets
    active_rs = facts.replica_set(state.active)
    total = sum(rs.current_pods for rs in all_rs)
    status: Raw = {"currentPodHash": facts.pod_hash, "replicas": total}
    status["updatedReplicas"] = 0 if facts.creating else facts.new_rs.current_pods
    # What HPA and Argo CD see is the active side, when there is one.
    if active_rs is not None:
        status["readyReplicas"] = active_rs.ready
        status["availableReplicas"] = active_rs.available
        status["HPAReplicas"] = active_rs.current_pods
        status["selector"] = _active_selector(facts, active_rs.pod_template_hash)
    else:
        status["readyReplicas"] = sum(rs.ready for rs in all_rs)
        status["availableReplicas"] = sum(rs.available for rs in all_rs)
        status["HPAReplicas"] = total
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

    preview_service = facts.blue_green.preview_service
    healthy = (
        status["updatedReplicas"] == facts.replicas
        and status["availableReplicas"] == facts.replicas
        and state.active == facts.pod_hash
        and (not preview_service or state.preview == facts.pod_hash)
    )
    prev_blue_green = facts.prev_blue_green
    conditions = [
        dict(c) for c in prev.get("conditions") or () if c.get("type") != cond.INVALID_SPEC
    ]
    update_conditions(
        facts,
        progress,
        status,
        conditions,
        out,
        healthy=healthy,
        strategy_progress=(
            state.active != prev_blue_green.get("activeSelector")
            or state.preview != prev_blue_green.get("previewSelector")
        ),
        waiting=waiting_for_scale_down(facts, progress),
    )
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

    blue_green: Raw = {}
    if state.active:
        blue_green["activeSelector"] = state.active
    if state.preview:
        blue_green["previewSelector"] = state.preview
    if state.checkpoint:
        blue_green["scaleUpPreviewCheckPoint"] = True
    if state.pre_run is not None:
        blue_green["prePromotionAnalysisRunStatus"] = state.pre_run
    if state.post_run is not None:
        blue_green["postPromotionAnalysisRunStatus"] = state.post_run
    status["blueGreen"] = blue_green

    phase, message = rollout_phase(
        PhaseFacts(
            status=status,
            replicas=facts.replicas,
            spec_paused=bool(facts.rollout.spec.paused),
            restart_at=parse_time_or_none(facts.rollout.spec.restart_at),
            blue_green=True,
            post_promotion_analysis=facts.blue_green.post_promotion_analysis is not None,
        )
    )
    status["phase"] = phase
    if message:
        status["message"] = message

    if bool(prev.get("pauseConditions")) != bool(progress.pauses):
        if progress.pauses:
            reason = progress.pauses[0].get("reason")
            out.event("RolloutPaused", f"{cond.PAUSED_MESSAGE} ({reason})")
        elif not progress.aborted:
            out.event("RolloutResumed", cond.RESUMED_MESSAGE)
    return status


def decide_blue_green(rollout: api.Rollout, observed: Observed, now: datetime) -> Decision:
    """The decision for a blue-green Rollout whose spec passed `blue_green_problem`."""
    facts = gather_facts(rollout, observed, now)
    progress = Progress.start(facts)
    state = BlueGreenProgress.start(facts)
    out = Outbox(facts)

    # An old revision wanted again while it waits for its scale-down is switched to at once,
    # without pause or analysis (Argo's fast track) - unless its delay comes from an abort
    # that is being retried.
    new = facts.new_rs
    into_delay = (
        not facts.creating
        and new.scale_down_deadline is not None
        and not facts.prev.get("abortedAt")
        and (facts.stable_rs is None or facts.stable_rs.name != new.name)
    )
    new_revision = facts.prev.get("currentPodHash") != facts.pod_hash
    if new_revision:
        _start_revision(facts, progress)
        state.forget_runs()
    _ensure_replica_set(facts, out)
    _accept_requests(facts, progress, state, new_revision=new_revision)
    _reconcile_preview(facts, progress, state, out)
    if not new_revision:
        _update(facts, progress, state, out, into_delay=into_delay)
    _promote(facts, progress, state, out, into_delay=into_delay)

    status = _assemble_status(facts, progress, state, out)
    if stage_of(status) is not progress.stage:
        # The status must say what the transitions said; anything else is an engine bug.
        raise IllegalTransitionError(
            f"status reads as {stage_of(status).value}, transitions reached {progress.stage.value}"
        )
    requeue = min(out.requeue) if out.requeue else None
    changed = facts.prev != status
    if changed or any(not isinstance(a, act.EmitEvent) for a in out.actions):
        # The next decision builds on this one's effects; do not wait for a watch to notice.
        requeue = 0.0
    if rollout.status is not None and not changed:
        return Decision(status=rollout.status, actions=tuple(out.actions), requeue_after=requeue)
    return Decision(
        status=api.RolloutStatus.model_validate(status),
        actions=tuple(out.actions),
        requeue_after=requeue,
    )
