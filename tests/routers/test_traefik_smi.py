"""The Traefik and SMI routers from tables: the object before, the calls, the object after."""

from __future__ import annotations

from typing import Any

import pytest
from tests.routers.world import (
    CONTROLLER_REF,
    REMOVE,
    Call,
    RecordingObjects,
    experiment,
    header,
    run,
    target,
    weight,
)

from rollwise.api.errors import UserError
from rollwise.routers.objects import InMemoryObjects, RawObject
from rollwise.routers.smi import SmiRouter
from rollwise.routers.traefik import LEGACY_API_VERSION, TraefikRouter


def traefik_service(*services: RawObject, **annotations: str) -> RawObject:
    metadata: RawObject = {"name": "myapp", "namespace": "default"}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": metadata,
        "spec": {"weighted": {"services": list(services)}},
    }


def entry(name: str, w: int, port: int | None = 80) -> RawObject:
    return {"name": name, "weight": w} | ({"port": port} if port else {})


TRAEFIK = {"weightedTraefikServiceName": "myapp"}
TRAEFIK_CASES: list[tuple[str, list[RawObject], list[Call], RawObject]] = [
    (
        "canary and stable weighted; other entries left alone; routes are no-ops",
        [traefik_service(entry("myapp-stable", 100), entry("myapp-canary", 0), entry("legacy", 0))],
        [weight(30), header("h", {"headerName": "X", "headerValue": {"exact": "1"}}), REMOVE],
        traefik_service(entry("myapp-stable", 70), entry("myapp-canary", 30), entry("legacy", 0)),
    ),
    (
        "experiment services added with the canary's port",
        [traefik_service(entry("myapp-stable", 100), entry("myapp-canary", 0))],
        [weight(20, experiment("myapp-exp", 10))],
        traefik_service(
            entry("myapp-stable", 70),
            entry("myapp-canary", 20),
            entry("myapp-exp", 10),
            **{"rollwise.io/experiment-services": "myapp-exp"},
        ),
    ),
    (
        "and removed when the experiment ends",
        [traefik_service(entry("myapp-stable", 100), entry("myapp-canary", 0))],
        [weight(20, experiment("myapp-exp", 10)), weight(100)],
        traefik_service(entry("myapp-stable", 0), entry("myapp-canary", 100)),
    ),
]


@pytest.mark.parametrize(
    ("before", "calls", "after"),
    [case[1:] for case in TRAEFIK_CASES],
    ids=[case[0] for case in TRAEFIK_CASES],
)
async def test_traefik_router_weights_the_traefik_service(
    before: list[RawObject], calls: list[Call], after: RawObject
) -> None:
    client = RecordingObjects(*before)
    router = TraefikRouter(client, target(), settings=TRAEFIK)
    await run(router, calls)
    assert client.stored("TraefikService", "myapp") == after
    writes = len(client.writes)
    await run(TraefikRouter(client, target(), settings=TRAEFIK), calls[-1:])
    assert client.writes[writes:] == []


async def test_traefik_verification_reads_the_object_back() -> None:
    client = RecordingObjects(traefik_service(entry("myapp-stable", 100), entry("myapp-canary", 0)))
    router = TraefikRouter(client, target(), settings=TRAEFIK)
    exp = experiment("myapp-exp", 5)
    await run(router, [weight(20, exp)])
    assert await router.verify_weight(20, [exp]) is True
    assert await router.verify_weight(25, [exp]) is False
    # Another writer (a GitOps sync) puts the manifest's weights back.
    await client.merge_patch(
        "traefik.io/v1alpha1",
        "TraefikService",
        "myapp",
        "default",
        {
            "spec": {
                "weighted": {"services": [entry("myapp-stable", 100), entry("myapp-canary", 0)]}
            }
        },
    )
    assert await router.verify_weight(20, [exp]) is False


