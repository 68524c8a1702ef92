"""The Gateway API router: backendRef weights and managed rules of `HTTPRoute`s, in-tree.

Where it sits: built by `rollwise.routers.registry.cluster_router` for a Rollout with
`trafficRouting.plugins: {"argoproj-labs/gatewayAPI": {...}}` - Argo Rollouts only has this
router as that plugin, and rollwise reads the plugin's configuration unchanged, so Argo users'
YAML works as written: `httpRoute: NAME` (and optional `namespace`), or
`httpRoutes: [{name, useHeaderRoutes}]`. The plugin's `configMap` is accepted and not needed;
GRPC/TCP/TLS routes and route selectors are refused with an UnsupportedError.

Behaviour:
- Weights: in the user's rules that send to the canary Service (some must also send to the
  stable one), the canary backendRef gets the canary weight and the stable one
  `max - canary - experiments`. Rules that do not send to the canary are left alone: a rule
  whose only backend is the stable Service must not get weight 0 at 100 % canary (the Gateway
  answers 500 when every weight of a rule is 0), which the plugin's every-rule update does.
  Experiment Services (`additional`) are added to the rules that reference the canary (with
  its port) or re-weighted; the ones added are listed in the annotation
  `rollwise.io/experiment-backends` and removed when the experiment ends.
- Header route: a rule sending matching requests to the canary only (port, filters, path,
  method and query matches copied from the weighted rule), with one HTTPRouteMatch per entry of
  the step's `match` (alternatives, as in Argo's Istio router and local mode; the plugin ANDs
  them). exact -> type Exact, regex -> RegularExpression, prefix -> RegularExpression
  `^<prefix>.*`. Added to `httpRoute`, or to the `httpRoutes` with `useHeaderRoutes: true`.
- Mirror route: a rule with the step's matches (method exact only, path Exact/PathPrefix/
  RegularExpression, headers), the weighted rule's backendRefs (kept in step by `set_weight`)
  and a `RequestMirror` filter to the canary, with `percent` when below 100. Added where header
  routes go.
- Managed rules are always the first rules of `spec.rules`, in `managedRoutes` order; the
  annotation `rollwise.io/managed-rules` lists their names in that order (JSON), so rule `i` of
  the list is `spec.rules[i]`. This plays the part of the plugin's ConfigMap, but lives in the
  HTTPRoute itself, so one write changes both the rules and the record of them.
- `verify_weight` is None (the gateway's applied configuration is not readable; as the plugin).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollwise.api.errors import UnsupportedError, UserError
from rollwise.api.models import (
    HeaderRoutingMatch,
    RouteMatch,
    SetHeaderRoute,
    SetMirrorRoute,
    StringMatch,
    WeightDestination,
)
from rollwise.routers.base import SelectsByService
from rollwise.routers.cluster import (
    ObjectRef,
    RolloutTarget,
    additional_by_service,
    annotations_of,
    drop_empty_annotations,
    edit_object,
    match_kind,
    prefix_pattern,
    set_tracked_names,
    tracked_names,
)
from rollwise.routers.objects import ObjectClient, RawObject

PLUGIN_NAME = "argoproj-labs/gatewayAPI"
API_VERSION = "gateway.networking.k8s.io/v1"
MANAGED_RULES = "rollwise.io/managed-rules"
EXPERIMENT_BACKENDS = "rollwise.io/experiment-backends"
NAMED_IN = f"spec.strategy.canary.trafficRouting.plugins.{PLUGIN_NAME}"
UNSUPPORTED_KEYS = (
    "grpcRoute",
    "grpcRoutes",
    "tcpRoute",
    "tcpRoutes",
    "tlsRoute",
    "tlsRoutes",
    "httpRouteSelector",
    "grpcRouteSelector",
    "tcpRouteSelector",
    "tlsRouteSelector",
)

RuleBuilder = Callable[[RawObject, RawObject], RawObject]
"""(weighted rule, canary backendRef) -> the managed rule."""


@dataclass(frozen=True, slots=True)
class HTTPRouteSettings:
    name: str
    namespace: str
    use_header_routes: bool


def parse_http_routes(settings: Mapping[str, Any], namespace: str) -> tuple[HTTPRouteSettings, ...]:
    """The HTTPRoutes of the plugin's configuration."""
    for key in UNSUPPORTED_KEYS:
        if settings.get(key):
            raise UnsupportedError(
                f"{NAMED_IN}.{key} is not supported by rollwise yet; only httpRoute and"
                " httpRoutes are"
            )
    route_namespace = str(settings.get("namespace") or namespace)
    routes: list[HTTPRouteSettings] = []
    if settings.get("httpRoute"):
        routes.append(HTTPRouteSettings(str(settings["httpRoute"]), route_namespace, True))
    for entry in settings.get("httpRoutes") or []:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise UserError(f"{NAMED_IN}.httpRoutes: each entry needs a name")
        routes.append(
            HTTPRouteSettings(
                str(entry["name"]), route_namespace, bool(entry.get("useHeaderRoutes"))
            )
        )
    if not routes:
        raise UserError(f"{NAMED_IN} needs httpRoute or httpRoutes")
    return tuple(routes)


