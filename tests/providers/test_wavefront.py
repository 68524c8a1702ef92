"""The `wavefront` provider against a local chart API that answers as Wavefront documents.

What is checked: the request Argo's Wavefront client sends (path, every query parameter, the
bearer token of the address), the point closest to now from each series as the value (one
series -> float, several -> list) with Argo's `timestamps`/`drift` metadata, and every failure
as an Error measurement with a clear message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollwise.api.models import Metric
from rollwise.core.analysis.nodata import with_no_data_policy
from rollwise.core.timestamps import ManualClock
from rollwise.providers.base import ProviderContext, measure
from rollwise.providers.wavefront import chart_url

from .conftest import LocalHTTPServer, free_port

NOW = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
TOKEN = "c0ffee00-1234-5678-9abc-def012345678"
QUERY = 'sum(rate(ts("http.requests.errors", service="guestbook")))'


@pytest.fixture(autouse=True)
def no_wavefront_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAVEFRONT_API_TOKEN", raising=False)


def metric(address: str, **fields: Any) -> Metric:
    return Metric.model_validate(
        {
            "name": "error-rate",
            **fields,
            "provider": {"wavefront": {"address": address, "query": QUERY}},
        }
    )


def context(address: str) -> ProviderContext:
    return ProviderContext(
        clock=ManualClock(NOW), secrets={f"wavefront-api-tokens/{address}": TOKEN}
    )


def chart(*series: list[list[float]], warnings: str | None = None) -> dict[str, Any]:
    """A `/api/v2/chart/api` answer (Wavefront's QueryResult)."""
    body: dict[str, Any] = {
        "name": QUERY,
        "query": QUERY,
        "granularity": 1,
        "timeseries": [
            {"label": "http.requests.errors", "host": f"web-{i}", "tags": {}, "data": points}
            for i, points in enumerate(series)
        ],
        "stats": {"keys": 1, "points": 1},
    }
    if warnings:
        body["warnings"] = warnings
    return body


async def test_one_series_is_the_point_closest_to_now(http_server: LocalHTTPServer) -> None:
    points = [[NOW_S - 60, 0.5], [NOW_S - 2, 0.02], [NOW_S + 30, 0.9]]
    http_server.json("GET", "/api/v2/chart/api", chart(points))
    result = await measure(
        metric(http_server.url, successCondition="result < 0.05"), context(http_server.url)
    )
    assert (result.phase, result.value) == ("Successful", "0.02")
    assert result.metadata == {"timestamps": str(NOW_S - 2), "drift": "-2"}
    (request,) = http_server.requests
    assert (request.method, request.path) == ("GET", "/api/v2/chart/api")
    now_ms = str(NOW_S * 1000)
    assert request.query == {
        "q": [QUERY],
        "s": [now_ms],
        "e": [now_ms],
        "g": ["s"],
        "p": ["1"],
        "i": ["true"],
        "autoEvents": ["false"],
        "listmode": ["false"],
        "strict": ["false"],
        "includeObsoleteMetrics": ["false"],
    }
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"


async def test_several_series_are_a_list(http_server: LocalHTTPServer) -> None:
    http_server.json(
        "GET",
        "/api/v2/chart/api",
        chart([[NOW_S - 1, 0.01]], [[NOW_S - 3, 0.2]], warnings="partial data"),
    )
    result = await measure(
        metric(http_server.url, successCondition="all(result, {# < 0.05})"),
        context(http_server.url),
    )
    assert (result.phase, result.value) == ("Failed", "[0.01 0.2]")
    assert result.metadata == {
        "warnings": "partial data",
        "timestamps": f"[{NOW_S - 1},{NOW_S - 3}]",
        "drift": "[-1,-3]",
    }


async def test_no_series_is_an_error(http_server: LocalHTTPServer) -> None:
    http_server.json("GET", "/api/v2/chart/api", chart())
    result = await measure(metric(http_server.url), context(http_server.url))
    assert (result.phase, result.message) == (
        "Error",
        "No TimeSeries found in response from Wavefront",
    )
    guarded = with_no_data_policy(metric(http_server.url), "inconclusive")
    assert (await measure(guarded, context(http_server.url))).phase == "Inconclusive"


async def test_series_without_points_are_no_data_not_zero(http_server: LocalHTTPServer) -> None:
    http_server.json("GET", "/api/v2/chart/api", chart([]))
    result = await measure(
        metric(http_server.url, successCondition="result < 0.05"), context(http_server.url)
    )
    assert result.phase == "Error"
    assert "no data points" in (result.message or "")


async def test_a_query_error_is_an_error_quoting_wavefront(http_server: LocalHTTPServer) -> None:
    http_server.json(
        "GET",
        "/api/v2/chart/api",
        {"errorType": "QuerySyntaxError", "errorMessage": "Unknown function: sumx"},
        status=400,
    )
    result = await measure(metric(http_server.url), context(http_server.url))
    assert result.phase == "Error"
    assert "answered HTTP 400" in (result.message or "")
    assert "Unknown function: sumx" in (result.message or "")


async def test_a_body_that_is_not_json_is_an_error(http_server: LocalHTTPServer) -> None:
    http_server.text("GET", "/api/v2/chart/api", "Service Unavailable")
    result = await measure(metric(http_server.url), context(http_server.url))
    assert result.phase == "Error"
    assert "not JSON" in (result.message or "")


async def test_connection_refused_is_an_error() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    result = await measure(metric(address), context(address))
    assert result.phase == "Error"
    assert "unreachable" in (result.message or "")


async def test_the_token_is_looked_up_by_address_then_in_the_environment(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.json("GET", "/api/v2/chart/api", chart([[NOW_S, 1.0]]))
    other = ProviderContext(
        clock=ManualClock(NOW), secrets={"wavefront-api-tokens/other.wavefront.com": "x"}
    )
    missing = await measure(metric(http_server.url), other)
    assert missing.phase == "Error"
    assert "API token not found" in (missing.message or "")
    assert not http_server.requests

    monkeypatch.setenv("WAVEFRONT_API_TOKEN", "from-env")
    result = await measure(metric(http_server.url), other)
    assert result.phase == "Successful"
    assert http_server.requests[0].headers["Authorization"] == "Bearer from-env"


def test_a_bare_address_is_https_like_wavefronts_client() -> None:
    assert chart_url("example.wavefront.com") == "https://example.wavefront.com/api/v2/chart/api"
    assert chart_url("http://127.0.0.1:2878/") == "http://127.0.0.1:2878/api/v2/chart/api"