async def test_traefik_router_can_use_the_legacy_api_group_and_says_what_is_missing() -> None:
    client = RecordingObjects(
        {**traefik_service(entry("myapp-stable", 100)), "apiVersion": LEGACY_API_VERSION}
    )
    router = TraefikRouter(client, target(), settings=TRAEFIK, api_version=LEGACY_API_VERSION)
    assert router.ref.api_version == "traefik.containo.us/v1alpha1"
    with pytest.raises(
        UserError,
        match="TraefikService default/myapp has no weighted service for the canary Service",
    ):
        await run(router, [weight(10)])
    assert client.writes == []


# --- SMI --------------------------------------------------------------------------------------


def traffic_split(
    version: str,
    backends: list[tuple[str, int | str]],
    *,
    name: str = "myapp",
    root: str = "myapp-stable",
) -> RawObject:
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": "default", "ownerReferences": [CONTROLLER_REF]},
        "spec": {"service": root, "backends": [{"service": s, "weight": w} for s, w in backends]},
    }


SMI_CASES: list[tuple[str, str, dict[str, Any], list[Call], RawObject]] = [
    (
        "v1alpha1 writes weights as quantities",
        "v1alpha1",
        {},
        [weight(10)],
        traffic_split("v1alpha1", [("myapp-canary", "10"), ("myapp-stable", "90")]),
    ),
    (
        "v1alpha2 as integers, with rootService and trafficSplitName",
        "v1alpha2",
        {"rootService": "myapp", "trafficSplitName": "split"},
        [weight(10), weight(60)],
        traffic_split(
            "v1alpha2", [("myapp-canary", 60), ("myapp-stable", 40)], name="split", root="myapp"
        ),
    ),
    (
        "v1alpha3 with experiment backends between canary and stable",
        "v1alpha3",
        {},
        [weight(20, experiment("myapp-exp-a", 10), experiment("myapp-exp-b", 5))],
        traffic_split(
            "v1alpha3",
            [("myapp-canary", 20), ("myapp-exp-a", 10), ("myapp-exp-b", 5), ("myapp-stable", 65)],
        ),
    ),
]


@pytest.mark.parametrize(
    ("version", "settings", "calls", "after"),
    [case[1:] for case in SMI_CASES],
    ids=[case[0] for case in SMI_CASES],
)
async def test_smi_router_owns_its_traffic_split(
    version: str, settings: dict[str, Any], calls: list[Call], after: RawObject
) -> None:
    client = RecordingObjects()
    router = SmiRouter(client, target(), settings=settings, api_version=version)
    await run(router, calls)
    assert client.all_stored() == [after]
    assert await router.verify_weight(10) is None
    writes = len(client.writes)
    await run(SmiRouter(client, target(), settings=settings, api_version=version), calls[-1:])
    assert client.writes[writes:] == []


async def test_smi_router_creates_then_patches_and_drops_ended_experiments() -> None:
    client = RecordingObjects()
    router = SmiRouter(client, target(), settings={})
    await run(router, [weight(20, experiment("myapp-exp", 10)), weight(30)])
    assert client.writes == [
        ("create", "TrafficSplit", "myapp"),
        ("merge_patch", "TrafficSplit", "myapp"),
    ]
    assert client.all_stored() == [
        traffic_split("v1alpha1", [("myapp-canary", "30"), ("myapp-stable", "70")])
    ]


async def test_smi_router_refuses_a_traffic_split_it_does_not_own() -> None:
    theirs = traffic_split("v1alpha1", [("a", "50"), ("b", "50")])
    theirs["metadata"].pop("ownerReferences")
    client = RecordingObjects(theirs)
    router = SmiRouter(client, target(), settings={})
    with pytest.raises(
        UserError, match="TrafficSplit default/myapp exists and is not controlled by Rollout myapp"
    ):
        await run(router, [weight(10)])
    assert client.writes == []


def test_smi_router_knows_its_api_versions() -> None:
    with pytest.raises(UserError, match="supported: v1alpha1, v1alpha2, v1alpha3"):
        SmiRouter(InMemoryObjects(), target(), settings={}, api_version="v1beta1")
    router = SmiRouter(
        InMemoryObjects(), target(), settings={}, api_version="split.smi-spec.io/v1alpha3"
    )
    assert router.ref.api_version == "split.smi-spec.io/v1alpha3"
