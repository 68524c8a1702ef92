"""Traffic-routed canaries on the Kubernetes controller, end to end through real HTTP: the
seed's Part 6 Istio canary (weights, then its header route), an NGINX canary (the generated
canary Ingress) and a Gateway API canary (HTTPRoute backend weights). The proxy's objects are
what the test reads; the controller writes them as Argo's routers do."""

from __future__ import annotations

import copy
from typing import Any

from tests.kubernetes.apiserver import KubeApi, KubeControllerManager
from tests.kubernetes.world import (
    ARGO,
    promote,
    replica_sets,
    running_controller,
    seed,
    set_image,
    status,
)

RawObject = dict[str, Any]


def service(name: str) -> RawObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": "myapp"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def routed_rollout(traffic_routing: RawObject, steps: list[RawObject], **canary: Any) -> RawObject:
    return {
        "apiVersion": ARGO,
        "kind": "Rollout",
        "metadata": {"name": "myapp", "namespace": "default"},
        "spec": {
            "replicas": 5,
            "strategy": {
                "canary": {
                    "canaryService": "myapp-canary",
                    "stableService": "myapp-stable",
                    "trafficRouting": traffic_routing,
                    "steps": steps,
                    **canary,
                }
            },
            "selector": {"matchLabels": {"app": "myapp"}},
            "template": {
                "metadata": {"labels": {"app": "myapp"}},
                "spec": {"containers": [{"name": "myapp", "image": "myapp:v1.0"}]},
            },
        },
    }


PART6_STEPS: list[RawObject] = [
    {"setWeight": 10},
    {"pause": {"duration": "2m"}},
    {"setWeight": 20},
    {"pause": {"duration": "2m"}},
    {"setWeight": 30},
    {"pause": {"duration": "2m"}},
    {"setWeight": 50},
    {"pause": {}},
]

VIRTUAL_SERVICE: RawObject = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "metadata": {"name": "myapp", "namespace": "default"},
    "spec": {
        "hosts": ["myapp"],
        "http": [
            {
                "name": "primary",
                "route": [
                    {"destination": {"host": "myapp-stable"}, "weight": 100},
                    {"destination": {"host": "myapp-canary"}, "weight": 0},
                ],
            }
        ],
    },
}


def vs_weights(kube_api: KubeApi) -> dict[str, int]:
    vs = kube_api.get("networking.istio.io/v1beta1", "VirtualService", "myapp", "default")
    assert vs is not None
    primary = next(route for route in vs["spec"]["http"] if route.get("name") == "primary")
    return {d["destination"]["host"]: d.get("weight", 0) for d in primary["route"]}


def vs_route_names(kube_api: KubeApi) -> list[str]:
    vs = kube_api.get("networking.istio.io/v1beta1", "VirtualService", "myapp", "default")
    assert vs is not None
    return [route.get("name", "") for route in vs["spec"]["http"]]


async def healthy_then_update(kube_api: KubeApi) -> str:
    """Wait for the first revision to be Healthy, set a new image; the stable hash."""
    await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
    (stable_hash,) = replica_sets(kube_api)
    set_image(kube_api, "myapp:v2.0")
    return stable_hash


async def test_the_seed_istio_canary_moves_the_virtual_service_weights(kube_api: KubeApi) -> None:
    istio = {"istio": {"virtualService": {"name": "myapp", "routes": ["primary"]}}}
    seed(
        kube_api,
        service("myapp-stable"),
        service("myapp-canary"),
        VIRTUAL_SERVICE,
        routed_rollout(istio, PART6_STEPS),
    )
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        stable_hash = await healthy_then_update(kube_api)
        await kube_api.wait_for(lambda: status(kube_api).get("currentStepIndex") == 1, timeout=20)
        assert vs_weights(kube_api) == {"myapp-stable": 90, "myapp-canary": 10}
        (canary_hash,) = set(replica_sets(kube_api)) - {stable_hash}
        stable = kube_api.get("v1", "Service", "myapp-stable", "default")
        canary = kube_api.get("v1", "Service", "myapp-canary", "default")
        assert stable is not None
        assert canary is not None
        assert stable["spec"]["selector"]["rollouts-pod-template-hash"] == stable_hash
        assert canary["spec"]["selector"]["rollouts-pod-template-hash"] == canary_hash

        await promote(kube_api, full=False)
        await kube_api.wait_for(lambda: status(kube_api).get("currentStepIndex") == 3, timeout=20)
        assert vs_weights(kube_api) == {"myapp-stable": 80, "myapp-canary": 20}

        await promote(kube_api, full=True)
        await kube_api.wait_for(
            lambda: (
                status(kube_api).get("phase") == "Healthy"
                and status(kube_api).get("stableRS") == canary_hash
            ),
            timeout=30,
        )
        # At full promotion the canary's weight goes back to 0 (both Services select the
        # same pods now), in the reconcile after the one that made the new revision stable.
        await kube_api.wait_for(
            lambda: vs_weights(kube_api) == {"myapp-stable": 100, "myapp-canary": 0}, timeout=10
        )

    puts = kube_api.requests_to(method="PUT", path_prefix="/apis/networking.istio.io/")
    assert puts, "the VirtualService is written whole, with the resourceVersion read"
    assert all(request.body["metadata"].get("resourceVersion") for request in puts)


