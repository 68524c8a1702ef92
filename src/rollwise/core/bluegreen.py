"""The blue-green engine: one decision for one blue-green Rollout (reference 1.8-1.12, 2.11).

Who calls it: `rollwise.core.rollouts.decide`, after `bluegreen_spec.blue_green_problem` found
nothing wrong.

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
`activeMetadata`/`previewMetadata` go on the active and preview ReplicaSets (and their pods)
through the canary's ephemeral-metadata mechanism (`canary_metadata.blue_green_metadata`).
"""

from __future__ import annotations

from datetime import datetime

from rollwise.api import models as api
from rollwise.api.errors import IllegalTransitionError
from rollwise.core import actions as act
from rollwise.core.analysis_runs import (
    DEFAULT_RUN_HISTORY_LIMIT,
    INCONCLUSIVE_PAUSE,
    PromotionRuns,
    RunsContext,
    reconcile_runs,
)
from rollwise.core.bluegreen_scaling import scale_blue_green
from rollwise.core.bluegreen_services import (
    pause_completed,
    reconcile_active,
    reconcile_pause,
    reconcile_preview,
    run_phase,
    scale_up_checkpoint,
)
from rollwise.core.bluegreen_state import (
    BlueGreenFacts,
    BlueGreenProgress,
    gather_facts,
    preview_count,
    rollback_within_window,
    saturated,
)
from rollwise.core.bluegreen_status import assemble_status
from rollwise.core.canary_metadata import blue_green_metadata
from rollwise.core.canary_state import Outbox, Progress
from rollwise.core.decisions import Decision
from rollwise.core.observed import Observed
from rollwise.core.phases import Stage, Trigger, stage_of
from rollwise.core.scaling import clean_history, restart_pods

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
        and run_phase(state.post_run) != "Successful"
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
        blue_green.pre_promotion_analysis is None or run_phase(state.pre_run) == "Successful"
    )
    reconcile_pause(
        facts,
        progress,
        state,
        out,
        desired_new=desired_new,
        fast_tracked=fast_tracked,
        pre_completed=pre_completed,
    )
    pause_over = pause_completed(facts, state)
    reconcile_active(
        facts,
        progress,
        state,
        out,
        desired_new=desired_new,
        open_gate=fast_tracked or (pre_completed and pause_over),
    )
    state.checkpoint = scale_up_checkpoint(
        facts, state, pre_completed=pre_completed, pause_completed=pause_over
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
        if run_phase(state.post_run) != "Successful":
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
    reconcile_preview(facts, progress, state, out)
    if not new_revision:
        _update(facts, progress, state, out, into_delay=into_delay)
    _promote(facts, progress, state, out, into_delay=into_delay)
    if not facts.creating:
        blue_green_metadata(facts, out)

    status = assemble_status(facts, progress, state, out)
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
