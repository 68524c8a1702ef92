"""The dynamic configuration is a pure function of the snapshot: tables of snapshot -> config."""

from typing import Any

import pytest

from rollwise.api.models import (
    HeaderRoutingMatch,
    RouteMatch,
    SetHeaderRoute,
    SetMirrorRoute,
    StringMatch,
    WeightDestination,
)
from rollwise.platforms.local.dataplane_config import (
    DataPlaneSnapshot,
    RolloutTraffic,
    ServiceBackends,
    go_quote_meta,
    host_for,
    metrics_service_name,
    render_dynamic_config,
    service_backends,
    weighted_split,
)

STABLE = ServiceBackends(name="myapp-stable", endpoints=("127.0.0.1:9001", "127.0.0.1:9002"))
CANARY = ServiceBackends(name="myapp-canary", endpoints=("127.0.0.1:9003",))


def traffic(**changes: Any) -> RolloutTraffic:
    base: dict[str, Any] = {
        "name": "myapp",
        "stable_service": "myapp-stable",
        "canary_service": "myapp-canary",
    }
    return RolloutTraffic(**(base | changes))


def render(
    *rollouts: RolloutTraffic, services: tuple[ServiceBackends, ...] = (STABLE, CANARY)
) -> dict[str, Any]:
    http: dict[str, Any] = render_dynamic_config(
        DataPlaneSnapshot(services=services, rollouts=rollouts)
    )["http"]
    return http


def header_route(name: str, **value: str) -> SetHeaderRoute:
    match = HeaderRoutingMatch(header_name="X-Canary", header_value=StringMatch(**value))
    return SetHeaderRoute(name=name, match=[match])


def test_an_empty_snapshot_renders_an_empty_document() -> None:
    # Traefik rejects `http: {}` ("cannot be a standalone element") but accepts `{}`.
    assert render_dynamic_config(DataPlaneSnapshot()) == {}


def test_a_service_becomes_a_load_balancer_and_a_host_router() -> None:
    http = render(services=(STABLE,))
    assert http["services"] == {
        "default-myapp-stable": {
            "loadBalancer": {
                "servers": [{"url": "http://127.0.0.1:9001"}, {"url": "http://127.0.0.1:9002"}]
            }
        }
    }
    assert http["routers"] == {
        "default-myapp-stable": {
            "entryPoints": ["web"],
            "rule": "Host(`myapp-stable.localhost`)",
            "service": "default-myapp-stable",
            "priority": 10,
        }
    }


@pytest.mark.parametrize(
    ("namespace", "name", "host"),
    [
        ("default", "myapp", "myapp.localhost"),
        ("shop", "myapp", "myapp.shop.localhost"),
    ],
)
def test_hosts_name_the_namespace_outside_default(namespace: str, name: str, host: str) -> None:
    assert host_for(namespace, name) == host


def test_a_service_without_ready_endpoints_still_renders_with_no_servers() -> None:
    http = render(services=(ServiceBackends(name="empty"),))
    assert http["services"]["default-empty"] == {"loadBalancer": {"servers": []}}
    assert http["routers"]["default-empty"]["rule"] == "Host(`empty.localhost`)"


def test_endpoints_are_sorted_and_deduplicated_so_equal_snapshots_render_equal() -> None:
    shuffled = ServiceBackends(name="s", endpoints=("127.0.0.1:3", "127.0.0.1:1", "127.0.0.1:3"))
    servers = render(services=(shuffled,))["services"]["default-s"]["loadBalancer"]["servers"]
    assert servers == [{"url": "http://127.0.0.1:1"}, {"url": "http://127.0.0.1:3"}]


@pytest.mark.parametrize(
    ("weight", "max_weight", "additional", "expected"),
    [
        (0, 100, (), [("myapp-stable", 100), ("myapp-canary", 0)]),
        (20, 100, (), [("myapp-stable", 80), ("myapp-canary", 20)]),
        (100, 100, (), [("myapp-stable", 0), ("myapp-canary", 100)]),
        (25, 1000, (), [("myapp-stable", 975), ("myapp-canary", 25)]),
        (150, 100, (), [("myapp-stable", 0), ("myapp-canary", 100)]),
        (-5, 100, (), [("myapp-stable", 100), ("myapp-canary", 0)]),
        (
            20,
            100,
            (WeightDestination(service_name="exp-a", weight=10),),
            [("myapp-stable", 70), ("myapp-canary", 20), ("exp-a", 10)],
        ),
    ],
)
def test_weighted_split_gives_stable_what_the_others_leave(
    weight: int,
    max_weight: int,
    additional: tuple[WeightDestination, ...],
    expected: list[tuple[str, int]],
) -> None:
    split = traffic(canary_weight=weight, max_weight=max_weight, additional=additional)
    assert weighted_split(split) == expected


