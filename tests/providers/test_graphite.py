"""The `graphite` provider against a local render API that answers as Graphite documents.

What is checked: the render request built from Argo's raw query string (whitespace removed,
repeated targets kept, `format=json` forced, a path prefix in the address kept), the values of
the first series with nulls dropped as the measurement's value and phase, and the failures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollwise.api.models import Metric
from rollwise.core.analysis.nodata import with_no_data_policy
from rollwise.core.timestamps import ManualClock
from rollwise.providers.base import ProviderContext, measure
from rollwise.providers.graphite import render_url

from .conftest import LocalHTTPServer, free_port

NOW = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
ERRORS = (
    "summarize(asPercent(sumSeries(app.guestbook.errors.*), "
    "sumSeries(app.guestbook.requests.*)),'5min','avg')"
)


def metric(address: str, query: str = f"target={ERRORS}&from=-5min", **fields: Any) -> Metric:
    return Metric.model_validate(
        {
            "name": "error-percentage",
            **fields,
            "provider": {"graphite": {"address": address, "query": query}},
        }
    )


def context() -> ProviderContext:
    return ProviderContext(clock=ManualClock(NOW))


def render(*series: list[list[Any]]) -> list[dict[str, Any]]:
    """Graphite's `format=json` answer: one object per target."""
    return [
        {"target": f"series{i}", "tags": {"name": f"series{i}"}, "datapoints": points}
        for i, points in enumerate(series)
    ]


async def test_first_series_values_with_nulls_dropped(http_server: LocalHTTPServer) -> None:
    http_server.json(
        "GET",
        "/render",
        render(
            [[1.2, NOW_S - 120], [None, NOW_S - 60], [0.8, NOW_S]],
            [[99.0, NOW_S]],
        ),
    )
    query = f"""target={ERRORS}
                &from=-5min"""
    result = await measure(
        metric(http_server.url, query, successCondition="all(result, {# < 5})"), context()
    )
    assert (result.phase, result.value) == ("Successful", "[1.2 0.8]")
    (request,) = http_server.requests
    assert (request.method, request.path) == ("GET", "/render")
    # Whitespace is removed from the query, as Argo does (it breaks nothing in Graphite syntax).
    assert request.query == {
        "target": [ERRORS.replace(" ", "")],
        "from": ["-5min"],
        "format": ["json"],
    }


async def test_a_high_error_percentage_fails(http_server: LocalHTTPServer) -> None:
    http_server.json("GET", "/render", render([[12.5, NOW_S - 60], ["7.25", NOW_S]]))
    result = await measure(
        metric(http_server.url, successCondition="result[len(result)-1] < 5"), context()
    )
    assert (result.phase, result.value) == ("Failed", "[12.5 7.25]")


async def test_repeated_targets_and_a_path_prefix_are_kept(http_server: LocalHTTPServer) -> None:
    http_server.json("GET", "/graphite/render", render([[1.0, NOW_S]]))
    query = "target=a.b&target=c.d&from=-10min&format=raw"
    result = await measure(metric(f"{http_server.url}/graphite/", query), context())
    assert result.phase == "Successful"
    assert http_server.requests[0].query == {
        "target": ["a.b", "c.d"],
        "from": ["-10min"],
        "format": ["json"],
    }


@pytest.mark.parametrize("body", [[], render([])])
async def test_no_data_points_is_an_error_no_values_found(
    http_server: LocalHTTPServer, body: list[dict[str, Any]]
) -> None:
    http_server.json("GET", "/render", body)
    result = await measure(metric(http_server.url), context())
    assert (result.phase, result.message) == ("Error", "no values found")


async def test_no_data_points_follow_the_no_data_policy(http_server: LocalHTTPServer) -> None:
    http_server.json("GET", "/render", [])
    guarded = with_no_data_policy(
        metric(http_server.url, successCondition="result[0] < 5"), "succeed"
    )
    result = await measure(guarded, context())
    assert result.phase == "Successful"


async def test_only_null_points_reach_the_conditions_as_an_empty_list(
    http_server: LocalHTTPServer,
) -> None:
    http_server.json("GET", "/render", render([[None, NOW_S - 60], [None, NOW_S]]))
    result = await measure(metric(http_server.url, successCondition="result[0] < 5"), context())
    assert result.phase == "Error"
    assert "nil or empty" in (result.message or "")


async def test_http_errors_and_bad_bodies_are_errors(http_server: LocalHTTPServer) -> None:
    http_server.text("GET", "/render", "ValueError: unknown function summarize2", status=500)
    failed = await measure(metric(http_server.url), context())
    assert failed.phase == "Error"
    assert "HTTP 500: ValueError: unknown function summarize2" in (failed.message or "")

    http_server.json("GET", "/render", render([["lots", NOW_S]]))
    garbled = await measure(metric(http_server.url), context())
    assert (garbled.phase, garbled.message) == ("Error", 'error unmarshaling value: "lots"')


async def test_connection_refused_and_bad_addresses_are_errors() -> None:
    refused = await measure(metric(f"http://127.0.0.1:{free_port()}"), context())
    assert refused.phase == "Error"
    assert "unreachable" in (refused.message or "")
    bad = await measure(metric("graphite.local"), context())
    assert (bad.phase, bad.message) == (
        "Error",
        "Graphite address 'graphite.local' is not a valid URL",
    )


def test_render_url_replaces_the_format() -> None:
    assert (
        render_url("http://g:8080", "target=x&format=csv")
        == "http://g:8080/render?target=x&format=json"
    )
