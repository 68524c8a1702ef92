"""Canary replica arithmetic: how many pods each revision should run (reference section 1.7).

Who calls it: the canary engine (`rollwise.core.canary`) on every decision, and the CLI for the
ActualWeight it prints. Pure integer arithmetic, ported from Argo's `utils/replicaset/canary.go`
so that the same Rollout scales the same way under both controllers.

Vocabulary: `replicas` is spec.replicas of the Rollout; a ReplicaSet's `replicas` is what it was
asked to run, `available` what it runs ready for minReadySeconds, `current` the pods it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

from rollwise.core.observed import ReplicaSetView

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"


def value_from_int_or_percent(
    value: int | str | None, default: int | str, total: int, *, round_up: bool
) -> int:
    """An absolute count from `value` (an int, or a percent of `total`).

    Like Kubernetes' deprecated helper Argo uses, any string is a percent, with or without `%`
    (reference section 9). Percentages round up for surge and down for unavailability.
    """
    chosen = default if value is None else value
    if isinstance(chosen, int):
        return chosen
    text = chosen.strip().replace("%", "")
    try:
        percent = int(text)
    except ValueError:
        return 0
    scaled = percent * total
    return -(-scaled // 100) if round_up else scaled // 100


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, replicas: int
) -> tuple[int, int]:
    """(surge, unavailable) for `replicas`; if both come out 0, one pod may be unavailable."""
    if replicas == 0:
        return 0, 0
    surge = value_from_int_or_percent(max_surge, DEFAULT_MAX_SURGE, replicas, round_up=True)
    unavailable = value_from_int_or_percent(
        max_unavailable, DEFAULT_MAX_UNAVAILABLE, replicas, round_up=False
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _weight_delta(desired_weight: int, canary: int, total: int) -> Fraction:
    return abs(Fraction(canary * 100, total) - desired_weight)


def _floor_ceiling_tied(desired_weight: int, total: int) -> bool:
    return (total * desired_weight) % 100 == 50


def approximate_weighted_counts(replicas: int, weight: int, max_surge: int) -> tuple[int, int]:
    """(canary, stable) counts whose ratio best approximates `weight` percent.

    They sum to `replicas`, or `replicas + 1` when surge is allowed and that is closer; ties
    round up; a weight strictly between 0 and 100 never gives 0 canaries when two or more pods
    can run.
    """
    if replicas == 0:
        return 0, 0
    product = replicas * weight
    ceil_count = -(-product // 100)
    floor_count = product // 100
    tied = _floor_ceiling_tied(weight, replicas)
    zero_allowed = weight in (0, 100) or (replicas == 1 and max_surge == 0)

    options: list[tuple[int, int]] = []
    if ceil_count < replicas or zero_allowed:
        options.append((ceil_count, replicas))
    if not tied and (floor_count != 0 or zero_allowed):
        options.append((floor_count, replicas))
    if max_surge > 0:
        options.append((ceil_count, replicas + 1))
        if not _floor_ceiling_tied(weight, replicas + 1) and (floor_count != 0 or zero_allowed):
            options.append((floor_count, replicas + 1))
    if not options:
        return 0, replicas

    best = options[0]
    best_delta = _weight_delta(weight, *best)
    for option in options[1:]:
        delta = _weight_delta(weight, *option)
        if delta < best_delta:
            best, best_delta = option, delta
    canary, total = best
    return canary, total - canary


def _spec_replicas(replica_sets: Iterable[ReplicaSetView | None]) -> int:
    return sum(rs.replicas for rs in replica_sets if rs is not None)


def replicas_for_scale_down(rs: ReplicaSetView | None, *, ignore_availability: bool) -> int:
    """How many of `rs`'s pods count towards availability when deciding a scale-down."""
    if rs is None:
        return 0
    if rs.replicas < rs.available:
        # It is already going down: do not count pods that are about to disappear.
        return rs.replicas
    return rs.replicas if ignore_availability else rs.available


def _adjust_within_limits(
    drain: ReplicaSetView | None,
    adjust: ReplicaSetView | None,
    drain_count: int,
    adjust_count: int,
    *,
    max_total: int,
    min_available: int,
) -> tuple[int, int]:
    over_limit = max(0, adjust_count + drain_count - max_total)
    total_available = 0
    if drain is not None:
        total_available += min(drain.available, drain_count)
    if adjust is not None:
        adjust_count -= over_limit
        total_available += min(adjust.available, adjust_count)
        extra_available = max(0, adjust.available - adjust_count)
        still_needed = max(0, min_available - total_available)
        adjust_count += min(extra_available, still_needed)
        over_limit = max(0, adjust_count + drain_count - max_total)
        drain_count -= over_limit
    return drain_count, adjust_count


