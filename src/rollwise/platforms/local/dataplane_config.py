"""What Traefik should route, as a pure function of a snapshot of Services and traffic splits.

Where it sits: `rollwise.platforms.local.dataplane.DataPlane` renders the snapshot it holds with
`render_dynamic_config` and writes the result where Traefik's file provider watches; the
controller builds the Service part with `service_backends` from the Services and Pods in its
store (this module reads no store and does no I/O). Tests read the rendered dict directly.

What a snapshot becomes (all routers on the `web` entry point, every priority explicit):
- a Service `svc` in namespace `ns` -> loadBalancer `<ns>-<svc>` over the endpoints of its
  ready pods (none: Traefik answers 503, as a Kubernetes Service without ready pods refuses),
  and router `<ns>-<svc>` on Host(`svc.localhost`) (`svc.ns.localhost` outside `default`),
  priority 10;
- the traffic of Rollout `ro` -> weighted service `<ns>-<ro>-weighted` (stable gets
  `max - w - sum(additional)`, canary `w`, each additional destination its weight) and router
  `<ns>-<ro>-weighted` on Host(`ro.localhost`), priority 20;
- a header route `r` of `ro` -> router `<ns>-<ro>-header-<r>` (host && header matchers) to the
  canary's loadBalancer, priority 1000+;
- a mirror route `r` of `ro` -> mirroring service `<ns>-<ro>-mirror-<r>` (main = the weighted
  service, mirror = the canary at `percentage`, default 100) and a router of that name (host &&
  method/path/header matchers), priority 1000+.

Managed routes outrank the weighted router, and among themselves follow the order of
`trafficRouting.managedRoutes` (Argo: that order is their precedence). As in Argo's Istio router,
the entries of a route's `match` list are alternatives (OR); within one mirror match, method,
path and headers must all hold (AND). Header and path regexes match the whole value (Envoy's
semantics), prefixes are anchored regexes; a method prefix/regex is expanded to the standard
methods it matches because Traefik has no method regexp.

Per-backend request metrics appear in Traefik as `traefik_service_requests_total{service=
"<ns>-<svc>@file",...}` (see `metrics_service_name`); the weighted service has none of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rollwise.api.models import (
    RouteMatch,
    SetHeaderRoute,
    SetMirrorRoute,
    StringMatch,
    WeightDestination,
)

ENTRYPOINT = "web"
SERVICE_PRIORITY = 10
ROLLOUT_PRIORITY = 20
MANAGED_ROUTE_PRIORITY = 1000
"""Managed routes get MANAGED_ROUTE_PRIORITY + (number of routes − position)."""

DEFAULT_NAMESPACE = "default"
DEFAULT_MAX_WEIGHT = 100
PORT_ANNOTATION = "rollwise.io/port"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


# --- the snapshot ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceBackends:
    """A Service and the loopback endpoints (`127.0.0.1:<port>`) of its ready pods."""

    name: str
    namespace: str = DEFAULT_NAMESPACE
    endpoints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutTraffic:
    """How one traffic-routed Rollout splits its requests right now."""

    name: str
    namespace: str = DEFAULT_NAMESPACE
    stable_service: str
    canary_service: str
    canary_weight: int = 0
    """Out of `max_weight` (the rollout's `trafficRouting.maxTrafficWeight`)."""
    max_weight: int = DEFAULT_MAX_WEIGHT
    additional: tuple[WeightDestination, ...] = ()
    """Experiment services with a weight (`serviceName` in the Rollout's namespace)."""
    header_routes: tuple[SetHeaderRoute, ...] = ()
    mirror_routes: tuple[SetMirrorRoute, ...] = ()
    managed_routes: tuple[str, ...] = ()
    """Names from `trafficRouting.managedRoutes`, highest precedence first."""


@dataclass(frozen=True, slots=True)
class DataPlaneSnapshot:
    """Everything the proxy routes: the input of `render_dynamic_config`."""

    services: tuple[ServiceBackends, ...] = ()
    rollouts: tuple[RolloutTraffic, ...] = field(default=())

    def rollout(self, namespace: str, name: str) -> RolloutTraffic | None:
        for traffic in self.rollouts:
            if (traffic.namespace, traffic.name) == (namespace, name):
                return traffic
        return None

    def with_rollout(self, traffic: RolloutTraffic) -> DataPlaneSnapshot:
        """This snapshot with the traffic of `traffic`'s Rollout replaced (or added)."""
        others = tuple(
            t for t in self.rollouts if (t.namespace, t.name) != (traffic.namespace, traffic.name)
        )
        return replace(self, rollouts=(*others, traffic))

    def without_rollout(self, namespace: str, name: str) -> DataPlaneSnapshot:
        return replace(
            self,
            rollouts=tuple(t for t in self.rollouts if (t.namespace, t.name) != (namespace, name)),
        )

    def with_services(self, services: Iterable[ServiceBackends]) -> DataPlaneSnapshot:
        return replace(self, services=tuple(services))

    def to_raw(self) -> dict[str, Any]:
        """JSON-ready form, so the data plane can remember it across controller restarts."""
        return {
            "services": [
                {"namespace": s.namespace, "name": s.name, "endpoints": list(s.endpoints)}
                for s in self.services
            ],
            "rollouts": [
                {
                    "namespace": t.namespace,
                    "name": t.name,
                    "stableService": t.stable_service,
                    "canaryService": t.canary_service,
                    "canaryWeight": t.canary_weight,
                    "maxWeight": t.max_weight,
                    "additional": [d.to_raw() for d in t.additional],
                    "headerRoutes": [r.to_raw() for r in t.header_routes],
                    "mirrorRoutes": [r.to_raw() for r in t.mirror_routes],
                    "managedRoutes": list(t.managed_routes),
                }
                for t in self.rollouts
            ],
        }

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> DataPlaneSnapshot:
        return cls(
            services=tuple(
                ServiceBackends(
                    namespace=s["namespace"], name=s["name"], endpoints=tuple(s["endpoints"])
                )
                for s in raw.get("services", ())
            ),
            rollouts=tuple(
                RolloutTraffic(
                    namespace=t["namespace"],
                    name=t["name"],
                    stable_service=t["stableService"],
                    canary_service=t["canaryService"],
                    canary_weight=int(t["canaryWeight"]),
                    max_weight=int(t["maxWeight"]),
                    additional=tuple(WeightDestination.model_validate(d) for d in t["additional"]),
                    header_routes=tuple(
                        SetHeaderRoute.model_validate(r) for r in t["headerRoutes"]
                    ),
                    mirror_routes=tuple(
                        SetMirrorRoute.model_validate(r) for r in t["mirrorRoutes"]
                    ),
                    managed_routes=tuple(t["managedRoutes"]),
                )
                for t in raw.get("rollouts", ())
            ),
        )


# --- names and hosts ------------------------------------------------------------------------------


def service_key(namespace: str, name: str) -> str:
    """The Traefik service (and router) name of a Kubernetes Service."""
    return f"{namespace}-{name}"


def metrics_service_name(namespace: str, name: str) -> str:
    """The `service` label of a Service's series in Traefik's Prometheus metrics."""
    return f"{service_key(namespace, name)}@file"


def weighted_key(namespace: str, rollout: str) -> str:
    return f"{namespace}-{rollout}-weighted"


def host_for(namespace: str, name: str) -> str:
    """`name.localhost` in the default namespace, `name.namespace.localhost` elsewhere."""
    if namespace == DEFAULT_NAMESPACE:
        return f"{name}.localhost"
    return f"{name}.{namespace}.localhost"


def _route_key(namespace: str, rollout: str, kind: str, route: str) -> str:
    # Route names come from users; Traefik reserves "@" and we keep names URL-safe.
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", route) or "route"
    return f"{namespace}-{rollout}-{kind}-{safe}"


# --- building the Service part from store objects -------------------------------------------------


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def service_endpoints(
    service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]
) -> tuple[str, ...]:
    """Loopback endpoints of the ready pods a Service selects (Kubernetes' Endpoints rule: same
    namespace, every selector label matches; a Service without a selector selects nothing)."""
    metadata = service.get("metadata", {})
    namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
    selector: Mapping[str, str] = service.get("spec", {}).get("selector") or {}
    if not selector:
        return ()
    endpoints = set()
    for pod in pods:
        pod_meta = pod.get("metadata", {})
        labels = pod_meta.get("labels") or {}
        port = (pod_meta.get("annotations") or {}).get(PORT_ANNOTATION)
        if (
            (pod_meta.get("namespace") or DEFAULT_NAMESPACE) == namespace
            and all(labels.get(k) == v for k, v in selector.items())
            and port
            and pod_is_ready(pod)
        ):
            endpoints.add(f"127.0.0.1:{port}")
    return tuple(sorted(endpoints))


