"""The Istio router: weights in VirtualService routes, pod hashes in DestinationRule subsets.

Where it sits: built by `rollwise.routers.registry.cluster_router` for a Rollout with
`trafficRouting.istio`, once per reconcile; it reads and writes the VirtualServices and the
DestinationRule through an `ObjectClient` and keeps nothing itself.

Behaviour (Argo's `rollout/trafficrouting/istio`, reference 4.3):
- Host split: in the weighted routes, the destination whose host (first label) is the canary
  Service gets the canary weight, the stable Service `max - canary - experiments`. Subset
  split (`destinationRule`): destinations whose `subset` is the canary/stable subset, and
  `update_hash` writes `rollouts-pod-template-hash` into those subsets' labels.
- Weighted routes: the HTTP routes named in `routes`, the TLS routes matching `tlsRoutes`
  (port and sniHosts), the TCP routes matching `tcpRoutes` (port). When none of the three is
  given, each kind of route the VirtualService has must have exactly one route (HTTP routes
  managed by the Rollout do not count), which is then the weighted one. Each weighted route
  must have a canary and a stable destination.
- Experiment destinations (`additional`) are added or re-weighted; the ones this router added
  are listed in the annotation `rollwise.io/experiment-destinations` and removed when the
  experiment ends; any other destination is left as the user wrote it.
- Header and mirror routes are HTTP routes named after the step, kept at the top of
  `spec.http` in `managedRoutes` order (their precedence). The header route sends 100 % to the
  canary destination of the weighted route (host, subset and port copied); each `match` entry is
  an alternative. The mirror route carries the step's match (method, uri, headers), the
  weighted route's destinations (updated by `set_weight` like the weighted route) and a
  `mirror` to the canary at `mirrorPercentage`.
- `verify_weight` is None: Istio publishes no way to read what the sidecars apply (as Argo).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollwise.api.errors import UserError
from rollwise.api.models import (
    RouteMatch,
    SetHeaderRoute,
    SetMirrorRoute,
    StringMatch,
    WeightDestination,
)
from rollwise.routers.cluster import (
    MANAGED_BY_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    ObjectRef,
    RolloutTarget,
    additional_by_service,
    annotations_of,
    edit_object,
    object_name,
    set_tracked_names,
    short_host,
    tracked_names,
)
from rollwise.routers.objects import ObjectClient, RawObject

API_VERSION = "networking.istio.io/v1alpha3"
"""Argo's default (`--istio-api-version`); the API server serves every version of a CRD."""
EXPERIMENT_DESTINATIONS = "rollwise.io/experiment-destinations"
EXPERIMENT_SUBSETS = "rollwise.io/experiment-subsets"
NAMED_IN = "spec.strategy.canary.trafficRouting.istio"


@dataclass(frozen=True, slots=True)
class TlsRoute:
    port: int
    sni_hosts: frozenset[str]


@dataclass(frozen=True, slots=True)
class VirtualServiceSettings:
    """One entry of `virtualService`/`virtualServices`."""

    name: str
    namespace: str
    routes: tuple[str, ...]
    tls_routes: tuple[TlsRoute, ...]
    tcp_routes: tuple[int, ...]

    @property
    def implicit(self) -> bool:
        """No route is named: the VirtualService's only route of each kind is the weighted one."""
        return not (self.routes or self.tls_routes or self.tcp_routes)


@dataclass(frozen=True, slots=True)
class DestinationRuleSettings:
    name: str
    canary_subset: str
    stable_subset: str


def parse_virtual_services(
    settings: Mapping[str, Any], namespace: str
) -> tuple[VirtualServiceSettings, ...]:
    single, several = settings.get("virtualService"), settings.get("virtualServices")
    entries = [single] if single is not None else list(several or [])
    if not entries:
        raise UserError(f"{NAMED_IN} needs virtualService or virtualServices")
    parsed = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise UserError(f"{NAMED_IN}: a virtualService needs a name")
        name, vs_namespace = object_name(entry["name"], namespace)
        parsed.append(
            VirtualServiceSettings(
                name=name,
                namespace=vs_namespace,
                routes=tuple(str(r) for r in entry.get("routes") or ()),
                tls_routes=tuple(
                    TlsRoute(int(r.get("port") or 0), frozenset(r.get("sniHosts") or ()))
                    for r in entry.get("tlsRoutes") or ()
                ),
                tcp_routes=tuple(int(r.get("port") or 0) for r in entry.get("tcpRoutes") or ()),
            )
        )
    return tuple(parsed)


