"""The `influxdb` metric provider: one Flux query through InfluxDB 2's query API.

Who calls it: the analysis shell through `rollwise.providers.base.provider_for("influxdb")`.
Argo (reference 3.10) runs `query` with InfluxDB's Go client; rollwise sends the request
InfluxDB documents for a Flux query:

    POST <address>/api/v2/query?org=<org>       (30 s timeout, Argo's)
    Authorization: Token <authToken>
    Content-Type: application/vnd.flux          Accept: application/csv
    <the Flux query>

and reads the CSV answer: annotated CSV (`#datatype`, `#group`, `#default` rows before each
table's header; values typed by `#datatype`, e.g. `double` -> float, `long` -> int, `boolean`
-> bool, times and strings as text) or plain CSV (values typed by their look: integer, float,
true/false, else text). Tables are separated by blank lines and may each bring a header.

Result typing (reference 2.10): the `_value` of every record of every table, in order (a list;
a record without `_value` gives nil, as the Go client's `Record.Value()` does). No record ->
Error "no results returned from flux query" (a metric with a `rollwise.io/no-data-policy` gets
that policy's phase instead). An error table in the answer (`error`,
`reference` columns) or an HTTP error status (InfluxDB's JSON `{"code", "message"}`) is an
Error quoting InfluxDB's message.

Credentials (the profile secret, `profile` or `influxdb`, keys `authToken`, `address`, `org`;
see `credentials`): `ProviderContext.secrets["<profile>/authToken"]` etc., each falling back to
the environment variables of InfluxDB's own CLI: `INFLUX_TOKEN`, `INFLUX_HOST`, `INFLUX_ORG`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollwise.api.models import Measurement, Metric
from rollwise.providers.base import (
    ProviderContext,
    ProviderFailure,
    SynchronousProvider,
    provider_config,
    register,
    run_query,
)
from rollwise.providers.credentials import from_environment, from_secret
from rollwise.providers.http import HTTPFailure, fetch

WHAT = "InfluxDB"
DEFAULT_PROFILE = "influxdb"
TIMEOUT_S = 30.0
TOKEN, ADDRESS, ORG = "authToken", "address", "org"
ENVIRONMENT: Mapping[str, str] = {TOKEN: "INFLUX_TOKEN", ADDRESS: "INFLUX_HOST", ORG: "INFLUX_ORG"}

_INTEGER = re.compile(r"[-+]?\d+")


@register("influxdb")
class InfluxDBProvider(SynchronousProvider):
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        return await run_query(
            metric,
            context,
            lambda: self._query(provider_config(metric, "influxdb"), context),
            empty=[],
        )

    async def _query(self, config: Mapping[str, Any], context: ProviderContext) -> list[object]:
        flux = str(config.get("query") or "")
        if not flux.strip():
            raise ProviderFailure("influxdb.query is empty")
        profile = str(config.get("profile") or DEFAULT_PROFILE)
        found = {key: _credential(context, profile, key) for key in (TOKEN, ADDRESS, ORG)}
        missing = [key for key, value in found.items() if not value]
        if missing:
            raise ProviderFailure(
                f"authToken, org, or address not found: set {', '.join(missing)} in the secret "
                f"{profile!r} (or {', '.join(ENVIRONMENT[key] for key in missing)})"
            )
        url = str(found[ADDRESS]).rstrip("/") + "/api/v2/query"
        answer = await fetch(
            "POST",
            url,
            what=WHAT,
            timeout_s=TIMEOUT_S,
            headers=[
                ("Authorization", f"Token {found[TOKEN]}"),
                ("Content-Type", "application/vnd.flux"),
                ("Accept", "application/csv"),
            ],
            params={"org": str(found[ORG])},
            data=flux.encode(),
        )
        if isinstance(answer, HTTPFailure):
            raise ProviderFailure(answer.message)
        if not answer.ok:
            raise ProviderFailure(
                f"InfluxDB at {url} answered HTTP {answer.status}: {_error_message(answer.text)}"
            )
        values = record_values(answer.text)
        if not values:
            raise ProviderFailure("no results returned from flux query", no_data=True)
        return values


def _credential(context: ProviderContext, profile: str, key: str) -> str | None:
    return from_secret(context, profile, key) or from_environment(ENVIRONMENT[key])


def _error_message(text: str) -> str:
    """InfluxDB's `{"code", "message"}` error body as `message (code)`, else an excerpt."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, Mapping) and body.get("message"):
        code = f" ({body['code']})" if body.get("code") else ""
        return f"{body['message']}{code}"
    flat = " ".join(text.split())
    return flat[:200] + ("..." if len(flat) > 200 else "") if flat else "(empty body)"


@dataclass
class _Table:
    """The annotations and header of the table being read."""

    annotations: dict[str, list[str]] = field(default_factory=dict)
    header: list[str] | None = None


def record_values(text: str) -> list[object]:
    """The `_value` of every record of Flux's CSV answer (annotated or plain), typed."""
    values: list[object] = []
    table = _Table()
    for row in csv.reader(io.StringIO(text)):
        if not row or all(cell == "" for cell in row):
            table = _Table()  # a blank line ends a table; the next brings its own header
            continue
        if row[0].startswith("#"):
            if table.header is not None:
                table = _Table()
            table.annotations[row[0]] = row
            continue
        if table.header is None:
            table.header = row
            continue
        values.append(_record_value(table, row))
    return values


def _record_value(table: _Table, row: list[str]) -> object:
    header = table.header or []
    if "_value" not in header and "error" in header:
        message = row[header.index("error")] if header.index("error") < len(row) else ""
        raise ProviderFailure(f"InfluxDB query failed: {message}")
    if "_value" not in header:
        return None
    index = header.index("_value")
    raw = row[index] if index < len(row) else ""
    defaults = table.annotations.get("#default")
    if raw == "" and defaults and index < len(defaults):
        raw = defaults[index]
    types = table.annotations.get("#datatype")
    kind = types[index] if types and index < len(types) else None
    return _typed(raw, kind)


def _typed(raw: str, kind: str | None) -> object:
    """A CSV cell as a value: by its `#datatype` annotation, or by its look without one."""
    if raw == "":
        return None
    try:
        if kind == "double":
            return float(raw)
        if kind in ("long", "unsignedLong"):
            return int(raw)
        if kind == "boolean":
            return raw == "true"
        if kind is not None:
            return raw  # string, dateTime:RFC3339(Nano), duration, base64Binary: as text
    except ValueError:
        raise ProviderFailure(f"InfluxDB answered {raw!r} for a {kind} column") from None
    if _INTEGER.fullmatch(raw):
        return int(raw)
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return float(raw)
    except ValueError:
        return raw
