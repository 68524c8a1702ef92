"""The `newRelic` provider against a local NerdGraph that answers as New Relic documents.

What is checked: the GraphQL request (endpoint, `Api-Key`, the NRQL document and its
variables), the result typing (one row -> map, several -> list, none -> Error) as the
measurement's phase, the profile secret and environment fallbacks, and every failure as an
Error measurement with a clear message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollwise.api.models import Metric
from rollwise.core.analysis.nodata import with_no_data_policy
from rollwise.core.timestamps import ManualClock
from rollwise.providers.base import ProviderContext, measure
from rollwise.providers.newrelic import NRQL_DOCUMENT, NRQL_DOCUMENT_WITH_TIMEOUT, nerdgraph_url

from .conftest import LocalHTTPServer, free_port

NOW = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
API_KEY = "NRAK-0123456789ABCDEFGHIJKLMNOPQ"
APDEX = "SELECT apdex(duration) FROM Transaction WHERE appName = 'guestbook' SINCE 5 minutes ago"


@pytest.fixture(autouse=True)
def no_new_relic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "NEW_RELIC_API_KEY",
        "NEW_RELIC_ACCOUNT_ID",
        "NEW_RELIC_REGION",
        "NEW_RELIC_NERDGRAPH_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def metric(config: dict[str, Any], **fields: Any) -> Metric:
    return Metric.model_validate(
        {"name": "newrelic-apdex", **fields, "provider": {"newRelic": config}}
    )


def context(server: LocalHTTPServer, *, profile: str = "newrelic") -> ProviderContext:
    return ProviderContext(
        clock=ManualClock(NOW),
        secrets={
            f"{profile}/personal-api-key": API_KEY,
            f"{profile}/account-id": "1234567",
            f"{profile}/base-url-nerdgraph": f"{server.url}/graphql",
        },
    )


def nerdgraph(results: list[dict[str, Any]] | None) -> dict[str, Any]:
    """NerdGraph's answer to an `nrql` query (HTTP 200)."""
    return {"data": {"actor": {"account": {"nrql": {"results": results}}}}}


async def test_one_row_is_a_map_keyed_by_the_nrql_fields(http_server: LocalHTTPServer) -> None:
    row = {"apdex": 0.97, "count": 1204, "f": 3, "s": 1180, "score": 0.97, "t": 21}
    http_server.json("POST", "/graphql", nerdgraph([row]))
    result = await measure(
        metric(
            {"profile": "my-newrelic-account", "query": APDEX},
            successCondition="result.score >= 0.9",
        ),
        context(http_server, profile="my-newrelic-account"),
    )
    assert result.phase == "Successful"
    (request,) = http_server.requests
    assert (request.method, request.path) == ("POST", "/graphql")
    assert request.headers["Api-Key"] == API_KEY
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "query": NRQL_DOCUMENT,
        "variables": {"accountId": 1234567, "query": APDEX},
    }


async def test_a_low_score_fails(http_server: LocalHTTPServer) -> None:
    http_server.json("POST", "/graphql", nerdgraph([{"score": 0.61}]))
    result = await measure(
        metric({"query": APDEX}, successCondition="result.score >= 0.9"), context(http_server)
    )
    assert result.phase == "Failed"


async def test_several_rows_are_a_list_of_maps(http_server: LocalHTTPServer) -> None:
    rows = [
        {"facet": "GET /", "appName": "guestbook", "count": 900},
        {"facet": "POST /sign", "appName": "guestbook", "count": 12},
    ]
    http_server.json("POST", "/graphql", nerdgraph(rows))
    result = await measure(
        metric(
            {"query": "SELECT count(*) FROM Transaction FACET name"},
            successCondition="len(result) == 2 && result[1].count < 100",
        ),
        context(http_server),
    )
    assert result.phase == "Successful"


@pytest.mark.parametrize("results", [[], [{}], None])
async def test_no_rows_is_an_error(http_server: LocalHTTPServer, results: Any) -> None:
    http_server.json("POST", "/graphql", nerdgraph(results))
    result = await measure(metric({"query": APDEX}), context(http_server))
    assert (result.phase, result.message) == ("Error", "no results returned from NRQL query")


async def test_no_rows_follow_the_no_data_policy(http_server: LocalHTTPServer) -> None:
    http_server.json("POST", "/graphql", nerdgraph([]))
    guarded = with_no_data_policy(metric({"query": APDEX}), "fail")
    result = await measure(guarded, context(http_server))
    assert result.phase == "Failed"


