"""The status a blue-green decision writes (reference 1.10-1.12).

Who calls it: the blue-green engine, last in each decision. Counts are of the active ReplicaSet
when there is one (what HPA and Argo CD read, as in Argo); the conditions are the canary's
(`rollout_status.update_conditions`) with blue-green's idea of healthy (the active and preview
Services select the desired revision) and of progress (a Service switched).
"""

from __future__ import annotations

from rollwise.core import conditions as cond
from rollwise.core.bluegreen_state import BlueGreenFacts, BlueGreenProgress
from rollwise.core.canary_state import Outbox, Progress, Raw, selector_string
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.phases import PhaseFacts, rollout_phase
from rollwise.core.rollout_status import update_conditions, waiting_for_scale_down
from rollwise.core.timestamps import parse_time_or_none


def _active_selector(facts: BlueGreenFacts, active_hash: str) -> str:
    selector = facts.rollout.spec.selector
    if selector is None:
        return f"{HASH_LABEL}={active_hash}"
    labels = {**(selector.match_labels or {}), HASH_LABEL: active_hash}
    return selector_string(selector.copy_with(match_labels=labels))


def assemble_status(
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
