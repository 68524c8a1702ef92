"""The data plane on a real Traefik with real demo-app backends: what is written is what the
proxy does, and `verify` tells when it does it."""

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from rollwise.api.errors import TransientError
from rollwise.api.models import (
    HeaderRoutingMatch,
    RouteMatch,
    SetHeaderRoute,
    SetMirrorRoute,
    StringMatch,
)
from rollwise.platforms.local.dataplane import (
    DataPlane,
    DataPlaneSnapshot,
    LocalRouter,
    RolloutTraffic,
    ServiceBackends,
)
from rollwise.platforms.local.traefik import TraefikProcess, free_port
from rollwise.routers.base import Router
from rollwise.routers.memory import InMemoryRouter

DEADLINE_S = 10.0


def start_demo_app(color: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "rollwise.demo.app", "--color", color, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return app, port
        except OSError:
            if time.monotonic() > deadline or app.poll() is not None:
                app.kill()
                raise
            time.sleep(0.01)


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, int]]:
    """Two demo apps, blue and yellow, by colour -> port."""
    apps = []
    try:
        ports = {}
        for color in ("blue", "yellow"):
            app, ports[color] = start_demo_app(color)
            apps.append(app)
        yield ports
    finally:
        for app in apps:
            app.terminate()
        for app in apps:
            app.wait(timeout=10)


@pytest.fixture(scope="module")
def traefik(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraefikProcess]:
    process = TraefikProcess(tmp_path_factory.mktemp("home"))
    try:
        asyncio.run(process.start_or_adopt())
        yield process
    finally:
        asyncio.run(process.stop())


@pytest.fixture
async def dataplane(traefik: TraefikProcess) -> AsyncIterator[DataPlane]:
    plane = DataPlane(traefik.home, traefik)
    try:
        yield plane
    finally:
        await plane.close()


def split_snapshot(backends: dict[str, int], weight: int) -> DataPlaneSnapshot:
    return DataPlaneSnapshot(
        services=(
            ServiceBackends(name="myapp-stable", endpoints=(f"127.0.0.1:{backends['blue']}",)),
            ServiceBackends(name="myapp-canary", endpoints=(f"127.0.0.1:{backends['yellow']}",)),
        ),
        rollouts=(
            RolloutTraffic(
                name="myapp",
                stable_service="myapp-stable",
                canary_service="myapp-canary",
                canary_weight=weight,
            ),
        ),
    )


async def wait_verified(plane: DataPlane) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not await plane.verify():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"traefik never served the snapshot: {await plane.mismatches()}")
        await asyncio.sleep(0.02)


async def colors(
    traefik: TraefikProcess,
    host: str,
    count: int,
    *,
    headers: dict[str, str] | None = None,
    path: str = "/",
) -> Counter[str]:
    """Send `count` requests for `host` through Traefik; the colour (or status) of each answer."""
    seen: Counter[str] = Counter()
    limit = asyncio.Semaphore(20)
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with (
                limit,
                session.get(
                    f"{traefik.web_url}{path}", headers={"Host": host, **(headers or {})}
                ) as response,
            ):
                if response.status == 200:
                    seen[(await response.json())["color"]] += 1
                else:
                    seen[str(response.status)] += 1

        await asyncio.gather(*(one() for _ in range(count)))
    return seen


async def test_the_weighted_split_follows_the_canary_weight(
    traefik: TraefikProcess, dataplane: DataPlane, backends: dict[str, int]
) -> None:
    await dataplane.apply(split_snapshot(backends, 20))
    await wait_verified(dataplane)
    seen = await colors(traefik, "myapp.localhost", 500)
    assert sum(seen.values()) == 500
    # Traefik's weighted round robin is deterministic: 400/100 give or take a request or two.
    assert 390 <= seen["blue"] <= 410
    assert 90 <= seen["yellow"] <= 110

    await dataplane.apply(split_snapshot(backends, 50))
    await wait_verified(dataplane)
    assert await dataplane.weights("default", "myapp") == {"myapp-stable": 50, "myapp-canary": 50}
    seen = await colors(traefik, "myapp.localhost", 200)
    assert 90 <= seen["blue"] <= 110
    assert 90 <= seen["yellow"] <= 110


