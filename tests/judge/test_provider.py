"""The rollwise/judge provider: one measurement per judgement, Running while the evidence
accumulates, Successful on a pass, Failed on a regression, the evidence in its metadata.

The Prometheus source talks to a real local HTTP server that answers Prometheus' instant-query
API with the counters a test sets; time is a manual clock. Traefik's exposition text is read by
the same parser as the builtin plugin (the e2e test runs it against a real Traefik).
"""

from __future__ import annotations

import json
import math
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from rollwise.api.models import Measurement, Metric
from rollwise.core.timestamps import ManualClock
from rollwise.providers.base import (
    ProviderContext,
    ProviderServices,
    measure,
    provider_for,
    resume,
    terminate,
)
from rollwise.providers.judge import (
    COUNTERS_KEY,
    STATE_KEY,
    JudgeProvider,
    bucket_increase,
    duration_text,
    increase,
    traefik_arm,
)

from .conftest import LocalHTTPServer

NOW = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)
CANARY = 'http_requests_total{version="canary"}'
CANARY_ERRORS = 'http_requests_total{version="canary",status=~"5.."}'
BASELINE = 'http_requests_total{version="stable"}'
BASELINE_ERRORS = 'http_requests_total{version="stable",status=~"5.."}'


class FakeCounters:
    """What the scripted Prometheus answers: cumulative counters per query."""

    def __init__(self, server: LocalHTTPServer) -> None:
        self.values: dict[str, float] = {
            CANARY: 0,
            CANARY_ERRORS: 0,
            BASELINE: 0,
            BASELINE_ERRORS: 0,
        }
        self.down = False
        server.route("POST", "/api/v1/query", self.answer)

    def add(
        self, *, canary: float, canary_errors: float, baseline: float, baseline_errors: float
    ) -> None:
        self.values[CANARY] += canary
        self.values[CANARY_ERRORS] += canary_errors
        self.values[BASELINE] += baseline
        self.values[BASELINE_ERRORS] += baseline_errors

    async def answer(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.json_response({"status": "error", "error": "storage is down"}, status=503)
        query = urllib.parse.parse_qs((await request.read()).decode())["query"][0]
        value = self.values[query]
        result = [{"metric": {"pod": "a"}, "value": [0, str(value)]}]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )


def judge_metric(condition: bool = False, **config: Any) -> Metric:
    raw: dict[str, Any] = {
        "name": "judge",
        "provider": {
            "plugin": {
                "rollwise/judge": {
                    "source": "prometheus",
                    "window": "10s",
                    "canary": {"requests": CANARY, "errors": CANARY_ERRORS},
                    "baseline": {"requests": BASELINE, "errors": BASELINE_ERRORS},
                    **config,
                }
            }
        },
    }
    if condition:
        raw["successCondition"] = 'result == "pass"'
        raw["failureCondition"] = 'result == "fail"'
    return Metric.model_validate(raw)


def context(clock: ManualClock) -> ProviderContext:
    return ProviderContext(clock=clock)


async def look(
    metric: Metric,
    measurement: Measurement,
    clock: ManualClock,
    counters: FakeCounters,
    **batch: float,
) -> Measurement:
    counters.add(**batch)
    clock.advance(10)
    return await resume(metric, measurement, context(clock))


async def test_a_regression_fails_the_measurement_with_its_evidence(
    http_server: LocalHTTPServer,
) -> None:
    counters = FakeCounters(http_server)
    counters.add(canary=500, canary_errors=50, baseline=5000, baseline_errors=5)  # before: ignored
    clock = ManualClock(NOW)
    metric = judge_metric(address=http_server.url)
    started = await measure(metric, context(clock))
    assert started.phase == "Running"
    assert started.resume_at == "2026-11-26T01:50:10Z"
    assert started.metadata is not None
    assert started.metadata["decision"] == "no-data"
    assert COUNTERS_KEY in started.metadata
    assert STATE_KEY in started.metadata
    clock.advance(5)
    assert await resume(metric, started, context(clock)) == started  # not due yet
    clock.advance(5)

    first = await resume(metric, started, context(clock))  # nothing happened in the window
    assert first.phase == "Running"
    assert first.value == "no-data"
    assert first.resume_at == "2026-11-26T01:50:20Z"

    done = await look(
        metric,
        first,
        clock,
        counters,
        canary=200,
        canary_errors=10,
        baseline=800,
        baseline_errors=1,
    )
    assert done.phase == "Failed"
    assert done.value == "fail"
    assert done.started_at == "2026-11-26T01:50:00Z"
    assert done.finished_at == "2026-11-26T01:50:20Z"
    assert done.message is not None
    assert done.message.startswith(
        "canary 5% errors of 200 requests vs baseline 0.12% of 800; evidence "
    )
    assert done.message.endswith("≥ 100 → regression")
    metadata = done.metadata or {}
    assert metadata["decision"] == "fail"
    assert (metadata["canaryRequests"], metadata["canaryErrors"]) == ("200", "10")
    assert (metadata["baselineRequests"], metadata["baselineErrors"]) == ("800", "1")
    assert float(metadata["evidence"].replace(",", "")) >= 100
    assert float(metadata["pValue"]) <= 0.01
    assert metadata["canaryErrorRate"] == "5%"
    assert metadata["looks"] == "2"


