"""The SMI router: a `TrafficSplit` owned by the Rollout.

Where it sits: built by `rollwise.routers.registry.cluster_router` for a Rollout with
`trafficRouting.smi`, once per reconcile; it creates or patches the TrafficSplit through an
`ObjectClient`.

Behaviour (Argo's `rollout/trafficrouting/smi`, reference 4.3):
- The TrafficSplit is named `trafficSplitName` (default: the Rollout's name), lives in the
  Rollout's namespace and is controlled by the Rollout (ownerReference). Its spec is wholly
  generated: `service` = `rootService` (default: the stable Service), backends canary `w`, each
  experiment Service its weight, stable `max - w - experiments`, in that order.
- API versions `split.smi-spec.io/` v1alpha1 (Argo's default; weights are quantities, written
  as strings like "5"), v1alpha2 and v1alpha3 (integers): a constructor option, like Argo's
  `--traffic-split-api-version`.
- A TrafficSplit of that name that this Rollout does not control is never changed: UserError.
- No header or mirror routes, no verification (as Argo).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rollwise.api.errors import ConflictError, UserError
from rollwise.api.models import SetHeaderRoute, SetMirrorRoute, WeightDestination
from rollwise.routers.base import SelectsByService
from rollwise.routers.cluster import (
    ObjectRef,
    RolloutTarget,
    additional_by_service,
    merge_diff,
    read_object,
)
from rollwise.routers.objects import ObjectClient, RawObject

GROUP = "split.smi-spec.io"
API_VERSIONS = ("v1alpha1", "v1alpha2", "v1alpha3")
DEFAULT_API_VERSION = "v1alpha1"
NAMED_IN = "spec.strategy.canary.trafficRouting.smi"


class SmiRouter(SelectsByService):
    """The `Router` (`rollwise.routers.base`) of one Rollout over an SMI TrafficSplit."""

    def __init__(
        self,
        client: ObjectClient,
        target: RolloutTarget,
        *,
        settings: Mapping[str, Any],
        api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        version = api_version.removeprefix(f"{GROUP}/")
        if version not in API_VERSIONS:
            raise UserError(
                f"TrafficSplit API version {api_version!r} is not supported;"
                f" supported: {', '.join(API_VERSIONS)}"
            )
        self.client = client
        self.target = target
        self.version = version
        self.stable_service, self.canary_service = target.services("smi")
        self.root_service = str(settings.get("rootService") or self.stable_service)
        name = str(settings.get("trafficSplitName") or target.name)
        self.ref = ObjectRef(f"{GROUP}/{version}", "TrafficSplit", name, target.namespace)

    async def set_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> None:
        spec = self.spec(desired_weight, additional)
        ref = self.ref
        current = await self.client.get(ref.api_version, ref.kind, ref.name, ref.namespace)
        if current is None:
            try:
                await self.client.create(
                    {
                        "apiVersion": ref.api_version,
                        "kind": ref.kind,
                        "metadata": {
                            "name": ref.name,
                            "namespace": ref.namespace,
                            "ownerReferences": [self.target.controller_reference()],
                        },
                        "spec": spec,
                    }
                )
                return
            except ConflictError:
                current = await read_object(self.client, ref, named_in=NAMED_IN)
        if not self.target.controls(current):
            raise UserError(
                f"{ref} exists and is not controlled by Rollout {self.target.name}:"
                " rollwise will not change it"
            )
        patch = merge_diff(current.get("spec") or {}, spec)
        if patch:
            await self.client.merge_patch(
                ref.api_version, ref.kind, ref.name, ref.namespace, {"spec": patch}
            )

    def spec(self, weight: int, additional: Sequence[WeightDestination]) -> RawObject:
        """The TrafficSplit's spec for this split, in the shape of the API version."""
        backends = [
            (self.canary_service, weight),
            *((name, d.weight) for name, d in additional_by_service(additional).items()),
            (self.stable_service, self.target.stable_weight(weight, additional)),
        ]
        return {
            "service": self.root_service,
            "backends": [
                {"service": service, "weight": self._weight(value)} for service, value in backends
            ],
        }

    def _weight(self, value: int) -> int | str:
        # v1alpha1 types the weight as a resource.Quantity, which is serialised as a string.
        return str(value) if self.version == "v1alpha1" else value

    async def set_header_route(self, route: SetHeaderRoute) -> None:
        return None

    async def set_mirror_route(self, route: SetMirrorRoute) -> None:
        return None

    async def verify_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> bool | None:
        return None

    async def remove_managed_routes(self) -> None:
        return None