def basic_canary_counts(
    *,
    replicas: int,
    weight: int,
    max_surge: int,
    max_unavailable: int,
    new: ReplicaSetView | None,
    stable: ReplicaSetView | None,
    others: Sequence[ReplicaSetView],
) -> tuple[int, int]:
    """(new, stable) replica counts for the next move of a canary without traffic routing.

    Traffic follows pods, so the weight is approximated by the pod ratio. Scale-ups stay within
    `replicas + max_surge` (stable first), scale-downs keep `replicas - max_unavailable`
    available, and older ReplicaSets are drained before new or stable shrink.
    """
    desired_new, desired_stable = approximate_weighted_counts(replicas, weight, max_surge)
    new_count = new.replicas if new is not None else 0
    scale_stable = stable is not None and (new is None or new.name != stable.name)
    stable_count = 0
    if scale_stable and stable is not None:
        stable_count = stable.replicas
    else:
        # No separate stable: the new ReplicaSet simply goes to 100%.
        desired_new, desired_stable = replicas, 0

    max_total = replicas + max_surge
    counted: list[ReplicaSetView | None] = [*others, new]
    if scale_stable:
        counted.append(stable)
    scale_up = max_total - _spec_replicas(counted)

    if scale_stable and stable is not None and stable.replicas < desired_stable and scale_up > 0:
        if stable.replicas + scale_up < desired_stable:
            stable_count = stable.replicas + scale_up
            scale_up = 0
        else:
            stable_count = desired_stable
            scale_up -= desired_stable - stable.replicas
    if new is not None and new.replicas < desired_new and scale_up > 0:
        new_count = min(new.replicas + scale_up, desired_new)

    if _spec_replicas(others) > 0:
        # Older ReplicaSets go first; new and stable wait until they are drained.
        return new_count, stable_count

    min_available = replicas - max_unavailable
    increasing = new is None or desired_new >= new.replicas
    to_scale_down = replicas_for_scale_down(
        new, ignore_availability=not increasing
    ) + replicas_for_scale_down(stable if scale_stable else None, ignore_availability=increasing)
    if to_scale_down <= min_available:
        return new_count, stable_count
    scale_down = to_scale_down - min_available
    if not increasing:
        if new is not None and new.replicas > desired_new:
            new_count = max(desired_new, new.replicas - scale_down)
        new_count, stable_count = _adjust_within_limits(
            new,
            stable if scale_stable else None,
            new_count,
            stable_count,
            max_total=max_total,
            min_available=min_available,
        )
    elif scale_stable and stable is not None:
        if stable.replicas > desired_stable:
            stable_count = max(desired_stable, stable.replicas - scale_down)
        stable_count, new_count = _adjust_within_limits(
            stable,
            new,
            stable_count,
            new_count,
            max_total=max_total,
            min_available=min_available,
        )
    return new_count, stable_count


def weight_to_replicas(replicas: int, weight: int, max_weight: int = 100) -> int:
    """ceil(weight x replicas / max_weight): pods needed to serve `weight` of the traffic."""
    return -(-(weight * replicas) // max_weight)


def with_min_pods(count: int, *, replicas: int, min_pods_per_replica_set: int | None) -> int:
    """`count` raised to minPodsPerReplicaSet (capped at `replicas`); a zero count stays zero."""
    if count == 0 or not min_pods_per_replica_set:
        return count
    return max(count, min(min_pods_per_replica_set, replicas))


def traffic_routed_counts(
    *,
    replicas: int,
    weight: int,
    canary_replicas: int | None,
    max_weight: int = 100,
    min_pods_per_replica_set: int | None = None,
    dynamic_stable_scale: bool = False,
    current_weights: tuple[int, int] | None = None,
    aborted: bool = False,
) -> tuple[int, int]:
    """(canary, stable) counts with a traffic router (CalculateReplicaCountsForTrafficRoutedCanary).

    The canary is sized for its weight (or the setCanaryScale count). The stable stays at full
    size unless `dynamic_stable_scale`: then it is sized for the larger of the stable weight
    wanted and the stable weight in force (`current_weights` = (canary, stable) weights of the
    previous status), so it shrinks only after traffic has left it and grows before traffic
    comes back; an aborted canary keeps the pods its current weight needs until that weight is
    gone. minPodsPerReplicaSet raises any non-zero count.
    """
    minimum = min_pods_per_replica_set
    if canary_replicas is not None:
        canary = canary_replicas
    else:
        canary = with_min_pods(
            weight_to_replicas(replicas, weight, max_weight),
            replicas=replicas,
            min_pods_per_replica_set=minimum,
        )
    if not dynamic_stable_scale:
        return canary, replicas
    stable = weight_to_replicas(replicas, max_weight - weight, max_weight)
    if current_weights is not None:
        current_canary, current_stable = current_weights
        stable = max(stable, weight_to_replicas(replicas, current_stable, max_weight))
        if aborted:
            canary = max(canary, weight_to_replicas(replicas, current_canary, max_weight))
    return (
        with_min_pods(canary, replicas=replicas, min_pods_per_replica_set=minimum),
        with_min_pods(stable, replicas=replicas, min_pods_per_replica_set=minimum),
    )


def progress_threshold_met(available: int, desired: int, threshold: tuple[str, int] | None) -> bool:
    """Whether `available` of `desired` pods is enough to count a step as reached
    (replicaProgressThreshold `(type, value)`; without one, all of them)."""
    if desired <= 0:
        return True
    if threshold is None:
        return available >= desired
    kind, value = threshold
    if kind == "Pods":
        return available >= min(value, desired)
    return available * 100 >= value * desired


def abort_weight(
    *,
    replicas: int,
    stable_available: int,
    current_weight: int | None,
    ladder: Sequence[int],
    max_weight: int = 100,
) -> int:
    """The canary weight while a dynamicStableScale rollout aborts: what the stable cannot serve
    yet (Argo: `max - max x available / replicas`), rounded up to the next rung of the
    setWeight ladder so the way back walks the steps in reverse; never above the weight in
    force, and 0 once the stable is whole."""
    if replicas <= 0:
        return 0
    unserved = max(0, max_weight - (max_weight * stable_available) // replicas)
    if current_weight is not None:
        unserved = min(unserved, current_weight)
    if unserved == 0:
        return 0
    rungs = [rung for rung in ladder if rung >= unserved]
    weight = min(rungs) if rungs else unserved
    return weight if current_weight is None else min(weight, current_weight)


def actual_weight(canary_available: int, total_available: int) -> int:
    """The traffic share a basic canary really gets: its share of the available pods (percent)."""
    if total_available <= 0:
        return 0
    return canary_available * 100 // total_available
