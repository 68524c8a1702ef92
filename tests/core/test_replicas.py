"""Canary replica arithmetic gives the counts Argo gives (reference 1.7, Argo's own tables)."""

from datetime import UTC, datetime

import pytest

from rollwise.core.observed import ReplicaSetView
from rollwise.core.replicas import (
    actual_weight,
    approximate_weighted_counts,
    basic_canary_counts,
    resolve_fenceposts,
    traffic_routed_counts,
    value_from_int_or_percent,
    weight_to_replicas,
)

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def rs(name: str, replicas: int, available: int) -> ReplicaSetView:
    return ReplicaSetView(
        name=name,
        pod_template_hash=name,
        revision=1,
        replicas=replicas,
        ready=available,
        available=available,
        template={},
        created_at=T0,
    )


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (None, 10, True, 3),  # default 25% of 10 rounds up for surge
        (None, 10, False, 2),  # ... and down for unavailability
        ("25%", 5, True, 2),
        ("25%", 5, False, 1),
        ("20", 10, True, 2),  # a percent-less string is still a percent (Argo quirk)
        (3, 10, True, 3),
        ("0%", 10, False, 0),
    ],
)
def test_int_or_percent(value: int | str | None, total: int, round_up: bool, expected: int) -> None:
    assert value_from_int_or_percent(value, "25%", total, round_up=round_up) == expected


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        (None, None, 5, (2, 1)),
        ("0%", "0%", 10, (0, 1)),  # both zero: one pod may be unavailable
        (0, 0, 3, (0, 1)),
        (1, 20, 3, (1, 3)),  # unavailability is capped at the replicas
        (None, None, 0, (0, 0)),
    ],
)
def test_fenceposts(
    surge: int | str | None, unavailable: int | str | None, replicas: int, expected: tuple[int, int]
) -> None:
    assert resolve_fenceposts(surge, unavailable, replicas) == expected


@pytest.mark.parametrize(
    ("replicas", "weight", "max_surge", "canary", "stable"),
    [
        (0, 50, 1, 0, 0),
        (1, 49, 0, 0, 1),
        (1, 50, 0, 1, 0),
        (1, 1, 1, 1, 1),
        (1, 100, 1, 1, 0),
        (2, 1, 0, 1, 1),
        (2, 1, 1, 1, 2),
        (2, 99, 1, 2, 1),
        (3, 10, 0, 1, 2),
        (3, 50, 0, 2, 1),
        (3, 25, 1, 1, 3),
        (3, 49, 1, 2, 2),
        (5, 20, 2, 1, 4),  # the seed rollout: 5 replicas, setWeight 20
        (5, 40, 2, 2, 3),
        (5, 60, 2, 3, 2),
        (5, 80, 2, 4, 1),
        (10, 14, 0, 1, 9),
        (10, 15, 0, 2, 8),
        (10, 18, 1, 2, 9),
        (10, 24, 1, 3, 8),
        (10, 25, 1, 3, 8),
        (10, 99, 1, 10, 1),
        (10, 100, 1, 10, 0),
    ],
)
def test_weight_is_approximated_by_pod_ratio(
    replicas: int, weight: int, max_surge: int, canary: int, stable: int
) -> None:
    assert approximate_weighted_counts(replicas, weight, max_surge) == (canary, stable)