def test_a_rollout_gets_a_weighted_service_on_its_own_host_above_service_routers() -> None:
    http = render(traffic(canary_weight=20))
    assert http["services"]["default-myapp-weighted"] == {
        "weighted": {
            "services": [
                {"name": "default-myapp-stable", "weight": 80},
                {"name": "default-myapp-canary", "weight": 20},
            ]
        }
    }
    router = http["routers"]["default-myapp-weighted"]
    assert router["rule"] == "Host(`myapp.localhost`)"
    assert router["service"] == "default-myapp-weighted"
    assert router["priority"] > http["routers"]["default-myapp-stable"]["priority"]


def test_a_rollout_named_like_a_service_outranks_the_service_on_the_shared_host() -> None:
    http = render(
        traffic(name="myapp-stable", canary_weight=20),
    )
    same_host = [
        r for r in http["routers"].values() if r["rule"] == "Host(`myapp-stable.localhost`)"
    ]
    assert max(same_host, key=lambda r: r["priority"])["service"] == "default-myapp-stable-weighted"


def test_services_a_rollout_names_but_the_snapshot_lacks_get_empty_backends() -> None:
    http = render(traffic(canary_weight=10), services=(STABLE,))
    assert http["services"]["default-myapp-canary"] == {"loadBalancer": {"servers": []}}
    assert "default-myapp-canary" not in http["routers"]  # no Service, no host


@pytest.mark.parametrize(
    ("value", "matcher"),
    [
        ({"exact": "true"}, "Header(`X-Canary`, `true`)"),
        ({"prefix": "be.ta"}, "HeaderRegexp(`X-Canary`, `^be\\.ta`)"),
        ({"regex": "a|b"}, "HeaderRegexp(`X-Canary`, `^(?:a|b)$`)"),
        ({"exact": "back`tick"}, 'Header(`X-Canary`, "back`tick")'),
    ],
)
def test_header_routes_go_to_the_canary_when_the_header_matches(
    value: dict[str, str], matcher: str
) -> None:
    http = render(traffic(header_routes=(header_route("by-header", **value),)))
    router = http["routers"]["default-myapp-header-by-header"]
    assert router["rule"] == f"Host(`myapp.localhost`) && {matcher}"
    assert router["service"] == "default-myapp-canary"
    assert router["priority"] > http["routers"]["default-myapp-weighted"]["priority"]


def test_several_header_matches_are_alternatives() -> None:
    route = SetHeaderRoute(
        name="r",
        match=[
            HeaderRoutingMatch(header_name="X-A", header_value=StringMatch(exact="1")),
            HeaderRoutingMatch(header_name="X-B", header_value=StringMatch(exact="2")),
        ],
    )
    rule = render(traffic(header_routes=(route,)))["routers"]["default-myapp-header-r"]["rule"]
    assert rule == "Host(`myapp.localhost`) && (Header(`X-A`, `1`) || Header(`X-B`, `2`))"


def test_a_route_without_match_is_not_rendered() -> None:
    http = render(traffic(header_routes=(SetHeaderRoute(name="gone"),)))
    assert not [name for name in http["routers"] if "gone" in name]


def test_managed_routes_follow_the_declared_precedence() -> None:
    first, second = header_route("first", exact="1"), header_route("second", exact="2")
    http = render(
        traffic(header_routes=(first, second), managed_routes=("second", "first")),
    )
    routers = http["routers"]
    assert (
        routers["default-myapp-header-second"]["priority"]
        > routers["default-myapp-header-first"]["priority"]
    )


