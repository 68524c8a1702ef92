"""ReplicaSets of a canary: their sizes, scale-down delays, pod restarts and history.

Who calls it: the canary engine, once per decision. Like Argo, at most one of stable, new and
older ReplicaSets is resized per decision (stable first, so capacity is never lost), older
revisions are drained, and the previous stable of a traffic-routed canary stays up for
scaleDownDelaySeconds after promotion (at most scaleDownDelayRevisionLimit of them; with
dynamicStableScale it has no traffic left and goes at once). An aborted traffic-routed canary
goes last, abortScaleDownDelaySeconds after its traffic was confirmed back on the stable pods.
"""

from __future__ import annotations

from datetime import timedelta

from rollwise.core import actions as act
from rollwise.core.canary_state import CanaryFacts, Outbox, Progress, RolloutFacts, abort_delay
from rollwise.core.observed import ReplicaSetView
from rollwise.core.timestamps import format_time, parse_time_or_none
from rollwise.core.traffic import Traffic, canary_service_on_stable, desired_counts

DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30
RESTART_CHECK_SECONDS = 1.0


def restart_pods(facts: RolloutFacts, progress: Progress, out: Outbox) -> None:
    restart_at = parse_time_or_none(facts.rollout.spec.restart_at)
    if restart_at is None:
        return
    if parse_time_or_none(progress.restarted_at) == restart_at:
        return
    if restart_at > facts.now:
        out.requeue_at(restart_at)
        return
    stale = tuple(
        rs.name
        for rs in facts.observed.replica_sets
        if rs.replicas > 0
        and rs.oldest_pod_created_at is not None
        and rs.oldest_pod_created_at < restart_at
    )
    if stale:
        # One batch at a time, as availability allows: come back until none is left.
        out.actions.append(
            act.RestartPods(stale, restart_at, max_unavailable=max(facts.max_unavailable, 1))
        )
        out.requeue.append(RESTART_CHECK_SECONDS)
        return
    progress.restarted_at = format_time(restart_at)


def clean_history(facts: RolloutFacts, out: Outbox) -> None:
    limit = facts.rollout.spec.revision_history_limit
    limit = DEFAULT_REVISION_HISTORY_LIMIT if limit is None else limit
    old = sorted(facts.others, key=lambda rs: rs.created_at)
    for rs in old[: max(0, len(old) - limit)]:
        if rs.replicas == 0 and rs.current_pods == 0:
            out.actions.append(act.DeleteReplicaSet(rs.name))


def scale_replica_sets(
    facts: CanaryFacts, progress: Progress, traffic: Traffic, out: Outbox
) -> bool:
    """Scale stable, then new, then older ReplicaSets; stop at the first that moved (Argo)."""
    new, stable = facts.new_rs, facts.stable_rs
    assert new is not None
    delay_abort = (
        progress.aborted and facts.traffic_routed and stable is not None and stable is not new
    )
    # Back to a revision that was waiting for its scale-down: it stays.
    for rs in {id(r): r for r in (new, stable) if r is not None}.values():
        if rs.scale_down_deadline is not None and not (rs is new and delay_abort):
            out.scale(rs, rs.replicas, deadline=None)

    desired_new, desired_stable = desired_counts(facts, progress)
    separate_stable = stable is not None and stable.name != new.name and not progress.fully_promoted
    if separate_stable and stable is not None and desired_stable != stable.replicas:
        out.scale(stable, desired_stable, deadline=None)
        return True

    if delay_abort and stable is not None:
        delay = abort_delay(facts)
        if delay == 0:
            return False  # abortScaleDownDelaySeconds: 0 keeps the canary warm for a retry
        if new.scale_down_deadline is not None:
            if new.scale_down_deadline > facts.now:
                out.requeue_at(new.scale_down_deadline)
                return False
            desired_new = 0
        else:
            # The last stage of a verified abort: traffic confirmed back on stable, the canary
            # Service seen selecting stable pods, the stable whole again.
            ready_to_wind_down = (
                traffic.settled_on_stable
                and canary_service_on_stable(facts)
                and stable.available >= facts.replicas
            )
            if ready_to_wind_down and new.replicas > 0:
                deadline = facts.now + timedelta(seconds=delay)
                out.scale(new, new.replicas, deadline=deadline)
                out.requeue_at(deadline)
            return False
    if desired_new != new.replicas:
        out.scale(new, desired_new, deadline=None)
        return True
    if traffic.verify_pending:
        return False  # old revisions stay until the router confirms where traffic goes
    return _scale_down_others(facts, progress, out)


def _referenced(facts: CanaryFacts, progress: Progress, rs: ReplicaSetView) -> bool:
    weights = (facts.prev.get("canary") or {}).get("weights") or {}
    hashes = {
        progress.stable_hash,
        facts.pod_hash,
        (weights.get("canary") or {}).get("podTemplateHash"),
        (weights.get("stable") or {}).get("podTemplateHash"),
        *facts.observed.service_selectors.values(),
    }
    return rs.pod_template_hash in hashes


def _scale_down_others(facts: CanaryFacts, progress: Progress, out: Outbox) -> bool:
    active = [rs for rs in facts.others if rs.replicas > 0]
    if not active:
        return False
    scaled = False
    sizes = {rs.name: rs.replicas for rs in active}
    # Unhealthy pods of old revisions go first: they would block the rollout otherwise.
    for rs in sorted(active, key=lambda r: r.created_at):
        if rs.replicas != rs.available and rs.available < rs.replicas:
            out.scale(rs, rs.available, deadline=rs.scale_down_deadline)
            sizes[rs.name] = rs.available
            scaled = True
    all_rs = [*facts.observed.replica_sets]
    available = sum(rs.available for rs in all_rs)
    max_scale_down = available - (facts.replicas - facts.max_unavailable)
    if max_scale_down <= 0:
        return scaled
    limit = facts.canary.scale_down_delay_revision_limit
    delay = facts.canary.scale_down_delay_seconds
    delay = DEFAULT_SCALE_DOWN_DELAY_SECONDS if delay is None else delay
    annotated = 0
    for rs in sorted(active, key=lambda r: r.revision, reverse=True):
        size = sizes[rs.name]
        if facts.traffic_routed and _referenced(facts, progress, rs):
            continue
        if max_scale_down <= 0:
            break
        if size == 0:
            continue
        desired = 0
        deadline = rs.scale_down_deadline
        if not facts.traffic_routed:
            desired = max(0, size - max_scale_down)
        elif facts.canary.dynamic_stable_scale and (
            progress.fully_promoted or deadline is not None
        ):
            desired = 0  # dynamicStableScale already moved its traffic away: no delay
        elif progress.fully_promoted or deadline is not None:
            # The previous stable: leave it up for scaleDownDelaySeconds so that routers and
            # clients converge before its pods go.
            if deadline is None:
                if delay > 0 and (limit is None or annotated < limit):
                    annotated += 1
                    deadline = facts.now + timedelta(seconds=delay)
                    out.scale(rs, size, deadline=deadline)
                    out.requeue_at(deadline)
                    continue
            else:
                annotated += 1
                if (limit is None or annotated <= limit) and deadline > facts.now:
                    out.requeue_at(deadline)
                    continue
        if desired == size:
            continue
        out.scale(rs, desired, deadline=None if desired == 0 else deadline)
        max_scale_down -= size - desired
        scaled = True
    return scaled