async def test_full_weight_sends_everything_to_the_canary_and_none_nothing(
    traefik: TraefikProcess, dataplane: DataPlane, backends: dict[str, int]
) -> None:
    await dataplane.apply(split_snapshot(backends, 100))
    await wait_verified(dataplane)
    assert await colors(traefik, "myapp.localhost", 50) == Counter(yellow=50)
    await dataplane.apply(split_snapshot(backends, 0))
    await wait_verified(dataplane)
    assert await colors(traefik, "myapp.localhost", 50) == Counter(blue=50)


async def test_each_service_is_reachable_on_its_own_host(
    traefik: TraefikProcess, dataplane: DataPlane, backends: dict[str, int]
) -> None:
    snapshot = split_snapshot(backends, 30)
    shop = ServiceBackends(
        name="myapp-stable", namespace="shop", endpoints=(f"127.0.0.1:{backends['yellow']}",)
    )
    await dataplane.apply(replace(snapshot, services=(*snapshot.services, shop)))
    await wait_verified(dataplane)
    assert await colors(traefik, "myapp-stable.localhost", 20) == Counter(blue=20)
    assert await colors(traefik, "myapp-canary.localhost", 20) == Counter(yellow=20)
    assert await colors(traefik, "myapp-stable.shop.localhost", 20) == Counter(yellow=20)


async def test_a_service_without_ready_endpoints_answers_503(
    traefik: TraefikProcess, dataplane: DataPlane
) -> None:
    await dataplane.apply(DataPlaneSnapshot(services=(ServiceBackends(name="nothing-ready"),)))
    await wait_verified(dataplane)
    assert await colors(traefik, "nothing-ready.localhost", 5) == Counter({"503": 5})


@pytest.mark.parametrize(
    ("value", "matching", "other"),
    [
        (StringMatch(exact="true"), "true", "false"),
        (StringMatch(prefix="beta."), "beta.7", "alpha.beta.7"),
        (StringMatch(regex="v[0-9]+"), "v42", "v42x"),
    ],
)
async def test_a_header_route_sends_only_matching_requests_to_the_canary(
    traefik: TraefikProcess,
    dataplane: DataPlane,
    backends: dict[str, int],
    value: StringMatch,
    matching: str,
    other: str,
) -> None:
    route = SetHeaderRoute(
        name="canary-by-header",
        match=[HeaderRoutingMatch(header_name="X-Canary", header_value=value)],
    )
    snapshot = split_snapshot(backends, 0)
    traffic = replace(snapshot.rollouts[0], header_routes=(route,))
    await dataplane.apply(snapshot.with_rollout(traffic))
    await wait_verified(dataplane)
    host = "myapp.localhost"
    assert await colors(traefik, host, 30, headers={"X-Canary": matching}) == Counter(yellow=30)
    assert await colors(traefik, host, 30, headers={"X-Canary": other}) == Counter(blue=30)
    assert await colors(traefik, host, 30) == Counter(blue=30)


async def canary_requests(port: int) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("http_requests_total{")
    )


async def test_a_mirror_route_copies_matching_requests_to_the_canary(
    traefik: TraefikProcess, dataplane: DataPlane, backends: dict[str, int]
) -> None:
    route = SetMirrorRoute(
        name="mirror-api",
        match=[RouteMatch(method=StringMatch(exact="GET"), path=StringMatch(prefix="/color"))],
        percentage=100,
    )
    snapshot = split_snapshot(backends, 0)
    await dataplane.apply(
        snapshot.with_rollout(replace(snapshot.rollouts[0], mirror_routes=(route,)))
    )
    await wait_verified(dataplane)
    before = await canary_requests(backends["yellow"])

    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            async with session.get(
                f"{traefik.web_url}/color", headers={"Host": "myapp.localhost"}
            ) as response:
                assert await response.json() == "blue"  # the answer comes from stable
        # Requests outside the match are not mirrored.
        assert (await colors(traefik, "myapp.localhost", 5)) == Counter(blue=5)

    # Mirrored requests are fire-and-forget: wait (bounded) until the canary has seen them.
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while await canary_requests(backends["yellow"]) < before + 10:
        assert asyncio.get_running_loop().time() < deadline, "mirrored requests never arrived"
        await asyncio.sleep(0.02)
    assert await canary_requests(backends["yellow"]) == before + 10


