"""The one protocol every traffic router implements.

Where it sits: the controller executes the core's traffic actions (`SetWeight`, `VerifyWeight`,
`SetHeaderRoute`, `SetMirrorRoute`, `RemoveManagedRoutes`) by calling a `Router` bound to one
Rollout. Implementations: `rollwise.routers.memory.InMemoryRouter` (unit tests, simulation) and,
in local mode, `rollwise.platforms.local.dataplane.LocalRouter` (a real Traefik).

The method set is Argo Rollouts' `TrafficRoutingReconciler` (reference section 4.1):
- weights are out of the rollout's `maxTrafficWeight` (default 100); the stable side gets what
  the canary and the `additional` destinations (experiment services with a weight) leave over;
- a route step without `match` removes the managed route of that name;
- `verify_weight` answers True / False, or None when the router cannot tell (Argo's nil), which
  the controller counts as verified;
- a router that cannot do a call (e.g. mirroring) treats it as a no-op, as Argo's do.

A router that cannot reach its proxy raises `rollwise.api.errors.TransientError`: the controller
then does not write the decided status, and the next reconcile asks again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rollwise.api.models import SetHeaderRoute, SetMirrorRoute, WeightDestination


class Router(Protocol):
    """Traffic routing for one Rollout: who gets which share of the requests."""

    async def update_hash(
        self,
        canary_hash: str,
        stable_hash: str,
        additional: Sequence[WeightDestination] = (),
    ) -> None:
        """Tell routers that select pods by hash (Istio subsets) which hashes are canary/stable."""
        ...

    async def set_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> None:
        """Send `desired_weight` to the canary, each additional destination its weight, and the
        rest to stable."""
        ...

    async def set_header_route(self, route: SetHeaderRoute) -> None:
        """Add or replace the managed route `route.name` sending matching requests to the canary;
        without `route.match`, remove it."""
        ...

    async def set_mirror_route(self, route: SetMirrorRoute) -> None:
        """Add or replace the managed route `route.name` copying `route.percentage` of matching
        requests to the canary; without `route.match`, remove it."""
        ...

    async def verify_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> bool | None:
        """Is this split in force in the proxy? None when this router cannot tell."""
        ...

    async def remove_managed_routes(self) -> None:
        """Remove every header and mirror route this router added for the Rollout."""
        ...


class SelectsByService:
    """Base of the routers that send traffic to Services, which select the pods by hash
    themselves (the controller switches their selectors): `update_hash` has nothing to do."""

    async def update_hash(
        self,
        canary_hash: str,
        stable_hash: str,
        additional: Sequence[WeightDestination] = (),
    ) -> None:
        return None
