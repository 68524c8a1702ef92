"""Several traffic routers acting as one, for a Rollout that names more than one.

Where it sits: `rollwise.routers.registry.cluster_router` wraps the routers of a Rollout such as
`trafficRouting: {nginx: ..., smi: ...}` (Argo allows any mix and calls each in turn) in a
`CompositeRouter`, so the controller always talks to one `Router`.

Each call goes to every router in turn (in the order of `TrafficRouting`'s fields: istio,
nginx, smi, traefik, then plugins); the first error stops the call and is raised (the
controller retries the whole call at the next reconcile, and every router's calls are
idempotent). Verification combines the answers: False if any router says False, None if every
router says None (nobody can tell), True otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from rollwise.api.models import SetHeaderRoute, SetMirrorRoute, WeightDestination
from rollwise.routers.base import Router


class CompositeRouter:
    """A `Router` (`rollwise.routers.base`) that calls each of several routers in turn."""

    def __init__(self, routers: Sequence[Router]) -> None:
        self.routers = tuple(routers)

    async def update_hash(
        self,
        canary_hash: str,
        stable_hash: str,
        additional: Sequence[WeightDestination] = (),
    ) -> None:
        for router in self.routers:
            await router.update_hash(canary_hash, stable_hash, additional)

    async def set_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> None:
        for router in self.routers:
            await router.set_weight(desired_weight, additional)

    async def set_header_route(self, route: SetHeaderRoute) -> None:
        for router in self.routers:
            await router.set_header_route(route)

    async def set_mirror_route(self, route: SetMirrorRoute) -> None:
        for router in self.routers:
            await router.set_mirror_route(route)

    async def verify_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> bool | None:
        answers = [
            await router.verify_weight(desired_weight, additional) for router in self.routers
        ]
        return combine_verifications(answers)

    async def remove_managed_routes(self) -> None:
        for router in self.routers:
            await router.remove_managed_routes()


def combine_verifications(answers: Sequence[bool | None]) -> bool | None:
    """False if any says False; None if all say None (or there are none); else True."""
    if any(answer is False for answer in answers):
        return False
    if all(answer is None for answer in answers):
        return None
    return True