def parse_destination_rule(settings: Mapping[str, Any]) -> DestinationRuleSettings | None:
    rule = settings.get("destinationRule")
    if rule is None:
        return None
    if not isinstance(rule, Mapping) or not all(
        rule.get(key) for key in ("name", "canarySubsetName", "stableSubsetName")
    ):
        raise UserError(
            f"{NAMED_IN}.destinationRule needs name, canarySubsetName and stableSubsetName"
        )
    return DestinationRuleSettings(
        str(rule["name"]), str(rule["canarySubsetName"]), str(rule["stableSubsetName"])
    )


class IstioRouter:
    """The `Router` (`rollwise.routers.base`) of one Rollout over Istio objects."""

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
        self.virtual_services = parse_virtual_services(settings, target.namespace)
        self.destination_rule = parse_destination_rule(settings)
        if self.destination_rule is None:
            target.services("istio")  # host split needs both Services

    # --- Router -------------------------------------------------------------------------------

    async def update_hash(
        self,
        canary_hash: str,
        stable_hash: str,
        additional: Sequence[WeightDestination] = (),
    ) -> None:
        rule = self.destination_rule
        if rule is None:
            return
        ref = ObjectRef(self.api_version, "DestinationRule", rule.name, self.target.namespace)

        def change(obj: RawObject) -> None:
            self._label_subsets(obj, rule, canary_hash, stable_hash, additional)

        await edit_object(self.client, ref, change, named_in=f"{NAMED_IN}.destinationRule")

    async def set_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> None:
        for vs in self.virtual_services:

            def change(obj: RawObject, vs: VirtualServiceSettings = vs) -> None:
                self._split(obj, vs, desired_weight, additional)

            await edit_object(self.client, self._ref(vs), change, named_in=NAMED_IN)

    async def set_header_route(self, route: SetHeaderRoute) -> None:
        name = route.name or ""
        if route.match is None:
            await self._remove_routes({name})
            return
        self.target.managed_rank(name, step="setHeaderRoute")
        matches = [{"headers": {m.header_name: _string_match(m.header_value)}} for m in route.match]

        def build(weighted: RawObject, canary: RawObject) -> RawObject:
            destination = {"destination": copy.deepcopy(canary["destination"]), "weight": 100}
            return {"name": name, "match": matches, "route": [destination]}

        await self._add_route(name, build, step="setHeaderRoute")

    async def set_mirror_route(self, route: SetMirrorRoute) -> None:
        if route.match is None:
            await self._remove_routes({route.name})
            return
        self.target.managed_rank(route.name, step="setMirrorRoute")
        matches = [_route_match(m) for m in route.match]
        percentage = 100 if route.percentage is None else route.percentage

        def build(weighted: RawObject, canary: RawObject) -> RawObject:
            return {
                "name": route.name,
                "match": matches,
                "route": copy.deepcopy(weighted.get("route") or []),
                "mirror": copy.deepcopy(canary["destination"]),
                "mirrorPercentage": {"value": percentage},
            }

        await self._add_route(route.name, build, step="setMirrorRoute")

    async def verify_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> bool | None:
        return None

    async def remove_managed_routes(self) -> None:
        await self._remove_routes(set(self.target.managed_routes))

    # --- VirtualService editing ---------------------------------------------------------------

    def _ref(self, vs: VirtualServiceSettings) -> ObjectRef:
        return ObjectRef(self.api_version, "VirtualService", vs.name, vs.namespace)

    def _is_canary(self, destination: Mapping[str, Any]) -> bool:
        inner = destination.get("destination") or {}
        rule = self.destination_rule
        return short_host(inner.get("host")) == self.target.canary_service or (
            rule is not None and bool(inner.get("subset")) and inner["subset"] == rule.canary_subset
        )

    def _is_stable(self, destination: Mapping[str, Any]) -> bool:
        inner = destination.get("destination") or {}
        rule = self.destination_rule
        return short_host(inner.get("host")) == self.target.stable_service or (
            rule is not None and bool(inner.get("subset")) and inner["subset"] == rule.stable_subset
        )

    def _weighted_routes(self, obj: RawObject, vs: VirtualServiceSettings) -> list[RawObject]:
        """The routes whose split this Rollout sets, checked to have canary and stable."""
        spec = obj.get("spec") or {}
        http = _routes(spec, "http")
        tls = _routes(spec, "tls")
        tcp = _routes(spec, "tcp")
        managed = set(self.target.managed_routes)
        where = f"VirtualService {vs.namespace}/{vs.name}"
        selected: list[tuple[str, RawObject]] = []
        if vs.implicit:
            user_http = [r for r in http if r.get("name") not in managed]
            for kind, routes, field in (
                ("HTTP", user_http, "routes"),
                ("TLS", tls, "tlsRoutes"),
                ("TCP", tcp, "tcpRoutes"),
            ):
                if len(routes) > 1:
                    raise UserError(
                        f"{where} has {len(routes)} {kind} routes: name the ones to split in"
                        f" {NAMED_IN}.virtualService.{field}"
                    )
                selected += [(f"the {kind} route", r) for r in routes]
            if not selected:
                raise UserError(f"{where} has no route to split")
        for name in vs.routes:
            found = [r for r in http if r.get("name") == name]
            if not found:
                names = ", ".join(str(r.get("name")) for r in http if r.get("name")) or "none"
                raise UserError(f"HTTP route {name!r} is not in {where} (its HTTP routes: {names})")
            selected.append((f"HTTP route {name!r}", found[0]))
        for tls_route in vs.tls_routes:
            found = [r for r in tls if _tls_key(r) == (tls_route.port, tls_route.sni_hosts)]
            if not found:
                raise UserError(
                    f"{where} has no TLS route matching port {tls_route.port} and sniHosts"
                    f" {sorted(tls_route.sni_hosts)}"
                )
            selected += [(f"TLS route on port {tls_route.port}", r) for r in found]
        for port in vs.tcp_routes:
            found = [r for r in tcp if _ports(r) == {port}]
            if not found:
                raise UserError(f"{where} has no TCP route matching port {port}")
            selected += [(f"TCP route on port {port}", r) for r in found]
        for label, route in selected:
            self._check_destinations(route, f"{label} of {where}")
        return [route for _, route in selected]

    def _check_destinations(self, route: RawObject, where: str) -> None:
        destinations = _destinations(route)
        rule = self.destination_rule
        for role, is_role, wanted in (
            ("canary", self._is_canary, rule.canary_subset if rule else self.target.canary_service),
            ("stable", self._is_stable, rule.stable_subset if rule else self.target.stable_service),
        ):
            if not any(is_role(d) for d in destinations):
                what = "subset" if rule else "Service"
                have = [
                    str(d.get("destination", {}).get("subset" if rule else "host"))
                    for d in destinations
                ]
                raise UserError(
                    f"{where} has no destination for the {role} {what} {wanted!r}"
                    f" (its destinations: {', '.join(have) or 'none'})"
                )

    def _split(
        self,
        obj: RawObject,
        vs: VirtualServiceSettings,
        weight: int,
        additional: Sequence[WeightDestination],
    ) -> None:
        routes = self._weighted_routes(obj, vs)
        managed = set(self.target.managed_routes)
        mirrors = [
            r
            for r in _routes(obj.get("spec") or {}, "http")
            if r.get("name") in managed and "mirror" in r
        ]
        extra = additional_by_service(additional)
        added = set(tracked_names(obj, EXPERIMENT_DESTINATIONS))
        stable_weight = self.target.stable_weight(weight, additional)
        for route in [*routes, *mirrors]:
            kept: list[Any] = []
            seen: set[str] = set()
            template: Mapping[str, Any] = {}
            for destination in route.get("route") or []:
                if not isinstance(destination, dict):
                    kept.append(destination)
                    continue
                host = short_host((destination.get("destination") or {}).get("host"))
                if self._is_canary(destination):
                    destination["weight"] = weight
                    template = destination.get("destination") or {}
                elif self._is_stable(destination):
                    destination["weight"] = stable_weight
                elif host in extra:
                    destination["weight"] = extra[host].weight
                    seen.add(host)
                elif host in added:
                    continue  # an experiment destination of ours whose experiment ended
                kept.append(destination)
            for name, item in extra.items():
                if name not in seen:
                    inner: dict[str, Any] = {"host": name}
                    if "port" in template:
                        inner["port"] = copy.deepcopy(template["port"])
                    kept.append({"destination": inner, "weight": item.weight})
            route["route"] = kept
        set_tracked_names(obj, EXPERIMENT_DESTINATIONS, extra)

    async def _add_route(
        self,
        name: str,
        build: Callable[[RawObject, RawObject], RawObject],
        *,
        step: str,
    ) -> None:
        """Insert (or replace) managed HTTP route `name`, built from the weighted HTTP route and
        its canary destination, in every VirtualService that has a weighted HTTP route."""
        placed = False
        for vs in self.virtual_services:

            def change(obj: RawObject, vs: VirtualServiceSettings = vs) -> None:
                nonlocal placed
                weighted = self._weighted_http_route(obj, vs)
                if weighted is None:
                    return
                canary = next(d for d in _destinations(weighted) if self._is_canary(d))
                spec = obj.setdefault("spec", {})
                http = [r for r in _routes(spec, "http") if r.get("name") != name]
                spec["http"] = self._ordered([build(weighted, canary), *http])
                placed = True

            await edit_object(self.client, self._ref(vs), change, named_in=NAMED_IN)
        if not placed:
            raise UserError(f"{step} {name!r} needs a VirtualService with a weighted HTTP route")

    def _weighted_http_route(self, obj: RawObject, vs: VirtualServiceSettings) -> RawObject | None:
        http = _routes(obj.get("spec") or {}, "http")
        weighted = self._weighted_routes(obj, vs)
        return next((r for r in weighted if any(r is h for h in http)), None)

    def _ordered(self, http: list[RawObject]) -> list[RawObject]:
        """Managed routes first, in `managedRoutes` order; the user's routes after, as they were."""
        managed = self.target.managed_routes
        first = [route for name in managed for route in http if route.get("name") == name]
        return first + [route for route in http if route.get("name") not in managed]

    async def _remove_routes(self, names: set[str]) -> None:
        if not names:
            return
        for vs in self.virtual_services:

            def change(obj: RawObject) -> None:
                spec = obj.get("spec") or {}
                if "http" in spec:
                    spec["http"] = [r for r in _routes(spec, "http") if r.get("name") not in names]

            await edit_object(self.client, self._ref(vs), change, named_in=NAMED_IN)

    # --- DestinationRule editing --------------------------------------------------------------

    def _label_subsets(
        self,
        obj: RawObject,
        rule: DestinationRuleSettings,
        canary_hash: str,
        stable_hash: str,
        additional: Sequence[WeightDestination],
    ) -> None:
        annotations_of(obj)[MANAGED_BY_ANNOTATION] = self.target.name
        spec = obj.setdefault("spec", {})
        subsets = [s for s in spec.get("subsets") or [] if isinstance(s, dict)]
        names = [s.get("name") for s in subsets]
        for needed in (rule.canary_subset, rule.stable_subset):
            if needed not in names:
                raise UserError(
                    f"DestinationRule {self.target.namespace}/{rule.name} has no subset"
                    f" {needed!r} (its subsets: {', '.join(map(str, names)) or 'none'})"
                )
        extra = {
            name: d.pod_template_hash or "" for name, d in additional_by_service(additional).items()
        }
        added = set(tracked_names(obj, EXPERIMENT_SUBSETS))
        wanted = {rule.canary_subset: canary_hash, rule.stable_subset: stable_hash, **extra}
        kept: list[RawObject] = []
        for subset in subsets:
            subset_name = subset.get("name")
            if subset_name in wanted:
                labels = subset.get("labels")
                if not isinstance(labels, dict):
                    labels = subset["labels"] = {}
                if wanted[subset_name]:
                    labels[POD_TEMPLATE_HASH_LABEL] = wanted[subset_name]
                else:
                    labels.pop(POD_TEMPLATE_HASH_LABEL, None)
            elif subset_name in added:
                continue  # an experiment subset of ours whose experiment ended
            kept.append(subset)
        kept += [
            {"name": name, "labels": {POD_TEMPLATE_HASH_LABEL: value}}
            for name, value in extra.items()
            if name not in names and value
        ]
        spec["subsets"] = kept
        set_tracked_names(obj, EXPERIMENT_SUBSETS, extra)