def service_backends(
    services: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> tuple[ServiceBackends, ...]:
    """The Service part of a snapshot from raw Service and Pod objects."""
    pod_list = list(pods)
    return tuple(
        ServiceBackends(
            namespace=s.get("metadata", {}).get("namespace") or DEFAULT_NAMESPACE,
            name=s["metadata"]["name"],
            endpoints=service_endpoints(s, pod_list),
        )
        for s in services
    )


# --- rendering ------------------------------------------------------------------------------------


def render_dynamic_config(snapshot: DataPlaneSnapshot) -> dict[str, Any]:
    """Traefik's dynamic configuration (file provider) for `snapshot`; same input, same dict."""
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    known: set[tuple[str, str]] = set()

    for svc in sorted(snapshot.services, key=lambda s: (s.namespace, s.name)):
        key = service_key(svc.namespace, svc.name)
        known.add((svc.namespace, svc.name))
        services[key] = _load_balancer(svc.endpoints)
        routers[key] = _router(
            f"Host({_literal(host_for(svc.namespace, svc.name))})", key, SERVICE_PRIORITY
        )

    for traffic in sorted(snapshot.rollouts, key=lambda t: (t.namespace, t.name)):
        ns = traffic.namespace
        # A Service the Rollout names but the snapshot lacks still gets an (empty) backend, so
        # the weighted service stays valid and its weights can be verified; requests sent to
        # it get 503 until the Service exists.
        for name in _services_of(traffic):
            if (ns, name) not in known:
                known.add((ns, name))
                services[service_key(ns, name)] = _load_balancer(())
        host_rule = f"Host({_literal(host_for(ns, traffic.name))})"
        weighted = weighted_key(ns, traffic.name)
        services[weighted] = {"weighted": {"services": _weighted_children(traffic)}}
        routers[weighted] = _router(host_rule, weighted, ROLLOUT_PRIORITY)
        canary = service_key(ns, traffic.canary_service)
        ordered = _ordered_managed_routes(traffic)
        for position, route in enumerate(ordered):
            priority = MANAGED_ROUTE_PRIORITY + len(ordered) - position
            if isinstance(route, SetHeaderRoute):
                key = _route_key(ns, traffic.name, "header", route.name or "")
                matchers = [
                    _header_matcher(m.header_name, m.header_value) for m in route.match or ()
                ]
                routers[key] = _router(_and(host_rule, _or(matchers)), canary, priority)
            else:
                key = _route_key(ns, traffic.name, "mirror", route.name)
                percent = 100 if route.percentage is None else route.percentage
                services[key] = {
                    "mirroring": {
                        "service": weighted,
                        "mirrors": [{"name": canary, "percent": percent}],
                    }
                }
                matchers = [_route_matcher(m) for m in route.match or ()]
                routers[key] = _router(_and(host_rule, _or(matchers)), key, priority)

    http: dict[str, Any] = {}
    if routers:
        http["routers"] = routers
    if services:
        http["services"] = services
    # Traefik rejects an `http` section with nothing in it ("cannot be a standalone element").
    return {"http": http} if http else {}


def weighted_split(traffic: RolloutTraffic) -> list[tuple[str, int]]:
    """(Kubernetes Service name, weight) for each destination, stable first, then canary."""
    canary = min(max(traffic.canary_weight, 0), traffic.max_weight)
    extra = [(d.service_name, max(d.weight, 0)) for d in traffic.additional if d.service_name]
    stable = max(traffic.max_weight - canary - sum(w for _, w in extra), 0)
    return [(traffic.stable_service, stable), (traffic.canary_service, canary), *extra]


def _weighted_children(traffic: RolloutTraffic) -> list[dict[str, Any]]:
    return [
        {"name": service_key(traffic.namespace, name), "weight": weight}
        for name, weight in weighted_split(traffic)
    ]


def _services_of(traffic: RolloutTraffic) -> list[str]:
    return [name for name, _ in weighted_split(traffic)]


def _ordered_managed_routes(
    traffic: RolloutTraffic,
) -> list[SetHeaderRoute | SetMirrorRoute]:
    routes: list[SetHeaderRoute | SetMirrorRoute] = [
        *(r for r in traffic.header_routes if r.match is not None),
        *(r for r in traffic.mirror_routes if r.match is not None),
    ]
    declared = {name: index for index, name in enumerate(traffic.managed_routes)}

    def precedence(item: tuple[int, SetHeaderRoute | SetMirrorRoute]) -> tuple[int, int]:
        position, route = item
        return (declared.get(route.name or "", len(declared)), position)

    return [route for _, route in sorted(enumerate(routes), key=precedence)]


def _load_balancer(endpoints: Iterable[str]) -> dict[str, Any]:
    servers = [{"url": f"http://{endpoint}"} for endpoint in sorted(set(endpoints))]
    return {"loadBalancer": {"servers": servers}}


def _router(rule: str, service: str, priority: int) -> dict[str, Any]:
    return {"entryPoints": [ENTRYPOINT], "rule": rule, "service": service, "priority": priority}


# --- rule matchers --------------------------------------------------------------------------------


def _literal(value: str) -> str:
    """A string literal of Traefik's rule language (backticks unless the value has one)."""
    if "`" not in value:
        return f"`{value}`"
    return json.dumps(value)  # a double-quoted Go string literal


def go_quote_meta(text: str) -> str:
    """Go's regexp.QuoteMeta: Python's re.escape also escapes spaces, which RE2 rejects."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def _header_matcher(name: str, match: StringMatch) -> str:
    if match.exact is not None:
        return f"Header({_literal(name)}, {_literal(match.exact)})"
    if match.prefix is not None:
        return f"HeaderRegexp({_literal(name)}, {_literal('^' + go_quote_meta(match.prefix))})"
    if match.regex is not None:
        return f"HeaderRegexp({_literal(name)}, {_literal(f'^(?:{match.regex})$')})"
    return f"HeaderRegexp({_literal(name)}, {_literal('')})"  # no value given: present


def _method_matcher(match: StringMatch) -> str:
    if match.exact is not None:
        return f"Method({_literal(match.exact.upper())})"
    if match.prefix is not None:
        prefix = match.prefix.upper()
        methods = [m for m in HTTP_METHODS if m.startswith(prefix)]
    elif match.regex is not None:
        pattern = re.compile(match.regex)
        methods = [m for m in HTTP_METHODS if pattern.fullmatch(m)]
    else:
        return ""
    # No method matches: a rule that is never true (Traefik has no `false`).
    return _or([f"Method({_literal(m)})" for m in methods]) or "Method(`NONE`)"


def _path_matcher(match: StringMatch) -> str:
    if match.exact is not None:
        return f"Path({_literal(match.exact)})"
    if match.prefix is not None:
        return f"PathPrefix({_literal(match.prefix)})"
    if match.regex is not None:
        return f"PathRegexp({_literal(f'^(?:{match.regex})$')})"
    return ""


def _route_matcher(match: RouteMatch) -> str:
    parts = [
        _method_matcher(match.method) if match.method else "",
        _path_matcher(match.path) if match.path else "",
        *(_header_matcher(name, value) for name, value in sorted((match.headers or {}).items())),
    ]
    return _and(*(p for p in parts if p))


def _and(*parts: str) -> str:
    present = [p for p in parts if p]
    if len(present) == 1:
        return present[0]
    return " && ".join(f"({p})" if "||" in p else p for p in present)


def _or(parts: list[str]) -> str:
    present = [p for p in parts if p]
    if len(present) <= 1:
        return present[0] if present else ""
    return " || ".join(f"({p})" if "&&" in p else p for p in present)
