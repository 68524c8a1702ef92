"""The running controller only asks the API server for what the install's roles grant.

Canaries run end to end on the test API server (leader election on): the seed's Part 3 canary,
an Istio canary with a header route and ephemeral pod metadata, and an NGINX canary. Every
request in the server's log is turned into its RBAC attributes as kube-apiserver would and
checked against the ClusterRole. A new kind of request in the controller without its row in
`CONTROLLER_PERMISSIONS` fails here.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rbac import allows, request_attributes
from tests.kubernetes.apiserver import KubeApi, KubeControllerManager
from tests.kubernetes.world import (
    ARGO,
    SEED_ROLLOUT,
    SEED_SERVICE,
    running_controller,
    seed,
    set_image,
    status,
)

from rollwise.core.commands import promote_patch
from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.platforms.kubernetes.install import policy_rules

RawObject = dict[str, Any]


async def promote_fully(kube_api: KubeApi) -> None:
    """What `rollwise promote --full` writes: the core's patch, on the status subresource."""
    rollout = kube_api.get(ARGO, "Rollout", "myapp", "default")
    assert rollout is not None
    patch = promote_patch(rollout, full=True).status_patch
    async with await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path)) as client:
        await client.merge_patch(
            ARGO, "Rollout", "myapp", "default", {"status": dict(patch)}, subresource="status"
        )


def service(name: str) -> RawObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": "myapp"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def routed_rollout(traffic_routing: RawObject, steps: list[RawObject], **canary: Any) -> RawObject:
    rollout = copy.deepcopy(SEED_ROLLOUT)
    rollout["spec"]["strategy"] = {
        "canary": {
            "canaryService": "myapp-canary",
            "stableService": "myapp-stable",
            "trafficRouting": traffic_routing,
            "steps": steps,
            **canary,
        }
    }
    return rollout


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

INGRESS: RawObject = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "myapp", "namespace": "default"},
    "spec": {
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
        ]
    },
}
HEADER_ROUTE_STEPS: list[RawObject] = [
    {"setWeight": 20},
    {
        "setHeaderRoute": {
            "name": "canary-by-header",
            "match": [{"headerName": "X-Canary", "headerValue": {"exact": "true"}}],
        }
    },
    {"pause": {}},
]
SCENARIOS: dict[str, list[RawObject]] = {
    "seed canary": [SEED_SERVICE, SEED_ROLLOUT],
    "istio header route": [
        service("myapp-stable"),
        service("myapp-canary"),
        VIRTUAL_SERVICE,
        routed_rollout(
            {
                "istio": {"virtualService": {"name": "myapp", "routes": ["primary"]}},
                "managedRoutes": [{"name": "canary-by-header"}],
            },
            HEADER_ROUTE_STEPS,
            canaryMetadata={"labels": {"role": "canary"}},
            stableMetadata={"labels": {"role": "stable"}},
        ),
    ],
    "nginx": [
        service("myapp-stable"),
        service("myapp-canary"),
        INGRESS,
        routed_rollout({"nginx": {"stableIngress": "myapp"}}, [{"setWeight": 30}, {"pause": {}}]),
    ],
}

# a request each scenario must have made, so that it exercises what it is here for
EXERCISED = {
    "seed canary": ("PUT", "/leases/"),
    "istio header route": ("PUT", "/virtualservices/"),
    "nginx": ("POST", "/ingresses"),
}


def denied(kube_api: KubeApi, rules: list[RawObject]) -> set[tuple[str, str, str]]:
    refused = set()
    for request in kube_api.requests:
        wanted = request_attributes(request.method, request.path, request.query)
        if not allows(rules, group=wanted.group, resource=wanted.resource, verb=wanted.verb):
            refused.add((wanted.group, wanted.resource, wanted.verb))
    return refused


async def run_to_the_end(kube_api: KubeApi, objects: list[RawObject], **options: Any) -> None:
    seed(kube_api, *objects)
    async with (
        KubeControllerManager(kube_api),
        running_controller(kube_api, leader_elect=True, **options),
    ):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        set_image(kube_api, "argoproj/rollouts-demo:yellow")
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Paused", timeout=20)
        await promote_fully(kube_api)
        await kube_api.wait_for(
            lambda: (
                status(kube_api).get("phase") == "Healthy"
                and status(kube_api).get("currentPodHash") == status(kube_api).get("stableRS")
            ),
            timeout=30,
        )


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_the_cluster_role_grants_every_request_of_a_whole_canary(
    kube_api: KubeApi, scenario: str
) -> None:
    await run_to_the_end(kube_api, SCENARIOS[scenario])
    method, fragment = EXERCISED[scenario]
    assert any(r.method == method and fragment in r.path for r in kube_api.requests)
    assert any(r.method == "POST" and "/replicasets" in r.path for r in kube_api.requests)
    assert denied(kube_api, policy_rules()) == set()


async def test_the_namespaced_role_grants_every_request_of_a_namespaced_controller(
    kube_api: KubeApi,
) -> None:
    await run_to_the_end(kube_api, SCENARIOS["seed canary"], namespaced=True, namespace="default")
    assert denied(kube_api, policy_rules(namespaced=True)) == set()
