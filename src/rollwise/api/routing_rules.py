"""Rules for a canary's trafficRouting, and for the router objects found next to it.

Where this sits: called by `rollwise.api.rollout_rules` for a Rollout whose canary strategy
has `trafficRouting` (reference sections 1.3, 1.4, 1.14). VirtualServices and Ingresses are
raw pass-through objects: when one the Rollout names is in the same files it must fit (the
routes exist and send to the Rollout's services); when it is not, it may already be in the
store or the cluster, and that is not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rollwise.api.context import Catalog, Report
from rollwise.api.manifests import FieldPath
from rollwise.api.models import CanaryStrategy, RawObject, TrafficRouting

ROUTERS: tuple[str, ...] = tuple(
    info.alias or name
    for name, info in TrafficRouting.model_fields.items()
    if name not in ("managed_routes", "max_traffic_weight")
)
"""Traffic-router keys in YAML spelling."""

KUBERNETES_ROUTERS: tuple[str, ...] = (
    "istio",
    "nginx",
    "traefik",
    "smi",
    "plugins.argoproj-labs/gatewayAPI",
)
"""The routers rollwise drives in Kubernetes mode (`rollwise.routers.registry.ROUTERS`, which
a test keeps equal); local mode serves every router through its own Traefik."""


def _list(value: Any) -> list[Any]:
    """Objects we only read (VirtualService, Ingress) may be malformed: read them defensively."""
    return value if isinstance(value, list) else []


def names_text(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"


class RoutingRules:
    """The trafficRouting of one canary strategy; one method per router or router object."""

    def __init__(
        self,
        report: Report,
        canary: CanaryStrategy,
        routing: TrafficRouting,
        *,
        catalog: Catalog,
        namespace: str | None,
    ) -> None:
        self.report = report
        self.canary = canary
        self.routing = routing
        self.catalog = catalog
        self.namespace = namespace
        self.path: FieldPath = ("spec", "strategy", "canary")
        self.routers = routing.router_names()

    def has_router(self, *names: str) -> bool:
        return any(name in self.routers for name in names)

    def check(self) -> None:
        report, canary, routing = self.report, self.canary, self.routing
        where = (*self.path, "trafficRouting")
        if not self.routers:
            report.error(
                where, f"trafficRouting names no router; expected one of {', '.join(ROUTERS)}"
            )
        for name in self.routers:
            if name not in ROUTERS:
                report.error(
                    (*where, name),
                    f"unknown traffic router {name!r}; expected one of {', '.join(ROUTERS)}"
                    " (other routers are plugins: plugins: {'org/name': {...}})",
                )
        istio = routing.istio if isinstance(routing.istio, dict) else None
        host_split = istio is not None and not istio.get("destinationRule")
        ping_pong = canary.ping_pong is not None
        needs_services = [
            name
            for name in self.routers
            if name in ("smi", "apisix", "ambassador", "nginx", "appMesh", "traefik")
            or (name == "alb" and not ping_pong)
            or (name == "istio" and host_split and not ping_pong)
        ]
        if needs_services:
            for key, value in (
                ("stableService", canary.stable_service),
                ("canaryService", canary.canary_service),
            ):
                if not value:
                    report.error(
                        (*self.path, key),
                        f"{key} is required with trafficRouting.{needs_services[0]}",
                    )
        if routing.max_traffic_weight is not None:
            if not self.has_router("nginx", "plugins"):
                report.error(
                    (*where, "maxTrafficWeight"),
                    "maxTrafficWeight is only supported with nginx or plugins",
                )
            if routing.max_traffic_weight <= 0:
                report.error(
                    (*where, "maxTrafficWeight"),
                    f"maxTrafficWeight must be above 0, got {routing.max_traffic_weight}",
                )
        seen: set[str] = set()
        for index, route in enumerate(routing.managed_routes or []):
            if not route.name:
                report.error(
                    (*where, "managedRoutes", index, "name"), "a managed route needs a name"
                )
            elif route.name in seen:
                report.error(
                    (*where, "managedRoutes", index, "name"),
                    f"managed route {route.name!r} is listed twice",
                )
            seen.add(route.name)
        self.check_router_settings(routing, where)
        self.check_kubernetes_support(routing, where)

    def check_kubernetes_support(self, routing: TrafficRouting, where: FieldPath) -> None:
        """Valid, but not routable on a cluster yet: say so before a rollout finds out."""
        raw = routing.to_raw()
        plugins = raw.get("plugins")
        keys: list[tuple[str, FieldPath]] = [
            (name, (*where, name)) for name in self.routers if name in ROUTERS and name != "plugins"
        ]
        if isinstance(plugins, dict):
            keys += [(f"plugins.{name}", (*where, "plugins", name)) for name in plugins]
        for key, path in keys:
            if key not in KUBERNETES_ROUTERS:
                self.report.warning(
                    path,
                    f"traffic router {key!r} is not supported by rollwise in Kubernetes mode yet"
                    f" (supported there: {', '.join(KUBERNETES_ROUTERS)}); local mode routes it"
                    " through its Traefik",
                )

    def check_router_settings(self, routing: TrafficRouting, where: FieldPath) -> None:
        report = self.report
        raw = routing.to_raw()
        for name in ("istio", "nginx", "alb", "smi", "ambassador", "appMesh", "apisix", "plugins"):
            if name in raw and not isinstance(raw[name], dict):
                report.error((*where, name), f"{name} needs its settings as a mapping")
        if isinstance(routing.istio, dict):
            self.check_istio(routing.istio, (*where, "istio"))
        if isinstance(routing.nginx, dict):
            nginx = routing.nginx
            if bool(nginx.get("stableIngress")) == bool(nginx.get("stableIngresses")):
                report.error(
                    (*where, "nginx"), "nginx takes exactly one of stableIngress or stableIngresses"
                )
            ingresses = [nginx.get("stableIngress"), *_list(nginx.get("stableIngresses"))]
            for ingress in ingresses:
                if isinstance(ingress, str) and ingress:
                    self.check_ingress(ingress, (*where, "nginx"))
        if isinstance(routing.alb, dict):
            alb = routing.alb
            if bool(alb.get("ingress")) == bool(alb.get("ingresses")):
                report.error((*where, "alb"), "alb takes exactly one of ingress or ingresses")
            if not isinstance(alb.get("servicePort"), int):
                report.error((*where, "alb", "servicePort"), "alb needs servicePort (a number)")
        if routing.traefik is not None and not routing.traefik.weighted_traefik_service_name:
            report.error((*where, "traefik"), "traefik needs weightedTraefikServiceName")
        if isinstance(routing.ambassador, dict) and not routing.ambassador.get("mappings"):
            report.error((*where, "ambassador"), "ambassador needs at least one mapping")
        if isinstance(routing.apisix, dict):
            route = routing.apisix.get("route")
            if not isinstance(route, dict) or not route.get("name"):
                report.error((*where, "apisix"), "apisix needs route.name")
        if isinstance(routing.app_mesh, dict):
            service = routing.app_mesh.get("virtualService")
            if not isinstance(service, dict) or not service.get("name"):
                report.error((*where, "appMesh"), "appMesh needs virtualService.name")
        if routing.plugins is not None and not routing.plugins:
            report.error((*where, "plugins"), "plugins names no plugin")

    def check_istio(self, istio: RawObject, where: FieldPath) -> None:
        report = self.report
        single, several = istio.get("virtualService"), istio.get("virtualServices")
        if (single is None) == (several is None):
            report.error(where, "istio takes exactly one of virtualService or virtualServices")
        rule = istio.get("destinationRule")
        if rule is not None:
            if not isinstance(rule, dict):
                report.error((*where, "destinationRule"), "destinationRule must be a mapping")
                rule = None
            else:
                for key in ("name", "canarySubsetName", "stableSubsetName"):
                    if not rule.get(key):
                        report.error(
                            (*where, "destinationRule", key), f"destinationRule needs {key}"
                        )
        services: list[tuple[Any, FieldPath]] = []
        if single is not None:
            services.append((single, (*where, "virtualService")))
        if isinstance(several, list):
            services.extend(
                (item, (*where, "virtualServices", index)) for index, item in enumerate(several)
            )
        elif several is not None:
            report.error((*where, "virtualServices"), "virtualServices must be a list")
        for service, service_path in services:
            if not isinstance(service, dict) or not isinstance(service.get("name"), str):
                report.error(service_path, "a virtualService needs a name")
                continue
            routes = service.get("routes")
            if routes is not None and (
                not isinstance(routes, list) or not all(isinstance(r, str) for r in routes)
            ):
                report.error((*service_path, "routes"), "routes must be a list of route names")
                continue
            self.check_virtual_service(service, service_path, rule)

    def check_virtual_service(
        self, settings: RawObject, where: FieldPath, rule: RawObject | None
    ) -> None:
        """Compare with the VirtualService when it is in the files (else it may be in the store)."""
        name = str(settings["name"])
        namespace = self.namespace
        if "/" in name:
            namespace, name = name.split("/", 1)
        elif len(parts := name.split(".")) == 2 and all(parts):
            name, namespace = parts  # Argo's `name.namespace`
        found = self.catalog.find("VirtualService", name, namespace=namespace)
        if found is None:
            return
        spec = found.document.raw.get("spec")
        http = spec.get("http") if isinstance(spec, dict) else None
        http_routes = [route for route in _list(http) if isinstance(route, dict)]
        names = [str(route.get("name")) for route in http_routes if route.get("name")]
        routes = settings.get("routes")
        selected: list[RawObject] = []
        if routes is None:
            if settings.get("tlsRoutes") or settings.get("tcpRoutes"):
                return
            if len(http_routes) != 1:
                self.report.error(
                    (*where, "routes"),
                    f"routes is required: VirtualService {name!r} has {len(http_routes)} http"
                    " routes, and only a single route can be left implicit",
                )
                return
            selected = http_routes
        else:
            by_name = {str(route.get("name")): route for route in http_routes}
            for index, route_name in enumerate(routes):
                if route_name in by_name:
                    selected.append(by_name[route_name])
                else:
                    self.report.error(
                        (*where, "routes", index),
                        f"route {route_name!r} is not in VirtualService {name!r}"
                        f" ({found.document.file}:{found.document.start[0]});"
                        f" its http routes are: {names_text(names)}",
                    )
        for route in selected:
            self.check_destinations(route, name, where, rule)

    def check_destinations(
        self, route: RawObject, service_name: str, where: FieldPath, rule: RawObject | None
    ) -> None:
        destinations: list[RawObject] = [
            item["destination"]
            for item in _list(route.get("route"))
            if isinstance(item, dict) and isinstance(item.get("destination"), dict)
        ]
        label = f"route {route.get('name')!r}" if route.get("name") else "the http route"
        if rule is None:
            hosts = [str(d.get("host", "")).split(".")[0] for d in destinations]
            wanted = [
                ("stableService", self.canary.stable_service),
                ("canaryService", self.canary.canary_service),
            ]
            noun = "destination hosts"
        else:
            hosts = [str(d.get("subset", "")) for d in destinations]
            wanted = [
                ("stableSubsetName", rule.get("stableSubsetName")),
                ("canarySubsetName", rule.get("canarySubsetName")),
            ]
            noun = "destination subsets"
        for key, value in wanted:
            if value and value not in hosts:
                self.report.error(
                    where,
                    f"{label} of VirtualService {service_name!r} has no destination for {key}"
                    f" {value!r} (its {noun}: {names_text(hosts)})",
                )

    def check_ingress(self, name: str, where: FieldPath) -> None:
        found = self.catalog.find("Ingress", name, namespace=self.namespace)
        stable = self.canary.stable_service
        if found is None or not stable:
            return
        backends = set(_ingress_backends(found.document.raw))
        if stable not in backends:
            self.report.error(
                where,
                f"Ingress {name!r} does not send to stableService {stable!r}"
                f" (its backends: {names_text(sorted(backends))})",
            )


def _ingress_backends(raw: RawObject) -> list[str]:
    """Service names an Ingress sends to (networking.k8s.io/v1 and the older v1beta1 shape)."""
    found: list[str] = []

    def add(backend: Any) -> None:
        if not isinstance(backend, dict):
            return
        service = backend.get("service")
        if isinstance(service, dict) and isinstance(service.get("name"), str):
            found.append(service["name"])
        if isinstance(backend.get("serviceName"), str):
            found.append(backend["serviceName"])

    spec = raw.get("spec")
    if not isinstance(spec, dict):
        return found
    add(spec.get("defaultBackend"))
    add(spec.get("backend"))
    for rule in _list(spec.get("rules")):
        http = rule.get("http") if isinstance(rule, dict) else None
        for item in _list(http.get("paths") if isinstance(http, dict) else None):
            if isinstance(item, dict):
                add(item.get("backend"))
    return found
