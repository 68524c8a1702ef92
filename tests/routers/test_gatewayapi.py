"""The Gateway API router from tables: HTTPRoutes before, calls, HTTPRoutes after."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.routers.world import (
    REMOVE,
    Call,
    RecordingObjects,
    experiment,
    header,
    mirror,
    run,
    target,
    weight,
)

from rollwise.api.errors import UnsupportedError, UserError
from rollwise.routers.gatewayapi import GatewayAPIRouter
from rollwise.routers.objects import InMemoryObjects, RawObject


def ref(name: str, w: int | None = None) -> RawObject:
    return {"name": name, "port": 80} | ({} if w is None else {"weight": w})


def http_route(
    *rules: RawObject, name: str = "myapp", managed: list[str] | None = None, **annotations: str
) -> RawObject:
    metadata: RawObject = {"name": name, "namespace": "default"}
    if managed:
        annotations["rollwise.io/managed-rules"] = json.dumps(managed)
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": {"parentRefs": [{"name": "gateway"}], "rules": list(rules)},
    }


ROOT = {"path": {"type": "PathPrefix", "value": "/"}}
FILTERS = [
    {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"add": [{"name": "X-Via", "value": "gw"}]},
    }
]


def split(canary: int, stable: int, **extra: Any) -> RawObject:
    return {
        "matches": [ROOT],
        "backendRefs": [ref("myapp-stable", stable), ref("myapp-canary", canary)],
        **extra,
    }


STATIC = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
    "backendRefs": [ref("myapp-stable")],
}
ADMIN = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
    "backendRefs": [ref("admin")],
}
X_CANARY = {"headerName": "X-Canary", "headerValue": {"exact": "true"}}
BETA = {"headerName": "User", "headerValue": {"prefix": "beta."}}
ONE = {"httpRoute": "myapp"}
MANAGED = ("mirror-route", "header-route")

CASES: list[
    tuple[str, dict[str, Any], dict[str, Any], list[RawObject], list[Call], list[RawObject]]
] = [
    (
        "weights on the backendRefs of the stable and canary Services only",
        ONE,
        {},
        [http_route(split(0, 100), ADMIN)],
        [weight(30)],
        [http_route(split(30, 70), ADMIN)],
    ),
    (
        "a rule sending only to the stable Service is left alone, even at 100 %",
        ONE,
        {},
        [http_route(split(0, 100), STATIC)],
        [weight(100)],
        [http_route(split(100, 0), STATIC)],
    ),
    (
        "maxTrafficWeight is the total; the plugin's namespace and configMap are accepted",
        {"httpRoute": "myapp", "namespace": "default", "configMap": "rollouts-cm"},
        {"max_traffic_weight": 1000},
        [http_route(split(0, 1000))],
        [weight(250)],
        [http_route(split(250, 750))],
    ),
    (
        "experiment backends join the rules that send to the canary, and leave with it",
        ONE,
        {},
        [http_route(split(0, 100), ADMIN)],
        [weight(20, experiment("myapp-exp", 10))],
        [
            http_route(
                {
                    "matches": [ROOT],
                    "backendRefs": [
                        ref("myapp-stable", 70),
                        ref("myapp-canary", 20),
                        ref("myapp-exp", 10),
                    ],
                },
                ADMIN,
                **{"rollwise.io/experiment-backends": "myapp-exp"},
            )
        ],
    ),
    (
        "an ended experiment's backend is removed",
        ONE,
        {},
        [http_route(split(0, 100), ADMIN)],
        [weight(20, experiment("myapp-exp", 10)), weight(20)],
        [http_route(split(20, 80), ADMIN)],
    ),
    (
        "header route: a managed rule first, one match per header, path and filters copied",
        ONE,
        {"managed_routes": MANAGED},
        [http_route(split(10, 90, filters=FILTERS), ADMIN)],
        [header("header-route", X_CANARY, BETA)],
        [
            http_route(
                {
                    "matches": [
                        {
                            **ROOT,
                            "headers": [{"name": "X-Canary", "type": "Exact", "value": "true"}],
                        },
                        {
                            **ROOT,
                            "headers": [
                                {"name": "User", "type": "RegularExpression", "value": "^beta\\..*"}
                            ],
                        },
                    ],
                    "filters": FILTERS,
                    "backendRefs": [ref("myapp-canary")],
                },
                split(10, 90, filters=FILTERS),
                ADMIN,
                managed=["header-route"],
            )
        ],
    ),
    (
        "mirror route: a RequestMirror filter to the canary, weights kept in step,"
        " managedRoutes order",
        ONE,
        {"managed_routes": MANAGED},
        [http_route(split(0, 100))],
        [
            header("header-route", X_CANARY),
            mirror(
                "mirror-route",
                [
                    {
                        "method": {"exact": "get"},
                        "path": {"exact": "/api"},
                        "headers": {"X-Debug": {"regex": "on|yes"}},
                    }
                ],
                25,
            ),
            weight(40),
        ],
        [
            http_route(
                {
                    "matches": [
                        {
                            "path": {"type": "Exact", "value": "/api"},
                            "method": "GET",
                            "headers": [
                                {"name": "X-Debug", "type": "RegularExpression", "value": "on|yes"}
                            ],
                        }
                    ],
                    "filters": [
                        {
                            "type": "RequestMirror",
                            "requestMirror": {"backendRef": ref("myapp-canary"), "percent": 25},
                        }
                    ],
                    "backendRefs": [ref("myapp-stable", 60), ref("myapp-canary", 40)],
                },
                {
                    "matches": [
                        {
                            **ROOT,
                            "headers": [{"name": "X-Canary", "type": "Exact", "value": "true"}],
                        }
                    ],
                    "backendRefs": [ref("myapp-canary")],
                },
                split(40, 60),
                managed=["mirror-route", "header-route"],
            )
        ],
    ),
    (
        "a route step without match removes that rule; a full mirror has no percent",
        ONE,
        {"managed_routes": MANAGED},
        [http_route(split(0, 100))],
        [
            header("header-route", X_CANARY),
            mirror("mirror-route", [{"path": {"prefix": "/"}}], None),
            header("header-route"),
        ],
        [
            http_route(
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "filters": [
                        {
                            "type": "RequestMirror",
                            "requestMirror": {"backendRef": ref("myapp-canary")},
                        }
                    ],
                    "backendRefs": [ref("myapp-stable", 100), ref("myapp-canary", 0)],
                },
                split(0, 100),
                managed=["mirror-route"],
            )
        ],
    ),
    (
        "remove_managed_routes restores the user's rules and drops the record",
        ONE,
        {"managed_routes": MANAGED},
        [http_route(split(5, 95), ADMIN)],
        [
            header("header-route", X_CANARY),
            mirror("mirror-route", [{"path": {"prefix": "/"}}], 50),
            REMOVE,
        ],
        [http_route(split(5, 95), ADMIN)],
    ),
    (
        "httpRoutes: weights everywhere, header routes only where useHeaderRoutes is true",
        {"httpRoutes": [{"name": "myapp", "useHeaderRoutes": True}, {"name": "internal"}]},
        {"managed_routes": ("header-route",)},
        [http_route(split(0, 100)), http_route(split(0, 100), name="internal")],
        [weight(10), header("header-route", X_CANARY)],
        [
            http_route(
                {
                    "matches": [
                        {
                            **ROOT,
                            "headers": [{"name": "X-Canary", "type": "Exact", "value": "true"}],
                        }
                    ],
                    "backendRefs": [ref("myapp-canary")],
                },
                split(10, 90),
                managed=["header-route"],
            ),
            http_route(split(10, 90), name="internal"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("settings", "spec", "before", "calls", "after"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_gateway_api_router_edits_http_routes(
    settings: dict[str, Any],
    spec: dict[str, Any],
    before: list[RawObject],
    calls: list[Call],
    after: list[RawObject],
) -> None:
    client = RecordingObjects(*before)
    router = GatewayAPIRouter(client, target(**spec), settings=settings)
    await run(router, calls)
    assert client.all_stored() == sorted(after, key=lambda o: o["metadata"]["name"])
    assert await router.verify_weight(0) is None
    # A restarted controller finds the managed rules again from the HTTPRoute alone: repeating
    # the last call writes nothing.
    writes = len(client.writes)
    await run(GatewayAPIRouter(client, target(**spec), settings=settings), calls[-1:])
    assert client.writes[writes:] == []


async def test_a_restarted_router_replaces_its_managed_rule_instead_of_adding_another() -> None:
    spec = {"managed_routes": ("header-route",)}
    client = RecordingObjects(http_route(split(0, 100)))
    await run(
        GatewayAPIRouter(client, target(**spec), settings=ONE), [header("header-route", X_CANARY)]
    )
    restarted = GatewayAPIRouter(client, target(**spec), settings=ONE)
    await run(
        restarted,
        [header("header-route", {"headerName": "X-Canary", "headerValue": {"exact": "no"}})],
    )
    stored = client.stored("HTTPRoute", "myapp")
    assert stored is not None
    assert [r["matches"][0].get("headers") for r in stored["spec"]["rules"]] == [
        [{"name": "X-Canary", "type": "Exact", "value": "no"}],
        None,
    ]


async def test_a_concurrent_edit_of_the_http_route_is_kept() -> None:
    client = RecordingObjects(http_route(split(0, 100), ADMIN))

    async def someone_adds_a_rule(store: InMemoryObjects) -> None:
        current = await store.get("gateway.networking.k8s.io/v1", "HTTPRoute", "myapp", "default")
        assert current is not None
        current["spec"]["rules"].append({"backendRefs": [ref("static")]})
        await store.replace(current)

    client.concurrent_edits.append(someone_adds_a_rule)
    await run(GatewayAPIRouter(client, target(), settings=ONE), [weight(50)])
    assert client.stored("HTTPRoute", "myapp") == http_route(
        split(50, 50), ADMIN, {"backendRefs": [ref("static")]}
    )


ERRORS: list[
    tuple[str, dict[str, Any], dict[str, Any], list[RawObject], Call, type[Exception], str]
] = [
    (
        "GRPC routes are not in-tree yet",
        {"grpcRoute": "myapp"},
        {},
        [],
        weight(10),
        UnsupportedError,
        "plugins.argoproj-labs/gatewayAPI.grpcRoute is not supported by rollwise yet",
    ),
    (
        "no backendRef to the canary",
        ONE,
        {},
        [http_route(ADMIN)],
        weight(10),
        UserError,
        "HTTPRoute default/myapp has no backendRef to the canary Service 'myapp-canary'",
    ),
    (
        "no rule sends to both services",
        ONE,
        {},
        [http_route({"backendRefs": [ref("myapp-canary")]}, STATIC)],
        weight(10),
        UserError,
        "HTTPRoute default/myapp has no rule sending to both the stable Service 'myapp-stable'"
        " and the canary Service 'myapp-canary'",
    ),
    (
        "a method matched by regex",
        ONE,
        {"managed_routes": ("m",)},
        [http_route(split(0, 100))],
        mirror("m", [{"method": {"regex": "GET|HEAD"}}], 10),
        UserError,
        "the Gateway API matches a method exactly only",
    ),
    (
        "header routes but no route takes them",
        {"httpRoutes": [{"name": "myapp"}]},
        {"managed_routes": ("h",)},
        [http_route(split(0, 100))],
        header("h", X_CANARY),
        UserError,
        "no HTTPRoute of spec.strategy.canary.trafficRouting.plugins.argoproj-labs/gatewayAPI"
        " has useHeaderRoutes: true",
    ),
    (
        "no route named",
        {},
        {},
        [],
        weight(10),
        UserError,
        "needs httpRoute or httpRoutes",
    ),
]


@pytest.mark.parametrize(
    ("settings", "spec", "before", "call", "error", "message"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
async def test_gateway_api_router_says_what_it_cannot_do(
    settings: dict[str, Any],
    spec: dict[str, Any],
    before: list[RawObject],
    call: Call,
    error: type[Exception],
    message: str,
) -> None:
    client = RecordingObjects(*before)

    async def build_and_call() -> None:
        await run(GatewayAPIRouter(client, target(**spec), settings=settings), [call])

    with pytest.raises(error) as raised:
        await build_and_call()
    assert message in str(raised.value)
    assert client.writes == []
