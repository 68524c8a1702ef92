"""ReplicaSets of a blue-green rollout: their sizes and scale-down delays (reference 1.8, 1.9).

Who calls it: the blue-green engine, once per decision (Argo's reconcileBlueGreenReplicaSets).
Unlike the canary, every ReplicaSet is sized in the same decision, in this order:

1. a revision that is wanted again (the desired or the stable one) loses its scale-down deadline;
2. the ReplicaSet the active Service selects runs the full count - it serves production;
3. the new ReplicaSet runs the preview count, then the full count; after an abort it stays up
   for abortScaleDownDelaySeconds once the stable one is fully available (0: it stays up);
4. older revisions nothing refers to any more stay up for scaleDownDelaySeconds (so clients and
   proxies that still hold the old endpoints converge), then go to 0, newest first.
"""

from __future__ import annotations

from datetime import timedelta

from rollwise.core.analysis_runs import INCONCLUSIVE_PAUSE
from rollwise.core.bluegreen_state import (
    BlueGreenFacts,
    BlueGreenProgress,
    abort_delay_seconds,
    scale_down_delay_seconds,
)
from rollwise.core.canary_state import Outbox, Progress
from rollwise.core.observed import ReplicaSetView


def delays_abort_scale_down(facts: BlueGreenFacts, progress: Progress) -> bool:
    """Aborted with a stable revision to return to: the new pods go after the abort delay
    (Argo's shouldDelayScaleDownOnAbort); `abortScaleDownDelaySeconds: 0` keeps them."""
    stable = facts.stable_rs
    return (
        progress.aborted
        and stable is not None
        and stable.name != facts.new_rs.name
        and abort_delay_seconds(facts) != 0
    )


def scale_blue_green(
    facts: BlueGreenFacts,
    progress: Progress,
    state: BlueGreenProgress,
    out: Outbox,
    *,
    desired_new: int,
    post_promotion_pending: bool,
) -> None:
    new = facts.new_rs
    delay_abort = delays_abort_scale_down(facts, progress)
    wanted = [new] if not delay_abort else []
    if facts.stable_rs is not None and facts.stable_rs.name != new.name:
        wanted.append(facts.stable_rs)
    for rs in wanted:
        if rs.scale_down_deadline is not None:
            out.scale(rs, rs.replicas, deadline=None)

    active = facts.replica_set(facts.active_hash)
    if active is not None and active.name != new.name and active.replicas != facts.replicas:
        out.scale(active, facts.replicas, deadline=None)

    _scale_new(facts, out, desired=desired_new, delay_abort=delay_abort)
    inconclusive = any(p.get("reason") == INCONCLUSIVE_PAUSE for p in progress.pauses)
    if not inconclusive and not post_promotion_pending:
        _scale_down_others(facts, progress, state, out)


def _scale_new(facts: BlueGreenFacts, out: Outbox, *, desired: int, delay_abort: bool) -> None:
    new, stable = facts.new_rs, facts.stable_rs
    if delay_abort and stable is not None:
        deadline = new.scale_down_deadline
        if deadline is None:
            # Only once production is back on its full count does the countdown start.
            if new.replicas > 0 and stable.available >= facts.replicas:
                deadline = facts.now + timedelta(seconds=abort_delay_seconds(facts))
                out.scale(new, new.replicas, deadline=deadline)
                out.requeue_at(deadline)
            return
        if deadline > facts.now:
            out.requeue_at(deadline)
            return
        if new.replicas != 0:
            # The deadline stays while aborted: it marks the pods as let go on purpose.
            out.scale(new, 0, deadline=deadline)
        return
    if desired != new.replicas:
        out.scale(new, desired, deadline=None)


def _referenced(
    facts: BlueGreenFacts, progress: Progress, state: BlueGreenProgress, rs: ReplicaSetView
) -> bool:
    """Still named by the status or selected by a Service (Argo's isReplicaSetReferenced)."""
    prev = facts.prev_blue_green
    hashes = {
        progress.stable_hash,
        facts.pod_hash,
        facts.prev.get("stableRS"),
        prev.get("activeSelector"),
        prev.get("previewSelector"),
        state.active,
        state.preview,
        *facts.observed.service_selectors.values(),
    }
    return rs.pod_template_hash in hashes


def _scale_down_others(
    facts: BlueGreenFacts, progress: Progress, state: BlueGreenProgress, out: Outbox
) -> None:
    limit = facts.blue_green.scale_down_delay_revision_limit
    delay = scale_down_delay_seconds(facts)
    annotated = 0
    for rs in sorted(facts.others, key=lambda r: r.revision, reverse=True):
        if rs.replicas == 0 or _referenced(facts, progress, state, rs):
            continue
        deadline = rs.scale_down_deadline
        if deadline is None:
            if delay > 0 and (limit is None or annotated < limit):
                annotated += 1
                deadline = facts.now + timedelta(seconds=delay)
                out.scale(rs, rs.replicas, deadline=deadline)
                out.requeue_at(deadline)
                continue
        else:
            annotated += 1
            if (limit is None or annotated <= limit) and deadline > facts.now:
                out.requeue_at(deadline)
                continue
        out.scale(rs, 0, deadline=None)
