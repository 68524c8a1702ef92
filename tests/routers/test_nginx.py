"""The NGINX router from tables: stable Ingress before, calls, the canary Ingress after."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.routers.world import (
    CONTROLLER_REF,
    REMOVE,
    Call,
    RecordingObjects,
    header,
    mirror,
    run,
    target,
    weight,
)

from rollwise.api.errors import NotFoundError, UserError
from rollwise.routers.nginx import NginxRouter, canary_ingress_name
from rollwise.routers.objects import RawObject

P = "nginx.ingress.kubernetes.io"


def path(service: str) -> RawObject:
    return {
        "path": "/",
        "pathType": "Prefix",
        "backend": {"service": {"name": service, "port": {"number": 80}}},
    }


def ingress(name: str = "myapp", **metadata: Any) -> RawObject:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {"kubernetes.io/ingress.class": "nginx", "team": "shop"},
            **metadata,
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["myapp.example.com"], "secretName": "myapp-tls"}],
            "rules": [
                {"host": "myapp.example.com", "http": {"paths": [path("myapp-stable")]}},
                {"host": "admin.example.com", "http": {"paths": [path("admin")]}},
            ],
        },
    }


def canary(annotations: dict[str, str], stable: str = "myapp") -> RawObject:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": f"myapp-{stable}-canary",
            "namespace": "default",
            "annotations": {"kubernetes.io/ingress.class": "nginx", **annotations},
            "ownerReferences": [CONTROLLER_REF],
        },
        "spec": {
            "rules": [{"host": "myapp.example.com", "http": {"paths": [path("myapp-canary")]}}],
            "tls": [{"hosts": ["myapp.example.com"], "secretName": "myapp-tls"}],
            "ingressClassName": "nginx",
        },
    }


def weighted(w: int, **more: str) -> dict[str, str]:
    return {f"{P}/canary": "true", f"{P}/canary-weight": str(w), **more}


def by_header(name: str, **more: str) -> dict[str, str]:
    return {"rollwise.io/header-route": name, f"{P}/canary-by-header": "X-Canary", **more}


def x_canary(**value: str) -> dict[str, Any]:
    return {"headerName": "X-Canary", "headerValue": value}


ROUTE = ("by-header",)
SETTINGS = {"stableIngress": "myapp"}

CASES: list[
    tuple[str, dict[str, Any], dict[str, Any], list[RawObject], list[Call], list[RawObject]]
] = [
    (
        "the canary Ingress is created with the stable rules switched to the canary",
        SETTINGS,
        {},
        [ingress()],
        [weight(20)],
        [ingress(), canary(weighted(20))],
    ),
    (
        "user annotations (prefixed when needed), weight total, mirror is a no-op",
        {
            "stableIngress": "myapp",
            "additionalIngressAnnotations": {
                "canary-by-cookie": "beta",
                f"{P}/load-balance": "ewma",
            },
            "canaryIngressAnnotations": {"example.com/team": "shop"},
        },
        {"max_traffic_weight": 1000},
        [ingress()],
        [weight(250), mirror("m", [{"path": {"exact": "/"}}], 10)],
        [
            ingress(),
            canary(
                {
                    f"{P}/canary-by-cookie": "beta",
                    f"{P}/load-balance": "ewma",
                    "example.com/team": "shop",
                    **weighted(250, **{f"{P}/canary-weight-total": "1000"}),
                }
            ),
        ],
    ),
    (
        "an exact header route is kept by later weights",
        SETTINGS,
        {"managed_routes": ROUTE},
        [ingress()],
        [weight(10), header("by-header", x_canary(exact="yes")), weight(30)],
        [
            ingress(),
            canary(
                {**weighted(30), **by_header("by-header", **{f"{P}/canary-by-header-value": "yes"})}
            ),
        ],
    ),
    (
        "a regex matches the whole value; a header route before any weight creates at 0",
        SETTINGS,
        {"managed_routes": ROUTE},
        [ingress()],
        [header("by-header", x_canary(regex="beta|canary"))],
        [
            ingress(),
            canary(
                {
                    **weighted(0),
                    **by_header(
                        "by-header", **{f"{P}/canary-by-header-pattern": "^(?:beta|canary)$"}
                    ),
                }
            ),
        ],
    ),
    (
        "a prefix becomes an anchored, quoted pattern",
        SETTINGS,
        {"managed_routes": ROUTE},
        [ingress()],
        [weight(5), header("by-header", x_canary(prefix="v1.2"))],
        [
            ingress(),
            canary(
                {
                    **weighted(5),
                    **by_header("by-header", **{f"{P}/canary-by-header-pattern": "^v1\\.2.*"}),
                }
            ),
        ],
    ),
    (
        "a route step without match removes the header route, the weight stays",
        SETTINGS,
        {"managed_routes": ROUTE},
        [ingress()],
        [weight(40), header("by-header", x_canary(exact="yes")), header("by-header")],
        [ingress(), canary(weighted(40))],
    ),
    (
        "remove_managed_routes removes the header route",
        SETTINGS,
        {"managed_routes": ROUTE},
        [ingress()],
        [weight(40), header("by-header", x_canary(exact="yes")), REMOVE],
        [ingress(), canary(weighted(40))],
    ),
    (
        "several stable Ingresses, each with its canary",
        {"stableIngresses": ["myapp", "myapp-internal"]},
        {},
        [ingress(), ingress("myapp-internal")],
        [weight(15)],
        [
            ingress(),
            ingress("myapp-internal"),
            canary(weighted(15)),
            canary(weighted(15), "myapp-internal"),
        ],
    ),
    (
        "a canary Ingress of ours that drifted is patched back to the desired state",
        SETTINGS,
        {},
        [
            ingress(),
            {
                **canary({**weighted(90), f"{P}/canary-by-cookie": "old"}),
                "spec": {"rules": []},
            },
        ],
        [weight(20)],
        [ingress(), canary(weighted(20))],
    ),
]


@pytest.mark.parametrize(
    ("settings", "spec", "before", "calls", "after"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_nginx_router_keeps_the_canary_ingress(
    settings: dict[str, Any],
    spec: dict[str, Any],
    before: list[RawObject],
    calls: list[Call],
    after: list[RawObject],
) -> None:
    client = RecordingObjects(*before)
    router = NginxRouter(client, target(**spec), settings=settings)
    await run(router, calls)
    assert client.all_stored() == sorted(after, key=lambda o: o["metadata"]["name"])
    assert await router.verify_weight(0) is None
    # A restarted controller (a new router) repeating the last call writes nothing.
    writes = len(client.writes)
    await run(NginxRouter(client, target(**spec), settings=settings), calls[-1:])
    assert client.writes[writes:] == []


async def test_the_canary_ingress_is_patched_not_replaced() -> None:
    client = RecordingObjects(ingress())
    router = NginxRouter(client, target(), settings=SETTINGS)
    await run(router, [weight(10), weight(20)])
    assert client.writes == [
        ("create", "Ingress", "myapp-myapp-canary"),
        ("merge_patch", "Ingress", "myapp-myapp-canary"),
    ]


def test_long_canary_names_are_trimmed_to_253_characters() -> None:
    name = canary_ingress_name("r" * 200, "s" * 100)
    assert len(name) == 253
    assert name.endswith("-canary")
    assert canary_ingress_name("myapp", "web") == "myapp-web-canary"


ERRORS: list[tuple[str, dict[str, Any], list[RawObject], list[Call], type[Exception], str]] = [
    (
        "a canary Ingress someone else controls",
        {},
        [
            ingress(),
            {
                **canary(weighted(0)),
                "metadata": {"name": "myapp-myapp-canary", "namespace": "default"},
            },
        ],
        [weight(10)],
        UserError,
        "canary Ingress default/myapp-myapp-canary exists and is not controlled by Rollout myapp",
    ),
    (
        "two headers in one route",
        {"managed_routes": ROUTE},
        [ingress()],
        [
            header(
                "by-header", x_canary(exact="a"), {"headerName": "B", "headerValue": {"exact": "b"}}
            )
        ],
        UserError,
        "setHeaderRoute 'by-header': NGINX routes by one header only, this step matches 2",
    ),
    (
        "a second header route while one is active",
        {"managed_routes": ("by-header", "other")},
        [ingress()],
        [header("by-header", x_canary(exact="a")), header("other", x_canary(exact="b"))],
        UserError,
        "NGINX holds one header route at a time and 'by-header' is active",
    ),
    (
        "the stable Ingress is missing",
        {},
        [],
        [weight(10)],
        NotFoundError,
        "Ingress default/myapp (named in spec.strategy.canary.trafficRouting.nginx) not found",
    ),
    (
        "no rule of the stable Ingress uses the stable Service",
        {"stable_service": "web"},
        [ingress()],
        [weight(10)],
        UserError,
        "Ingress default/myapp has no rules using the stable Service 'web' as backend",
    ),
]


@pytest.mark.parametrize(
    ("spec", "before", "calls", "error", "message"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
async def test_nginx_router_refuses_what_it_cannot_do(
    spec: dict[str, Any],
    before: list[RawObject],
    calls: list[Call],
    error: type[Exception],
    message: str,
) -> None:
    client = RecordingObjects(*before)
    router = NginxRouter(client, target(**spec), settings=SETTINGS)
    unchanged = copy.deepcopy(client.all_stored())
    *first, last = calls
    await run(router, first)
    written = len(client.writes)
    with pytest.raises(error) as raised:
        await run(router, [last])
    assert message in str(raised.value)
    assert client.writes[written:] == []
    if not first:
        assert client.all_stored() == unchanged
