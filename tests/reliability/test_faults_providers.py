"""Faults injected in the metric providers, seen through the controller's own AnalysisRunReconciler
over a real SQLite store: the right measurement phase and message every time, the run's phase as
Argo assesses it (reference 2.5-2.7, 3.1-3.2), never a Successful run without a Successful
measurement, and never an exception out of the reconciler.

The faults are real: a port nobody listens on, a loopback server that never answers (the
provider's own timeout must fire), answers HTTP 400 / 500 or bodies that are not what they claim,
Debian's Prometheus computing NaN, +Inf, -Inf and empty vectors, Prometheus and Traefik killed
with SIGKILL between (or during) measurements and started again on the same port. The builtin
and judge providers read Traefik's metrics through the local platform's real reader
(`DataPlane.scrape_metrics`), aimed at a faulty endpoint the way a controller adopts a Traefik.

Every table row uses `consecutiveErrorLimit: 1`, so an Error fault is seen twice (once Running,
then the run Error); `test_the_fifth_error_in_a_row_errors_the_run_with_argos_default_limit`
walks Argo's default of four.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from faults import (
    AnalysisBench,
    Answer,
    FakeTraefik,
    FaultyEndpoint,
    RawObject,
    RestartablePrometheus,
    finished_measurements,
    free_port,
    metric_result,
    phase_of,
)

from rollwise.core.timestamps import parse_time
from rollwise.demo.prometheus import find_prometheus
from rollwise.platforms.local.dataplane import DataPlane, DataPlaneSnapshot, ServiceBackends
from rollwise.platforms.local.traefik import TraefikProcess
from rollwise.providers.base import ProviderServices

pytestmark = pytest.mark.timeout(90)

CANARY = "default-myapp-canary@file"
STABLE = "default-myapp-stable@file"


def exposition(canary: str | None = "100", stable: str = "100") -> str:
    """Traefik's /metrics as Traefik writes it; `canary=None`: no series of the canary yet."""
    lines = [
        "# HELP traefik_config_reloads_total Config reloads",
        "# TYPE traefik_config_reloads_total counter",
        "traefik_config_reloads_total 1",
        "# TYPE traefik_service_requests_total counter",
        f'traefik_service_requests_total{{code="200",method="GET",protocol="http",'
        f'service="{STABLE}"}} {stable}',
    ]
    if canary is not None:
        lines.append(
            f'traefik_service_requests_total{{code="200",method="GET",protocol="http",'
            f'service="{CANARY}"}} {canary}'
        )
    return "\n".join(lines) + "\n"


# --- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """Every measurement's phase and a fragment of its message (or its value), and the run's
    phase. The run's message follows from them (see `run_message`)."""

    phase: str
    message: str = ""
    value: str | None = None


REFUSED = "is unreachable: connection refused"
TIMEOUT = "did not answer within"
NO_DATA = "metric result is nil or empty"
NOT_A_NUMBER = "mismatched types string and float64"
NOT_METRICS = "answered no metrics in the Prometheus text format"
NON_FINITE = "a counter must be a finite number"