@pytest.mark.parametrize(
    (
        "name",
        "replicas",
        "weight",
        "surge",
        "unavailable",
        "stable",
        "canary",
        "older",
        "expected",
    ),
    [
        ("no extra RSs when spec < available", 10, 100, 3, 0, (7, 8), (6, 3), None, (6, 7)),
        ("max surge int scales canary up", 10, 20, 2, 0, (10, 10), (0, 0), None, (2, 10)),
        ("max surge percent scales canary up", 10, 20, "20%", 0, (10, 10), (0, 0), None, (2, 10)),
        ("extra stable replicas scale down", 10, 20, "20%", 0, (10, 10), (2, 2), None, (2, 8)),
        ("never past max surge", 10, 30, 2, 0, (10, 10), (0, 0), None, (2, 10)),
        ("max unavailable scales stable down", 10, 20, 0, 2, (10, 10), (0, 0), None, (0, 8)),
        ("never past max unavailable", 10, 30, 0, 2, (10, 10), (0, 0), None, (0, 8)),
        ("surge and unavailable together", 10, 50, 2, 1, (10, 10), (0, 0), None, (2, 9)),
        ("weight 0 removes the canary", 10, 0, 1, 1, (10, 10), (1, 1), None, (0, 10)),
        ("weight 100 removes the stable", 10, 100, 1, 1, (1, 1), (10, 10), None, (10, 0)),
        ("one replica, weight 20 still runs a canary", 1, 20, 1, 0, (1, 1), (0, 0), None, (1, 1)),
        ("stable scales up before canary", 10, 30, 1, 0, (1, 1), (0, 0), (3, 3), (1, 7)),
        ("new and stable scale down", 10, 30, 0, 3, (8, 5), (4, 4), None, (3, 7)),
        ("older RSs drain first", 10, 30, 0, 1, (8, 6), (4, 2), (3, 3), (4, 8)),
        ("uneven divisor never rounds past surge", 10, 5, 0, 1, (10, 10), (0, 0), None, (0, 9)),
        ("uneven divisor, part 2", 10, 5, 0, 1, (9, 9), (0, 0), None, (1, 9)),
        ("0% and 0% means one unavailable", 10, 10, "0%", "0%", (10, 10), (0, 0), None, (0, 9)),
        ("surge honoured when stable unavailable", 4, 100, 1, 0, (4, 1), (0, 0), None, (1, 4)),
        ("abort surges stable before canary goes", 4, 0, 1, 0, (0, 0), (4, 4), None, (4, 1)),
    ],
)
def test_basic_canary_counts(
    name: str,
    replicas: int,
    weight: int,
    surge: int | str,
    unavailable: int | str,
    stable: tuple[int, int],
    canary: tuple[int, int],
    older: tuple[int, int] | None,
    expected: tuple[int, int],
) -> None:
    max_surge, max_unavailable = resolve_fenceposts(surge, unavailable, replicas)
    counts = basic_canary_counts(
        replicas=replicas,
        weight=weight,
        max_surge=max_surge,
        max_unavailable=max_unavailable,
        new=rs("canary", *canary),
        stable=rs("stable", *stable),
        others=[rs("older", *older)] if older else [],
    )
    assert counts == expected, name


def test_without_a_stable_the_new_revision_goes_to_full_size() -> None:
    new = rs("new", 9, 9)
    for stable in (None, new):
        counts = basic_canary_counts(
            replicas=10,
            weight=10,
            max_surge=0,
            max_unavailable=1,
            new=new,
            stable=stable,
            others=[],
        )
        assert counts == (10, 0)


@pytest.mark.parametrize(
    ("replicas", "weight", "expected"),
    [(10, 0, 0), (10, 20, 2), (10, 25, 3), (10, 33, 4), (10, 99, 10), (5, 20, 1), (5, 1, 1)],
)
def test_traffic_routed_canary_size_rounds_up(replicas: int, weight: int, expected: int) -> None:
    assert weight_to_replicas(replicas, weight) == expected
    assert traffic_routed_counts(replicas=replicas, weight=weight, canary_replicas=None) == (
        expected,
        replicas,
    )


def test_traffic_routed_overrides() -> None:
    # setCanaryScale replicas wins over the weight; the stable stays at full size.
    assert traffic_routed_counts(replicas=1, weight=100, canary_replicas=9) == (9, 1)
    # maxTrafficWeight changes the denominator.
    assert traffic_routed_counts(replicas=10, weight=50, canary_replicas=None, max_weight=200) == (
        3,
        10,
    )
    # minPodsPerReplicaSet raises a non-zero canary, never above the replicas, never a zero one.
    assert traffic_routed_counts(
        replicas=10, weight=10, canary_replicas=None, min_pods_per_replica_set=2
    ) == (2, 10)
    assert traffic_routed_counts(
        replicas=3, weight=10, canary_replicas=None, min_pods_per_replica_set=5
    ) == (3, 3)
    assert traffic_routed_counts(
        replicas=10, weight=0, canary_replicas=None, min_pods_per_replica_set=2
    ) == (0, 10)


@pytest.mark.parametrize(
    ("canary", "total", "expected"), [(1, 5, 20), (0, 5, 0), (1, 6, 16), (0, 0, 0)]
)
def test_actual_weight_follows_available_pods(canary: int, total: int, expected: int) -> None:
    assert actual_weight(canary, total) == expected