async def test_a_healthy_canary_keeps_measuring_with_an_estimate_then_passes(
    http_server: LocalHTTPServer,
) -> None:
    counters = FakeCounters(http_server)
    clock = ManualClock(NOW)
    metric = judge_metric(address=http_server.url, marginAbs="0.5%")
    measurement = await measure(metric, context(clock))
    measurement = await look(
        metric,
        measurement,
        clock,
        counters,
        canary=300,
        canary_errors=0,
        baseline=1200,
        baseline_errors=1,
    )
    assert measurement.phase == "Running"
    assert measurement.value == "continue"
    metadata = measurement.metadata or {}
    assert metadata["expected"] == "pass"
    assert metadata["canaryRequestRate"] == "30/s"
    needed = int(metadata["requestsNeeded"])
    assert metadata["estimatedTime"] == duration_text(needed / 30)
    while measurement.phase == "Running":
        measurement = await look(
            metric,
            measurement,
            clock,
            counters,
            canary=300,
            canary_errors=0,
            baseline=1200,
            baseline_errors=1,
        )
    assert measurement.phase == "Successful"
    assert measurement.value == "pass"
    assert measurement.message is not None
    assert measurement.message.endswith("→ within margin")
    assert "requestsNeeded" not in (measurement.metadata or {})


async def test_conditions_judge_the_final_value_when_the_metric_has_them(
    http_server: LocalHTTPServer,
) -> None:
    counters = FakeCounters(http_server)
    clock = ManualClock(NOW)
    metric = judge_metric(condition=True, address=http_server.url)
    measurement = await measure(metric, context(clock))
    measurement = await look(
        metric,
        measurement,
        clock,
        counters,
        canary=100,
        canary_errors=50,
        baseline=400,
        baseline_errors=0,
    )
    assert (measurement.phase, measurement.value) == ("Failed", "fail")


async def test_past_max_duration_an_undecided_judgement_is_inconclusive(
    http_server: LocalHTTPServer,
) -> None:
    counters = FakeCounters(http_server)
    clock = ManualClock(NOW)
    metric = judge_metric(address=http_server.url, maxDuration="30s")
    measurement = await measure(metric, context(clock))
    for _ in range(3):
        measurement = await look(
            metric,
            measurement,
            clock,
            counters,
            canary=10,
            canary_errors=0,
            baseline=40,
            baseline_errors=0,
        )
    assert measurement.phase == "Inconclusive"
    assert measurement.value == "no-data"
    assert measurement.message is not None
    assert measurement.message.startswith("no decision within maxDuration 30s: too little data")


async def test_a_failed_read_keeps_the_evidence_and_the_fifth_in_a_row_is_an_error(
    http_server: LocalHTTPServer,
) -> None:
    counters = FakeCounters(http_server)
    clock = ManualClock(NOW)
    metric = judge_metric(address=http_server.url)
    measurement = await measure(metric, context(clock))
    measurement = await look(
        metric,
        measurement,
        clock,
        counters,
        canary=100,
        canary_errors=1,
        baseline=400,
        baseline_errors=1,
    )
    state = (measurement.metadata or {})[STATE_KEY]
    counters.down = True
    for attempt in range(1, 5):
        measurement = await look(
            metric,
            measurement,
            clock,
            counters,
            canary=0,
            canary_errors=0,
            baseline=0,
            baseline_errors=0,
        )
        assert measurement.phase == "Running"
        metadata = measurement.metadata or {}
        assert metadata["rollwise.io/judge-failures"] == str(attempt)
        assert "storage is down" in metadata["lastError"]
        assert metadata[STATE_KEY] == state
    counters.down = False
    recovered = await look(
        metric,
        measurement,
        clock,
        counters,
        canary=100,
        canary_errors=1,
        baseline=400,
        baseline_errors=1,
    )
    assert recovered.phase == "Running"
    assert (recovered.metadata or {})["canaryRequests"] == "200"
    assert "rollwise.io/judge-failures" not in (recovered.metadata or {})
    counters.down = True
    for _ in range(5):
        recovered = await look(
            metric,
            recovered,
            clock,
            counters,
            canary=0,
            canary_errors=0,
            baseline=0,
            baseline_errors=0,
        )
    assert recovered.phase == "Error"
    assert recovered.message is not None
    assert "storage is down" in recovered.message
    assert "(5 failed reads in a row)" in recovered.message


