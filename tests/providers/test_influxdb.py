"""The `influxdb` provider against a local query API that answers as InfluxDB 2 documents.

What is checked: the Flux request (`POST /api/v2/query?org=`, `Authorization: Token`,
`Content-Type: application/vnd.flux`, the query as the body), the CSV answer (annotated and
plain, several tables) read into the list of `_value`s with their types, the profile secret and
environment fallbacks, and every failure as an Error measurement with a clear message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollwise.api.models import Metric
from rollwise.core.analysis.nodata import with_no_data_policy
from rollwise.core.timestamps import ManualClock
from rollwise.providers.base import ProviderContext, measure
from rollwise.providers.influxdb import record_values

from .conftest import LocalHTTPServer, free_port

NOW = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
TOKEN = "my-super-secret-auth-token=="
FLUX = """from(bucket: "metrics")
  |> range(start: -5m)
  |> filter(fn: (r) => r._measurement == "http" and r._field == "error_rate")
  |> last()"""

ANNOTATED = (
    "#group,false,false,true,true,false,false,true,true,true\r\n"
    "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,"
    "string,string\r\n"
    "#default,_result,,,,,,,,\r\n"
    ",result,table,_start,_stop,_time,_value,_field,_measurement,host\r\n"
    ",,0,2026-11-26T01:55:00Z,2026-11-26T02:00:00Z,2026-11-26T01:59:50Z,0.012,error_rate,http,"
    "web-1\r\n"
    ",,1,2026-11-26T01:55:00Z,2026-11-26T02:00:00Z,2026-11-26T01:59:40Z,0.034,error_rate,http,"
    "web-2\r\n"
    "\r\n"
    "#group,false,false,true,true,false,false,true,true\r\n"
    "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,long,string,"
    "string\r\n"
    "#default,_result,,,,,,,\r\n"
    ",result,table,_start,_stop,_time,_value,_field,_measurement\r\n"
    ",,2,2026-11-26T01:55:00Z,2026-11-26T02:00:00Z,2026-11-26T01:59:55Z,1204,requests,http\r\n"
    "\r\n"
)

PLAIN = (
    ",result,table,_start,_stop,_time,_value,_field,_measurement\r\n"
    ",_result,0,2026-11-26T01:55:00Z,2026-11-26T02:00:00Z,2026-11-26T01:59:50Z,0.25,p99,latency\r\n"
    ",_result,0,2026-11-26T01:55:00Z,2026-11-26T02:00:00Z,2026-11-26T01:59:55Z,3,p99,latency\r\n"
    "\r\n"
)


@pytest.fixture(autouse=True)
def no_influx_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INFLUX_TOKEN", "INFLUX_HOST", "INFLUX_ORG"):
        monkeypatch.delenv(name, raising=False)


def metric(**fields: Any) -> Metric:
    profile = fields.pop("profile", None)
    config = {"query": FLUX, **({"profile": profile} if profile else {})}
    return Metric.model_validate({"name": "error-rate", **fields, "provider": {"influxdb": config}})


def context(address: str, *, profile: str = "influxdb") -> ProviderContext:
    return ProviderContext(
        clock=ManualClock(NOW),
        secrets={
            f"{profile}/authToken": TOKEN,
            f"{profile}/address": address,
            f"{profile}/org": "my-org",
        },
    )


def answer_csv(server: LocalHTTPServer, body: str) -> None:
    server.text("POST", "/api/v2/query", body, content_type="text/csv")


async def test_annotated_csv_gives_every_value_typed(http_server: LocalHTTPServer) -> None:
    answer_csv(http_server, ANNOTATED)
    result = await measure(
        metric(successCondition="result[0] < 0.05 && result[1] < 0.05 && result[2] > 1000"),
        context(http_server.url),
    )
    assert (result.phase, result.value) == ("Successful", "[0.012 0.034 1204]")
    (request,) = http_server.requests
    assert (request.method, request.path) == ("POST", "/api/v2/query")
    assert request.query == {"org": ["my-org"]}
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert request.headers["Content-Type"] == "application/vnd.flux"
    assert request.headers["Accept"] == "application/csv"
    assert request.body.decode() == FLUX


async def test_plain_csv_values_are_typed_by_their_look(http_server: LocalHTTPServer) -> None:
    answer_csv(http_server, PLAIN)
    result = await measure(
        metric(profile="latency-db", successCondition="all(result, {# < 1})"),
        context(http_server.url, profile="latency-db"),
    )
    assert (result.phase, result.value) == ("Failed", "[0.25 3]")


@pytest.mark.parametrize("body", ["", "\r\n"])
async def test_no_records_is_an_error(http_server: LocalHTTPServer, body: str) -> None:
    answer_csv(http_server, body)
    result = await measure(metric(), context(http_server.url))
    assert (result.phase, result.message) == ("Error", "no results returned from flux query")


async def test_no_records_follow_the_no_data_policy(http_server: LocalHTTPServer) -> None:
    answer_csv(http_server, "")
    result = await measure(with_no_data_policy(metric(), "inconclusive"), context(http_server.url))
    assert result.phase == "Inconclusive"


async def test_influx_errors_are_errors_quoting_influx(http_server: LocalHTTPServer) -> None:
    http_server.json(
        "POST",
        "/api/v2/query",
        {
            "code": "invalid",
            "message": "compilation failed: error at @1:1-1:5: undefined identifier fromm",
        },
        status=400,
    )
    result = await measure(metric(), context(http_server.url))
    assert result.phase == "Error"
    # The address came from the secret, so it is masked like every secret value.
    assert result.message == (
        "InfluxDB at *****/api/v2/query answered HTTP 400: compilation failed: "
        "error at @1:1-1:5: undefined identifier fromm (invalid)"
    )

    http_server.json(
        "POST",
        "/api/v2/query",
        {"code": "unauthorized", "message": "unauthorized access"},
        status=401,
    )
    refused = await measure(metric(), context(http_server.url))
    assert "HTTP 401: unauthorized access (unauthorized)" in (refused.message or "")
    assert TOKEN not in (refused.message or "")


async def test_an_error_table_in_the_answer_is_an_error(http_server: LocalHTTPServer) -> None:
    answer_csv(
        http_server,
        "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n"
        ',"panic: runtime error: index out of range",\r\n\r\n',
    )
    result = await measure(metric(), context(http_server.url))
    assert (result.phase, result.message) == (
        "Error",
        "InfluxDB query failed: panic: runtime error: index out of range",
    )


async def test_environment_variables_stand_in_for_the_profile(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer_csv(http_server, PLAIN)
    monkeypatch.setenv("INFLUX_TOKEN", "env-token")
    monkeypatch.setenv("INFLUX_HOST", http_server.url)
    monkeypatch.setenv("INFLUX_ORG", "env-org")
    result = await measure(metric(), ProviderContext(clock=ManualClock(NOW)))
    assert result.phase == "Successful"
    assert http_server.requests[0].headers["Authorization"] == "Token env-token"
    assert http_server.requests[0].query == {"org": ["env-org"]}


async def test_missing_credentials_name_what_is_missing() -> None:
    only_token = ProviderContext(clock=ManualClock(NOW), secrets={"influxdb/authToken": TOKEN})
    result = await measure(metric(), only_token)
    assert result.phase == "Error"
    assert "set address, org in the secret 'influxdb' (or INFLUX_HOST, INFLUX_ORG)" in (
        result.message or ""
    )


async def test_connection_refused_is_an_error() -> None:
    result = await measure(metric(), context(f"http://127.0.0.1:{free_port()}"))
    assert result.phase == "Error"
    assert "unreachable" in (result.message or "")


def test_csv_types_defaults_and_missing_values() -> None:
    text = (
        "#datatype,string,long,boolean,string\n"
        "#default,_result,,true,\n"
        ",result,table,_value,name\n"
        ",,0,,a\n"
        ",,0,false,b\n"
        "\n"
        ",result,table,other\n"
        ",_result,1,x\n"
    )
    assert record_values(text) == [True, False, None]
