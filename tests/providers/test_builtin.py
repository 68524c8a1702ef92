"""The rollwise/builtin plugin against a real Traefik splitting real demo apps: a measurement
covers exactly the traffic of its window, per version, with the number of requests it rests on.
The window is the provider's clock, so the tests advance a manual clock instead of waiting."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rollwise.api.models import Metric
from rollwise.core.timestamps import ManualClock
from rollwise.platforms.local.dataplane import (
    DataPlane,
    DataPlaneSnapshot,
    RolloutTraffic,
    ServiceBackends,
)
from rollwise.platforms.local.traefik import TraefikProcess
from rollwise.providers.base import (
    ProviderContext,
    ProviderServices,
    measure,
    provider_for,
    resume,
    terminate,
)
from rollwise.providers.builtin import COUNTERS_KEY, BuiltinProvider, counters_of

from .conftest import DemoApp, Processes, start_demo_app

NOW = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)
CANARY_LATENCY_MS = 30
DEADLINE_S = 10.0


@dataclass(frozen=True)
class Backends:
    stable: DemoApp
    canary: DemoApp


@pytest.fixture(scope="module")
def backends(module_processes: Processes) -> Backends:
    """Stable `blue`; canary `bad-red`: half its answers are 500s, each 30 ms late."""
    return Backends(
        stable=start_demo_app(module_processes, "blue"),
        canary=start_demo_app(
            module_processes, "bad-red", env={"LATENCY_MS": str(CANARY_LATENCY_MS)}
        ),
    )


@pytest.fixture(scope="module")
def traefik(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraefikProcess]:
    process = TraefikProcess(tmp_path_factory.mktemp("traefik"))
    try:
        asyncio.run(process.start_or_adopt())
        yield process
    finally:
        asyncio.run(process.stop())


@pytest.fixture
async def dataplane(traefik: TraefikProcess, backends: Backends) -> AsyncIterator[DataPlane]:
    plane = DataPlane(traefik.home, traefik)
    try:
        await plane.apply(
            DataPlaneSnapshot(
                services=(
                    ServiceBackends(name="myapp-stable", endpoints=(backends.stable.address,)),
                    ServiceBackends(name="myapp-canary", endpoints=(backends.canary.address,)),
                ),
                rollouts=(
                    RolloutTraffic(
                        name="myapp",
                        stable_service="myapp-stable",
                        canary_service="myapp-canary",
                        canary_weight=50,
                    ),
                ),
            )
        )
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while not await plane.verify():
            assert asyncio.get_running_loop().time() < deadline, await plane.mismatches()
            await asyncio.sleep(0.02)
        yield plane
    finally:
        await plane.close()


async def send(traefik: TraefikProcess, count: int) -> Counter[str]:
    """`count` requests to myapp through Traefik: answers by colour, errors by status."""
    seen: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with session.get(
                f"{traefik.web_url}/", headers={"Host": "myapp.localhost"}
            ) as response:
                if response.status == 200:
                    seen[(await response.json())["color"]] += 1
                else:
                    seen[str(response.status)] += 1

        for _ in range(count // 10):
            await asyncio.gather(*(one() for _ in range(10)))
    return seen


async def counted(dataplane: DataPlane) -> float:
    text = await dataplane.scrape_metrics()
    return sum(
        counters_of(text, f"default-myapp-{track}@file").requests for track in ("stable", "canary")
    )


async def send_counted(traefik: TraefikProcess, dataplane: DataPlane, count: int) -> Counter[str]:
    """`send`, then wait (bounded) until Traefik's counters hold every request: Traefik may
    count a request a moment after its answer reached the client."""
    before = await counted(dataplane)
    seen = await send(traefik, count)
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while await counted(dataplane) < before + count:
        assert asyncio.get_running_loop().time() < deadline, "traefik never counted them all"
        await asyncio.sleep(0.01)
    return seen


def builtin_metric(condition: str | None = None, **config: Any) -> Metric:
    raw: dict[str, Any] = {
        "name": "traffic",
        "provider": {"plugin": {"rollwise/builtin": {"window": "30s", **config}}},
    }
    if condition:
        raw["successCondition"] = condition
    return Metric.model_validate(raw)


def context_for(dataplane: DataPlane, clock: ManualClock) -> ProviderContext:
    return ProviderContext(
        clock=clock, services=ProviderServices(traefik_metrics=dataplane.scrape_metrics)
    )


async def test_a_measurement_waits_its_window_and_measures_only_that_traffic(
    traefik: TraefikProcess, dataplane: DataPlane
) -> None:
    clock = ManualClock(NOW)
    context = context_for(dataplane, clock)
    await send_counted(traefik, dataplane, 20)  # before the window: must not count
    canary = builtin_metric("result >= 0.95", metric="success-rate", service="myapp-canary")
    stable = builtin_metric("result >= 0.95", metric="success-rate", service="myapp-stable")

    started = {name: await measure(m, context) for name, m in (("c", canary), ("s", stable))}
    for measurement in started.values():
        assert measurement.phase == "Running"
        assert measurement.started_at == "2026-11-26T01:50:00Z"
        assert measurement.resume_at == "2026-11-26T01:50:30Z"
        assert measurement.metadata is not None
        assert COUNTERS_KEY in measurement.metadata

    seen = await send_counted(traefik, dataplane, 100)
    clock.advance(29)
    assert await resume(canary, started["c"], context) == started["c"]  # not due yet
    clock.advance(1)

    canary_done = await resume(canary, started["c"], context)
    canary_requests = seen["bad-red"] + seen["500"]
    assert canary_done.phase == "Failed"
    assert canary_done.value == repr(seen["bad-red"] / canary_requests)
    assert canary_done.started_at == "2026-11-26T01:50:00Z"
    assert canary_done.finished_at == "2026-11-26T01:50:30Z"
    assert canary_done.metadata == {
        "requests": str(canary_requests),
        "window": "30s",
        "service": "default-myapp-canary@file",
    }

    stable_done = await resume(stable, started["s"], context)
    assert stable_done.phase == "Successful"
    assert stable_done.value == "1"
    assert stable_done.metadata is not None
    assert stable_done.metadata["requests"] == str(seen["blue"])


async def test_error_rate_and_request_count_per_version(
    traefik: TraefikProcess, dataplane: DataPlane
) -> None:
    clock = ManualClock(NOW)
    context = context_for(dataplane, clock)
    errors = builtin_metric("result <= 0.05", metric="error-rate", service="myapp-canary")
    count = builtin_metric(metric="request-count", service="myapp-canary", window="10s")
    started_errors = await measure(errors, context)
    started_count = await measure(count, context)
    seen = await send_counted(traefik, dataplane, 60)
    clock.advance(30)
    canary_requests = seen["bad-red"] + seen["500"]
    done = await resume(errors, started_errors, context)
    assert done.phase == "Failed"
    assert done.value == repr(seen["500"] / canary_requests)
    counted = await resume(count, started_count, context)
    assert counted.phase == "Successful"  # no condition: any value passes
    assert counted.value == str(canary_requests)


async def test_latency_quantiles_are_milliseconds(
    traefik: TraefikProcess, dataplane: DataPlane
) -> None:
    clock = ManualClock(NOW)
    context = context_for(dataplane, clock)
    canary = builtin_metric("result <= 20", metric="latency-p50", service="myapp-canary")
    stable = builtin_metric("result <= 20", metric="latency-p95", service="myapp-stable")
    started = [await measure(canary, context), await measure(stable, context)]
    await send_counted(traefik, dataplane, 40)
    clock.advance(30)
    canary_done = await resume(canary, started[0], context)
    # Every canary answer waited 30 ms: the median lies in the (25 ms, 50 ms] bucket, or a
    # later one on a loaded machine; in milliseconds.
    assert canary_done.value is not None
    assert 25 < float(canary_done.value) <= 100
    assert canary_done.phase == "Failed"
    stable_done = await resume(stable, started[1], context)
    assert stable_done.value is not None
    assert 0 < float(stable_done.value) < float(canary_done.value)


async def test_a_window_without_requests_has_no_value(
    traefik: TraefikProcess, dataplane: DataPlane
) -> None:
    clock = ManualClock(NOW)
    context = context_for(dataplane, clock)
    rate = builtin_metric("result >= 0.95", metric="success-rate", service="myapp-canary")
    count = builtin_metric("result > 0", metric="request-count", service="myapp-canary")
    started = [await measure(rate, context), await measure(count, context)]
    clock.advance(30)
    empty = await resume(rate, started[0], context)
    # nil: Argo's default makes it an Error ("metric result is nil or empty"); a no-data
    # policy on the metric decides otherwise.
    assert empty.phase == "Error"
    assert empty.value == "<nil>"
    assert empty.metadata is not None
    assert empty.metadata["requests"] == "0"
    none_counted = await resume(count, started[1], context)
    assert none_counted.value == "0"
    assert none_counted.phase == "Failed"


async def test_terminate_measures_what_the_window_has_seen_so_far(
    traefik: TraefikProcess, dataplane: DataPlane
) -> None:
    clock = ManualClock(NOW)
    context = context_for(dataplane, clock)
    stable = builtin_metric("result >= 0.95", metric="success-rate", service="myapp-stable")
    started = await measure(stable, context)
    seen = await send_counted(traefik, dataplane, 20)
    clock.advance(5)
    stopped = await terminate(stable, started, context)
    assert stopped.phase == "Successful"
    assert stopped.finished_at == "2026-11-26T01:50:05Z"
    assert stopped.metadata is not None
    assert stopped.metadata["requests"] == str(seen["blue"])
    assert await terminate(stable, stopped, context) == stopped


async def test_without_traefik_metrics_the_measurement_is_an_error() -> None:
    context = ProviderContext(clock=ManualClock(NOW))
    metric = builtin_metric(metric="success-rate", service="myapp-canary")
    measurement = await measure(metric, context)
    assert measurement.phase == "Error"
    assert measurement.message == (
        "rollwise/builtin reads Traefik's metrics, which only the local platform provides"
    )


async def test_an_unreachable_traefik_is_an_error(tmp_path: Path) -> None:
    stopped = TraefikProcess(tmp_path)
    await stopped.start_or_adopt()
    await stopped.stop()
    plane = DataPlane(tmp_path, stopped)
    try:
        context = context_for(plane, ManualClock(NOW))
        measurement = await measure(
            builtin_metric(metric="success-rate", service="myapp-canary"), context
        )
    finally:
        await plane.close()
    assert measurement.phase == "Error"
    assert measurement.message is not None
    assert measurement.message.startswith(
        "rollwise/builtin: cannot read Traefik's metrics: Traefik at http://127.0.0.1:"
    )
    assert measurement.message.endswith("/metrics is unreachable: connection refused")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"service": "s"}, "rollwise/builtin: `metric` is required"),
        ({"metric": "success-rate"}, "rollwise/builtin: `service` (a Kubernetes Service name) "
         "is required"),
        ({"metric": "apdex", "service": "s"}, "rollwise/builtin: unknown metric 'apdex' (one of "
         "success-rate, error-rate, request-count, latency-p50, latency-p90, latency-p95, "
         "latency-p99)"),
        ({"metric": "success-rate", "service": "s", "window": "0s"},
         "rollwise/builtin: window must be positive ('0s')"),
    ],
)  # fmt: skip
async def test_configuration_mistakes_are_errors(config: dict[str, Any], message: str) -> None:
    metric = Metric.model_validate(
        {"name": "m", "provider": {"plugin": {"rollwise/builtin": config}}}
    )
    measurement = await measure(metric, ProviderContext(clock=ManualClock(NOW)))
    assert (measurement.phase, measurement.message) == ("Error", message)


def test_the_registry_gives_the_builtin_plugin() -> None:
    assert isinstance(provider_for(builtin_metric(metric="error-rate")), BuiltinProvider)