async def test_a_timeout_is_passed_to_nerdgraph(http_server: LocalHTTPServer) -> None:
    http_server.json("POST", "/graphql", nerdgraph([{"count": 3}]))
    await measure(metric({"query": APDEX, "timeout": 30}), context(http_server))
    assert http_server.requests[0].json() == {
        "query": NRQL_DOCUMENT_WITH_TIMEOUT,
        "variables": {"accountId": 1234567, "query": APDEX, "timeout": 30},
    }


async def test_graphql_errors_are_an_error_quoting_them(http_server: LocalHTTPServer) -> None:
    http_server.json(
        "POST",
        "/graphql",
        {
            "data": {"actor": {"account": {"nrql": None}}},
            "errors": [
                {
                    "message": "NRQL Syntax Error: Error at line 1 position 8, unexpected 'FORM'",
                    "path": ["actor", "account", "nrql"],
                }
            ],
        },
    )
    result = await measure(metric({"query": "SELECT * FORM x"}), context(http_server))
    assert result.phase == "Error"
    assert result.message == (
        "New Relic NerdGraph query failed: NRQL Syntax Error: Error at line 1 position 8, "
        "unexpected 'FORM'"
    )


async def test_a_refused_key_is_an_error_with_the_status(http_server: LocalHTTPServer) -> None:
    http_server.json("POST", "/graphql", {"errors": [{"message": "Invalid API key"}]}, status=401)
    result = await measure(metric({"query": APDEX}), context(http_server))
    assert result.phase == "Error"
    assert "answered HTTP 401: Invalid API key" in (result.message or "")
    assert API_KEY not in (result.message or "")


async def test_a_body_that_is_not_json_is_an_error(http_server: LocalHTTPServer) -> None:
    http_server.text("POST", "/graphql", "<html>gateway</html>")
    result = await measure(metric({"query": APDEX}), context(http_server))
    assert result.phase == "Error"
    assert "not JSON" in (result.message or "")


async def test_connection_refused_is_an_error() -> None:
    dead = ProviderContext(
        clock=ManualClock(NOW),
        secrets={
            "newrelic/personal-api-key": API_KEY,
            "newrelic/account-id": "1",
            "newrelic/base-url-nerdgraph": f"http://127.0.0.1:{free_port()}/graphql",
        },
    )
    result = await measure(metric({"query": APDEX}), dead)
    assert result.phase == "Error"
    assert "unreachable" in (result.message or "")


async def test_environment_variables_stand_in_for_the_secret(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.json("POST", "/graphql", nerdgraph([{"count": 5}]))
    monkeypatch.setenv("NEW_RELIC_API_KEY", "env-key")
    monkeypatch.setenv("NEW_RELIC_ACCOUNT_ID", "42")
    monkeypatch.setenv("NEW_RELIC_NERDGRAPH_URL", f"{http_server.url}/graphql")
    result = await measure(metric({"query": APDEX}), ProviderContext(clock=ManualClock(NOW)))
    assert result.phase == "Successful"
    assert http_server.requests[0].headers["Api-Key"] == "env-key"
    assert http_server.requests[0].json()["variables"]["accountId"] == 42


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({}, "account ID or personal API key not found"),
        (
            {"newrelic/personal-api-key": API_KEY, "newrelic/account-id": "12a"},
            "could not parse account ID",
        ),
        (
            {
                "newrelic/personal-api-key": API_KEY,
                "newrelic/account-id": "1",
                "newrelic/region": "mars",
            },
            "unknown New Relic region",
        ),
    ],
)
async def test_bad_credentials_are_errors_before_any_request(
    secrets: dict[str, str], message: str
) -> None:
    result = await measure(
        metric({"query": APDEX}), ProviderContext(clock=ManualClock(NOW), secrets=secrets)
    )
    assert result.phase == "Error"
    assert message in (result.message or "")


def test_the_region_picks_the_nerdgraph_endpoint() -> None:
    assert nerdgraph_url(region=None, explicit=None) == "https://api.newrelic.com/graphql"
    assert nerdgraph_url(region="EU", explicit=None) == "https://api.eu.newrelic.com/graphql"
    assert (
        nerdgraph_url(region="staging", explicit=None) == "https://staging-api.newrelic.com/graphql"
    )
    assert nerdgraph_url(region="eu", explicit="http://x/graphql") == "http://x/graphql"