FAULTS: dict[tuple[str, str], Expect] = {
    # Prometheus: errors are Error measurements; values are judged as Argo judges float64s.
    ("prometheus", "connection refused"): Expect("Error", REFUSED),
    ("prometheus", "timeout"): Expect("Error", f"{TIMEOUT} 0.5 s"),
    ("prometheus", "HTTP 400"): Expect("Error", "Prometheus query failed: bad_data:"),
    ("prometheus", "HTTP 500"): Expect("Error", "Prometheus query failed: internal: boom"),
    ("prometheus", "malformed JSON"): Expect("Error", "answered HTTP 200 without a JSON body"),
    ("prometheus", "NaN"): Expect("Failed", value="[NaN]"),
    ("prometheus", "NaN, both conditions"): Expect("Inconclusive", value="[NaN]"),
    ("prometheus", "+Inf"): Expect("Successful", value="[+Inf]"),
    ("prometheus", "-Inf"): Expect("Failed", value="[-Inf]"),
    ("prometheus", "empty vector"): Expect("Error", NO_DATA, value="[]"),
    # Web: any non-2xx is an Error; a body that is not JSON is the whole body as a string,
    # which `result >= 0.95` cannot compare (Argo would call it Successful unevaluated); the
    # NaN / Infinity literals of Python's json are floats, judged as Prometheus' are.
    ("web", "connection refused"): Expect("Error", REFUSED),
    ("web", "timeout"): Expect("Error", f"{TIMEOUT} 0.5 s"),
    ("web", "HTTP 400"): Expect("Error", "received non 2xx response code: 400"),
    ("web", "HTTP 500"): Expect("Error", "received non 2xx response code: 500"),
    ("web", "malformed JSON"): Expect("Error", NOT_A_NUMBER, value='{"value": 0.99'),
    ("web", "HTML error page"): Expect("Error", NOT_A_NUMBER, value="<html>502 Bad Gateway</html>"),
    ("web", "NaN"): Expect("Failed", value="NaN"),
    ("web", "+Inf"): Expect("Successful", value="+Inf"),
    ("web", "-Inf"): Expect("Failed", value="-Inf"),
    ("web", "NaN as a JSON string"): Expect("Error", NOT_A_NUMBER, value="NaN"),
    ("web", "empty result"): Expect("Error", "result of web metric produced no value"),
    ("web", "null result"): Expect("Error", NO_DATA, value="<nil>"),
    # Traefik's metrics (builtin success rate, judge): a broken scrape is an Error, never a
    # rate computed from garbage; a scrape without the canary's series is no data.
    ("builtin", "connection refused"): Expect("Error", f"/metrics {REFUSED}"),
    ("builtin", "timeout"): Expect("Error", f"/metrics {TIMEOUT} 2 s"),
    ("builtin", "HTTP 400"): Expect("Error", "/metrics answered HTTP 400: bad request"),
    ("builtin", "HTTP 500"): Expect("Error", "/metrics answered HTTP 500: internal error"),
    ("builtin", "malformed text"): Expect("Error", NOT_METRICS),
    ("builtin", "NaN"): Expect("Error", "Traefik reported NaN for the counter"),
    ("builtin", "+Inf"): Expect("Error", "Traefik reported +Inf for the counter"),
    ("builtin", "-Inf"): Expect("Error", "Traefik reported -Inf for the counter"),
    ("builtin", "empty result"): Expect("Error", NO_DATA, value="<nil>"),
    ("judge", "connection refused"): Expect("Error", f"/metrics {REFUSED}"),
    ("judge", "timeout"): Expect("Error", f"/metrics {TIMEOUT} 2 s"),
    ("judge", "HTTP 400"): Expect("Error", "/metrics answered HTTP 400: bad request"),
    ("judge", "HTTP 500"): Expect("Error", "/metrics answered HTTP 500: internal error"),
    ("judge", "malformed text"): Expect("Error", NOT_METRICS),
    ("judge", "NaN"): Expect("Error", NON_FINITE),
    ("judge", "+Inf"): Expect("Error", NON_FINITE),
    ("judge", "-Inf"): Expect("Error", NON_FINITE),
    ("judge", "empty result"): Expect("Inconclusive", "no decision within maxDuration 30s"),
}

HTTP_ANSWERS: dict[str, Answer] = {
    "timeout": Answer(hang=True),
    "HTTP 400": Answer(400, "bad request", "text/plain"),
    "HTTP 500": Answer(500, "internal error", "text/plain"),
}


def prometheus_metric(address: str, query: str, **fields: Any) -> RawObject:
    return {
        "name": "m",
        "successCondition": "result[0] >= 0.95",
        "consecutiveErrorLimit": 1,
        "provider": {"prometheus": {"address": address, "query": query, "timeout": 0.5}},
        **fields,
    }


def web_metric(url: str) -> RawObject:
    return {
        "name": "m",
        "successCondition": "result >= 0.95",
        "consecutiveErrorLimit": 1,
        "provider": {"web": {"url": url, "jsonPath": "{$.value}", "timeoutSeconds": 0.5}},
    }


def traefik_metric(provider: str) -> RawObject:
    if provider == "builtin":
        config: RawObject = {"metric": "success-rate", "service": "myapp-canary", "window": "10s"}
        return {
            "name": "m",
            "successCondition": "result >= 0.95",
            "consecutiveErrorLimit": 1,
            "provider": {"plugin": {"rollwise/builtin": config}},
        }
    config = {
        "canaryService": "myapp-canary",
        "baselineService": "myapp-stable",
        "window": "10s",
        "maxDuration": "30s",
        "minRequests": 10,
    }
    return {
        "name": "m",
        "consecutiveErrorLimit": 1,
        "provider": {"plugin": {"rollwise/judge": config}},
    }


