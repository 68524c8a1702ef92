"""cluster_router: which router a Rollout gets, several at once, and the ones not supported."""

from __future__ import annotations

from typing import Any

import pytest
from tests.routers.world import CONTROLLER_REF, OWNER, RecordingObjects, run, weight

from rollwise.api.errors import UnsupportedError
from rollwise.api.models import Rollout
from rollwise.api.routing_rules import KUBERNETES_ROUTERS
from rollwise.routers.composite import CompositeRouter, combine_verifications
from rollwise.routers.gatewayapi import GatewayAPIRouter
from rollwise.routers.istio import IstioRouter
from rollwise.routers.nginx import NginxRouter
from rollwise.routers.objects import InMemoryObjects, RawObject
from rollwise.routers.registry import ROUTERS, ClusterRouterOptions, cluster_router
from rollwise.routers.smi import SmiRouter
from rollwise.routers.traefik import TraefikRouter

SUPPORTED = "supported: istio, nginx, traefik, smi, plugins.argoproj-labs/gatewayAPI"


def rollout(
    routing: dict[str, Any] | None, *, status: dict[str, Any] | None = None, **canary: Any
) -> Rollout:
    strategy: dict[str, Any] = {
        "canaryService": "myapp-canary",
        "stableService": "myapp-stable",
        **canary,
    }
    if routing is not None:
        strategy["trafficRouting"] = routing
    raw: dict[str, Any] = {
        "metadata": {"name": "myapp"},
        "spec": {"strategy": {"canary": strategy}},
    }
    if status is not None:
        raw["status"] = status
    return Rollout.model_validate(raw)


@pytest.mark.parametrize(
    ("routing", "kind"),
    [
        ({"istio": {"virtualService": {"name": "myapp"}}}, IstioRouter),
        ({"nginx": {"stableIngress": "myapp"}}, NginxRouter),
        ({"traefik": {"weightedTraefikServiceName": "myapp"}}, TraefikRouter),
        ({"smi": {}}, SmiRouter),
        (
            {
                "plugins": {
                    "argoproj-labs/gatewayAPI": {"httpRoute": "myapp", "namespace": "default"}
                }
            },
            GatewayAPIRouter,
        ),
        (
            {
                "plugins": {
                    "argoproj-labs/gatewayAPI": {
                        "httpRoutes": [{"name": "a", "useHeaderRoutes": True}]
                    }
                }
            },
            GatewayAPIRouter,
        ),
    ],
    ids=["istio", "nginx", "traefik", "smi", "gatewayapi", "gatewayapi-httproutes"],
)
def test_each_supported_key_gets_its_router(routing: dict[str, Any], kind: type) -> None:
    assert isinstance(cluster_router(rollout(routing), OWNER, InMemoryObjects()), kind)


def test_no_traffic_routing_means_no_router() -> None:
    assert cluster_router(rollout(None), OWNER, InMemoryObjects()) is None
    blue_green = Rollout.model_validate(
        {"metadata": {"name": "b"}, "spec": {"strategy": {"blueGreen": {"activeService": "a"}}}}
    )
    assert cluster_router(blue_green, OWNER, InMemoryObjects()) is None


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        (
            {"alb": {"ingress": "myapp", "servicePort": 80}},
            "traffic router 'alb' is not supported by rollwise in Kubernetes mode yet;"
            f" {SUPPORTED}",
        ),
        (
            {
                "ambassador": {"mappings": ["m"]},
                "appMesh": {"virtualService": {"name": "v"}},
                "apisix": {"route": {"name": "r"}},
            },
            "traffic routers 'ambassador', 'appMesh', 'apisix' are not supported by rollwise"
            f" in Kubernetes mode yet; {SUPPORTED}",
        ),
        (
            {
                "istio": {"virtualService": {"name": "myapp"}},
                "plugins": {"argoproj-labs/openshift": {"routes": ["r"]}},
            },
            "traffic router 'plugins.argoproj-labs/openshift' is not supported by rollwise"
            " in Kubernetes mode yet;",
        ),
    ],
    ids=["alb", "several", "other-plugin"],
)
def test_unsupported_routers_are_named_with_the_supported_ones(
    routing: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsupportedError) as raised:
        cluster_router(rollout(routing), OWNER, InMemoryObjects())
    assert message in str(raised.value)


