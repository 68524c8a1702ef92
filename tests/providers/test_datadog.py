"""The `datadog` provider against a local server that answers as Datadog's API documents.

What is checked: the request (v1 `GET /api/v1/query`, v2 `POST /api/v2/query/scalar` with its
`scalar_request` body, the key headers, the time window from the CRD defaults), the result
typing of reference 2.10 as the measurement's phase under realistic conditions, where the
credentials come from, and every failure as an Error measurement with a clear message.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from rollwise.api.models import Metric
from rollwise.core.analysis.nodata import with_no_data_policy
from rollwise.core.timestamps import ManualClock
from rollwise.providers.base import ProviderContext, measure
from rollwise.providers.datadog import defaults, validate

from .conftest import LocalHTTPServer, free_port

NOW = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
API_KEY = "0123456789abcdef0123456789abcdef"
APP_KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def no_datadog_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DD_API_KEY", "DD_APP_KEY", "DD_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


def metric(datadog: dict[str, Any], **fields: Any) -> Metric:
    return Metric.model_validate({"name": "error-rate", **fields, "provider": {"datadog": datadog}})


def context(address: str) -> ProviderContext:
    values = {"datadog/api-key": API_KEY, "datadog/app-key": APP_KEY, "datadog/address": address}
    return ProviderContext(clock=ManualClock(NOW), run_name="guestbook-6c5d9-2", secrets=values)


def series(*points: tuple[float, float | None]) -> dict[str, Any]:
    """A v1 `/api/v1/query` answer with one series (Datadog's documented shape)."""
    return {
        "status": "ok",
        "res_type": "time_series",
        "from_date": (NOW_S - 300) * 1000,
        "to_date": NOW_S * 1000,
        "query": "avg:trace.http.request.errors{service:guestbook}",
        "series": [
            {
                "metric": "trace.http.request.errors",
                "display_name": "trace.http.request.errors",
                "aggr": "avg",
                "scope": "service:guestbook",
                "interval": 20,
                "length": len(points),
                "pointlist": [[ts * 1000, value] for ts, value in points],
            }
        ],
    }


def scalar(values: list[float | None], *groups: tuple[str, list[list[str]]]) -> dict[str, Any]:
    """A v2 `/api/v2/query/scalar` answer (Datadog's `ScalarFormulaQueryResponse`)."""
    columns: list[dict[str, Any]] = [
        {"name": name, "type": "group", "values": tags} for name, tags in groups
    ]
    columns.append({"name": "query", "type": "number", "values": values, "meta": {"unit": None}})
    return {"data": {"type": "scalar_response", "attributes": {"columns": columns}}}


async def test_v1_is_the_default_and_reads_the_last_point_of_the_first_series(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("GET", "/api/v1/query", series((NOW_S - 40, 0.02), (NOW_S - 20, 0.004)))
    query = "avg:trace.http.request.errors{service:guestbook}.as_rate()"
    result = await measure(
        metric({"query": query}, successCondition="result <= 0.01"), context(http_server.url)
    )
    assert result.phase == "Successful"
    assert result.value == "0.004"
    assert result.metadata == {
        "httpStatusCode": "200",
        "responseReceived": "true",
        "requestOutcome": "success",
    }
    (request,) = http_server.requests
    assert request.method == "GET"
    # CRD defaults: apiVersion v1 and a 5 minute window ending now, in Unix seconds.
    assert request.query == {
        "query": [query],
        "from": [str(NOW_S - 300)],
        "to": [str(NOW_S)],
    }
    assert request.headers["DD-API-KEY"] == API_KEY
    assert request.headers["DD-APPLICATION-KEY"] == APP_KEY
    assert request.headers["Content-Type"] == "application/json"


async def test_v1_value_over_the_threshold_fails_the_measurement(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("GET", "/api/v1/query", series((NOW_S - 20, 0.07)))
    result = await measure(
        metric(
            {"apiVersion": "v1", "interval": "10m", "query": "q"}, successCondition="result <= 0.01"
        ),
        context(http_server.url),
    )
    assert (result.phase, result.value) == ("Failed", "0.07")
    assert http_server.requests[0].query["from"] == [str(NOW_S - 600)]


async def test_v1_skips_trailing_null_points(http_server: LocalHTTPServer) -> None:
    http_server.json(
        "GET", "/api/v1/query", series((NOW_S - 40, 0.03), (NOW_S - 20, None), (NOW_S, None))
    )
    result = await measure(
        metric({"query": "q"}, successCondition="result <= 0.01"), context(http_server.url)
    )
    assert (result.phase, result.value) == ("Failed", "0.03")


async def test_v1_no_series_is_nil_which_default_can_absorb(http_server: LocalHTTPServer) -> None:
    empty = {**series(), "series": []}
    http_server.json("GET", "/api/v1/query", empty)
    absorbed = await measure(
        metric({"query": "q"}, successCondition="default(result, 0) < 0.05"),
        context(http_server.url),
    )
    assert absorbed.phase == "Successful"
    unguarded = await measure(
        metric({"query": "q"}, successCondition="result < 0.05"), context(http_server.url)
    )
    assert unguarded.phase == "Error"
    assert "nil or empty" in (unguarded.message or "")


async def test_v1_no_data_follows_the_metrics_no_data_policy(http_server: LocalHTTPServer) -> None:
    http_server.json("GET", "/api/v1/query", {**series(), "series": []})
    guarded = with_no_data_policy(
        metric({"query": "q"}, successCondition="result < 0.05"), "inconclusive"
    )
    result = await measure(guarded, context(http_server.url))
    assert result.phase == "Inconclusive"
    assert "no-data policy: inconclusive" in (result.message or "")


async def test_v2_single_query_posts_a_scalar_request(http_server: LocalHTTPServer) -> None:
    http_server.json("POST", "/api/v2/query/scalar", scalar([0.0003332881882246533]))
    query = "sum:requests.error.rate{service:guestbook}"
    result = await measure(
        metric(
            {"apiVersion": "v2", "interval": "10m", "query": query},
            successCondition="result < 0.001",
            failureCondition="result >= 0.001",
        ),
        context(http_server.url),
    )
    assert (result.phase, result.value) == ("Successful", "0.0003332881882246533")
    (request,) = http_server.requests
    assert request.headers["DD-API-KEY"] == API_KEY
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "data": {
            "type": "scalar_request",
            "attributes": {
                "from": (NOW_S - 600) * 1000,
                "to": NOW_S * 1000,
                "queries": [
                    {
                        "aggregator": "last",
                        "data_source": "metrics",
                        "name": "query",
                        "query": query,
                    }
                ],
                "formulas": [],
            },
        }
    }


async def test_v2_queries_with_a_formula_and_an_aggregator(http_server: LocalHTTPServer) -> None:
    http_server.json("POST", "/api/v2/query/scalar", scalar([7.5]))
    config = {
        "apiVersion": "v2",
        "aggregator": "sum",
        "queries": {
            "a": "count:requests.errors{service:my-service}.as_count()",
            "b": "count:requests{service:my-service}.as_count()",
        },
        "formula": "moving_rollup(a, 300, 'sum') / moving_rollup(b, 300, 'sum') * 100",
    }
    result = await measure(
        metric(config, successCondition="default(result, 0) < 5"), context(http_server.url)
    )
    assert (result.phase, result.value) == ("Failed", "7.5")
    attributes = http_server.requests[0].json()["data"]["attributes"]
    assert attributes["from"] == (NOW_S - 300) * 1000
    assert attributes["formulas"] == [{"formula": config["formula"]}]
    assert sorted(attributes["queries"], key=lambda q: q["name"]) == [
        {"aggregator": "sum", "data_source": "metrics", "name": name, "query": query}
        for name, query in sorted(config["queries"].items())
    ]


async def test_v2_grouped_query_is_a_list_with_the_groups_in_metadata(
    http_server: LocalHTTPServer,
) -> None:
    answer = scalar(
        [0.01, None, 0.09],
        ("resource_name", [["GET /a"], ["GET /b"], ["POST /c"]]),
    )
    http_server.json("POST", "/api/v2/query/scalar", answer)
    result = await measure(
        metric(
            {"apiVersion": "v2", "query": "sum:trace.errors{service:s} by {resource_name}"},
            successCondition="max(result) < 0.05",
        ),
        context(http_server.url),
    )
    assert (result.phase, result.value) == ("Failed", "[0.01 0.09]")
    assert result.metadata is not None
    assert json.loads(result.metadata["groups"]) == [
        {"name": "GET /a", "value": 0.01},
        {"name": "POST /c", "value": 0.09},
    ]


async def test_v2_multi_tag_groups_join_the_tag_values(http_server: LocalHTTPServer) -> None:
    answer = scalar(
        [0.5],
        ("env", [["prod"]]),
        ("resource_name", [["GET /a"]]),
    )
    http_server.json("POST", "/api/v2/query/scalar", answer)
    result = await measure(
        metric({"apiVersion": "v2", "query": "q by {env,resource_name}"}),
        context(http_server.url),
    )
    assert result.phase == "Successful"
    assert json.loads((result.metadata or {})["groups"]) == [{"name": "prod,GET /a", "value": 0.5}]


async def test_v2_errors_in_the_answer_are_an_error(http_server: LocalHTTPServer) -> None:
    http_server.json(
        "POST", "/api/v2/query/scalar", {"data": {"errors": "Invalid query: unknown metric"}}
    )
    result = await measure(metric({"apiVersion": "v2", "query": "q"}), context(http_server.url))
    assert result.phase == "Error"
    assert result.message == "There were errors in your query: Invalid query: unknown metric"
    assert (result.metadata or {})["requestOutcome"] == "response_error"


async def test_authentication_refused_is_an_error_quoting_the_body(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("GET", "/api/v1/query", {"errors": ["Forbidden"]}, status=403)
    result = await measure(metric({"query": "q"}), context(http_server.url))
    assert result.phase == "Error"
    assert "refused the credentials (HTTP 403)" in (result.message or "")
    assert '{"errors": ["Forbidden"]}' in (result.message or "")
    assert result.metadata == {
        "httpStatusCode": "403",
        "responseReceived": "true",
        "requestOutcome": "http_error",
    }


async def test_server_error_and_bad_json_are_errors(http_server: LocalHTTPServer) -> None:
    http_server.text("GET", "/api/v1/query", "upstream timed out", status=502)
    failed = await measure(metric({"query": "q"}), context(http_server.url))
    assert failed.phase == "Error"
    assert "HTTP 502: upstream timed out" in (failed.message or "")

    http_server.text("GET", "/api/v1/query", "<html>maintenance</html>")
    garbled = await measure(metric({"query": "q"}), context(http_server.url))
    assert garbled.phase == "Error"
    assert "not JSON" in (garbled.message or "")
    assert "<html>maintenance</html>" in (garbled.message or "")


async def test_connection_refused_is_an_error() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    result = await measure(metric({"query": "q"}), context(address))
    assert result.phase == "Error"
    assert "unreachable" in (result.message or "")
    assert result.metadata == {"responseReceived": "false"}


async def test_request_timeout_is_honoured(http_server: LocalHTTPServer) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response(series((NOW_S, 0.0)))

    http_server.route("GET", "/api/v1/query", stall)
    try:
        result = await measure(
            metric({"query": "q", "requestTimeout": "200ms"}), context(http_server.url)
        )
    finally:
        release.set()
    assert result.phase == "Error"
    assert "did not answer within 0.2 s" in (result.message or "")


async def test_environment_keys_win_over_the_datadog_secret(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.json("GET", "/api/v1/query", series((NOW_S, 0.001)))
    monkeypatch.setenv("DD_API_KEY", "env-api")
    monkeypatch.setenv("DD_APP_KEY", "env-app")
    monkeypatch.setenv("DD_ADDRESS", http_server.url)
    stale = ProviderContext(
        clock=ManualClock(NOW),
        secrets={"datadog/api-key": "old", "datadog/app-key": "old", "datadog/address": "x"},
    )
    result = await measure(metric({"query": "q"}), stale)
    assert result.phase == "Successful"
    assert http_server.requests[0].headers["DD-API-KEY"] == "env-api"
    assert http_server.requests[0].headers["DD-APPLICATION-KEY"] == "env-app"


async def test_secret_ref_reads_only_the_named_secret(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.json("GET", "/api/v1/query", series((NOW_S, 0.001)))
    monkeypatch.setenv("DD_API_KEY", "env-api")
    monkeypatch.setenv("DD_APP_KEY", "env-app")
    team = ProviderContext(
        clock=ManualClock(NOW),
        secrets={
            "team-dd/api-key": "team-api",
            "team-dd/app-key": "team-app",
            "team-dd/address": http_server.url,
            "datadog/api-key": "default-api",
            "datadog/app-key": "default-app",
        },
    )
    config = {"query": "q", "secretRef": {"name": "team-dd", "namespaced": True}}
    result = await measure(metric(config), team)
    assert result.phase == "Successful"
    assert http_server.requests[0].headers["DD-API-KEY"] == "team-api"

    missing = await measure(
        metric({"query": "q", "secretRef": {"name": "nobody"}}), context(http_server.url)
    )
    assert missing.phase == "Error"
    assert "failed to find the credentials" in (missing.message or "")
    assert "'nobody'" in (missing.message or "")


async def test_no_credentials_anywhere_is_an_error_saying_where_to_put_them() -> None:
    result = await measure(metric({"query": "q"}), ProviderContext(clock=ManualClock(NOW)))
    assert result.phase == "Error"
    assert "DD_API_KEY" in (result.message or "")
    assert "'datadog'" in (result.message or "")


async def test_namespaced_secret_ref_without_a_name_is_an_error() -> None:
    config = {"query": "q", "secretRef": {"namespaced": True}}
    result = await measure(metric(config), context("http://127.0.0.1:1"))
    assert (result.phase, result.message) == (
        "Error",
        "secret name is required for namespaced credentials",
    )


async def test_keys_never_appear_in_messages(http_server: LocalHTTPServer) -> None:
    http_server.text("GET", "/api/v1/query", f"bad key {API_KEY}", status=403)
    result = await measure(metric({"query": "q"}), context(http_server.url))
    assert API_KEY not in (result.message or "")
    assert "*****" in (result.message or "")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "Must have either a query or queries"),
        ({"query": "q", "queries": {"a": "q"}}, "Cannot have both a query and queries"),
        ({"apiVersion": "v1", "queries": {"a": "q"}}, "Query is empty. API Version v1"),
        ({"apiVersion": "v2", "formula": "a"}, "Must have either a query or queries"),
        ({"apiVersion": "v2", "query": "q", "formula": "a"}, "Formula are only valid"),
        ({"apiVersion": "v2", "queries": {"a": "x", "b": "y"}}, "must include a formula"),
        ({"query": "q", "aggregator": "sum"}, "Aggregator is not supported in v1"),
        ({"apiVersion": "v3", "query": "q"}, "apiVersion must be v1 or v2"),
        ({"query": "q", "requestTimeout": "0s"}, "Request timeout must be a positive"),
        ({"query": "q", "interval": "five minutes"}, "datadog.interval: invalid duration"),
    ],
)
async def test_invalid_templates_are_errors_before_any_request(
    config: dict[str, Any], message: str
) -> None:
    result = await measure(metric(config), context("http://127.0.0.1:1"))
    assert result.phase == "Error"
    assert message in (result.message or "")


def test_crd_defaults_are_applied_where_argo_relies_on_them() -> None:
    assert defaults({"query": "q"}) == {
        "query": "q",
        "apiVersion": "v1",
        "interval": "5m",
        "requestTimeout": "10s",
    }
    assert defaults({"apiVersion": "v2", "query": "q", "interval": ""})["aggregator"] == "last"
    assert defaults({"apiVersion": "v2", "query": "q", "aggregator": "avg"})["aggregator"] == "avg"
    assert validate(defaults({"apiVersion": "v2", "queries": {"a": "q"}})) is None