def prometheus_case(fault: str, prometheus: str, endpoint: FaultyEndpoint) -> RawObject:
    real = {
        "HTTP 400": "sum(",  # Prometheus' own 400 for a query that does not parse
        "NaN": "vector(0) / 0",
        "NaN, both conditions": "vector(0) / 0",
        "+Inf": "vector(1) / 0",
        "-Inf": "vector(-1) / 0",
        "empty vector": "sum(rollwise_fault_no_such_series)",
    }
    if fault in real:
        extra = {"failureCondition": "result[0] < 0.5"} if "both" in fault else {}
        return prometheus_metric(prometheus, real[fault], **extra)
    if fault == "connection refused":
        return prometheus_metric(f"http://127.0.0.1:{free_port()}", "vector(1)")
    endpoint.answer = {
        "timeout": Answer(hang=True),
        "HTTP 500": Answer(
            500, json.dumps({"status": "error", "errorType": "internal", "error": "boom"})
        ),
        "malformed JSON": Answer(200, '{"status":"success","data":{"resultType":"vector","res'),
    }[fault]
    return prometheus_metric(endpoint.url, "vector(1)")


def web_case(fault: str, endpoint: FaultyEndpoint) -> RawObject:
    if fault == "connection refused":
        return web_metric(f"http://127.0.0.1:{free_port()}/value")
    bodies = {
        "malformed JSON": '{"value": 0.99',
        "HTML error page": "<html>502 Bad Gateway</html>",
        "NaN": '{"value": NaN}',
        "+Inf": '{"value": Infinity}',
        "-Inf": '{"value": -Infinity}',
        "NaN as a JSON string": '{"value": "NaN"}',
        "empty result": "{}",
        "null result": '{"value": null}',
    }
    endpoint.answer = HTTP_ANSWERS[fault] if fault in HTTP_ANSWERS else Answer(200, bodies[fault])
    return web_metric(f"{endpoint.url}/value")


def traefik_answer(fault: str) -> Answer:
    if fault in HTTP_ANSWERS:
        return HTTP_ANSWERS[fault]
    texts = {
        "malformed text": ("<html><body>502 Bad Gateway</body></html>", "text/html"),
        "NaN": (exposition("NaN"), "text/plain"),
        "+Inf": (exposition("+Inf"), "text/plain"),
        "-Inf": (exposition("-Inf"), "text/plain"),
        "empty result": (exposition(None), "text/plain"),
    }
    body, content_type = texts[fault]
    return Answer(200, body, content_type)


def run_message(expect: Expect, measurement_message: str | None) -> str | None:
    """The run's message for a run whose only metric ended `expect.phase` (reference 2.7)."""
    reasons = {
        "Error": "consecutiveErrors (2) > consecutiveErrorLimit (1)",
        "Failed": "failed (1) > failureLimit (0)",
        "Inconclusive": "inconclusive (1) > inconclusiveLimit (0)",
    }
    if expect.phase not in reasons:
        return None
    message = f'Metric "m" assessed {expect.phase} due to {reasons[expect.phase]}'
    return message + (f': "Error Message: {measurement_message}"' if measurement_message else "")


