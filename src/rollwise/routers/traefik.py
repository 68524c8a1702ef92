"""The Traefik router: the weights of a weighted `TraefikService`.

Where it sits: built by `rollwise.routers.registry.cluster_router` for a Rollout with
`trafficRouting.traefik`, once per reconcile; it edits the TraefikService named by
`weightedTraefikServiceName` (in the Rollout's namespace) through an `ObjectClient`.

Behaviour (Argo's `rollout/trafficrouting/traefik`, reference 4.3):
- `spec.weighted.services[]`: the entry named after the canary Service gets the canary weight,
  the stable one `max - canary - experiments`; both must be there. Experiment Services
  (`additional`) are added (with the canary entry's port) or re-weighted; the ones this router
  added are listed in the annotation `rollwise.io/experiment-services` and removed when the
  experiment ends. Other entries are left alone.
- No header or mirror routes (a TraefikService has no request matching; Argo's are no-ops).
- `verify_weight` reads the TraefikService back and compares the weights. The object is the
  whole truth Traefik's Kubernetes CRD provider reads, so this catches what can go wrong after
  our write: another writer (a GitOps tool syncing the manifest, a second controller) putting
  other weights back. It cannot see Traefik's own reload, which Argo cannot either.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from rollwise.api.errors import UserError
from rollwise.api.models import SetHeaderRoute, SetMirrorRoute, WeightDestination
from rollwise.routers.base import SelectsByService
from rollwise.routers.cluster import (
    ObjectRef,
    RolloutTarget,
    additional_by_service,
    edit_object,
    set_tracked_names,
    tracked_names,
)
from rollwise.routers.objects import ObjectClient, RawObject

API_VERSION = "traefik.io/v1alpha1"
LEGACY_API_VERSION = "traefik.containo.us/v1alpha1"
"""The group Traefik used before v3 (Argo's `--traefik-api-group` can select it)."""
EXPERIMENT_SERVICES = "rollwise.io/experiment-services"
NAMED_IN = "spec.strategy.canary.trafficRouting.traefik.weightedTraefikServiceName"


class TraefikRouter(SelectsByService):
    """The `Router` (`rollwise.routers.base`) of one Rollout over a weighted TraefikService."""

    def __init__(
        self,
        client: ObjectClient,
        target: RolloutTarget,
        *,
        settings: Mapping[str, Any],
        api_version: str = API_VERSION,
    ) -> None:
        self.client = client
        self.target = target
        self.stable_service, self.canary_service = target.services("traefik")
        name = settings.get("weightedTraefikServiceName")
        if not name:
            raise UserError(f"{NAMED_IN} is required")
        self.ref = ObjectRef(api_version, "TraefikService", str(name), target.namespace)

    async def set_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> None:
        def change(obj: RawObject) -> None:
            self._split(obj, desired_weight, additional)

        await edit_object(self.client, self.ref, change, named_in=NAMED_IN)

    async def set_header_route(self, route: SetHeaderRoute) -> None:
        return None

    async def set_mirror_route(self, route: SetMirrorRoute) -> None:
        return None

    async def verify_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> bool | None:
        obj = await self.client.get(
            self.ref.api_version, self.ref.kind, self.ref.name, self.ref.namespace
        )
        if obj is None:
            return False
        weights = {
            entry.get("name"): entry.get("weight")
            for entry in _services(obj)
            if isinstance(entry, dict)
        }
        wanted = {
            self.canary_service: desired_weight,
            self.stable_service: self.target.stable_weight(desired_weight, additional),
            **{name: d.weight for name, d in additional_by_service(additional).items()},
        }
        return all(_as_int(weights.get(name)) == weight for name, weight in wanted.items())

    async def remove_managed_routes(self) -> None:
        return None

    def _split(self, obj: RawObject, weight: int, additional: Sequence[WeightDestination]) -> None:
        entries = _services(obj)
        names = [entry.get("name") for entry in entries]
        for role, service in (("canary", self.canary_service), ("stable", self.stable_service)):
            if service not in names:
                raise UserError(
                    f"{self.ref} has no weighted service for the {role} Service {service!r}"
                    f" (its services: {', '.join(map(str, names)) or 'none'})"
                )
        extra = additional_by_service(additional)
        added = set(tracked_names(obj, EXPERIMENT_SERVICES))
        stable_weight = self.target.stable_weight(weight, additional)
        kept: list[RawObject] = []
        canary_entry: Mapping[str, Any] = {}
        for entry in entries:
            name = entry.get("name")
            if name == self.canary_service:
                entry["weight"] = weight
                canary_entry = entry
            elif name == self.stable_service:
                entry["weight"] = stable_weight
            elif name in extra:
                entry["weight"] = extra[name].weight
            elif name in added:
                continue  # an experiment Service of ours whose experiment ended
            kept.append(entry)
        for name, item in extra.items():
            if name not in names:
                entry = {"name": name, "weight": item.weight}
                if "port" in canary_entry:
                    entry["port"] = copy.deepcopy(canary_entry["port"])
                kept.append(entry)
        obj["spec"]["weighted"]["services"] = kept
        set_tracked_names(obj, EXPERIMENT_SERVICES, extra)


def _services(obj: Mapping[str, Any]) -> list[RawObject]:
    weighted = (obj.get("spec") or {}).get("weighted")
    services = weighted.get("services") if isinstance(weighted, Mapping) else None
    if not isinstance(services, list):
        raise UserError(
            f"TraefikService {obj.get('metadata', {}).get('name')} has no spec.weighted.services"
        )
    return [entry for entry in services if isinstance(entry, dict)]


def _as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None
