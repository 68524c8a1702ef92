"""Which Kubernetes-mode router serves which `trafficRouting` key: a registry, not a switch.

Where it sits: the Kubernetes controller calls `cluster_router` once per reconcile of a
canary Rollout to get the `Router` (`rollwise.routers.base`) that executes the core's traffic
actions against the cluster. The routers hold no state across reconciles, so building them
each time is cheap and a restarted controller behaves the same.

Keys are the YAML names under `trafficRouting` (`istio`, `nginx`, `traefik`, `smi`) and
`plugins.<plugin name>` for plugins (`plugins.argoproj-labs/gatewayAPI`). A Rollout naming a
router that is not registered here (ALB, Ambassador, APISIX, App Mesh, other plugins) gets an
`UnsupportedError` naming it and listing the supported ones: the controller shows it as the
Rollout's status message and a Warning event instead of routing wrongly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rollwise.api.errors import UnsupportedError, UserError
from rollwise.api.models import Rollout
from rollwise.core.canary_state import role_services
from rollwise.routers import gatewayapi, istio, nginx, smi, traefik
from rollwise.routers.base import Router
from rollwise.routers.cluster import RolloutTarget
from rollwise.routers.composite import CompositeRouter
from rollwise.routers.objects import ObjectClient


@dataclass(frozen=True, slots=True)
class ClusterRouterOptions:
    """Controller-wide choices of API versions (Argo's `--istio-api-version`,
    `--traffic-split-api-version`, `--traefik-api-group` flags)."""

    istio_api_version: str = istio.API_VERSION
    ingress_api_version: str = nginx.API_VERSION
    traefik_api_version: str = traefik.API_VERSION
    """`traefik.io/v1alpha1`; `traefik.containo.us/v1alpha1` for Traefik before v3."""
    smi_api_version: str = smi.DEFAULT_API_VERSION
    """v1alpha1 (Argo's default), v1alpha2 or v1alpha3."""
    gateway_api_version: str = gatewayapi.API_VERSION


@dataclass(frozen=True, slots=True)
class RouterSetup:
    """What a registered builder gets to build its router from."""

    client: ObjectClient
    target: RolloutTarget
    settings: Mapping[str, Any]
    """The router's own part of `trafficRouting` (raw, camelCase)."""
    options: ClusterRouterOptions


RouterBuilder = Callable[[RouterSetup], Router]

ROUTERS: dict[str, RouterBuilder] = {
    "istio": lambda s: istio.IstioRouter(
        s.client, s.target, settings=s.settings, api_version=s.options.istio_api_version
    ),
    "nginx": lambda s: nginx.NginxRouter(
        s.client, s.target, settings=s.settings, api_version=s.options.ingress_api_version
    ),
    "traefik": lambda s: traefik.TraefikRouter(
        s.client, s.target, settings=s.settings, api_version=s.options.traefik_api_version
    ),
    "smi": lambda s: smi.SmiRouter(
        s.client, s.target, settings=s.settings, api_version=s.options.smi_api_version
    ),
    f"plugins.{gatewayapi.PLUGIN_NAME}": lambda s: gatewayapi.GatewayAPIRouter(
        s.client, s.target, settings=s.settings, api_version=s.options.gateway_api_version
    ),
}
"""Router builders by `trafficRouting` key, in the order they are listed to users."""


def configured_routers(rollout: Rollout) -> list[tuple[str, Mapping[str, Any]]]:
    """(registry key, settings) of each router the Rollout's trafficRouting names, in the
    order of TrafficRouting's fields (plugins last, in the order written)."""
    canary = rollout.spec.strategy.canary
    routing = canary.traffic_routing if canary is not None else None
    if routing is None:
        return []
    raw = routing.to_raw()
    found: list[tuple[str, Mapping[str, Any]]] = []
    for key in routing.router_names():
        value = raw.get(key)
        if key == "plugins" and isinstance(value, Mapping):
            found += [(f"plugins.{name}", _mapping(config)) for name, config in value.items()]
        else:
            found.append((key, _mapping(value)))
    return found


def cluster_router(
    rollout: Rollout,
    owner_reference: Mapping[str, Any],
    client: ObjectClient,
    *,
    options: ClusterRouterOptions | None = None,
) -> Router | None:
    """The Router of a traffic-routed canary Rollout on a cluster; None when it has no
    trafficRouting (its split follows pod counts). UnsupportedError for a router rollwise does
    not implement in Kubernetes mode; UserError when a router's settings cannot work."""
    canary = rollout.spec.strategy.canary
    if canary is None or canary.traffic_routing is None:
        return None
    configured = configured_routers(rollout)
    unsupported = [key for key, _ in configured if key not in ROUTERS]
    if unsupported:
        names = ", ".join(repr(key) for key in unsupported)
        noun, verb = ("router", "is") if len(unsupported) == 1 else ("routers", "are")
        raise UnsupportedError(
            f"traffic {noun} {names} {verb} not supported by rollwise in Kubernetes mode yet;"
            f" supported: {', '.join(ROUTERS)}"
        )
    if not configured:
        raise UserError(f"trafficRouting names no router; supported: {', '.join(ROUTERS)}")
    routing = canary.traffic_routing
    status = rollout.status.canary if rollout.status is not None else None
    stable, canary_service = role_services(canary, status.stable_ping_pong if status else None)
    target = RolloutTarget(
        name=rollout.name,
        namespace=rollout.namespace,
        stable_service=stable,
        canary_service=canary_service,
        max_traffic_weight=routing.max_traffic_weight,
        managed_routes=tuple(route.name for route in routing.managed_routes or ()),
        owner_reference=owner_reference,
    )
    chosen = options or ClusterRouterOptions()
    routers = [
        ROUTERS[key](RouterSetup(client, target, settings, chosen)) for key, settings in configured
    ]
    return routers[0] if len(routers) == 1 else CompositeRouter(routers)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