class GatewayAPIRouter(SelectsByService):
    """The `Router` (`rollwise.routers.base`) of one Rollout over Gateway API HTTPRoutes."""

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
        self.stable_service, self.canary_service = target.services(f"plugins.{PLUGIN_NAME}")
        self.routes = parse_http_routes(settings, target.namespace)

    # --- Router -------------------------------------------------------------------------------

    async def set_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> None:
        for route in self.routes:

            def change(obj: RawObject, route: HTTPRouteSettings = route) -> None:
                self._split(obj, route, desired_weight, additional)

            await edit_object(self.client, self._ref(route), change, named_in=NAMED_IN)

    async def set_header_route(self, route: SetHeaderRoute) -> None:
        name = route.name or ""
        if route.match is None:
            await self._remove_rules({name})
            return
        self.target.managed_rank(name, step="setHeaderRoute")
        headers = [_header_match(m) for m in route.match]

        def build(weighted: RawObject, canary: RawObject) -> RawObject:
            originals = [m for m in weighted.get("matches") or [] if isinstance(m, dict)] or [{}]
            matches = []
            for header in headers:
                for original in originals:
                    match = {
                        key: copy.deepcopy(original[key])
                        for key in ("path", "method", "queryParams")
                        if key in original
                    }
                    match["headers"] = [*copy.deepcopy(original.get("headers") or []), header]
                    matches.append(match)
            rule: RawObject = {"matches": matches}
            if weighted.get("filters"):
                rule["filters"] = copy.deepcopy(weighted["filters"])
            reference = {k: copy.deepcopy(v) for k, v in canary.items() if k != "weight"}
            rule["backendRefs"] = [reference]
            return rule

        await self._add_rule(name, build, step="setHeaderRoute")

    async def set_mirror_route(self, route: SetMirrorRoute) -> None:
        if route.match is None:
            await self._remove_rules({route.name})
            return
        self.target.managed_rank(route.name, step="setMirrorRoute")
        matches = [_route_match(m, route.name) for m in route.match]
        percent = 100 if route.percentage is None else route.percentage

        def build(weighted: RawObject, canary: RawObject) -> RawObject:
            mirror_ref = {k: copy.deepcopy(v) for k, v in canary.items() if k != "weight"}
            mirror: RawObject = {"backendRef": mirror_ref}
            if percent < 100:
                mirror["percent"] = percent
            filters = [*copy.deepcopy(weighted.get("filters") or [])]
            filters.append({"type": "RequestMirror", "requestMirror": mirror})
            return {
                "matches": matches,
                "filters": filters,
                "backendRefs": copy.deepcopy(weighted.get("backendRefs") or []),
            }

        await self._add_rule(route.name, build, step="setMirrorRoute")

    async def verify_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> bool | None:
        return None

    async def remove_managed_routes(self) -> None:
        await self._remove_rules(None)

    # --- HTTPRoute editing --------------------------------------------------------------------

    def _ref(self, route: HTTPRouteSettings) -> ObjectRef:
        return ObjectRef(self.api_version, "HTTPRoute", route.name, route.namespace)

    def _split(
        self,
        obj: RawObject,
        route: HTTPRouteSettings,
        weight: int,
        additional: Sequence[WeightDestination],
    ) -> None:
        rules = _rules(obj)
        managed = _managed_names(obj, rules)
        user_rules = rules[len(managed) :]
        where = f"HTTPRoute {route.namespace}/{route.name}"
        weighted = [rule for rule in user_rules if _references(rule, self.canary_service)]
        if not weighted:
            raise UserError(
                f"{where} has no backendRef to the canary Service {self.canary_service!r}"
            )
        if not any(_references(rule, self.stable_service) for rule in weighted):
            raise UserError(
                f"{where} has no rule sending to both the stable Service"
                f" {self.stable_service!r} and the canary Service {self.canary_service!r}"
            )
        mirrors = [
            rule
            for rule in rules[: len(managed)]
            if any(f.get("type") == "RequestMirror" for f in rule.get("filters") or [])
        ]
        extra = additional_by_service(additional)
        added = set(tracked_names(obj, EXPERIMENT_BACKENDS))
        stable_weight = self.target.stable_weight(weight, additional)
        for rule in [*weighted, *mirrors]:
            references = [r for r in rule.get("backendRefs") or [] if isinstance(r, dict)]
            canary = next((r for r in references if r.get("name") == self.canary_service), None)
            kept: list[RawObject] = []
            for reference in references:
                name = reference.get("name")
                if name == self.canary_service:
                    reference["weight"] = weight
                elif name == self.stable_service:
                    reference["weight"] = stable_weight
                elif name in extra:
                    reference["weight"] = extra[name].weight
                elif name in added:
                    continue  # an experiment Service of ours whose experiment ended
                kept.append(reference)
            if canary is not None:
                present = {r.get("name") for r in references}
                for name, item in extra.items():
                    if name not in present:
                        new = {k: copy.deepcopy(v) for k, v in canary.items()}
                        new.update(name=name, weight=item.weight)
                        kept.append(new)
            if "backendRefs" in rule:
                rule["backendRefs"] = kept
        set_tracked_names(obj, EXPERIMENT_BACKENDS, extra)

    def _weighted_rule(self, rules: list[RawObject]) -> tuple[RawObject, RawObject] | None:
        """The first user rule sending to the canary (preferring one that also sends to the
        stable Service), with its canary backendRef."""
        candidates = [rule for rule in rules if _references(rule, self.canary_service)]
        both = [rule for rule in candidates if _references(rule, self.stable_service)]
        for rule in both or candidates:
            for reference in rule.get("backendRefs") or []:
                if isinstance(reference, dict) and reference.get("name") == self.canary_service:
                    return rule, reference
        return None

    async def _add_rule(self, name: str, build: RuleBuilder, *, step: str) -> None:
        routes = [route for route in self.routes if route.use_header_routes]
        if not routes:
            raise UserError(
                f"{step} {name!r}: no HTTPRoute of {NAMED_IN} has useHeaderRoutes: true"
            )
        for route in routes:

            def change(obj: RawObject, route: HTTPRouteSettings = route) -> None:
                rules = _rules(obj)
                managed = _managed_names(obj, rules)
                found = self._weighted_rule(rules[len(managed) :])
                if found is None:
                    raise UserError(
                        f"{step} {name!r}: HTTPRoute {route.namespace}/{route.name} has no rule"
                        f" sending to the canary Service {self.canary_service!r}"
                    )
                entries = [
                    (rule_name, rule)
                    for rule_name, rule in zip(managed, rules, strict=False)
                    if rule_name != name
                ]
                entries.append((name, build(*found)))
                order = self.target.managed_routes
                entries.sort(key=lambda e: order.index(e[0]) if e[0] in order else len(order))
                self._store(obj, entries, rules[len(managed) :])

            await edit_object(self.client, self._ref(route), change, named_in=NAMED_IN)

    async def _remove_rules(self, names: set[str] | None) -> None:
        """Remove the managed rules of these names (None: all of them) from every HTTPRoute."""
        for route in self.routes:

            def change(obj: RawObject) -> None:
                rules = _rules(obj)
                managed = _managed_names(obj, rules)
                entries = [
                    (rule_name, rule)
                    for rule_name, rule in zip(managed, rules, strict=False)
                    if names is not None and rule_name not in names
                ]
                self._store(obj, entries, rules[len(managed) :])

            await edit_object(self.client, self._ref(route), change, named_in=NAMED_IN)

    @staticmethod
    def _store(
        obj: RawObject, managed: list[tuple[str, RawObject]], user_rules: list[RawObject]
    ) -> None:
        obj.setdefault("spec", {})["rules"] = [rule for _, rule in managed] + user_rules
        if managed:
            annotations_of(obj)[MANAGED_RULES] = json.dumps([name for name, _ in managed])
        else:
            annotations = obj.get("metadata", {}).get("annotations")
            if isinstance(annotations, dict) and MANAGED_RULES in annotations:
                del annotations[MANAGED_RULES]
                drop_empty_annotations(obj)


