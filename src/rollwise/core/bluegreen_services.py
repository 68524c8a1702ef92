"""The blue-green Services and the pause before the switch (reference 1.8, 1.9).

Who calls it: the blue-green engine (`bluegreen`), once per decision. The preview Service follows
the newest ReplicaSet at once; the active Service moves to it only when it is saturated, its
pre-promotion analysis passed and the BlueGreenPause is over (a person promoted, or
autoPromotionSeconds ran out) - and goes straight back to the stable revision on abort. A manual
pause (`spec.paused`) or an inconclusive run halts both switches (Argo's haltProgress).
"""

from __future__ import annotations

from rollwise.core import actions as act
from rollwise.core.analysis_runs import INCONCLUSIVE_PAUSE
from rollwise.core.bluegreen_state import (
    BLUE_GREEN_PAUSE,
    BlueGreenFacts,
    BlueGreenProgress,
    auto_promotion_deadline,
    needs_controller_pause,
    previous_pause_start,
    ready_for_pause,
    saturated,
)
from rollwise.core.canary_state import Outbox, Progress, Raw
from rollwise.core.phases import Trigger


def halted(facts: BlueGreenFacts, progress: Progress) -> bool:
    """Argo's haltProgress: a manual pause or an inconclusive run stops Service switching."""
    inconclusive = any(p.get("reason") == INCONCLUSIVE_PAUSE for p in progress.pauses)
    return bool(facts.rollout.spec.paused) or inconclusive


def switch_service(out: Outbox, service: str, current: str | None, target: str) -> None:
    out.actions.append(act.SwitchServiceSelector(service, target))
    out.event(
        "SwitchService",
        f"Switched selector for service '{service}' from '{current or ''}' to '{target}'",
    )


def run_phase(run: Raw | None) -> str:
    return str((run or {}).get("status") or "")


def reconcile_preview(
    facts: BlueGreenFacts, progress: Progress, state: BlueGreenProgress, out: Outbox
) -> None:
    service = facts.blue_green.preview_service
    if not service or halted(facts, progress) or state.preview == facts.pod_hash:
        return
    # Right after the ReplicaSet exists, even with no pod ready yet (reference 1.8).
    switch_service(out, service, state.preview, facts.pod_hash)
    state.preview = facts.pod_hash


def pause_completed(facts: BlueGreenFacts, state: BlueGreenProgress) -> bool:
    """Argo's CompletedBlueGreenPause: nothing to wait for, a person promoted, or the
    autoPromotionSeconds ran out."""
    if state.pause_added:
        return False
    if state.checkpoint or state.person_resumed or not needs_controller_pause(facts.blue_green):
        return True
    deadline = auto_promotion_deadline(facts)
    return deadline is not None and facts.now >= deadline


def reconcile_pause(
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
    if progress.aborted or halted(facts, progress):
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
        if pause_completed(facts, state):
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


def reconcile_active(
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
    if halted(facts, progress):
        return
    if progress.aborted:
        stable = facts.stable_rs
        # Back to the stable revision - never to a ReplicaSet with nothing to serve.
        if stable is not None and stable.available > 0 and state.active != stable.pod_template_hash:
            switch_service(out, service, state.active, stable.pod_template_hash)
            state.active = stable.pod_template_hash
        return
    if not (ready_for_pause(facts, desired_new) and saturated(facts)):
        return
    if open_gate and state.active != facts.pod_hash:
        switch_service(out, service, state.active, facts.pod_hash)
        state.active = facts.pod_hash


def scale_up_checkpoint(
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