# --- helpers over raw VirtualService parts ---------------------------------------------------


def _routes(spec: Mapping[str, Any], kind: str) -> list[RawObject]:
    routes = spec.get(kind)
    return [r for r in routes if isinstance(r, dict)] if isinstance(routes, list) else []


def _destinations(route: Mapping[str, Any]) -> list[RawObject]:
    items = route.get("route")
    return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


def _ports(route: Mapping[str, Any]) -> set[int]:
    return {int(m.get("port") or 0) for m in route.get("match") or [] if isinstance(m, dict)} or {0}


def _tls_key(route: Mapping[str, Any]) -> tuple[int, frozenset[str]] | None:
    """(port, sniHosts) of a TLS route; None when it matches several ports (never Argo's)."""
    ports = _ports(route)
    if len(ports) != 1:
        return None
    hosts = frozenset(
        str(host)
        for m in route.get("match") or []
        if isinstance(m, dict)
        for host in m.get("sniHosts") or []
    )
    return next(iter(ports)), hosts


def _string_match(match: StringMatch) -> dict[str, str]:
    return {key: value for key, value in match.to_raw().items() if value is not None}


def _route_match(match: RouteMatch) -> RawObject:
    raw: RawObject = {}
    if match.method is not None:
        raw["method"] = _string_match(match.method)
    if match.path is not None:
        raw["uri"] = _string_match(match.path)
    if match.headers:
        raw["headers"] = {name: _string_match(value) for name, value in match.headers.items()}
    return raw