# --- helpers over raw HTTPRoute parts --------------------------------------------------------


def _rules(obj: RawObject) -> list[RawObject]:
    rules = (obj.get("spec") or {}).get("rules")
    return [rule for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []


def _managed_names(obj: Mapping[str, Any], rules: Sequence[RawObject]) -> list[str]:
    """The names of the managed rules at the top of `rules`, from the annotation; a record that
    cannot be read, or lists more rules than there are, counts as none (nothing is managed)."""
    text = (obj.get("metadata", {}).get("annotations") or {}).get(MANAGED_RULES)
    try:
        names = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    valid = isinstance(names, list) and all(isinstance(n, str) for n in names)
    return list(names) if valid and len(names) <= len(rules) else []


def _references(rule: Mapping[str, Any], service: str) -> bool:
    return any(
        isinstance(r, dict) and r.get("name") == service for r in rule.get("backendRefs") or []
    )


def _header_match(match: HeaderRoutingMatch) -> RawObject:
    return {"name": match.header_name, **_value_match(match.header_value)}


def _value_match(match: StringMatch) -> RawObject:
    kind, value = match_kind(match)
    if kind == "exact":
        return {"type": "Exact", "value": value}
    if kind == "prefix":
        return {"type": "RegularExpression", "value": prefix_pattern(value)}
    return {"type": "RegularExpression", "value": value}


def _route_match(match: RouteMatch, step: str) -> RawObject:
    raw: RawObject = {}
    if match.path is not None:
        kind, value = match_kind(match.path)
        path_type = {"exact": "Exact", "prefix": "PathPrefix", "regex": "RegularExpression"}
        raw["path"] = {"type": path_type[kind], "value": value}
    if match.method is not None:
        kind, value = match_kind(match.method)
        if kind != "exact":
            raise UserError(
                f"setMirrorRoute {step!r}: the Gateway API matches a method exactly only"
                f" (got {kind} {value!r})"
            )
        raw["method"] = value.upper()
    if match.headers:
        raw["headers"] = [
            {"name": name, **_value_match(value)} for name, value in match.headers.items()
        ]
    return raw
