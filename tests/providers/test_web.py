"""The web provider against a local server that answers like a real health API: JSON picked
with Kubernetes JSONPath, plain-text bodies, errors, slowness, methods, bodies and headers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollwise.api.models import Metric
from rollwise.core.timestamps import ManualClock
from rollwise.providers.base import ProviderContext, measure, provider_for
from rollwise.providers.http import HTTPFailure, fetch
from rollwise.providers.web import WebError, WebProvider, WebValue

from .conftest import LocalHTTPServer, free_port

NOW = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)
HEALTH = {
    "health": {"status": "healthy", "checks": [{"name": "db", "ok": True, "latency": 12}]},
    "data": {"ok": True, "error-rate": 0.01, "items": [3, 5, 8]},
}


def web_metric(url: str, condition: str | None = None, **fields: Any) -> Metric:
    raw: dict[str, Any] = {"name": "health", "provider": {"web": {"url": url, **fields}}}
    if condition is not None:
        raw["successCondition"] = condition
    return Metric.model_validate(raw)


def context() -> ProviderContext:
    return ProviderContext(clock=ManualClock(NOW))


async def value_of(metric: Metric) -> WebValue | WebError:
    return await WebProvider().fetch_value(metric)


async def test_the_seed_health_check_passes_on_a_healthy_answer(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("GET", "/check", HEALTH)
    # The seed's Custom Web API metric, with its URL pointing at our server.
    metric = web_metric(
        f"{http_server.url}/check?service=myapp",
        'result == "healthy"',
        jsonPath="{$.health.status}",
    )
    assert await value_of(metric) == WebValue("healthy")
    measurement = await measure(metric, context())
    assert measurement.phase == "Successful"
    assert measurement.value == "healthy"
    assert http_server.requests[0].query == {"service": ["myapp"]}


async def test_the_seed_health_check_fails_on_a_degraded_answer(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("GET", "/check", {"health": {"status": "degraded"}})
    metric = web_metric(
        f"{http_server.url}/check", 'result == "healthy"', jsonPath="{$.health.status}"
    )
    assert (await measure(metric, context())).phase == "Failed"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("{$.data.ok}", True),
        ("{.data.ok}", True),
        ("{$.data['error-rate']}", 0.01),
        ('{$["data"]["items"][1]}', 5.0),
        ("{$.data.items[-1]}", 8.0),
        ("{$.data.items[*]}", 3.0),
        ("{$.health.checks[*].latency}", 12.0),
        ("{$..latency}", 12.0),
        ("{$.health}", HEALTH["health"]),
        ("{$}", HEALTH),
    ],
)
async def test_json_path_picks_the_first_match(
    http_server: LocalHTTPServer, path: str, expected: object
) -> None:
    http_server.json("GET", "/check", HEALTH)
    outcome = await value_of(web_metric(f"{http_server.url}/check", jsonPath=path))
    assert outcome == WebValue(expected)


async def test_numbers_are_floats_as_go_decodes_them(http_server: LocalHTTPServer) -> None:
    http_server.json("GET", "/n", {"count": 3})
    outcome = await value_of(web_metric(f"{http_server.url}/n", jsonPath="{$.count}"))
    assert isinstance(outcome, WebValue)
    assert isinstance(outcome.value, float)


async def test_the_default_json_path_is_the_whole_document(http_server: LocalHTTPServer) -> None:
    http_server.json("GET", "/list", [0.5, 0.75])
    assert await value_of(web_metric(f"{http_server.url}/list")) == WebValue([0.5, 0.75])


async def test_a_non_json_body_is_the_result_as_a_string(http_server: LocalHTTPServer) -> None:
    http_server.text("GET", "/status", "OK all good\n")
    metric = web_metric(f"{http_server.url}/status", 'result startsWith "OK"', jsonPath="{$.x}")
    assert await value_of(metric) == WebValue("OK all good\n")
    assert (await measure(metric, context())).phase == "Successful"


async def test_a_path_that_matches_nothing_is_an_error(http_server: LocalHTTPServer) -> None:
    http_server.json("GET", "/check", HEALTH)
    outcome = await value_of(web_metric(f"{http_server.url}/check", jsonPath="{$.health.nope}"))
    assert isinstance(outcome, WebError)
    assert outcome.message.startswith(
        "result of web metric produced no value: {$.health.nope} matched nothing in "
    )


async def test_a_server_error_is_an_error_with_status_and_body(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("GET", "/check", {"error": "database down"}, status=500)
    measurement = await measure(web_metric(f"{http_server.url}/check", "result == true"), context())
    assert measurement.phase == "Error"
    assert measurement.message == (
        f"received non 2xx response code: 500 from {http_server.url}/check: "
        '{"error": "database down"}'
    )


async def test_a_long_error_body_is_cut(http_server: LocalHTTPServer) -> None:
    http_server.text("GET", "/check", "x" * 5000, status=404)
    outcome = await value_of(web_metric(f"{http_server.url}/check"))
    assert isinstance(outcome, WebError)
    assert outcome.message.endswith("x" * 200 + "...")


async def test_a_slow_server_times_out_after_timeout_seconds(http_server: LocalHTTPServer) -> None:
    http_server.hang("GET", "/slow")
    outcome = await value_of(web_metric(f"{http_server.url}/slow", timeoutSeconds=1))
    assert outcome == WebError(f"web metric at {http_server.url}/slow did not answer within 1 s")


async def test_an_unreachable_server_is_an_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/check"
    outcome = await value_of(web_metric(url))
    assert outcome == WebError(f"web metric at {url} is unreachable: connection refused")


async def test_post_sends_json_body_with_content_type_and_headers(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("POST", "/evaluate", {"verdict": "pass"})
    metric = web_metric(
        f"{http_server.url}/evaluate",
        method="POST",
        jsonBody={"service": "myapp", "window": "5m", "thresholds": [0.95]},
        headers=[{"key": "Authorization", "value": "Bearer abc"}],
        jsonPath="{$.verdict}",
    )
    assert await value_of(metric) == WebValue("pass")
    [request] = http_server.requests
    assert request.json() == {"service": "myapp", "window": "5m", "thresholds": [0.95]}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer abc"


async def test_put_sends_a_string_body_as_is(http_server: LocalHTTPServer) -> None:
    http_server.json("PUT", "/evaluate", {"ok": True})
    metric = web_metric(
        f"{http_server.url}/evaluate",
        method="PUT",
        body="service=myapp",
        headers=[{"key": "Content-Type", "value": "text/plain"}],
        jsonPath="{$.ok}",
    )
    assert await value_of(metric) == WebValue(True)
    assert http_server.requests[0].body == b"service=myapp"
    assert http_server.requests[0].headers["Content-Type"] == "text/plain"


async def test_an_untrusted_certificate_is_refused_unless_insecure(
    https_server: LocalHTTPServer,
) -> None:
    https_server.json("GET", "/check", HEALTH)
    refused = await value_of(web_metric(f"{https_server.url}/check"))
    assert isinstance(refused, WebError)
    assert "TLS certificate not trusted" in refused.message
    accepted = await value_of(
        web_metric(f"{https_server.url}/check", insecure=True, jsonPath="{$.data.ok}")
    )
    assert accepted == WebValue(True)


async def test_oauth2_client_credentials_get_a_bearer_token(http_server: LocalHTTPServer) -> None:
    http_server.json("POST", "/token", {"access_token": "web-tok", "token_type": "Bearer"})
    http_server.json("GET", "/check", HEALTH)
    metric = web_metric(
        f"{http_server.url}/check",
        authentication={
            "oauth2": {"tokenUrl": f"{http_server.url}/token", "clientId": "a", "clientSecret": "b"}
        },
    )
    assert isinstance(await value_of(metric), WebValue)
    assert http_server.requests[-1].headers["Authorization"] == "Bearer web-tok"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": ""}, "web.url is required"),
        ({"method": "DELETE"}, "web.method 'DELETE' is not one of GET, POST, PUT"),
        ({"body": "x"}, "web.body and web.jsonBody are only allowed with POST or PUT"),
        (
            {"method": "POST", "body": "x", "jsonBody": {}},
            "web.body and web.jsonBody cannot both be set",
        ),
        ({"timeoutSeconds": -1}, "web.timeoutSeconds must not be negative (-1)"),
        (
            {"jsonPath": "{$.items[?(@.ok)]}"},
            "jsonPath '{$.items[?(@.ok)]}': expected [n], [*] or ['field'] (filters, slices are "
            "not supported) at position 7 of '$.items[?(@.ok)]'",
        ),
    ],
)
async def test_configuration_mistakes_are_errors_before_any_request(
    http_server: LocalHTTPServer, fields: dict[str, Any], message: str
) -> None:
    metric = web_metric(fields.pop("url", f"{http_server.url}/check"), **fields)
    assert await value_of(metric) == WebError(message)
    assert not http_server.requests


def test_the_registry_gives_the_web_provider() -> None:
    assert isinstance(provider_for(web_metric("http://127.0.0.1:1")), WebProvider)


async def test_a_host_name_that_does_not_resolve_says_so() -> None:
    """The seed's `http://prometheus:9090` on a laptop: the message names the cause."""
    answer = await fetch("GET", "http://no-such-host.invalid/x", what="web metric", timeout_s=5)
    assert isinstance(answer, HTTPFailure)
    assert "does not resolve" in answer.message