@pytest.mark.parametrize(
    ("match", "rule"),
    [
        (
            RouteMatch(method=StringMatch(exact="GET"), path=StringMatch(prefix="/api")),
            "Method(`GET`) && PathPrefix(`/api`)",
        ),
        (RouteMatch(path=StringMatch(exact="/x")), "Path(`/x`)"),
        (RouteMatch(path=StringMatch(regex="/v[0-9]+/.*")), "PathRegexp(`^(?:/v[0-9]+/.*)$`)"),
        (
            RouteMatch(method=StringMatch(prefix="P")),
            "Method(`POST`) || Method(`PUT`) || Method(`PATCH`)",
        ),
        (
            RouteMatch(headers={"X-User": StringMatch(exact="qa")}, path=StringMatch(prefix="/")),
            "PathPrefix(`/`) && Header(`X-User`, `qa`)",
        ),
    ],
)
def test_mirror_routes_copy_matching_requests_to_the_canary(match: RouteMatch, rule: str) -> None:
    route = SetMirrorRoute(name="mirror", match=[match], percentage=35)
    http = render(traffic(canary_weight=10, mirror_routes=(route,)))
    assert http["services"]["default-myapp-mirror-mirror"] == {
        "mirroring": {
            "service": "default-myapp-weighted",
            "mirrors": [{"name": "default-myapp-canary", "percent": 35}],
        }
    }
    router = http["routers"]["default-myapp-mirror-mirror"]
    expected_rule = f"({rule})" if "||" in rule else rule
    assert router["rule"] == f"Host(`myapp.localhost`) && {expected_rule}"
    assert router["service"] == "default-myapp-mirror-mirror"


def test_a_mirror_route_without_percentage_mirrors_everything() -> None:
    route = SetMirrorRoute(name="m", match=[RouteMatch(path=StringMatch(prefix="/"))])
    mirroring = render(traffic(mirror_routes=(route,)))["services"]["default-myapp-mirror-m"]
    assert mirroring["mirroring"]["mirrors"][0]["percent"] == 100


def test_go_quote_meta_escapes_what_re2_needs_and_nothing_else() -> None:
    # RE2 rejects "\ " (an escaped space), which Python's re.escape would produce.
    assert go_quote_meta("a b.c*(d)") == "a b\\.c\\*\\(d\\)"


def test_metrics_name_a_service_as_traefik_labels_it() -> None:
    assert metrics_service_name("default", "myapp-canary") == "default-myapp-canary@file"


def test_snapshots_survive_a_round_trip_through_json() -> None:
    snapshot = DataPlaneSnapshot(
        services=(STABLE, CANARY),
        rollouts=(
            traffic(
                canary_weight=30,
                additional=(WeightDestination(service_name="exp", weight=5),),
                header_routes=(header_route("h", regex="x.*"),),
                mirror_routes=(
                    SetMirrorRoute(name="m", match=[RouteMatch(path=StringMatch(prefix="/"))]),
                ),
                managed_routes=("h", "m"),
            ),
        ),
    )
    assert DataPlaneSnapshot.from_raw(snapshot.to_raw()) == snapshot


def pod(
    name: str, *, labels: dict[str, str], port: int | None, ready: bool, **meta: Any
) -> dict[str, Any]:
    annotations = {"rollwise.io/port": str(port)} if port else {}
    return {
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations, **meta},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_a_service_selects_the_ready_pods_whose_labels_match() -> None:
    service = {
        "kind": "Service",
        "metadata": {"name": "myapp-canary"},
        "spec": {"selector": {"app": "myapp", "rollouts-pod-template-hash": "abc"}},
    }
    canary = {"app": "myapp", "rollouts-pod-template-hash": "abc"}
    pods = [
        pod("ready", labels=canary, port=9001, ready=True),
        pod("not-ready", labels=canary, port=9002, ready=False),
        pod(
            "stable",
            labels={"app": "myapp", "rollouts-pod-template-hash": "old"},
            port=9003,
            ready=True,
        ),
        pod("elsewhere", labels=canary, port=9004, ready=True, namespace="other"),
        pod(
            "deleting",
            labels=canary,
            port=9005,
            ready=True,
            deletionTimestamp="2026-01-01T00:00:00Z",
        ),
        pod("no-port", labels=canary, port=None, ready=True),
    ]
    assert service_backends([service], pods) == (
        ServiceBackends(name="myapp-canary", endpoints=("127.0.0.1:9001",)),
    )


def test_a_service_without_selector_has_no_endpoints() -> None:
    service = {"kind": "Service", "metadata": {"name": "manual"}, "spec": {}}
    pods = [pod("p", labels={"app": "x"}, port=9001, ready=True)]
    assert service_backends([service], pods) == (ServiceBackends(name="manual"),)
