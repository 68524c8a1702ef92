"""Leader election on a Lease: one leader at a time, takeover only after the lease expired by
the candidate's own clock, release on a graceful stop, loss when renewals fail. Time is passed
in; the Lease lives in an in-memory object client with resourceVersions (409 on a stale write)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollwise.api.errors import TransientError
from rollwise.platforms.kubernetes.leader import LeaderElector, LeadershipLost, LeaseTimings
from rollwise.routers.objects import InMemoryObjects


class Clocks:
    def __init__(self) -> None:
        self.seconds = 0.0

    def wall(self) -> datetime:
        return datetime(2026, 11, 26, tzinfo=UTC) + timedelta(seconds=self.seconds)

    def monotonic(self) -> float:
        return self.seconds


def elector(objects: InMemoryObjects, clocks: Clocks, identity: str) -> LeaderElector:
    return LeaderElector(
        objects,
        name="rollwise-controller-lock",
        namespace="rollwise",
        identity=identity,
        now=clocks.wall,
        monotonic=clocks.monotonic,
    )


async def test_the_first_candidate_creates_the_lease_and_leads() -> None:
    objects, clocks = InMemoryObjects(), Clocks()
    first, second = elector(objects, clocks, "a"), elector(objects, clocks, "b")
    assert await first.try_acquire_or_renew()
    assert not await second.try_acquire_or_renew()
    lease = await objects.get(
        "coordination.k8s.io/v1", "Lease", "rollwise-controller-lock", "rollwise"
    )
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    assert lease["spec"]["renewTime"] == "2026-11-26T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("silent_seconds", "taken_over"),
    [(5.0, False), (14.9, False), (15.0, True), (60.0, True)],
)
async def test_a_candidate_takes_over_only_after_the_lease_went_unrenewed_for_its_duration(
    silent_seconds: float, taken_over: bool
) -> None:
    objects, clocks = InMemoryObjects(), Clocks()
    leader, candidate = elector(objects, clocks, "a"), elector(objects, clocks, "b")
    assert await leader.try_acquire_or_renew()
    assert not await candidate.try_acquire_or_renew()  # the candidate starts watching the record
    clocks.seconds += silent_seconds
    assert await candidate.try_acquire_or_renew() is taken_over
    if taken_over:
        lease = await objects.get(
            "coordination.k8s.io/v1", "Lease", "rollwise-controller-lock", "rollwise"
        )
        assert lease is not None
        assert lease["spec"]["leaseTransitions"] == 1
        assert not await leader.try_acquire_or_renew()


async def test_renewals_keep_the_lease_from_expiring() -> None:
    objects, clocks = InMemoryObjects(), Clocks()
    leader, candidate = elector(objects, clocks, "a"), elector(objects, clocks, "b")
    assert await leader.try_acquire_or_renew()
    for _ in range(20):
        clocks.seconds += 2.0
        assert await leader.try_acquire_or_renew()
        assert not await candidate.try_acquire_or_renew()


async def test_a_released_lease_is_taken_at_once() -> None:
    objects, clocks = InMemoryObjects(), Clocks()
    leader, candidate = elector(objects, clocks, "a"), elector(objects, clocks, "b")
    assert await leader.try_acquire_or_renew()
    assert not await candidate.try_acquire_or_renew()
    await leader.release()
    clocks.seconds += 1.0
    assert await candidate.try_acquire_or_renew()


async def test_the_leader_gives_up_when_it_cannot_renew_within_the_deadline() -> None:
    class Failing(InMemoryObjects):
        failing = False

        async def replace(self, obj: dict[str, object]) -> dict[str, object]:
            if self.failing:
                raise TransientError("API server unreachable")
            return await super().replace(obj)  # type: ignore[arg-type]

    objects, clocks = Failing(), Clocks()
    timings = LeaseTimings(lease_seconds=15, renew_deadline_seconds=10, retry_period_seconds=0)
    leader = LeaderElector(
        objects,
        name="l",
        namespace="ns",
        identity="a",
        timings=timings,
        now=clocks.wall,
        monotonic=clocks.monotonic,
    )
    assert await leader.try_acquire_or_renew()
    objects.failing = True

    async def tick() -> None:
        clocks.seconds += 1.0

    real = leader.try_acquire_or_renew

    async def attempt() -> bool:
        await tick()
        return await real()

    leader.try_acquire_or_renew = attempt  # type: ignore[method-assign]
    with pytest.raises(LeadershipLost, match="not renewed for 10 s"):
        await leader.hold()
    assert clocks.seconds == 10.0
