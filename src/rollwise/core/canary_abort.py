"""An abort as a verified sequence: which stage it has reached, said in the status and in events.

Who calls it: the canary engine, last in a decision, once the status is assembled. The engine
already orders the abort (`traffic`, `scaling`): the weight goes back to the stable ReplicaSet
(with dynamicStableScale rung by rung, as the stable grows back), the managed routes go out in
the same router write, the router is asked to confirm it; only then is the canary-role Service
pointed at the stable pods, and only once that is seen does the canary ReplicaSet get its
abortScaleDownDelaySeconds and go. This module reads where that sequence stands from what
was observed - never from what was merely asked for - and reports it, so "aborted" is never
said before "no request reaches the canary" is true (reference section 7, item 1).

Each stage is the `AbortVerified` condition's reason (a condition of ours: Argo tools ignore
types they do not know); an event with the same reason marks each change. The condition is
False until the last stage, True with reason `RolloutAbortVerified` when the abort is done, and
gone when the rollout is not aborted.

| stage | reason                    | done when (observed)                                       |
|-------|---------------------------|------------------------------------------------------------|
| 1/4   | AbortShiftingTraffic      | router weight 0 and confirmed (or the router cannot tell)  |
| 2/4   | AbortSwitchingService     | the canary-role Service selects the stable ReplicaSet      |
| 3/4   | AbortScalingDown          | the stable is whole and the canary has no pods (or is kept)|
| 4/4   | RolloutAbortVerified      | -                                                          |

A basic canary (no router) has no weight to confirm: its traffic follows pods, so it starts at
stage 2.
"""

from __future__ import annotations

from rollwise.core import conditions as cond
from rollwise.core.canary_state import CanaryFacts, Outbox, Progress, Raw, abort_delay
from rollwise.core.timestamps import format_time
from rollwise.core.traffic import Traffic, canary_service_on_stable

ABORT_VERIFIED = "AbortVerified"
SHIFTING_TRAFFIC = "AbortShiftingTraffic"
SWITCHING_SERVICE = "AbortSwitchingService"
SCALING_DOWN = "AbortScalingDown"
ROLLOUT_ABORT_VERIFIED = "RolloutAbortVerified"


def _stage(facts: CanaryFacts, traffic: Traffic) -> tuple[str, str]:
    """(reason, message) of the first stage that is not done yet."""
    new, stable = facts.new_rs, facts.stable_rs
    assert new is not None
    assert stable is not None
    weights = traffic.weights or {}
    weight = (weights.get("canary") or {}).get("weight")
    if facts.traffic_routed and not traffic.settled_on_stable:
        if weight:
            detail = (
                f"canary weight {weight}, down as the stable ReplicaSet {stable.name} comes back"
                f" ({stable.available}/{facts.replicas} available)"
            )
        else:
            detail = "canary weight 0 set with the managed routes removed"
        return SHIFTING_TRAFFIC, (
            f"1/4 shifting traffic back to stable: {detail}; waiting for the router to confirm it"
        )
    service = facts.canary_service
    if not canary_service_on_stable(facts):
        confirmed = "router confirmed weight 0; " if facts.traffic_routed else ""
        return SWITCHING_SERVICE, (
            f"2/4 {confirmed}pointing Service {service} at the stable ReplicaSet {stable.name}"
        )
    kept = facts.traffic_routed and abort_delay(facts) == 0
    if not kept and (new.replicas or new.current_pods or stable.available < facts.replicas):
        if stable.available < facts.replicas:
            wait = (
                f"stable ReplicaSet {stable.name} at {stable.available}/{facts.replicas} available"
            )
        elif new.scale_down_deadline is not None and new.scale_down_deadline > facts.now:
            wait = (
                f"canary ReplicaSet {new.name} scales down at"
                f" {format_time(new.scale_down_deadline)} (abortScaleDownDelaySeconds)"
            )
        elif facts.traffic_routed and new.replicas and new.scale_down_deadline is None:
            wait = (
                f"canary ReplicaSet {new.name} scales down {abort_delay(facts)}s from now"
                " (abortScaleDownDelaySeconds)"
            )
        else:
            wait = f"canary ReplicaSet {new.name} scaling down ({new.current_pods} pods left)"
        return SCALING_DOWN, f"3/4 no traffic reaches revision {facts.revision}; {wait}"
    parts = ["weight 0 confirmed by the router"] if facts.traffic_routed else []
    if service:
        parts.append(f"Service {service} selects the stable ReplicaSet {stable.name}")
    routing = facts.canary.traffic_routing
    if routing is not None and routing.managed_routes:
        parts.append("managed routes removed")
    if kept:
        parts.append(f"canary ReplicaSet {new.name} kept running (abortScaleDownDelaySeconds: 0)")
    else:
        parts.append(f"canary ReplicaSet {new.name} scaled down")
    return ROLLOUT_ABORT_VERIFIED, (
        f"4/4 abort of revision {facts.revision} verified: {', '.join(parts)}"
    )


def record_abort_stage(
    facts: CanaryFacts, progress: Progress, traffic: Traffic, status: Raw, out: Outbox
) -> None:
    """Set (or drop) the AbortVerified condition in `status` and emit an event per new stage."""
    conditions: list[Raw] = status.setdefault("conditions", [])
    aborted_update = (
        progress.aborted
        and not progress.fully_promoted
        and facts.stable_rs is not None
        and facts.new_rs is not None
        and not facts.creating
    )
    if not aborted_update:
        cond.remove_condition(conditions, ABORT_VERIFIED)
        return
    reason, message = _stage(facts, traffic)
    done = reason == ROLLOUT_ABORT_VERIFIED
    current = cond.find_condition(conditions, ABORT_VERIFIED)
    if current is not None and current.get("reason") == reason:
        # Same stage, new detail (e.g. the weight went down a rung): keep the text current.
        current["message"] = message
    changed = cond.set_condition(
        conditions,
        type_=ABORT_VERIFIED,
        status="True" if done else "False",
        reason=reason,
        message=message,
        now=facts.now_text,
    )
    if changed:
        out.event(reason, message)
