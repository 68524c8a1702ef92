"""The NGINX Ingress router: a generated canary Ingress with canary annotations.

Where it sits: built by `rollwise.routers.registry.cluster_router` for a Rollout with
`trafficRouting.nginx`, once per reconcile; it reads the stable Ingress(es) and creates or
patches the canary Ingress of each through an `ObjectClient`.

Behaviour (Argo's `rollout/trafficrouting/nginx`, reference 4.3, plus header routing):
- For each stable Ingress `s` the canary Ingress `<rollout>-<s>-canary` (trimmed to 253
  characters) is owned by the Rollout (a controller ownerReference, so Kubernetes deletes it
  with the Rollout). It holds the rules of `s` whose backend is the stable Service, switched to
  the canary Service, plus `s`'s TLS, ingressClassName and `kubernetes.io/ingress.class`.
  Its annotations are exactly: `additionalIngressAnnotations` (prefix added when missing),
  `canaryIngressAnnotations` (verbatim), `<prefix>/canary: "true"`, `<prefix>/canary-weight`,
  `<prefix>/canary-weight-total` when `maxTrafficWeight` is set, and the header route's.
- An existing canary Ingress that this Rollout does not control is never changed: UserError.
- Header routing, which Argo's NGINX router lacks: one header route at a time, with one header
  (NGINX's canary-by-header): exact -> `canary-by-header` + `canary-by-header-value`; regex ->
  `canary-by-header-pattern` (anchored to match the whole value, as Istio and local mode do);
  prefix -> pattern `^<prefix>.*`. The active route's name is kept in the annotation
  `rollwise.io/header-route`, so `set_weight` keeps it and a restarted controller finds it.
- Mirroring: a no-op (NGINX has no per-request mirror to a canary; Argo's is a no-op too).
- `verify_weight` is None: the Ingress controller's applied configuration is not readable.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from rollwise.api.errors import ConflictError, UserError
from rollwise.api.models import SetHeaderRoute, SetMirrorRoute, WeightDestination
from rollwise.routers.base import SelectsByService
from rollwise.routers.cluster import (
    ObjectRef,
    RolloutTarget,
    match_kind,
    merge_diff,
    prefix_pattern,
    read_object,
    whole_pattern,
)
from rollwise.routers.objects import ObjectClient, RawObject

API_VERSION = "networking.k8s.io/v1"
DEFAULT_PREFIX = "nginx.ingress.kubernetes.io"
HEADER_ROUTE_ANNOTATION = "rollwise.io/header-route"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
CANARY_SUFFIX = "-canary"
MAX_NAME = 253
NAMED_IN = "spec.strategy.canary.trafficRouting.nginx"

_KEEP: Any = object()
"""Header annotations argument meaning: keep whatever header route the canary Ingress has."""


def canary_ingress_name(rollout: str, stable_ingress: str) -> str:
    """Argo's name for the canary Ingress of a stable Ingress."""
    prefix = f"{rollout}-{stable_ingress}"[: MAX_NAME - len(CANARY_SUFFIX)]
    return prefix + CANARY_SUFFIX