async def test_the_judgement_survives_a_restart(http_server: LocalHTTPServer) -> None:
    """A new provider instance resuming the measurement as stored (JSON) goes on from there."""
    counters = FakeCounters(http_server)
    clock = ManualClock(NOW)
    metric = judge_metric(address=http_server.url)
    measurement = await measure(metric, context(clock))
    measurement = await look(
        metric,
        measurement,
        clock,
        counters,
        canary=200,
        canary_errors=2,
        baseline=800,
        baseline_errors=2,
    )
    stored = Measurement.model_validate(json.loads(json.dumps(measurement.to_raw())))
    counters.add(canary=200, canary_errors=2, baseline=800, baseline_errors=2)
    clock.advance(10)
    again = await JudgeProvider().resume(metric, stored, context(clock))
    assert (again.metadata or {})["canaryRequests"] == "400"
    assert (again.metadata or {})["looks"] == "2"


async def test_terminate_takes_a_last_look(http_server: LocalHTTPServer) -> None:
    counters = FakeCounters(http_server)
    clock = ManualClock(NOW)
    metric = judge_metric(address=http_server.url)
    measurement = await measure(metric, context(clock))
    counters.add(canary=50, canary_errors=0, baseline=200, baseline_errors=0)
    clock.advance(3)
    last = await terminate(metric, measurement, context(clock))
    assert last.phase == "Inconclusive"
    assert (last.metadata or {})["canaryRequests"] == "50"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"source": "traefik", "baselineService": "b"},
            "`canaryService` (a Kubernetes Service) is required",
        ),
        (
            {"source": "carrier-pigeon"},
            "source must be traefik or prometheus, not 'carrier-pigeon'",
        ),
        ({"alpha": 2}, "alpha must be between 0 and 1, not 2"),
        ({"alpha": "many"}, "alpha must be a number, not 'many'"),
        ({"window": "soon"}, "window: "),
        ({"errors": False}, "nothing to judge"),
        ({"canary": {"requests": CANARY}}, "`canary.requests` and `canary.errors` are required"),
    ],
)
async def test_a_bad_configuration_is_an_error_measurement(
    http_server: LocalHTTPServer, config: dict[str, Any], message: str
) -> None:
    metric = judge_metric(address=http_server.url, **config)
    measurement = await measure(metric, context(ManualClock(NOW)))
    assert measurement.phase == "Error"
    assert measurement.message is not None
    assert message in measurement.message


async def test_the_traefik_source_needs_traefik() -> None:
    metric = Metric.model_validate(
        {
            "name": "judge",
            "provider": {
                "plugin": {"rollwise/judge": {"canaryService": "c", "baselineService": "s"}}
            },
        }
    )
    assert isinstance(provider_for(metric), JudgeProvider)
    measurement = await measure(
        metric, ProviderContext(clock=ManualClock(NOW), services=ProviderServices())
    )
    assert measurement.phase == "Error"
    assert "only the local platform provides; use source: prometheus" in (measurement.message or "")


TRAEFIK_TEXT = """\
traefik_service_requests_total{code="200",method="GET",protocol="http",service="default-a@file"} 10
traefik_service_requests_total{code="503",method="GET",protocol="http",service="default-a@file"} 3
traefik_service_requests_total{code="200",method="GET",protocol="http",service="default-b@file"} 99
traefik_service_request_duration_seconds_bucket{code="200",service="default-a@file",le="0.1"} 8
traefik_service_request_duration_seconds_bucket{code="200",service="default-a@file",le="+Inf"} 10
traefik_service_request_duration_seconds_bucket{code="503",service="default-a@file",le="0.1"} 0
traefik_service_request_duration_seconds_bucket{code="503",service="default-a@file",le="+Inf"} 3
"""


def test_traefik_counters_are_read_per_service_with_5xx_as_errors() -> None:
    arm = traefik_arm(TRAEFIK_TEXT, "default-a@file")
    assert sum(arm.requests.values()) == 13
    assert sum(arm.errors.values()) == 3
    assert {le: sum(series.values()) for le, series in arm.buckets.items()} == {
        "0.1": 8,
        "+Inf": 13,
    }


def test_counters_are_differenced_per_series_through_restarts_and_new_series() -> None:
    before = {"a": 100.0, "b": 50.0, "gone": 7.0}
    after = {"a": 130.0, "b": 20.0, "new": 5.0}  # b restarted; new appeared; gone disappeared
    assert increase(before, after) == 30 + 20 + 5


def test_bucket_increases_are_made_cumulative_and_monotone() -> None:
    before = {"0.1": {"x": 10.0}, "+Inf": {"x": 12.0}}
    after = {"0.1": {"x": 20.0}, "0.5": {"x": 1.0}, "+Inf": {"x": 21.0}}
    assert bucket_increase(before, after) == {0.1: 10.0, 0.5: 10.0, math.inf: 10.0}