def assert_measured_before_any_pass(run: RawObject) -> None:
    """Never a pass of a release that was not measured."""
    if phase_of(run) == "Successful":
        phases = [m["phase"] for m in finished_measurements(run)]
        assert "Successful" in phases, run["status"]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartablePrometheus]:
    try:
        binary = find_prometheus()
    except Exception as error:  # skip locally, fail under CI
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))
    server = RestartablePrometheus(tmp_path_factory.mktemp("prometheus"), binary=binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def endpoint() -> AsyncIterator[FaultyEndpoint]:
    server = await FaultyEndpoint().start()
    try:
        yield server
    finally:
        await server.close()


@pytest.mark.parametrize(("provider", "fault"), list(FAULTS), ids=[f"{p}: {f}" for p, f in FAULTS])
async def test_fault(
    provider: str,
    fault: str,
    prometheus: RestartablePrometheus,
    endpoint: FaultyEndpoint,
    tmp_path: Path,
) -> None:
    expect = FAULTS[provider, fault]
    fake: FakeTraefik | None = None
    services = ProviderServices()
    try:
        if provider == "prometheus":
            metric = prometheus_case(fault, prometheus.url, endpoint)
        elif provider == "web":
            metric = web_case(fault, endpoint)
        else:
            fake = await FakeTraefik.adopt(tmp_path / "home", endpoint)
            services = fake.services()
            metric = traefik_metric(provider)
            if fault == "connection refused":
                await endpoint.close()  # the adopted "Traefik" is gone: its port refuses
            else:
                endpoint.answer = traefik_answer(fault)
        bench = AnalysisBench(tmp_path, services)
        bench.create("run", metric)
        run = await bench.until_completed("run")
        bench.close()
    finally:
        if fake is not None:
            await fake.close()

    measurements = finished_measurements(run)
    assert measurements, run["status"]
    for measurement in measurements:
        assert measurement["phase"] == expect.phase, measurement
        assert expect.message in (measurement.get("message") or ""), measurement
        if expect.value is not None:
            assert measurement.get("value") == expect.value, measurement
    assert len(measurements) == (2 if expect.phase == "Error" else 1)
    assert phase_of(run) == expect.phase
    assert run["status"].get("message") == run_message(expect, measurements[-1].get("message"))
    assert_measured_before_any_pass(run)


# --- Argo's default limit, and the 10 s between errors --------------------------------------------


async def test_the_fifth_error_in_a_row_errors_the_run_with_argos_default_limit(
    tmp_path: Path,
) -> None:
    bench = AnalysisBench(tmp_path)
    address = f"http://127.0.0.1:{free_port()}"
    metric = prometheus_metric(address, "vector(1)")
    del metric["consecutiveErrorLimit"]
    bench.create("run", metric)
    run = await bench.until_measured("run", 4)
    assert phase_of(run) == "Running"  # four errors in a row: still measuring
    assert metric_result(run)["consecutiveError"] == 4
    run = await bench.until_completed("run")
    bench.close()

    measurements = finished_measurements(run)
    assert [m["phase"] for m in measurements] == ["Error"] * 5
    starts = [parse_time(m["startedAt"]) for m in measurements]
    assert all(b - a == timedelta(seconds=10) for a, b in itertools.pairwise(starts))
    assert phase_of(run) == "Error"
    assert run["status"]["message"].startswith(
        'Metric "m" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4): '
        f'"Error Message: Prometheus at {address}/api/v1/query {REFUSED}"'
    )
    assert metric_result(run)["count"] == 0  # errors never count toward `count`


# --- restarts -------------------------------------------------------------------------------------


async def test_a_prometheus_restart_between_measurements_is_one_error_and_the_run_goes_on(
    prometheus: RestartablePrometheus, tmp_path: Path
) -> None:
    """Debian's Prometheus SIGKILLed after the first measurement and started again on the same
    port after the second: the second is an Error, the run still needs three good ones."""
    bench = AnalysisBench(tmp_path)
    metric = prometheus_metric(prometheus.url, "vector(1)", count=3, interval="5s")
    bench.create("run", metric)
    await bench.until_measured("run", 1)
    prometheus.kill()
    try:
        run = await bench.until_measured("run", 2)
    finally:
        prometheus.start()
    run = await bench.until_completed("run")
    bench.close()

    measurements = finished_measurements(run)
    assert [m["phase"] for m in measurements] == ["Successful", "Error", "Successful", "Successful"]
    assert REFUSED in measurements[1]["message"]
    # After an Error the next try comes 10 s later, whatever the interval.
    gap = parse_time(measurements[2]["startedAt"]) - parse_time(measurements[1]["finishedAt"])
    assert gap == timedelta(seconds=10)
    result = metric_result(run)
    assert (result["count"], result["successful"], result["error"]) == (3, 3, 1)
    assert result["consecutiveError"] == 0
    assert phase_of(run) == "Successful"


@pytest.fixture
async def traefik(tmp_path: Path, endpoint: FaultyEndpoint) -> AsyncIterator[TraefikProcess]:
    """A real Traefik routing `myapp-canary.localhost` to the loopback endpoint (answering 200)."""
    process = TraefikProcess(tmp_path / "home")
    await process.start_or_adopt()
    plane = DataPlane(process.home, process)
    try:
        endpoint.answer = Answer(200, '{"color": "yellow"}')
        await plane.apply(
            DataPlaneSnapshot(
                services=(
                    ServiceBackends(name="myapp-canary", endpoints=(f"127.0.0.1:{endpoint.port}",)),
                )
            )
        )
        async with asyncio.timeout(10):
            while not await plane.verify():  # noqa: ASYNC110 - Traefik offers nothing to wait on
                await asyncio.sleep(0.02)
        yield process
    finally:
        await plane.close()
        await process.stop()


async def send(traefik: TraefikProcess, count: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.get(
                f"{traefik.web_url}/", headers={"Host": "myapp-canary.localhost"}
            ) as response:
                assert response.status == 200


def kill_traefik(traefik: TraefikProcess) -> None:
    assert traefik.pid is not None
    os.kill(traefik.pid, signal.SIGKILL)


async def restart_traefik(traefik: TraefikProcess, plane: DataPlane) -> None:
    """What the controller's loop does within 2 s of a death: start it again, same ports."""
    async with asyncio.timeout(10):
        while traefik.is_running():  # noqa: ASYNC110 - SIGKILL is delivered asynchronously
            await asyncio.sleep(0.01)
    assert await traefik.supervise()
    async with asyncio.timeout(10):
        while not await plane.verify():  # noqa: ASYNC110 - Traefik offers nothing to wait on
            await asyncio.sleep(0.02)


async def test_a_traefik_killed_or_restarted_during_a_builtin_measurement(
    traefik: TraefikProcess, tmp_path: Path
) -> None:
    """The builtin success rate over a real Traefik: killed during a window, the measurement is
    an Error; restarted during a window, its counters start again from zero and the window
    counts only what the new Traefik saw (as Prometheus' `rate` does), never a negative count."""
    plane = DataPlane(traefik.home, traefik)
    bench = AnalysisBench(tmp_path, ProviderServices(traefik_metrics=plane.scrape_metrics))
    metric = traefik_metric("builtin") | {"count": 2, "interval": "1s"}
    del metric["consecutiveErrorLimit"]
    bench.create("run", metric)
    try:
        await bench.step("run")  # the window opens: counters read
        await send(traefik, 10)
        kill_traefik(traefik)
        run = await bench.until_measured("run", 1)  # the window closes on a dead Traefik
        await restart_traefik(traefik, plane)

        await bench.step("run")  # 10 s after the Error: a new window on the new Traefik
        await send(traefik, 10)
        run = await bench.until_measured("run", 2)

        await bench.step("run")  # the third window opens on 10 counted requests...
        await send(traefik, 10)
        kill_traefik(traefik)
        await restart_traefik(traefik, plane)  # ...Traefik restarts, counting from zero...
        await send(traefik, 4)  # ...and sees 4 more
        run = await bench.until_completed("run")
    finally:
        await plane.close()
        bench.close()

    measurements = finished_measurements(run)
    assert [m["phase"] for m in measurements] == ["Error", "Successful", "Successful"]
    assert f"/metrics {REFUSED}" in measurements[0]["message"]
    assert [m.get("metadata", {}).get("requests") for m in measurements[1:]] == ["10", "4"]
    assert phase_of(run) == "Successful"


async def test_the_judge_keeps_its_evidence_through_failed_reads_and_errors_on_the_fifth(
    endpoint: FaultyEndpoint, tmp_path: Path
) -> None:
    """A judgement is one long measurement: a look that cannot read Traefik keeps it Running
    (the failure noted, the next look one window later) instead of throwing the evidence away;
    a good look clears the count; five failed looks in a row end it as an Error."""
    fake = await FakeTraefik.adopt(tmp_path / "home", endpoint)
    bench = AnalysisBench(tmp_path, fake.services())
    metric = traefik_metric("judge") | {"consecutiveErrorLimit": 0}
    del metric["provider"]["plugin"]["rollwise/judge"]["maxDuration"]  # as long as it takes
    bench.create("run", metric)
    looks: list[RawObject] = []
    try:
        endpoint.answer = Answer(200, exposition("100"), "text/plain")
        await bench.step("run")  # the judgement starts on these counters
        for answer in [HTTP_ANSWERS["HTTP 500"]] * 2 + [
            Answer(200, exposition("110"), "text/plain")
        ]:
            endpoint.answer = answer
            await bench.step("run")
            looks.append(metric_result(bench.run("run"))["measurements"][-1])
        endpoint.answer = HTTP_ANSWERS["HTTP 500"]
        run = await bench.until_completed("run")
    finally:
        bench.close()
        await fake.close()

    failures = [look.get("metadata", {}).get("rollwise.io/judge-failures") for look in looks]
    assert [look["phase"] for look in looks] == ["Running"] * 3
    assert failures == ["1", "2", None]  # the good look cleared the count
    assert "answered HTTP 500" in looks[0]["metadata"]["lastError"]
    measurement = finished_measurements(run)[-1]
    assert measurement["phase"] == "Error"
    assert measurement["message"].endswith(
        "answered HTTP 500: internal error (5 failed reads in a row)"
    )
    assert phase_of(run) == "Error"
    assert endpoint.hits["/metrics"] == 1 + 3 + 5
