"""What the prometheus provider sends, and how it reads answers Prometheus' HTTP API documents,
against a local server: headers, basic auth, OAuth2 client credentials, the 405 fallback to
GET, timeouts, TLS verification, warnings, and configuration mistakes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from rollwise.api.models import Metric
from rollwise.core.timestamps import ManualClock
from rollwise.providers.base import ProviderContext, measure
from rollwise.providers.prometheus import (
    RESOLVED_QUERY_KEY,
    PrometheusProvider,
    QueryFailure,
    QueryResult,
)

from .conftest import LocalHTTPServer

NOW = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)
VECTOR = {
    "status": "success",
    "data": {
        "resultType": "vector",
        "result": [
            {"metric": {"service": "a"}, "value": [NOW.timestamp(), "0.99"]},
            {"metric": {"service": "b"}, "value": [NOW.timestamp(), "NaN"]},
        ],
    },
}


def context(**secrets: str) -> ProviderContext:
    """A run whose secret args resolved to these values (so they are masked)."""
    return ProviderContext(
        clock=ManualClock(NOW), secrets=secrets, masked_values=frozenset(secrets.values())
    )


def metric(address: str, query: str = "up", **extra: Any) -> Metric:
    return Metric.model_validate(
        {
            "name": "m",
            "successCondition": "result[0] >= 0.95",
            "provider": {"prometheus": {"address": address, "query": query, **extra}},
        }
    )


async def query(m: Metric, ctx: ProviderContext | None = None) -> QueryResult | QueryFailure:
    return await PrometheusProvider().query(m, ctx or context())


async def test_an_instant_query_is_a_form_post_at_the_clock_time(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("POST", "/api/v1/query", VECTOR)
    outcome = await query(metric(http_server.url, 'sum(up{job="x"})'))
    assert isinstance(outcome, QueryResult)
    assert outcome.value[0] == 0.99  # type: ignore[index]
    [request] = http_server.requests
    assert request.form() == {"query": ['sum(up{job="x"})'], "time": [f"{NOW.timestamp():.3f}"]}
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_a_server_that_refuses_post_is_asked_with_get(http_server: LocalHTTPServer) -> None:
    async def no_post(request: web.Request) -> web.StreamResponse:
        return web.Response(status=405)

    http_server.route("POST", "/api/v1/query", no_post)
    http_server.json("GET", "/api/v1/query", VECTOR)
    outcome = await query(metric(http_server.url, "up"))
    assert isinstance(outcome, QueryResult)
    assert [r.method for r in http_server.requests] == ["POST", "GET"]
    assert http_server.requests[1].query["query"] == ["up"]


async def test_headers_and_basic_auth_are_sent(http_server: LocalHTTPServer) -> None:
    http_server.json("POST", "/api/v1/query", VECTOR)
    m = metric(
        http_server.url,
        headers=[{"key": "X-Scope-OrgID", "value": "team-a"}, {"key": "X-Other", "value": "1"}],
        authentication={"basicAuth": {"username": "argo", "password": "s3cret"}},
    )
    assert isinstance(await query(m), QueryResult)
    headers = http_server.requests[0].headers
    assert headers["X-Scope-OrgID"] == "team-a"
    assert headers["X-Other"] == "1"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"argo:s3cret").decode()


async def test_oauth2_client_credentials_get_a_bearer_token(http_server: LocalHTTPServer) -> None:
    http_server.json(
        "POST",
        "/oauth/token",
        {"access_token": "tok-123", "token_type": "Bearer", "expires_in": 60},
    )
    http_server.json("POST", "/api/v1/query", VECTOR)
    m = metric(
        http_server.url,
        authentication={
            "oauth2": {
                "tokenUrl": f"{http_server.url}/oauth/token",
                "clientId": "rollouts",
                "clientSecret": "shh",
                "scopes": ["metrics:read", "openid"],
            }
        },
    )
    assert isinstance(await query(m), QueryResult)
    token_request, query_request = http_server.requests
    assert token_request.form() == {
        "grant_type": ["client_credentials"],
        "scope": ["metrics:read openid"],
    }
    assert (
        token_request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"rollouts:shh").decode()
    )
    assert query_request.headers["Authorization"] == "Bearer tok-123"


async def test_oauth2_credentials_move_to_the_form_when_the_header_is_refused(
    http_server: LocalHTTPServer,
) -> None:
    async def token(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if form.get("client_id") == "rollouts" and form.get("client_secret") == "shh":
            return web.json_response({"access_token": "tok-form", "token_type": "Bearer"})
        return web.json_response({"error": "invalid_client"}, status=401)

    http_server.route("POST", "/oauth/token", token)
    http_server.json("POST", "/api/v1/query", VECTOR)
    m = metric(
        http_server.url,
        authentication={
            "oauth2": {
                "tokenUrl": f"{http_server.url}/oauth/token",
                "clientId": "rollouts",
                "clientSecret": "shh",
            }
        },
    )
    assert isinstance(await query(m), QueryResult)
    assert http_server.requests[-1].headers["Authorization"] == "Bearer tok-form"


async def test_a_refused_oauth2_token_is_an_error_and_the_secret_is_masked(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("POST", "/oauth/token", {"error": "invalid_client: shh is wrong"}, status=401)
    m = metric(
        http_server.url,
        authentication={
            "oauth2": {
                "tokenUrl": f"{http_server.url}/oauth/token",
                "clientId": "rollouts",
                "clientSecret": "shh",
            }
        },
    )
    measurement = await measure(m, context(**{"prom/secret": "shh"}))
    assert measurement.phase == "Error"
    assert measurement.message == (
        f"Prometheus: OAuth2 token request to {http_server.url}/oauth/token failed with HTTP "
        '401: {"error": "invalid_client: ***** is wrong"}'
    )
    assert not [r for r in http_server.requests if r.path == "/api/v1/query"]


async def test_a_slow_prometheus_times_out_with_the_metric_timeout(
    http_server: LocalHTTPServer,
) -> None:
    http_server.hang("POST", "/api/v1/query")
    outcome = await query(metric(http_server.url, timeout=1))
    assert outcome == QueryFailure(
        f"Prometheus at {http_server.url}/api/v1/query did not answer within 1 s"
    )


async def test_an_untrusted_certificate_is_refused_unless_insecure(
    https_server: LocalHTTPServer,
) -> None:
    https_server.json("POST", "/api/v1/query", VECTOR)
    refused = await query(metric(https_server.url))
    assert isinstance(refused, QueryFailure)
    assert refused.message.startswith(f"Prometheus at {https_server.url}/api/v1/query: TLS")
    assert "insecure: true" in refused.message
    assert not https_server.requests
    accepted = await query(metric(https_server.url, insecure=True))
    assert isinstance(accepted, QueryResult)


async def test_warnings_are_kept_in_the_metadata(http_server: LocalHTTPServer) -> None:
    http_server.json(
        "POST", "/api/v1/query", {**VECTOR, "warnings": ["partial data", "slow store"]}
    )
    measurement = await measure(metric(http_server.url, "up"), context())
    assert measurement.metadata == {
        RESOLVED_QUERY_KEY: "up",
        "warnings": "partial data; slow store",
    }
    assert measurement.phase == "Successful"  # result[0] is 0.99


async def test_an_error_answer_is_an_error_with_its_type_and_text(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json(
        "POST",
        "/api/v1/query",
        {"status": "error", "errorType": "timeout", "error": "query timed out in expression"},
        status=503,
    )
    assert await query(metric(http_server.url)) == QueryFailure(
        "Prometheus query failed: timeout: query timed out in expression"
    )


async def test_a_non_json_answer_is_an_error_with_its_status_and_start(
    http_server: LocalHTTPServer,
) -> None:
    http_server.text("POST", "/api/v1/query", "<html>bad gateway</html>", status=502)
    assert await query(metric(http_server.url)) == QueryFailure(
        f"Prometheus at {http_server.url}/api/v1/query answered HTTP 502 without a JSON body: "
        "<html>bad gateway</html>"
    )


async def test_a_range_query_sends_start_end_and_step(http_server: LocalHTTPServer) -> None:
    matrix = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"a": "1"}, "values": [[1, "1"], [2, "2"]]},
                {"metric": {"a": "2"}, "values": [[1, "+Inf"], [2, "-Inf"]]},
            ],
        },
    }
    http_server.json("POST", "/api/v1/query_range", matrix)
    m = metric(
        http_server.url,
        rangeQuery={"start": 'now() - duration("10m")', "end": "now()", "step": "1m"},
    )
    outcome = await query(m)
    assert outcome == QueryResult(value=[1.0, 2.0, float("inf"), float("-inf")])
    assert http_server.requests[0].form() == {
        "query": ["up"],
        "start": [f"{NOW.timestamp() - 600:.3f}"],
        "end": [f"{NOW.timestamp():.3f}"],
        "step": ["60"],
    }


async def test_sigv4_for_amazon_managed_prometheus_is_a_clear_error() -> None:
    m = metric(
        "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1",
        authentication={"sigv4": {"region": "eu-west-1"}},
    )
    outcome = await query(m)
    assert isinstance(outcome, QueryFailure)
    assert "sigv4" in outcome.message
    assert "not supported in rollwise yet" in outcome.message


async def test_configuration_mistakes_are_errors_not_exceptions(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", raising=False)
    assert await query(metric("")) == QueryFailure(
        "prometheus.address is not set (nor the environment variable "
        "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS)"
    )
    assert await query(metric(http_server.url, query=" ")) == QueryFailure(
        "prometheus.query is empty"
    )
    assert await query(metric(http_server.url, timeout=-1)) == QueryFailure(
        "prometheus.timeout must not be negative (-1)"
    )
    bad_step = metric(http_server.url, rangeQuery={"start": "now()", "end": "now()", "step": "x"})
    outcome = await query(bad_step)
    assert isinstance(outcome, QueryFailure)
    assert outcome.message.startswith("prometheus.rangeQuery.step: invalid duration 'x'")
    assert not http_server.requests


async def test_the_address_may_come_from_the_environment(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", http_server.url)
    http_server.json("POST", "/api/v1/query", VECTOR)
    assert isinstance(await query(metric("")), QueryResult)


async def test_a_range_bound_that_is_not_a_time_is_an_error(http_server: LocalHTTPServer) -> None:
    for start, problem in (("now() - 5", ""), ('duration("5m")', "must yield a time")):
        m = metric(http_server.url, rangeQuery={"start": start, "end": "now()", "step": "1m"})
        outcome = await query(m)
        assert isinstance(outcome, QueryFailure)
        assert outcome.message.startswith(f"prometheus.rangeQuery.start {start!r}: ")
        assert problem in outcome.message
    assert not http_server.requests
