"""What the cluster routers' tests share: an object store that records writes and can let
another writer in before ours, the Rollout the routers work for, and a call runner.

The store is `rollwise.routers.objects.InMemoryObjects` (real resourceVersions, real
conflicts); `RecordingObjects` only adds a log of the writes and `concurrent_edits`, edits that
run just before the router's next `replace` reaches the store, as another client's would.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from rollwise.api.models import SetHeaderRoute, SetMirrorRoute, WeightDestination
from rollwise.routers.base import Router
from rollwise.routers.cluster import RolloutTarget
from rollwise.routers.objects import InMemoryObjects, RawObject

OWNER = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "name": "myapp",
    "uid": "9d0c1a6e-2f4b-4c57-a3c3-6f1e2d7b8a90",
}
CONTROLLER_REF = {**OWNER, "controller": True, "blockOwnerDeletion": True}

Call = tuple[str, tuple[Any, ...]]
ConcurrentEdit = Callable[[InMemoryObjects], Awaitable[None]]


class RecordingObjects(InMemoryObjects):
    def __init__(self, *objects: RawObject) -> None:
        super().__init__(*objects)
        self.writes: list[tuple[str, str, str]] = []
        self.concurrent_edits: list[ConcurrentEdit] = []

    async def create(self, obj: RawObject) -> RawObject:
        self.writes.append(("create", obj["kind"], obj["metadata"]["name"]))
        return await super().create(obj)

    async def replace(self, obj: RawObject) -> RawObject:
        if self.concurrent_edits:
            await self.concurrent_edits.pop(0)(self)
        self.writes.append(("replace", obj["kind"], obj["metadata"]["name"]))
        return await super().replace(obj)

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
    ) -> RawObject:
        self.writes.append(("merge_patch", kind, name))
        return await super().merge_patch(api_version, kind, name, namespace, patch)

    def stored(self, kind: str, name: str, namespace: str = "default") -> RawObject | None:
        """The object as stored, without the resourceVersion the store adds."""
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            return None
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("resourceVersion", None)
        return obj

    def all_stored(self) -> list[RawObject]:
        found = [self.stored(kind, name, ns) for kind, ns, name in sorted(self.objects)]
        return [obj for obj in found if obj is not None]


def target(**changes: Any) -> RolloutTarget:
    values: dict[str, Any] = {
        "name": "myapp",
        "namespace": "default",
        "stable_service": "myapp-stable",
        "canary_service": "myapp-canary",
        "owner_reference": OWNER,
    }
    values.update(changes)
    return RolloutTarget(**values)


def weight(value: int, *additional: WeightDestination) -> Call:
    return ("set_weight", (value, additional))


def header(name: str, *matches: Mapping[str, Any]) -> Call:
    route = SetHeaderRoute.model_validate(
        {"name": name, "match": list(matches)} if matches else {"name": name}
    )
    return ("set_header_route", (route,))


def mirror(name: str, matches: Sequence[Mapping[str, Any]] | None, percentage: int | None) -> Call:
    raw: dict[str, Any] = {"name": name}
    if matches is not None:
        raw["match"] = list(matches)
    if percentage is not None:
        raw["percentage"] = percentage
    return ("set_mirror_route", (SetMirrorRoute.model_validate(raw),))


def hashes(canary: str, stable: str, *additional: WeightDestination) -> Call:
    return ("update_hash", (canary, stable, additional))


REMOVE: Call = ("remove_managed_routes", ())


def experiment(service: str, value: int, pod_hash: str | None = None) -> WeightDestination:
    return WeightDestination(weight=value, service_name=service, pod_template_hash=pod_hash)


async def run(router: Router, calls: Sequence[Call]) -> list[Any]:
    """Make the calls in order; their results (None except for verify_weight)."""
    return [await getattr(router, name)(*args) for name, args in calls]
