"""The combinations of canary options the engine refuses, with Argo's messages (reference 1.14).

Who calls it: `rollwise.core.rollouts.spec_problem`, before the canary engine runs; a problem
becomes Argo's InvalidSpec condition and phase Degraded. `rollwise lint` says the same things
at apply time (`rollwise.api.rollout_rules`), with lines and columns. The message text after
the field path is Argo's (`pkg/apis/rollouts/validation/validation.go`) where Argo has one.
"""

from __future__ import annotations

from rollwise.api import models as api
from rollwise.core.observed import Observed

WHERE = "spec.strategy.canary"
DUPLICATED_SERVICES = (
    "This rollout uses the same service for the stable and canary services, but two different"
    " services are required."
)
DUPLICATED_PING_PONG = (
    "This rollout uses the same service for the ping and pong services, but two different"
    " services are required."
)
SCALE_DOWN_DELAY_NEEDS_ROUTING = (
    "Canary scaleDownDelaySeconds can only be used with traffic routing"
)
DYNAMIC_NEEDS_ROUTING = "Canary dynamicStableScale can only be used with traffic routing"
DYNAMIC_WITH_SCALE_DOWN_DELAY = (
    "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds"
)
CANARY_SCALE_NEEDS_ROUTING = "SetCanaryScale requires TrafficRouting to be set"
PING_PONG_ROUTERS = "pingPong needs trafficRouting with istio, alb (with rootService) or plugins"
PING_PONG_ROUTER_NAMES = ("istio", "alb", "plugins")


def canary_option_problem(canary: api.CanaryStrategy, observed: Observed) -> str | None:
    """Why these canary options cannot run together (or name a Service that is missing)."""
    routing = canary.traffic_routing
    if canary.canary_service and canary.canary_service == canary.stable_service:
        return f"{WHERE}.stableService: {DUPLICATED_SERVICES}"
    ping_pong = canary.ping_pong
    if ping_pong is not None:
        if ping_pong.ping_service == ping_pong.pong_service:
            return f"{WHERE}.pingPong.pingService: {DUPLICATED_PING_PONG}"
        routers = routing.router_names() if routing is not None else []
        if not any(name in routers for name in PING_PONG_ROUTER_NAMES):
            return f"{WHERE}.pingPong: {PING_PONG_ROUTERS}"
    if routing is None:
        if canary.scale_down_delay_seconds is not None:
            return f"{WHERE}.scaleDownDelaySeconds: {SCALE_DOWN_DELAY_NEEDS_ROUTING}"
        if canary.dynamic_stable_scale:
            return f"{WHERE}.dynamicStableScale: {DYNAMIC_NEEDS_ROUTING}"
        for index, step in enumerate(canary.steps or ()):
            if step.set_canary_scale is not None:
                return f"{WHERE}.steps[{index}].setCanaryScale: {CANARY_SCALE_NEEDS_ROUTING}"
    elif canary.dynamic_stable_scale and canary.scale_down_delay_seconds is not None:
        return f"{WHERE}.dynamicStableScale: {DYNAMIC_WITH_SCALE_DOWN_DELAY}"
    if ping_pong is not None:
        for field, service in (
            ("pingService", ping_pong.ping_service),
            ("pongService", ping_pong.pong_service),
        ):
            if service not in observed.service_selectors:
                return f'{WHERE}.pingPong.{field}: service "{service}" not found'
    return None