def test_the_lint_knows_the_same_supported_routers() -> None:
    assert tuple(ROUTERS) == KUBERNETES_ROUTERS


async def test_several_routers_are_called_in_turn() -> None:
    ingress: RawObject = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "myapp", "namespace": "default"},
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": "myapp-stable", "port": {"number": 80}}
                                },
                            }
                        ]
                    }
                }
            ]
        },
    }
    client = RecordingObjects(ingress)
    router = cluster_router(
        rollout({"nginx": {"stableIngress": "myapp"}, "smi": {}}),
        OWNER,
        client,
        options=ClusterRouterOptions(smi_api_version="v1alpha3"),
    )
    assert isinstance(router, CompositeRouter)
    assert [type(r) for r in router.routers] == [NginxRouter, SmiRouter]
    await run(router, [weight(10)])
    assert client.writes == [
        ("create", "Ingress", "myapp-myapp-canary"),
        ("create", "TrafficSplit", "myapp"),
    ]
    split = client.stored("TrafficSplit", "myapp")
    assert split is not None
    assert split["metadata"]["ownerReferences"] == [CONTROLLER_REF]
    assert split["spec"]["backends"] == [
        {"service": "myapp-canary", "weight": 10},
        {"service": "myapp-stable", "weight": 90},
    ]
    assert await router.verify_weight(10) is None


@pytest.mark.parametrize(
    ("answers", "combined"),
    [
        ([], None),
        ([None, None], None),
        ([True, None], True),
        ([True, True], True),
        ([True, False], False),
        ([None, False], False),
    ],
)
def test_verification_of_several_routers(answers: list[bool | None], combined: bool | None) -> None:
    assert combine_verifications(answers) is combined


@pytest.mark.parametrize(
    ("stable_ping_pong", "stable", "canary"),
    [(None, "ping", "pong"), ("ping", "ping", "pong"), ("pong", "pong", "ping")],
)
async def test_ping_pong_roles_come_from_the_status(
    stable_ping_pong: str | None, stable: str, canary: str
) -> None:
    vs: RawObject = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": "myapp", "namespace": "default"},
        "spec": {
            "http": [
                {
                    "route": [
                        {"destination": {"host": "ping"}, "weight": 100},
                        {"destination": {"host": "pong"}, "weight": 0},
                    ]
                }
            ]
        },
    }
    status = {"canary": {"stablePingPong": stable_ping_pong}} if stable_ping_pong else None
    spec = rollout(
        {"istio": {"virtualService": {"name": "myapp"}}},
        status=status,
        pingPong={"pingService": "ping", "pongService": "pong"},
        canaryService=None,
        stableService=None,
    )
    client = RecordingObjects(vs)
    router = cluster_router(spec, OWNER, client)
    assert router is not None
    await run(router, [weight(30)])
    stored = client.stored("VirtualService", "myapp")
    assert stored is not None
    weights = {d["destination"]["host"]: d["weight"] for d in stored["spec"]["http"][0]["route"]}
    assert weights == {stable: 70, canary: 30}


async def test_options_choose_api_versions() -> None:
    options = ClusterRouterOptions(
        traefik_api_version="traefik.containo.us/v1alpha1", smi_api_version="v1alpha2"
    )
    router = cluster_router(
        rollout(
            {
                "traefik": {"weightedTraefikServiceName": "myapp"},
                "smi": {"trafficSplitName": "split"},
            }
        ),
        OWNER,
        InMemoryObjects(),
        options=options,
    )
    assert isinstance(router, CompositeRouter)
    smi, traefik = router.routers  # in the order of trafficRouting's fields
    assert isinstance(traefik, TraefikRouter)
    assert traefik.ref.api_version == "traefik.containo.us/v1alpha1"
    assert isinstance(smi, SmiRouter)
    assert smi.ref.api_version == "split.smi-spec.io/v1alpha2"
