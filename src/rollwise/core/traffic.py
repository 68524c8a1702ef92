"""Where a canary's traffic goes: Service selectors and the router weight (reference 4.2).

Who calls it: the canary engine, once per decision, before analysis and scaling. The weight
never outruns the canary's capacity: until the canary ReplicaSet has its pods for the current
step (or `replicaProgressThreshold` of them), traffic keeps the previous setWeight. On abort the
weight goes back to 0 first - with dynamicStableScale rung by rung down the setWeight ladder, as
fast as the stable ReplicaSet becomes available again; only when the router confirms it (or
cannot tell) does the canary Service return to the stable pods. A manually paused rollout
(`spec.paused`) keeps its weight. The Services are the ones playing the stable and canary
roles, which with pingPong swap at each promotion (`CanaryFacts.stable_service`).
Also home of the replica counts a step asks for, which both traffic and scaling read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollwise.core import actions as act
from rollwise.core import replicas as math
from rollwise.core import steps as st
from rollwise.core.canary_state import CanaryFacts, Outbox, Progress, Raw, abort_delay
from rollwise.core.experiments_steps import weighted_destinations
from rollwise.core.observed import ReplicaSetView
from rollwise.core.phases import Trigger

VERIFY_RETRY_SECONDS = 10.0


def point_service(
    facts: CanaryFacts, out: Outbox, service: str | None, rs: ReplicaSetView | None, *, check: bool
) -> None:
    if not service or rs is None or (facts.creating and rs is facts.new_rs):
        return
    current = facts.observed.service_selectors.get(service)
    if current == rs.pod_template_hash:
        return
    # Never point a Service at nothing; adopting a Service that already serves traffic waits
    # for the whole ReplicaSet.
    if check and (rs.available == 0 or (current is None and rs.available < rs.replicas)):
        return
    out.actions.append(act.SwitchServiceSelector(service, rs.pod_template_hash))


def reconcile_services(facts: CanaryFacts, progress: Progress, out: Outbox) -> None:
    point_service(facts, out, facts.stable_service, facts.stable_rs, check=True)
    if progress.aborted:
        if not facts.traffic_routed:
            point_service(facts, out, facts.canary_service, facts.stable_rs, check=True)
        return  # traffic-routed: after the weight is back on stable (see reconcile_traffic)
    point_service(facts, out, facts.canary_service, facts.new_rs, check=True)


def canary_service_on_stable(facts: CanaryFacts) -> bool:
    """The canary-role Service (if any) selects the stable ReplicaSet, as observed."""
    service, stable = facts.canary_service, facts.stable_rs
    if not service or stable is None:
        return True
    return facts.observed.service_selectors.get(service) == stable.pod_template_hash


def current_weights(facts: CanaryFacts) -> tuple[int, int] | None:
    """(canary, stable) weights in force, as the previous status recorded them."""
    weights = (facts.prev.get("canary") or {}).get("weights")
    if not weights:
        return None
    canary = int((weights.get("canary") or {}).get("weight") or 0)
    stable = (weights.get("stable") or {}).get("weight")
    return canary, int(facts.max_weight - canary if stable is None else stable)


def progress_threshold(facts: CanaryFacts) -> tuple[str, int] | None:
    threshold = facts.canary.replica_progress_threshold
    return None if threshold is None else (threshold.type, threshold.value)


def canary_target(facts: CanaryFacts, progress: Progress) -> tuple[int | None, int]:
    """(setCanaryScale replicas, weight) that size the canary now (GetCanaryReplicasOrWeight)."""
    if progress.promote_full or not progress.stable_hash or progress.fully_promoted:
        return None, 100
    scale = st.canary_scale_in_force(facts.steps, progress.index) if facts.traffic_routed else None
    if scale is not None and progress.aborted and abort_delay(facts) != 0:
        scale = None  # an aborted canary keeps its setCanaryScale only if it is never scaled down
    if scale is not None:
        if scale.replicas is not None:
            return scale.replicas, 0
        if scale.weight is not None:
            return None, scale.weight
    return None, st.current_set_weight(facts.steps, progress.index, aborted=progress.aborted)


def desired_counts(facts: CanaryFacts, progress: Progress) -> tuple[int, int]:
    """(new, stable) replica counts for the next move."""
    canary_replicas, weight = canary_target(facts, progress)
    if not facts.traffic_routed:
        return math.basic_canary_counts(
            replicas=facts.replicas,
            weight=weight,
            max_surge=facts.max_surge,
            max_unavailable=facts.max_unavailable,
            new=facts.new_rs,
            stable=facts.stable_rs,
            others=facts.others,
        )
    if facts.stable_rs is None or progress.fully_promoted:
        return facts.replicas, 0
    return math.traffic_routed_counts(
        replicas=facts.replicas,
        weight=weight,
        canary_replicas=canary_replicas,
        max_weight=facts.max_weight,
        min_pods_per_replica_set=facts.canary.min_pods_per_replica_set,
        dynamic_stable_scale=bool(facts.canary.dynamic_stable_scale),
        # The weights of the previous status: the stable shrinks one decision after traffic
        # left it, never in the decision that moves the traffic (Argo, reference 1.7).
        current_weights=current_weights(facts),
        aborted=progress.aborted,
    )


def new_revision_ready(facts: CanaryFacts, available: int, desired: int) -> bool:
    """Enough of the desired canary pods are available: all of them, or as many as
    replicaProgressThreshold asks."""
    threshold = progress_threshold(facts)
    if threshold is None:
        return available == desired
    return math.progress_threshold_met(available, desired, threshold)


def at_desired_counts(facts: CanaryFacts, progress: Progress) -> bool:
    new, stable = facts.new_rs, facts.stable_rs
    if facts.creating or new is None or stable is None or progress.fully_promoted:
        return False
    desired_new, desired_stable = desired_counts(facts, progress)
    if new.replicas != desired_new or not new_revision_ready(facts, new.available, desired_new):
        return False
    dynamic = facts.traffic_routed and facts.canary.dynamic_stable_scale
    if not dynamic and not (stable.replicas == desired_stable == stable.current_pods):
        # With dynamicStableScale the stable follows the traffic a decision later instead.
        return False
    # A basic canary's traffic follows pods: older revisions must be gone.
    return facts.traffic_routed or sum(rs.available for rs in facts.others) == 0


@dataclass
class Traffic:
    weights: Raw | None = None
    verify_pending: bool = False
    """The weight of this step is not verified yet (just set, or the router said no)."""
    settled_on_stable: bool = False
    """Aborted and the router has (verifiably) sent everything back to stable."""


def dynamic_rollback_hash(facts: CanaryFacts, progress: Progress) -> str | None:
    """The pod hash traffic still goes to when a dynamicStableScale update was given up by
    going back to the stable template (Argo's isDynamicallyRollingBackToStable), else None:
    the stable was shrunk, so traffic must come back as the stable grows, like an abort."""
    if not (progress.fully_promoted and facts.traffic_routed and facts.canary.dynamic_stable_scale):
        return None
    weights = (facts.prev.get("canary") or {}).get("weights") or {}
    previous = (weights.get("canary") or {}).get("podTemplateHash")
    new = facts.new_rs
    if not previous or previous == facts.pod_hash or new is None:
        return None
    return str(previous) if new.available < facts.replicas else None


def _weight_back_to_stable(facts: CanaryFacts, stable: ReplicaSetView | None) -> int:
    """Canary weight while traffic returns to the stable (abort, dynamic rollback)."""
    if not facts.canary.dynamic_stable_scale:
        return 0  # the stable never shrank: it takes everything at once
    weights = current_weights(facts)
    return math.abort_weight(
        replicas=facts.replicas,
        stable_available=stable.available if stable is not None else 0,
        current_weight=None if weights is None else weights[0],
        ladder=st.weight_ladder(facts.steps),
        max_weight=facts.max_weight,
    )


def desired_weight(facts: CanaryFacts, progress: Progress) -> int:
    new = facts.new_rs
    if dynamic_rollback_hash(facts, progress) is not None:
        return _weight_back_to_stable(facts, new)
    if progress.fully_promoted:
        return 0
    if progress.aborted:
        return _weight_back_to_stable(facts, facts.stable_rs)
    if facts.creating or new is None or new.available == 0:
        return 0
    weights = current_weights(facts)
    if facts.rollout.spec.paused and weights is not None:
        return weights[0]  # a manual pause holds traffic where it is
    if progress.promote_full:
        if facts.canary.dynamic_stable_scale and facts.replicas:
            # The stable may be smaller than full: move traffic as canary pods come up.
            return min(facts.max_weight, facts.max_weight * new.available // facts.replicas)
        return 0 if weights is None else weights[0]
    index = progress.index
    if index is None:
        return 0
    if not at_desired_counts(facts, progress):
        # Traffic never outruns capacity: keep the last weight until the canary is ready.
        return st.previous_set_weight(facts.steps, index)
    if index < len(facts.steps):
        return st.current_set_weight(facts.steps, index, aborted=False)
    return facts.max_weight


def reconcile_traffic(facts: CanaryFacts, progress: Progress, out: Outbox) -> Traffic:
    if not facts.traffic_routed:
        return Traffic()
    desired = desired_weight(facts, progress)
    canary_hash = facts.pod_hash
    stable_hash = facts.stable_rs.pod_template_hash if facts.stable_rs else ""
    if progress.fully_promoted:
        stable_hash = canary_hash
        canary_hash = dynamic_rollback_hash(facts, progress) or canary_hash
    previous: Mapping[str, Any] = (facts.prev.get("canary") or {}).get("weights") or {}
    prev_canary = previous.get("canary") or {}
    prev_stable = previous.get("stable") or {}
    weights: Raw = {
        "canary": {"weight": desired, "podTemplateHash": canary_hash},
        "stable": {"weight": facts.max_weight - desired, "podTemplateHash": stable_hash},
    }
    if facts.canary_service:
        weights["canary"]["serviceName"] = facts.canary_service
    if facts.stable_service:
        weights["stable"]["serviceName"] = facts.stable_service
    additional = weighted_destinations(facts, progress)
    if additional:
        # A running weighted experiment step: its templates' Services take their share.
        weights["additional"] = [destination.to_raw() for destination in additional]
        weights["stable"]["weight"] -= sum(destination.weight for destination in additional)

    router_weight = facts.observed.current_router_weight
    known_weight = router_weight if router_weight is not None else prev_canary.get("weight")
    # A controller that restarted has not talked to the router yet (it knows no weight and no
    # answer); the status holds the last answer for these weights, unless the controller
    # before it died between setting them and recording the answer: set them again (a no-op
    # for the router) and verify, as a weight never verified would be.
    restarted = router_weight is None and facts.observed.weight_verified is None
    recorded = previous.get("verified")
    changed = (
        not previous
        or (restarted and not isinstance(recorded, bool))
        or known_weight != desired
        or prev_canary.get("podTemplateHash") != canary_hash
        or prev_stable.get("podTemplateHash") != stable_hash
        or prev_canary.get("serviceName") != weights["canary"].get("serviceName")
        or prev_stable.get("serviceName") != weights["stable"].get("serviceName")
        # An abort starts by rewriting (and so re-verifying) the router, even at weight 0:
        # the managed routes it removes go out with that write. A controller that restarted
        # during an abort does not know what the router holds: it writes and verifies again.
        or Trigger.ABORT in progress.fired
        or (progress.aborted and router_weight is None)
        or (previous.get("additional") or []) != weights.get("additional", [])
    )
    result = Traffic(weights=weights)
    if changed:
        out.actions.append(act.SetWeight(desired, canary_hash, stable_hash, additional))
        out.actions.append(act.VerifyWeight(desired, additional))
        if not previous:
            out.event("TrafficWeightUpdated", f"Traffic weight updated to {desired}")
        elif prev_canary.get("weight") != desired:
            out.event(
                "TrafficWeightUpdated",
                f"Traffic weight updated from {prev_canary.get('weight')} to {desired}",
            )
        result.verify_pending = True
    else:
        verified = facts.observed.weight_verified
        if restarted and isinstance(recorded, bool):
            # Kept: a restart alone must not rewrite a settled status; a recorded "no" is
            # asked again below.
            verified = recorded
        old_pods_left = any(rs.replicas for rs in facts.others)
        if verified is False and (not progress.fully_promoted or old_pods_left):
            out.actions.append(act.VerifyWeight(desired, additional))
            out.requeue.append(VERIFY_RETRY_SECONDS)
            result.verify_pending = True
        if verified is not None:
            weights["verified"] = verified
        if progress.aborted and desired == 0 and verified is not False:
            result.settled_on_stable = True
            point_service(facts, out, facts.canary_service, facts.stable_rs, check=False)
    return result