class NginxRouter(SelectsByService):
    """The `Router` (`rollwise.routers.base`) of one Rollout over NGINX Ingress objects."""

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
        self.api_version = api_version
        self.stable_service, self.canary_service = target.services("nginx")
        single, several = settings.get("stableIngress"), settings.get("stableIngresses")
        self.stable_ingresses: tuple[str, ...] = (
            (str(single),) if single else tuple(str(name) for name in several or ())
        )
        if not self.stable_ingresses:
            raise UserError(f"{NAMED_IN} needs stableIngress or stableIngresses")
        self.prefix = str(settings.get("annotationPrefix") or DEFAULT_PREFIX)
        self.additional_annotations: dict[str, str] = {
            (key if key.startswith(self.prefix) else f"{self.prefix}/{key}"): str(value)
            for key, value in (settings.get("additionalIngressAnnotations") or {}).items()
        }
        self.canary_annotations: dict[str, str] = {
            str(key): str(value)
            for key, value in (settings.get("canaryIngressAnnotations") or {}).items()
        }

    # --- Router -------------------------------------------------------------------------------

    async def set_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> None:
        for stable in self.stable_ingresses:
            await self._reconcile(stable, weight=desired_weight, header=_KEEP)

    async def set_header_route(self, route: SetHeaderRoute) -> None:
        name = route.name or ""
        if route.match is None:
            for stable in self.stable_ingresses:
                await self._reconcile(stable, weight=None, header=None, only_if_named=name)
            return
        self.target.managed_rank(name, step="setHeaderRoute")
        header = self._header_annotations(route)
        for stable in self.stable_ingresses:
            await self._reconcile(stable, weight=None, header=header)

    async def set_mirror_route(self, route: SetMirrorRoute) -> None:
        return None

    async def verify_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> bool | None:
        return None

    async def remove_managed_routes(self) -> None:
        for stable in self.stable_ingresses:
            await self._reconcile(stable, weight=None, header=None, create=False)

    # --- the canary Ingress -------------------------------------------------------------------

    def _header_annotations(self, route: SetHeaderRoute) -> dict[str, str]:
        matches = route.match or []
        if len(matches) != 1:
            raise UserError(
                f"setHeaderRoute {route.name!r}: NGINX routes by one header only, this step"
                f" matches {len(matches)}"
            )
        match = matches[0]
        kind, value = match_kind(match.header_value)
        annotations = {
            HEADER_ROUTE_ANNOTATION: route.name or "",
            f"{self.prefix}/canary-by-header": match.header_name,
        }
        if kind == "exact":
            annotations[f"{self.prefix}/canary-by-header-value"] = value
        elif kind == "prefix":
            annotations[f"{self.prefix}/canary-by-header-pattern"] = prefix_pattern(value)
        else:
            annotations[f"{self.prefix}/canary-by-header-pattern"] = whole_pattern(value)
        return annotations

    def _header_keys(self) -> tuple[str, ...]:
        return (
            HEADER_ROUTE_ANNOTATION,
            f"{self.prefix}/canary-by-header",
            f"{self.prefix}/canary-by-header-value",
            f"{self.prefix}/canary-by-header-pattern",
        )

    def _current_header(self, canary: Mapping[str, Any] | None) -> dict[str, str]:
        """The header route this router set on the canary Ingress (none if it set none)."""
        annotations = (canary or {}).get("metadata", {}).get("annotations") or {}
        if HEADER_ROUTE_ANNOTATION not in annotations:
            return {}
        return {key: annotations[key] for key in self._header_keys() if key in annotations}

    def _desired(
        self, stable: RawObject, name: str, weight: int, header: Mapping[str, str]
    ) -> RawObject:
        stable_spec = stable.get("spec") or {}
        rules = []
        for rule in stable_spec.get("rules") or []:
            rule = copy.deepcopy(rule)
            uses_stable = False
            for path in (rule.get("http") or {}).get("paths") or []:
                service = (path.get("backend") or {}).get("service") or {}
                if service.get("name") == self.stable_service:
                    service["name"] = self.canary_service
                    uses_stable = True
            if uses_stable:
                rules.append(rule)
        stable_name = stable["metadata"]["name"]
        if not rules:
            raise UserError(
                f"Ingress {self.target.namespace}/{stable_name} has no rules using the stable"
                f" Service {self.stable_service!r} as backend"
            )
        spec: RawObject = {"rules": rules}
        if "tls" in stable_spec:
            spec["tls"] = copy.deepcopy(stable_spec["tls"])
        if "ingressClassName" in stable_spec:
            spec["ingressClassName"] = stable_spec["ingressClassName"]
        annotations: dict[str, str] = {}
        stable_annotations = stable["metadata"].get("annotations") or {}
        if INGRESS_CLASS_ANNOTATION in stable_annotations:
            annotations[INGRESS_CLASS_ANNOTATION] = stable_annotations[INGRESS_CLASS_ANNOTATION]
        annotations.update(self.additional_annotations)
        annotations.update(self.canary_annotations)
        annotations[f"{self.prefix}/canary"] = "true"
        annotations[f"{self.prefix}/canary-weight"] = str(weight)
        if self.target.max_traffic_weight is not None:
            annotations[f"{self.prefix}/canary-weight-total"] = str(self.target.max_weight)
        annotations.update(header)
        return {
            "apiVersion": self.api_version,
            "kind": "Ingress",
            "metadata": {
                "name": name,
                "namespace": self.target.namespace,
                "annotations": annotations,
                "ownerReferences": [self.target.controller_reference()],
            },
            "spec": spec,
        }

    async def _reconcile(
        self,
        stable_name: str,
        *,
        weight: int | None,
        header: Any,
        only_if_named: str | None = None,
        create: bool = True,
    ) -> None:
        """Bring the canary Ingress of `stable_name` to the desired state.

        weight None keeps the current weight (0 for a new Ingress); header is the header
        route's annotations, None for no header route, or _KEEP; only_if_named removes the
        header route only when it is the one of that name."""
        name = canary_ingress_name(self.target.name, stable_name)
        canary_ref = ObjectRef(self.api_version, "Ingress", name, self.target.namespace)
        stable_ref = ObjectRef(self.api_version, "Ingress", stable_name, self.target.namespace)
        canary = await self.client.get(
            canary_ref.api_version, canary_ref.kind, name, canary_ref.namespace
        )
        if canary is None and not create:
            return
        if canary is not None and not self.target.controls(canary):
            raise UserError(
                f"canary Ingress {self.target.namespace}/{name} exists and is not controlled by"
                f" Rollout {self.target.name}: rollwise will not change it"
            )
        current_header = self._current_header(canary)
        if only_if_named is not None and current_header.get(HEADER_ROUTE_ANNOTATION) != (
            only_if_named
        ):
            return
        if header is _KEEP:
            header = current_header
        elif header is None:
            header = {}
        elif (
            current_header
            and current_header[HEADER_ROUTE_ANNOTATION] != (header[HEADER_ROUTE_ANNOTATION])
        ):
            raise UserError(
                f"setHeaderRoute {header[HEADER_ROUTE_ANNOTATION]!r}: NGINX holds one header"
                f" route at a time and {current_header[HEADER_ROUTE_ANNOTATION]!r} is active;"
                " remove it first (a setHeaderRoute step with its name and no match)"
            )
        if weight is None:
            weight = _current_weight(canary, self.prefix)
        stable = await read_object(self.client, stable_ref, named_in=NAMED_IN)
        desired = self._desired(stable, name, weight, header)
        if canary is None:
            try:
                await self.client.create(desired)
                return
            except ConflictError:
                # Created meanwhile (another reconcile): patch what is there now.
                canary = await read_object(self.client, canary_ref, named_in=NAMED_IN)
                if not self.target.controls(canary):
                    raise UserError(
                        f"canary Ingress {self.target.namespace}/{name} exists and is not"
                        f" controlled by Rollout {self.target.name}: rollwise will not change it"
                    ) from None
        patch: RawObject = {}
        annotations = merge_diff(
            canary["metadata"].get("annotations") or {}, desired["metadata"]["annotations"]
        )
        if annotations:
            patch["metadata"] = {"annotations": annotations}
        spec = merge_diff(canary.get("spec") or {}, desired["spec"])
        if spec:
            patch["spec"] = spec
        if patch:
            await self.client.merge_patch(
                self.api_version, "Ingress", name, self.target.namespace, patch
            )


def _current_weight(canary: Mapping[str, Any] | None, prefix: str) -> int:
    annotations = (canary or {}).get("metadata", {}).get("annotations") or {}
    try:
        return int(annotations.get(f"{prefix}/canary-weight", 0))
    except (TypeError, ValueError):
        return 0
