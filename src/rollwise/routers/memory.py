"""A router that keeps the traffic split in memory and records every call.

Who uses it: unit tests of the controller, `rollwise analyze` and simulations - anything that
needs a `Router` without a proxy. It behaves like a real router that applies every change at once:
`verify_weight` compares with what it holds, unless a test sets `verification` to force an
answer (False: the proxy lags; None: the router cannot verify). Setting `error` makes every call
that changes routing raise it, the way a real router raises `TransientError` when its proxy is
down, so the controller's "action failed, do not write status" path can be tested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rollwise.api.models import SetHeaderRoute, SetMirrorRoute, WeightDestination

CallName = Literal[
    "update_hash",
    "set_weight",
    "set_header_route",
    "set_mirror_route",
    "verify_weight",
    "remove_managed_routes",
]


@dataclass(frozen=True, slots=True)
class RouterCall:
    """One call made on the router, with its arguments in call order."""

    name: CallName
    args: tuple[object, ...] = ()


@dataclass(slots=True)
class InMemoryRouter:
    """A `Router` (see `rollwise.routers.base`) whose proxy is a few attributes."""

    verification: bool | Literal["compare"] | None = "compare"
    """What `verify_weight` answers: "compare" = whether the held split equals the asked one."""
    error: Exception | None = None
    """When set, raised by every call that changes routing (nothing changes)."""
    weight: int = 0
    additional: tuple[WeightDestination, ...] = ()
    canary_hash: str | None = None
    stable_hash: str | None = None
    header_routes: dict[str, SetHeaderRoute] = field(default_factory=dict)
    """Managed header routes by name, in the order they were first added."""
    mirror_routes: dict[str, SetMirrorRoute] = field(default_factory=dict)
    calls: list[RouterCall] = field(default_factory=list)

    async def update_hash(
        self,
        canary_hash: str,
        stable_hash: str,
        additional: Sequence[WeightDestination] = (),
    ) -> None:
        self._record("update_hash", canary_hash, stable_hash, tuple(additional))
        self.canary_hash, self.stable_hash = canary_hash, stable_hash

    async def set_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> None:
        self._record("set_weight", desired_weight, tuple(additional))
        self.weight, self.additional = desired_weight, tuple(additional)

    async def set_header_route(self, route: SetHeaderRoute) -> None:
        self._record("set_header_route", route)
        name = route.name or ""
        if route.match is None:
            self.header_routes.pop(name, None)
        else:
            self.header_routes[name] = route

    async def set_mirror_route(self, route: SetMirrorRoute) -> None:
        self._record("set_mirror_route", route)
        if route.match is None:
            self.mirror_routes.pop(route.name, None)
        else:
            self.mirror_routes[route.name] = route

    async def verify_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> bool | None:
        # Verification only reads, so it is recorded but never fails with `error`.
        self.calls.append(RouterCall("verify_weight", (desired_weight, tuple(additional))))
        if self.verification != "compare":
            return self.verification
        return self.weight == desired_weight and self.additional == tuple(additional)

    async def remove_managed_routes(self) -> None:
        self._record("remove_managed_routes")
        self.header_routes.clear()
        self.mirror_routes.clear()

    def calls_named(self, name: CallName) -> list[RouterCall]:
        """The recorded calls of one method, oldest first."""
        return [call for call in self.calls if call.name == name]

    def _record(self, name: CallName, *args: object) -> None:
        self.calls.append(RouterCall(name, args))
        if self.error is not None:
            raise self.error