async def test_verify_tells_a_snapshot_traefik_does_not_serve(
    dataplane: DataPlane, backends: dict[str, int]
) -> None:
    await dataplane.apply(split_snapshot(backends, 20))
    await wait_verified(dataplane)
    problems = await dataplane.mismatches(split_snapshot(backends, 40))
    assert problems == [
        "service default-myapp-weighted: weights "
        "[('default-myapp-canary', 20), ('default-myapp-stable', 80)] != "
        "[('default-myapp-canary', 40), ('default-myapp-stable', 60)]"
    ]
    moved = split_snapshot({"blue": backends["yellow"], "yellow": backends["blue"]}, 20)
    assert not await dataplane.verify(moved)
    assert await dataplane.verify_rollout("default", "myapp", canary_weight=20)
    assert not await dataplane.verify_rollout("default", "myapp", canary_weight=21)


async def test_verify_is_false_when_traefik_cannot_be_reached(tmp_path: Path) -> None:
    stopped = TraefikProcess(tmp_path)
    await stopped.start_or_adopt()
    await stopped.stop()
    plane = DataPlane(tmp_path, stopped)
    try:
        await plane.apply(DataPlaneSnapshot(services=(ServiceBackends(name="s"),)))
        assert not await plane.verify()
        assert (await plane.mismatches())[0].startswith("cannot list traefik's")
    finally:
        await plane.close()


async def test_unchanged_snapshots_are_not_rewritten_and_survive_a_restart(
    traefik: TraefikProcess, dataplane: DataPlane, backends: dict[str, int]
) -> None:
    snapshot = split_snapshot(backends, 35)
    await dataplane.apply(snapshot)
    written = dataplane.config_path.stat()
    assert not await dataplane.apply(snapshot)
    assert dataplane.config_path.stat().st_mtime_ns == written.st_mtime_ns
    assert not list(traefik.dynamic_dir.glob("*.tmp"))  # temporary files stay outside

    restarted = DataPlane(traefik.home, traefik)
    try:
        assert restarted.snapshot == snapshot
        assert not await restarted.apply(snapshot)
        await wait_verified(restarted)
    finally:
        await restarted.close()


