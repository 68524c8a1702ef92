"""The Istio router from tables: VirtualService/DestinationRule before, calls, objects after."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.routers.world import (
    REMOVE,
    Call,
    RecordingObjects,
    experiment,
    hashes,
    header,
    mirror,
    run,
    target,
    weight,
)

from rollwise.api.errors import ConflictError, NotFoundError, UserError
from rollwise.routers.istio import IstioRouter
from rollwise.routers.objects import InMemoryObjects, RawObject

VS = "networking.istio.io/v1alpha3"


def dest(host: str, w: int, **extra: Any) -> RawObject:
    return {"destination": {"host": host, **extra}, "weight": w}


def vs(name: str = "myapp", namespace: str = "default", **spec: Any) -> RawObject:
    return {
        "apiVersion": VS,
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hosts": [name], **spec},
    }


def with_annotations(obj: RawObject, **annotations: str) -> RawObject:
    obj = copy.deepcopy(obj)
    obj["metadata"]["annotations"] = annotations
    return obj


def dr(*subsets: RawObject, **annotations: str) -> RawObject:
    metadata: RawObject = {"name": "myapp", "namespace": "default"}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": VS,
        "kind": "DestinationRule",
        "metadata": metadata,
        "spec": {"host": "myapp", "subsets": list(subsets)},
    }


PRIMARY = {"name": "primary", "route": [dest("myapp-stable", 100), dest("myapp-canary", 0)]}
OTHER = {"name": "other", "route": [dest("elsewhere", 100)]}
SUBSETS = {
    "name": "primary",
    "route": [
        dest("myapp", 100, subset="stable", port={"number": 80}),
        dest("myapp", 0, subset="canary", port={"number": 80}),
    ],
}
TLS = [
    {
        "match": [{"port": 443, "sniHosts": ["myapp.example.com"]}],
        "route": [dest("myapp-stable", 100), dest("myapp-canary", 0)],
    },
    {"match": [{"port": 8443, "sniHosts": ["other.example.com"]}], "route": [dest("x", 100)]},
]
TCP = [
    {"match": [{"port": 5432}], "route": [dest("myapp-stable", 100), dest("myapp-canary", 0)]},
    {"match": [{"port": 6379}], "route": [dest("redis", 100)]},
]
MANAGED = ("mirror-route", "header-route")
X_CANARY = {"headerName": "X-Canary", "headerValue": {"exact": "true"}}

CASES: list[
    tuple[str, dict[str, Any], dict[str, Any], list[RawObject], list[Call], list[RawObject]]
] = [
    (
        "named route: canary and stable weighted, other routes untouched",
        {"virtualService": {"name": "myapp", "routes": ["primary"]}},
        {},
        [vs(http=[OTHER, PRIMARY])],
        [weight(20)],
        [
            vs(
                http=[
                    OTHER,
                    {
                        "name": "primary",
                        "route": [dest("myapp-stable", 80), dest("myapp-canary", 20)],
                    },
                ]
            )
        ],
    ),
    (
        "a single unnamed route may be left implicit; FQDN hosts match by first label",
        {"virtualService": {"name": "myapp"}},
        {},
        [
            vs(
                http=[
                    {
                        "route": [
                            dest("myapp-stable.default.svc.cluster.local", 100),
                            dest("myapp-canary.default.svc.cluster.local", 0),
                        ]
                    }
                ]
            )
        ],
        [weight(35)],
        [
            vs(
                http=[
                    {
                        "route": [
                            dest("myapp-stable.default.svc.cluster.local", 65),
                            dest("myapp-canary.default.svc.cluster.local", 35),
                        ]
                    }
                ]
            )
        ],
    ),
    (
        "TLS and TCP routes matched by port (and sniHosts); the others untouched",
        {
            "virtualService": {
                "name": "myapp",
                "tlsRoutes": [{"port": 443, "sniHosts": ["myapp.example.com"]}],
                "tcpRoutes": [{"port": 5432}],
            }
        },
        {},
        [vs(http=[OTHER], tls=TLS, tcp=TCP)],
        [weight(10)],
        [
            vs(
                http=[OTHER],
                tls=[
                    {**TLS[0], "route": [dest("myapp-stable", 90), dest("myapp-canary", 10)]},
                    TLS[1],
                ],
                tcp=[
                    {**TCP[0], "route": [dest("myapp-stable", 90), dest("myapp-canary", 10)]},
                    TCP[1],
                ],
            )
        ],
    ),
    (
        "several VirtualServices, one named name.namespace",
        {
            "virtualServices": [
                {"name": "myapp", "routes": ["primary"]},
                {"name": "edge.gateways", "routes": ["primary"]},
            ]
        },
        {},
        [vs(http=[PRIMARY]), vs("edge", "gateways", http=[PRIMARY])],
        [weight(50)],
        [
            vs(
                http=[
                    {
                        "name": "primary",
                        "route": [dest("myapp-stable", 50), dest("myapp-canary", 50)],
                    }
                ]
            ),
            vs(
                "edge",
                "gateways",
                http=[
                    {
                        "name": "primary",
                        "route": [dest("myapp-stable", 50), dest("myapp-canary", 50)],
                    }
                ],
            ),
        ],
    ),
    (
        "experiment destinations are added (port of the canary) and removed when it ends;"
        " the user's own extra destination stays",
        {"virtualService": {"name": "myapp", "routes": ["primary"]}},
        {},
        [
            vs(
                http=[
                    {
                        "name": "primary",
                        "route": [
                            dest("myapp-stable", 100, port={"number": 80}),
                            dest("myapp-canary", 0, port={"number": 80}),
                            dest("shadow", 0),
                        ],
                    }
                ]
            )
        ],
        [weight(20, experiment("myapp-exp-a", 10), experiment("myapp-exp-b", 5))],
        [
            with_annotations(
                vs(
                    http=[
                        {
                            "name": "primary",
                            "route": [
                                dest("myapp-stable", 65, port={"number": 80}),
                                dest("myapp-canary", 20, port={"number": 80}),
                                dest("shadow", 0),
                                dest("myapp-exp-a", 10, port={"number": 80}),
                                dest("myapp-exp-b", 5, port={"number": 80}),
                            ],
                        }
                    ]
                ),
                **{"rollwise.io/experiment-destinations": "myapp-exp-a,myapp-exp-b"},
            )
        ],
    ),
    (
        "subset split: update_hash labels the subsets and marks the rule managed",
        {
            "virtualService": {"name": "myapp", "routes": ["primary"]},
            "destinationRule": {
                "name": "myapp",
                "canarySubsetName": "canary",
                "stableSubsetName": "stable",
            },
        },
        {"stable_service": None, "canary_service": None},
        [
            vs(http=[SUBSETS]),
            dr(
                {"name": "stable"},
                {"name": "canary", "labels": {"app": "myapp"}},
                {"name": "extra", "labels": {"v": "1"}},
            ),
        ],
        [hashes("c4n4ry", "st4bl3"), weight(30)],
        [
            dr(
                {"name": "stable", "labels": {"rollouts-pod-template-hash": "st4bl3"}},
                {
                    "name": "canary",
                    "labels": {"app": "myapp", "rollouts-pod-template-hash": "c4n4ry"},
                },
                {"name": "extra", "labels": {"v": "1"}},
                **{"argo-rollouts.argoproj.io/managed-by-rollouts": "myapp"},
            ),
            vs(
                http=[
                    {
                        "name": "primary",
                        "route": [
                            dest("myapp", 70, subset="stable", port={"number": 80}),
                            dest("myapp", 30, subset="canary", port={"number": 80}),
                        ],
                    }
                ]
            ),
        ],
    ),
    (
        "header route: 100 % to the canary destination of the weighted route, first in spec.http",
        {
            "virtualService": {"name": "myapp", "routes": ["primary"]},
            "destinationRule": {
                "name": "myapp",
                "canarySubsetName": "canary",
                "stableSubsetName": "stable",
            },
        },
        {"managed_routes": ("header-route",)},
        [vs(http=[SUBSETS])],
        [
            header(
                "header-route", X_CANARY, {"headerName": "User", "headerValue": {"prefix": "beta-"}}
            )
        ],
        [
            vs(
                http=[
                    {
                        "name": "header-route",
                        "match": [
                            {"headers": {"X-Canary": {"exact": "true"}}},
                            {"headers": {"User": {"prefix": "beta-"}}},
                        ],
                        "route": [dest("myapp", 100, subset="canary", port={"number": 80})],
                    },
                    SUBSETS,
                ]
            )
        ],
    ),
    (
        "managed routes in managedRoutes order; the mirror route follows set_weight",
        {"virtualService": {"name": "myapp", "routes": ["primary"]}},
        {"managed_routes": MANAGED},
        [vs(http=[PRIMARY])],
        [
            weight(10),
            header("header-route", X_CANARY),
            mirror(
                "mirror-route",
                [
                    {
                        "method": {"exact": "GET"},
                        "path": {"prefix": "/api"},
                        "headers": {"X-Debug": {"regex": "on|yes"}},
                    }
                ],
                25,
            ),
            weight(40),
        ],
        [
            vs(
                http=[
                    {
                        "name": "mirror-route",
                        "match": [
                            {
                                "method": {"exact": "GET"},
                                "uri": {"prefix": "/api"},
                                "headers": {"X-Debug": {"regex": "on|yes"}},
                            }
                        ],
                        "route": [dest("myapp-stable", 60), dest("myapp-canary", 40)],
                        "mirror": {"host": "myapp-canary"},
                        "mirrorPercentage": {"value": 25},
                    },
                    {
                        "name": "header-route",
                        "match": [{"headers": {"X-Canary": {"exact": "true"}}}],
                        "route": [dest("myapp-canary", 100)],
                    },
                    {
                        "name": "primary",
                        "route": [dest("myapp-stable", 60), dest("myapp-canary", 40)],
                    },
                ]
            )
        ],
    ),
    (
        "a route step without match removes that route only; remove_managed_routes the rest",
        {"virtualService": {"name": "myapp", "routes": ["primary"]}},
        {"managed_routes": MANAGED},
        [vs(http=[PRIMARY])],
        [
            header("header-route", X_CANARY),
            mirror("mirror-route", [{"path": {"exact": "/"}}], None),
            header("header-route"),
        ],
        [
            vs(
                http=[
                    {
                        "name": "mirror-route",
                        "match": [{"uri": {"exact": "/"}}],
                        "route": [dest("myapp-stable", 100), dest("myapp-canary", 0)],
                        "mirror": {"host": "myapp-canary"},
                        "mirrorPercentage": {"value": 100},
                    },
                    PRIMARY,
                ]
            )
        ],
    ),
    (
        "remove_managed_routes leaves the user's routes",
        {"virtualService": {"name": "myapp", "routes": ["primary"]}},
        {"managed_routes": MANAGED},
        [vs(http=[PRIMARY, OTHER])],
        [
            header("header-route", X_CANARY),
            mirror("mirror-route", [{"path": {"exact": "/"}}], 5),
            REMOVE,
        ],
        [vs(http=[PRIMARY, OTHER])],
    ),
]


@pytest.mark.parametrize(
    ("settings", "spec", "before", "calls", "after"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_istio_router_edits_objects(
    settings: dict[str, Any],
    spec: dict[str, Any],
    before: list[RawObject],
    calls: list[Call],
    after: list[RawObject],
) -> None:
    client = RecordingObjects(*before)
    router = IstioRouter(client, target(**spec), settings=settings)
    await run(router, calls)
    for expected in after:
        metadata = expected["metadata"]
        assert client.stored(expected["kind"], metadata["name"], metadata["namespace"]) == expected
    # A new router (a restarted controller) making the calls again reaches the same objects,
    # and repeating the last call writes nothing.
    restarted = IstioRouter(client, target(**spec), settings=settings)
    await run(restarted, calls)
    assert [obj for obj in client.all_stored() if obj in after] == client.all_stored()
    writes = len(client.writes)
    await run(restarted, calls[-1:])
    assert client.writes[writes:] == []


async def test_the_seed_istio_canary_through_weight_header_route_and_removal() -> None:
    """The seed's Part 6: VirtualService `myapp`, route `primary`, setWeight 20, then the
    `canary-by-header` route for X-Canary: true, then the routes are removed at the end."""
    from tests.routers.world import OWNER

    from rollwise.api.models import Rollout
    from rollwise.routers.registry import cluster_router

    rollout = Rollout.model_validate(
        {
            "metadata": {"name": "myapp"},
            "spec": {
                "strategy": {
                    "canary": {
                        "canaryService": "myapp-canary",
                        "stableService": "myapp-stable",
                        "trafficRouting": {
                            "istio": {"virtualService": {"name": "myapp", "routes": ["primary"]}},
                            "managedRoutes": [{"name": "canary-by-header"}],
                        },
                    }
                }
            },
        }
    )
    seed_vs = {
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
    client = RecordingObjects(seed_vs)
    router = cluster_router(rollout, OWNER, client)
    assert isinstance(router, IstioRouter)
    split = {
        "name": "primary",
        "route": [
            {"destination": {"host": "myapp-stable"}, "weight": 80},
            {"destination": {"host": "myapp-canary"}, "weight": 20},
        ],
    }
    await run(router, [weight(20)])
    assert client.stored("VirtualService", "myapp") == {
        **seed_vs,
        "spec": {"hosts": ["myapp"], "http": [split]},
    }

    await run(router, [header("canary-by-header", X_CANARY)])
    by_header = {
        "name": "canary-by-header",
        "match": [{"headers": {"X-Canary": {"exact": "true"}}}],
        "route": [{"destination": {"host": "myapp-canary"}, "weight": 100}],
    }
    assert client.stored("VirtualService", "myapp") == {
        **seed_vs,
        "spec": {"hosts": ["myapp"], "http": [by_header, split]},
    }
    assert await router.verify_weight(20) is None

    await run(router, [REMOVE])
    assert client.stored("VirtualService", "myapp") == {
        **seed_vs,
        "spec": {"hosts": ["myapp"], "http": [split]},
    }


async def test_an_experiment_that_ends_takes_its_destinations_and_subsets_along() -> None:
    settings = {
        "virtualService": {"name": "myapp", "routes": ["primary"]},
        "destinationRule": {
            "name": "myapp",
            "canarySubsetName": "canary",
            "stableSubsetName": "stable",
        },
    }
    client = RecordingObjects(vs(http=[SUBSETS]), dr({"name": "stable"}, {"name": "canary"}))
    router = IstioRouter(client, target(), settings=settings)
    exp = experiment("myapp-exp", 10, "e3p")
    await run(router, [hashes("c", "s", exp), weight(20, exp)])
    stored_dr = client.stored("DestinationRule", "myapp")
    assert stored_dr is not None
    assert stored_dr["spec"]["subsets"][-1] == {
        "name": "myapp-exp",
        "labels": {"rollouts-pod-template-hash": "e3p"},
    }
    await run(router, [hashes("c", "s"), weight(20)])
    assert client.stored("DestinationRule", "myapp") == dr(
        {"name": "stable", "labels": {"rollouts-pod-template-hash": "s"}},
        {"name": "canary", "labels": {"rollouts-pod-template-hash": "c"}},
        **{"argo-rollouts.argoproj.io/managed-by-rollouts": "myapp"},
    )
    assert client.stored("VirtualService", "myapp") == vs(
        http=[
            {
                "name": "primary",
                "route": [
                    dest("myapp", 80, subset="stable", port={"number": 80}),
                    dest("myapp", 20, subset="canary", port={"number": 80}),
                ],
            }
        ]
    )


async def test_a_concurrent_edit_is_kept_and_the_weight_applied_after_one_retry() -> None:
    client = RecordingObjects(vs(http=[PRIMARY, OTHER]))

    async def someone_renames_other(store: InMemoryObjects) -> None:
        current = await store.get(VS, "VirtualService", "myapp", "default")
        assert current is not None
        current["spec"]["http"][1]["timeout"] = "5s"
        await store.replace(current)

    client.concurrent_edits.append(someone_renames_other)
    router = IstioRouter(
        client, target(), settings={"virtualService": {"name": "myapp", "routes": ["primary"]}}
    )
    await run(router, [weight(25)])
    assert client.stored("VirtualService", "myapp") == vs(
        http=[
            {"name": "primary", "route": [dest("myapp-stable", 75), dest("myapp-canary", 25)]},
            {**OTHER, "timeout": "5s"},
        ]
    )


async def test_conflicts_that_persist_are_raised_for_the_next_reconcile() -> None:
    client = RecordingObjects(vs(http=[PRIMARY]))

    async def touch(store: InMemoryObjects) -> None:
        await store.merge_patch(
            VS, "VirtualService", "myapp", "default", {"metadata": {"labels": {"x": "y"}}}
        )

    client.concurrent_edits += [touch, touch]
    router = IstioRouter(
        client, target(), settings={"virtualService": {"name": "myapp", "routes": ["primary"]}}
    )
    with pytest.raises(ConflictError):
        await run(router, [weight(25)])
    stored = client.stored("VirtualService", "myapp")
    assert stored is not None
    assert stored["spec"]["http"] == [PRIMARY]


ERRORS: list[
    tuple[str, dict[str, Any], dict[str, Any], list[RawObject], Call, type[Exception], str]
] = [
    (
        "route not in the VirtualService",
        {"virtualService": {"name": "myapp", "routes": ["main"]}},
        {},
        [vs(http=[PRIMARY, OTHER])],
        weight(10),
        UserError,
        "HTTP route 'main' is not in VirtualService default/myapp"
        " (its HTTP routes: primary, other)",
    ),
    (
        "implicit route among several",
        {"virtualService": {"name": "myapp"}},
        {},
        [vs(http=[PRIMARY, OTHER])],
        weight(10),
        UserError,
        "VirtualService default/myapp has 2 HTTP routes: name the ones to split in"
        " spec.strategy.canary.trafficRouting.istio.virtualService.routes",
    ),
    (
        "no canary destination",
        {"virtualService": {"name": "myapp", "routes": ["other"]}},
        {},
        [vs(http=[PRIMARY, OTHER])],
        weight(10),
        UserError,
        "HTTP route 'other' of VirtualService default/myapp has no destination for the canary"
        " Service 'myapp-canary' (its destinations: elsewhere)",
    ),
    (
        "VirtualService missing",
        {"virtualService": {"name": "myapp.shop"}},
        {},
        [vs(http=[PRIMARY])],
        weight(10),
        NotFoundError,
        "VirtualService shop/myapp (named in spec.strategy.canary.trafficRouting.istio) not found",
    ),
    (
        "header route not in managedRoutes",
        {"virtualService": {"name": "myapp", "routes": ["primary"]}},
        {"managed_routes": ("other",)},
        [vs(http=[PRIMARY])],
        header("by-header", X_CANARY),
        UserError,
        "setHeaderRoute 'by-header' is not in trafficRouting.managedRoutes (other)",
    ),
    (
        "subset missing from the DestinationRule",
        {
            "virtualService": {"name": "myapp", "routes": ["primary"]},
            "destinationRule": {
                "name": "myapp",
                "canarySubsetName": "canary",
                "stableSubsetName": "stable",
            },
        },
        {},
        [vs(http=[SUBSETS]), dr({"name": "stable"})],
        hashes("c", "s"),
        UserError,
        "DestinationRule default/myapp has no subset 'canary' (its subsets: stable)",
    ),
]


@pytest.mark.parametrize(
    ("settings", "spec", "before", "call", "error", "message"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
async def test_istio_router_says_what_does_not_fit(
    settings: dict[str, Any],
    spec: dict[str, Any],
    before: list[RawObject],
    call: Call,
    error: type[Exception],
    message: str,
) -> None:
    client = RecordingObjects(*before)
    router = IstioRouter(client, target(**spec), settings=settings)
    with pytest.raises(error) as raised:
        await run(router, [call])
    assert message in str(raised.value)
    assert client.writes == []


def test_host_split_needs_both_services() -> None:
    with pytest.raises(UserError, match="istio needs stableService and canaryService"):
        IstioRouter(
            InMemoryObjects(),
            target(canary_service=None),
            settings={"virtualService": {"name": "myapp"}},
        )