async def test_the_seed_header_route_sends_x_canary_to_the_canary_and_is_removed_after(
    kube_api: KubeApi,
) -> None:
    istio = {
        "istio": {"virtualService": {"name": "myapp", "routes": ["primary"]}},
        # Argo requires the header route's name here (its validation refuses the step without).
        "managedRoutes": [{"name": "canary-by-header"}],
    }
    steps: list[RawObject] = [
        {"setCanaryScale": {"weight": 25}},
        {
            "setHeaderRoute": {
                "name": "canary-by-header",
                "match": [{"headerName": "X-Canary", "headerValue": {"exact": "true"}}],
            }
        },
        {"pause": {}},
    ]
    rollout = routed_rollout(
        istio,
        steps,
        canaryMetadata={"annotations": {"role": "canary"}},
        stableMetadata={"annotations": {"role": "stable"}},
    )
    seed(kube_api, service("myapp-stable"), service("myapp-canary"), VIRTUAL_SERVICE, rollout)
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        stable_hash = await healthy_then_update(kube_api)
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Paused", timeout=20)
        assert vs_route_names(kube_api) == ["canary-by-header", "primary"]
        vs = kube_api.get("networking.istio.io/v1beta1", "VirtualService", "myapp", "default")
        assert vs is not None
        header_route = vs["spec"]["http"][0]
        assert header_route["match"] == [{"headers": {"x-canary": {"exact": "true"}}}] or (
            header_route["match"] == [{"headers": {"X-Canary": {"exact": "true"}}}]
        )
        assert header_route["route"] == [{"destination": {"host": "myapp-canary"}, "weight": 100}]
        (canary_hash,) = set(replica_sets(kube_api)) - {stable_hash}
        assert replica_sets(kube_api)[canary_hash]["spec"]["replicas"] == 2  # 25% of 5, rounded up
        # Ephemeral metadata: the role annotations reach the pods of each ReplicaSet.
        await kube_api.wait_for(
            lambda: all(
                (pod["metadata"].get("annotations") or {}).get("role") == "canary"
                for pod in kube_api.objects("Pod", namespace="default")
                if pod["metadata"]["labels"].get("rollouts-pod-template-hash") == canary_hash
            ),
            timeout=10,
        )

        await promote(kube_api, full=True)
        await kube_api.wait_for(
            lambda: (
                status(kube_api).get("phase") == "Healthy"
                and status(kube_api).get("stableRS") == canary_hash
            ),
            timeout=30,
        )
        assert vs_route_names(kube_api) == ["primary"]


async def test_an_nginx_canary_is_a_generated_canary_ingress(kube_api: KubeApi) -> None:
    ingress: RawObject = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "myapp", "namespace": "default"},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "myapp.example.com",
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
                    },
                }
            ],
        },
    }
    nginx = {"nginx": {"stableIngress": "myapp"}}
    steps: list[RawObject] = [{"setWeight": 30}, {"pause": {}}]
    seed(
        kube_api,
        service("myapp-stable"),
        service("myapp-canary"),
        ingress,
        routed_rollout(nginx, steps),
    )
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await healthy_then_update(kube_api)
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Paused", timeout=20)
        canary = kube_api.get("networking.k8s.io/v1", "Ingress", "myapp-myapp-canary", "default")
        assert canary is not None
        annotations = canary["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
        assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "30"
        backend = canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend["name"] == "myapp-canary"
        assert canary["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
        await promote(kube_api, full=True)
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=30)

        def canary_weight() -> str:
            found = kube_api.get("networking.k8s.io/v1", "Ingress", "myapp-myapp-canary", "default")
            assert found is not None
            return str(
                found["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"]
            )

        await kube_api.wait_for(lambda: canary_weight() == "0", timeout=10)


async def test_a_gateway_api_canary_weights_the_http_route_backends(kube_api: KubeApi) -> None:
    route: RawObject = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "myapp", "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "myapp-stable", "port": 80, "weight": 100},
                        {"name": "myapp-canary", "port": 80, "weight": 0},
                    ]
                }
            ],
        },
    }
    plugin = {
        "plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "myapp", "namespace": "default"}}
    }
    steps: list[RawObject] = [{"setWeight": 40}, {"pause": {}}]
    seed(
        kube_api,
        service("myapp-stable"),
        service("myapp-canary"),
        route,
        routed_rollout(plugin, steps),
    )
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await healthy_then_update(kube_api)
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Paused", timeout=20)

        def weights() -> dict[str, int]:
            found = kube_api.get("gateway.networking.k8s.io/v1", "HTTPRoute", "myapp", "default")
            assert found is not None
            refs = found["spec"]["rules"][0]["backendRefs"]
            return {ref["name"]: ref["weight"] for ref in refs}

        assert weights() == {"myapp-stable": 60, "myapp-canary": 40}
        await promote(kube_api, full=True)
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=30)
        await kube_api.wait_for(
            lambda: weights() == {"myapp-stable": 100, "myapp-canary": 0}, timeout=10
        )


async def test_an_unsupported_router_is_reported_on_the_rollout(kube_api: KubeApi) -> None:
    alb = {"alb": {"ingress": "myapp", "servicePort": 80}}
    rollout = routed_rollout(alb, [{"setWeight": 10}, {"pause": {}}])
    seed(kube_api, service("myapp-stable"), service("myapp-canary"), copy.deepcopy(rollout))
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(
            lambda: (
                "not supported by rollwise in Kubernetes mode"
                in status(kube_api).get("message", "")
            ),
            timeout=20,
        )
        assert status(kube_api)["phase"] == "Degraded"
        assert "'alb'" in status(kube_api)["message"]
