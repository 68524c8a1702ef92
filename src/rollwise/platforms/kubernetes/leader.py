"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Who uses it: the Kubernetes controller (`rollwise.controller.kubernetes`) with `--leader-elect`
(the default, as Argo's): several replicas run, one acts. Argo's timings are the defaults: a
lease lasts 15 s, the leader renews it every retry period (2 s) and gives up leading when it
could not renew for 10 s (the renew deadline), so it stops acting before another replica may
take the lease.

Clock skew: like client-go, a candidate does not compare the lease's `renewTime` with its own
clock; it notes when *it* last saw the lease record change, and takes the lease only when the
record has not changed for a whole lease duration by its own monotonic clock. Taking or renewing
is a write with the resourceVersion read, so two candidates never both win: the loser gets 409.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollwise.api.errors import ConflictError, TransientError, UserError
from rollwise.routers.objects import ObjectClient

log = logging.getLogger("rollwise.leader")

LEASE_API = "coordination.k8s.io/v1"
RawObject = dict[str, Any]


class LeadershipLost(Exception):
    """The lease could not be renewed within the renew deadline: stop acting now."""


@dataclass(frozen=True)
class LeaseTimings:
    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0


def micro_time(at: datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 with microseconds."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: ObjectClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        timings: LeaseTimings = LeaseTimings(),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timings = timings
        self._now = now
        self._monotonic = monotonic
        self._observed: RawObject | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0

    @property
    def is_leader(self) -> bool:
        spec = (self._observed or {}).get("spec") or {}
        return bool(spec.get("holderIdentity") == self.identity)

    async def acquire(self) -> None:
        """Return once this candidate holds the lease (tries every retry period)."""
        # Polling is the protocol: a Lease has no notification of its expiry.
        while not await self.try_acquire_or_renew():  # noqa: ASYNC110
            await asyncio.sleep(self.timings.retry_period_seconds)
        log.info(
            "became the leader (lease %s/%s, identity %s)", self.namespace, self.name, self.identity
        )

    async def hold(self) -> None:
        """Renew the lease every retry period; raise `LeadershipLost` when it could not be
        renewed for the renew deadline (or someone else holds it)."""
        while True:
            await asyncio.sleep(self.timings.retry_period_seconds)
            if await self.try_acquire_or_renew():
                continue
            if self.is_leader_elsewhere() or (
                self._monotonic() - self._renewed_at >= self.timings.renew_deadline_seconds
            ):
                raise LeadershipLost(
                    f"lost the lease {self.namespace}/{self.name} (not renewed for "
                    f"{self.timings.renew_deadline_seconds:g} s)"
                )

    def is_leader_elsewhere(self) -> bool:
        holder = ((self._observed or {}).get("spec") or {}).get("holderIdentity")
        return bool(holder) and holder != self.identity

    async def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go's tryAcquireOrRenew): True if this candidate holds the lease."""
        now = self._now()
        try:
            lease = await self.client.get(LEASE_API, "Lease", self.name, self.namespace)
            if lease is None:
                created = await self.client.create(self._lease(None, now, transitions=0))
                return self._won(created)
            spec = lease.get("spec") or {}
            if lease != self._observed:
                self._observed, self._observed_at = lease, self._monotonic()
            holder = spec.get("holderIdentity") or ""
            expired = self._monotonic() >= self._observed_at + float(
                spec.get("leaseDurationSeconds") or self.timings.lease_seconds
            )
            if holder and holder != self.identity and not expired:
                return False
            transitions = int(spec.get("leaseTransitions") or 0)
            if holder != self.identity:
                transitions += 1
            updated = await self.client.replace(self._lease(lease, now, transitions=transitions))
            return self._won(updated)
        except (ConflictError, TransientError, UserError) as error:
            log.info("lease %s/%s not acquired or renewed: %s", self.namespace, self.name, error)
            return False

    async def release(self) -> None:
        """Give the lease up on a graceful stop, so another replica takes over at once."""
        if not self.is_leader or self._observed is None:
            return
        lease = dict(self._observed)
        spec = dict(lease.get("spec") or {})
        spec.update(holderIdentity="", leaseDurationSeconds=1)
        try:
            await self.client.replace({**lease, "spec": spec})
        except (ConflictError, TransientError, UserError) as error:
            log.info("lease %s/%s not released: %s", self.namespace, self.name, error)

    def _won(self, lease: RawObject) -> bool:
        self._observed, self._observed_at = lease, self._monotonic()
        self._renewed_at = self._observed_at
        return True

    def _lease(self, current: RawObject | None, now: datetime, *, transitions: int) -> RawObject:
        spec = dict((current or {}).get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = micro_time(now)
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=int(self.timings.lease_seconds),
            renewTime=micro_time(now),
            leaseTransitions=transitions,
        )
        metadata = dict((current or {}).get("metadata") or {})
        metadata.update(name=self.name, namespace=self.namespace)
        return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": metadata, "spec": spec}