async def test_traefik_metrics_count_requests_per_backend(
    traefik: TraefikProcess, dataplane: DataPlane, backends: dict[str, int]
) -> None:
    await dataplane.apply(split_snapshot(backends, 50))
    await wait_verified(dataplane)
    await colors(traefik, "myapp.localhost", 40)
    text = await dataplane.scrape_metrics()
    per_service: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("traefik_service_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            for service in ("default-myapp-stable@file", "default-myapp-canary@file"):
                if f'service="{service}"' in labels and 'code="200"' in labels:
                    per_service[service] += int(float(value))
    assert per_service["default-myapp-stable@file"] >= 20
    assert per_service["default-myapp-canary@file"] >= 20
    assert "traefik_service_request_duration_seconds_bucket{" in text
    assert 'le="0.025"' in text  # the finer buckets are in force


# --- routers: the Router protocol on the local data plane and in memory ---------------------------


@pytest.fixture(params=["memory", "local"])
async def router(
    request: pytest.FixtureRequest, dataplane: DataPlane, backends: dict[str, int]
) -> Router:
    if request.param == "memory":
        return InMemoryRouter()
    await dataplane.apply(split_snapshot(backends, 0))
    return local_router(dataplane)


def local_router(dataplane: DataPlane) -> LocalRouter:
    return LocalRouter(
        dataplane,
        namespace="default",
        rollout="myapp",
        stable_service="myapp-stable",
        canary_service="myapp-canary",
    )


async def eventually_verified(router: Router, weight: int) -> bool | None:
    """verify_weight, asked again (bounded) while the proxy catches up."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not (answer := await router.verify_weight(weight)):
        if answer is None or asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(0.02)
    return answer


async def test_a_router_verifies_the_weight_it_was_given_and_no_other(router: Router) -> None:
    await router.set_weight(30)
    assert await eventually_verified(router, 30) is True
    assert await router.verify_weight(31) is False
    await router.set_weight(60)
    assert await eventually_verified(router, 60) is True
    assert await router.verify_weight(30) is False


async def test_the_local_router_drives_real_traffic(
    traefik: TraefikProcess, dataplane: DataPlane, backends: dict[str, int]
) -> None:
    await dataplane.apply(split_snapshot(backends, 0))
    router = local_router(dataplane)
    await router.set_weight(25)
    assert await eventually_verified(router, 25)
    seen = await colors(traefik, "myapp.localhost", 200)
    assert 40 <= seen["yellow"] <= 60

    header = SetHeaderRoute(
        name="canary-by-header",
        match=[HeaderRoutingMatch(header_name="X-Canary", header_value=StringMatch(exact="yes"))],
    )
    await router.set_header_route(header)
    await wait_verified(dataplane)
    assert await colors(traefik, "myapp.localhost", 20, headers={"X-Canary": "yes"}) == Counter(
        yellow=20
    )
    await router.set_header_route(SetHeaderRoute(name="canary-by-header"))  # no match: remove
    await wait_verified(dataplane)
    assert dataplane.snapshot.rollouts[0].header_routes == ()
    await router.set_weight(0)
    await wait_verified(dataplane)
    assert await colors(traefik, "myapp.localhost", 20, headers={"X-Canary": "yes"}) == Counter(
        blue=20
    )


async def test_remove_managed_routes_removes_header_and_mirror_routes_but_keeps_the_weight(
    dataplane: DataPlane, backends: dict[str, int]
) -> None:
    await dataplane.apply(split_snapshot(backends, 0))
    router = local_router(dataplane)
    await router.set_weight(10)
    await router.set_header_route(
        SetHeaderRoute(
            name="h",
            match=[HeaderRoutingMatch(header_name="X-A", header_value=StringMatch(exact="1"))],
        )
    )
    await router.set_mirror_route(
        SetMirrorRoute(name="m", match=[RouteMatch(path=StringMatch(prefix="/"))], percentage=10)
    )
    await wait_verified(dataplane)
    await router.remove_managed_routes()
    await wait_verified(dataplane)  # the routers and the mirroring service are gone from Traefik
    held = dataplane.snapshot.rollout("default", "myapp")
    assert held is not None
    assert (held.canary_weight, held.header_routes, held.mirror_routes) == (10, (), ())


async def test_the_local_routers_state_outlives_the_controller(
    traefik: TraefikProcess, dataplane: DataPlane, backends: dict[str, int]
) -> None:
    await dataplane.apply(split_snapshot(backends, 0))
    await local_router(dataplane).set_weight(40)

    restarted = DataPlane(traefik.home, traefik)
    try:
        router = local_router(restarted)
        assert router.current().canary_weight == 40
        assert await eventually_verified(router, 40) is True
    finally:
        await restarted.close()


async def test_the_local_router_follows_spec_changes_and_keeps_its_weight(
    dataplane: DataPlane, backends: dict[str, int]
) -> None:
    await dataplane.apply(split_snapshot(backends, 0))
    await local_router(dataplane).set_weight(15)
    moved = LocalRouter(
        dataplane,
        namespace="default",
        rollout="myapp",
        stable_service="myapp-stable",
        canary_service="myapp-preview",
        max_weight=1000,
    )
    await moved.set_weight(150)
    await wait_verified(dataplane)
    assert await dataplane.weights("default", "myapp") == {
        "myapp-stable": 850,
        "myapp-preview": 150,
    }


async def test_the_in_memory_router_records_calls_and_can_fail_or_abstain() -> None:
    router = InMemoryRouter()
    await router.update_hash("canaryhash", "stablehash")
    await router.set_weight(20)
    header = SetHeaderRoute(
        name="h", match=[HeaderRoutingMatch(header_name="X-A", header_value=StringMatch(exact="1"))]
    )
    await router.set_header_route(header)
    assert [call.name for call in router.calls] == ["update_hash", "set_weight", "set_header_route"]
    assert router.header_routes == {"h": header}
    await router.set_header_route(SetHeaderRoute(name="h"))
    assert router.header_routes == {}

    router.error = TransientError("proxy down")
    with pytest.raises(TransientError):
        await router.set_weight(50)
    assert router.weight == 20  # a failed call changes nothing

    router.verification = None
    assert await router.verify_weight(20) is None
    router.verification = False
    assert await router.verify_weight(20) is False
