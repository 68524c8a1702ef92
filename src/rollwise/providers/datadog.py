"""The `datadog` metric provider: Argo's v1 and v2 queries, with the CRD defaults applied here.

Who calls it: the analysis shell through `rollwise.providers.base.provider_for("datadog")`. One
`run` is one HTTP call to Datadog (reference 3.4):

- `apiVersion: v1` (the CRD default): `GET <address>/api/v1/query?query=&from=&to=` with
  `from = now - interval` and `to = now` in Unix seconds. `result` is the value of the last point
  of the first series (a float); no series or no points -> `nil`. Deliberate difference: Go
  decodes a `null` point as 0, so Argo reads a gap at the end of a series as 0.0; rollwise skips
  trailing `null` points (all null -> `nil`).
- `apiVersion: v2`: `POST <address>/api/v2/query/scalar` with a `scalar_request` over
  `[now - interval, now]` in milliseconds; `query` (sent as the query named `query`) or
  `queries{name: query}` plus `formula`, each query with `aggregator` (default `last`) and
  `data_source: metrics`. `result`: the first number column; an ungrouped query -> its first
  non-null value (a float); a grouped query (`by {tag}`, a `group` column in the answer) -> the
  list of non-null values, with `metadata.groups` = JSON `[{"name", "value"}]` (at most 100
  entries, the 50 lowest and 50 highest, then `groups_truncated: "true"`); no value -> `nil`.
- Headers `DD-API-KEY`, `DD-APPLICATION-KEY`, `Content-Type: application/json`; HTTP timeout
  `requestTimeout` (default 10 s). Any status other than 200 is an Error quoting the body.
- The measurement metadata carries Argo's `httpStatusCode`, `responseReceived` and, when an
  answer came, `requestOutcome` (`success`, `http_error`, `response_error`).

CRD defaults (reference section 9): Argo's code relies on the CRD to fill `apiVersion: v1`,
`interval: 5m` and `requestTimeout: 10s`; rollwise reads manifests without a CRD, so `defaults`
fills them (and `aggregator: last` for v2). Argo's `validateIncomingProps` rules are kept, with
their messages.

Credentials, in Argo's order (reference 3.4), for local mode (see `credentials`):
1. `secretRef.name` set: that secret only (`ProviderContext.secrets["<name>/api-key"]`,
   `"<name>/app-key"`, optional `"<name>/address"`); `secretRef.namespaced: true` without a name
   is an Error, as in Argo;
2. otherwise the environment: `DD_API_KEY` and `DD_APP_KEY` (and optional `DD_ADDRESS`; Argo
   needs all three set, rollwise only the two keys);
3. otherwise the secret `datadog` (`datadog/api-key`, `datadog/app-key`, `datadog/address`).
The address defaults to `https://api.datadoghq.com`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollwise.api.durations import parse_duration
from rollwise.api.models import Measurement, Metric
from rollwise.providers.base import (
    ProviderContext,
    SynchronousProvider,
    error_at,
    finished,
    provider_config,
    register,
)
from rollwise.providers.credentials import from_environment, from_secret
from rollwise.providers.http import HTTPAnswer, HTTPFailure, fetch

WHAT = "Datadog"
DEFAULT_ADDRESS = "https://api.datadoghq.com"
DEFAULT_SECRET = "datadog"
API_KEY, APP_KEY, ADDRESS_KEY = "api-key", "app-key", "address"
ENV_API_KEY, ENV_APP_KEY, ENV_ADDRESS = "DD_API_KEY", "DD_APP_KEY", "DD_ADDRESS"

# What the Argo CRD fills in when a field is left out (reference section 9).
CRD_DEFAULTS: Mapping[str, str] = {"apiVersion": "v1", "interval": "5m", "requestTimeout": "10s"}
DEFAULT_AGGREGATOR = "last"
MAX_GROUPS_IN_METADATA = 100

# Argo's measurement metadata keys and request outcomes (metricproviders/datadog/request.go).
STATUS_KEY, OUTCOME_KEY, RECEIVED_KEY = "httpStatusCode", "requestOutcome", "responseReceived"


class DatadogFailure(Exception):
    """Internal: a reason to end this measurement as Error (never leaves the module)."""

    def __init__(self, message: str, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.metadata = dict(metadata or {})


@dataclass(frozen=True)
class Credentials:
    address: str
    api_key: str
    app_key: str


def defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """The provider config with the Argo CRD defaults filled in where a field is missing or
    empty (and `aggregator: last` for v2, as Argo's request builder does)."""
    filled = dict(config)
    for key, value in CRD_DEFAULTS.items():
        if filled.get(key) in (None, ""):
            filled[key] = value
    if filled["apiVersion"] == "v2" and filled.get("aggregator") in (None, ""):
        filled["aggregator"] = DEFAULT_AGGREGATOR
    return filled


def validate(config: Mapping[str, Any]) -> str | None:
    """Argo's `validateIncomingProps` (plus the API version), as a message, or None."""
    version = config.get("apiVersion")
    if version not in ("v1", "v2"):
        return f"datadog.apiVersion must be v1 or v2, not {version!r}"
    query = config.get("query") or ""
    queries = config.get("queries") or {}
    formula = config.get("formula") or ""
    if not isinstance(queries, Mapping):
        return "datadog.queries must be a map of name to query"
    if not query and not queries:
        return "Must have either a query or queries. Please review the Analysis Template."
    if query and queries:
        return "Cannot have both a query and queries. Please review the Analysis Template."
    if version == "v1" and not query:
        return (
            "Query is empty. API Version v1 only supports using the query parameter in your "
            "Analysis Template."
        )
    if formula and not queries:
        return "Formula are only valid when queries are set. Please review the Analysis Template."
    if not formula and len(queries) > 1:
        return "When multiple queries are provided you must include a formula."
    if version == "v1" and config.get("aggregator"):
        return "Aggregator is not supported in v1. Please review the Analysis Template."
    return None


def find_credentials(config: Mapping[str, Any], context: ProviderContext) -> Credentials:
    """The address and keys, looked up in Argo's order (module docstring)."""
    secret_ref = config.get("secretRef")
    secret_ref = secret_ref if isinstance(secret_ref, Mapping) else {}
    name = str(secret_ref.get("name") or "")
    if secret_ref.get("namespaced") and not name:
        raise DatadogFailure("secret name is required for namespaced credentials")

    found: list[tuple[str | None, str | None, str | None]] = []
    if name:
        found.append(_from_secret(context, name))
    else:
        found.append(
            (
                from_environment(ENV_ADDRESS),
                from_environment(ENV_API_KEY),
                from_environment(ENV_APP_KEY),
            )
        )
        found.append(_from_secret(context, DEFAULT_SECRET))
    for address, api_key, app_key in found:
        if api_key and app_key:
            return Credentials((address or DEFAULT_ADDRESS).rstrip("/"), api_key, app_key)
    where = (
        f"the secret {name!r} (keys {API_KEY}, {APP_KEY})"
        if name
        else f"the environment ({ENV_API_KEY}, {ENV_APP_KEY}) or the secret {DEFAULT_SECRET!r}"
        f" (keys {API_KEY}, {APP_KEY})"
    )
    raise DatadogFailure(
        f"failed to find the credentials for datadog metrics provider: set them in {where}"
    )


def _from_secret(context: ProviderContext, name: str) -> tuple[str | None, str | None, str | None]:
    return (
        from_secret(context, name, ADDRESS_KEY),
        from_secret(context, name, API_KEY),
        from_secret(context, name, APP_KEY),
    )


@register("datadog")
class DatadogProvider(SynchronousProvider):
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        started = context.now()
        config = defaults(provider_config(metric, "datadog"))
        try:
            value, metadata = await self._query(config, context)
        except DatadogFailure as failure:
            return error_at(
                str(failure),
                started_at=started,
                finished_at=context.now(),
                metadata=failure.metadata or None,
            )
        return finished(
            metric, value, started_at=started, finished_at=context.now(), metadata=metadata
        )

    async def _query(
        self, config: Mapping[str, Any], context: ProviderContext
    ) -> tuple[object, dict[str, str]]:
        problem = validate(config)
        if problem:
            raise DatadogFailure(problem)
        credentials = find_credentials(config, context)
        window_s = int(_seconds(config["interval"], field="interval"))
        timeout_s = _seconds(config["requestTimeout"], field="requestTimeout")
        if timeout_s <= 0:
            raise DatadogFailure(
                "Request timeout must be a positive duration (e.g. 30s). "
                "Please review the Analysis Template."
            )
        now = math.floor(context.now().timestamp())
        headers = [
            ("Content-Type", "application/json"),
            ("DD-API-KEY", credentials.api_key),
            ("DD-APPLICATION-KEY", credentials.app_key),
        ]
        if config["apiVersion"] == "v1":
            url = credentials.address + "/api/v1/query"
            params = {
                "query": str(config["query"]),
                "from": str(now - window_s),
                "to": str(now),
            }
            answer = await fetch(
                "GET", url, what=WHAT, timeout_s=timeout_s, headers=headers, params=params
            )
        else:
            url = credentials.address + "/api/v2/query/scalar"
            answer = await fetch(
                "POST",
                url,
                what=WHAT,
                timeout_s=timeout_s,
                headers=headers,
                data=json.dumps(scalar_request(config, now=now, window_s=window_s)),
            )
        if isinstance(answer, HTTPFailure):
            raise DatadogFailure(answer.message, {RECEIVED_KEY: "false"})
        metadata = {STATUS_KEY: str(answer.status), RECEIVED_KEY: "true"}
        try:
            if config["apiVersion"] == "v1":
                value: object = parse_v1(_body(answer, url))
            else:
                value, groups = parse_v2(_body(answer, url))
                metadata.update(groups)
        except DatadogFailure as failure:
            outcome = "http_error" if answer.status != 200 else "response_error"
            raise DatadogFailure(str(failure), {**metadata, OUTCOME_KEY: outcome}) from None
        metadata[OUTCOME_KEY] = "success"
        return value, metadata


def _seconds(raw: object, *, field: str) -> float:
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"invalid duration {raw!r}")
        return parse_duration(raw)
    except ValueError as exc:
        raise DatadogFailure(f"datadog.{field}: {exc}") from exc


def scalar_request(config: Mapping[str, Any], *, now: int, window_s: int) -> dict[str, Any]:
    """The body of `POST /api/v2/query/scalar` (Datadog's `ScalarFormulaQueryRequest`)."""
    queries: Mapping[str, Any] = (
        {"query": config["query"]} if config.get("query") else config.get("queries") or {}
    )
    formula = config.get("formula") or ""
    return {
        "data": {
            "type": "scalar_request",
            "attributes": {
                "from": (now - window_s) * 1000,
                "to": now * 1000,
                "queries": [
                    {
                        "aggregator": str(config["aggregator"]),
                        "data_source": "metrics",
                        "name": str(name),
                        "query": str(query),
                    }
                    for name, query in queries.items()
                ],
                "formulas": [{"formula": str(formula)}] if formula else [],
            },
        }
    }


def _body(answer: HTTPAnswer, url: str) -> Any:
    if answer.status in (401, 403):
        raise DatadogFailure(
            f"Datadog at {url} refused the credentials (HTTP {answer.status}): {answer.excerpt()}"
        )
    if answer.status != 200:
        raise DatadogFailure(f"Datadog at {url} answered HTTP {answer.status}: {answer.excerpt()}")
    try:
        return answer.json()
    except ValueError as exc:
        raise DatadogFailure(
            f"Datadog at {url} answered with a body that is not JSON ({exc}): {answer.excerpt()}"
        ) from exc


def parse_v1(body: Any) -> float | None:
    """The last non-null point of the first series of a v1 `/query` answer; None without."""
    series = body.get("series") if isinstance(body, Mapping) else None
    if series is not None and not isinstance(series, list):
        raise DatadogFailure(f"Datadog answered an unexpected v1 body: {_short(body)}")
    if not series:
        return None
    first = series[0] if isinstance(series[0], Mapping) else {}
    points = first.get("pointlist") or []
    if not isinstance(points, list):
        raise DatadogFailure(f"Datadog answered an unexpected pointlist: {_short(points)}")
    for point in reversed(points):
        if not isinstance(point, list) or len(point) != 2:
            raise DatadogFailure("Datapoint does not have 2 values")
        if point[1] is None:
            continue
        return _number(point[1])
    return None


def parse_v2(body: Any) -> tuple[float | list[float] | None, dict[str, str]]:
    """The value of a v2 `/query/scalar` answer and, for a grouped query, its group metadata."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping):
        if isinstance(body, Mapping) and body.get("errors"):
            raise DatadogFailure(f"There were errors in your query: {_short(body['errors'])}")
        raise DatadogFailure(f"Datadog answered an unexpected v2 body: {_short(body)}")
    if data.get("errors"):
        raise DatadogFailure(f"There were errors in your query: {data['errors']}")
    attributes = data.get("attributes") or {}
    columns = (attributes.get("columns") or []) if isinstance(attributes, Mapping) else []
    if not isinstance(columns, list):
        raise DatadogFailure(f"Datadog answered unexpected columns: {_short(columns)}")
    number = next(
        (c for c in columns if isinstance(c, Mapping) and c.get("type") in (None, "", "number")),
        None,
    )
    groups = [c for c in columns if isinstance(c, Mapping) and c.get("type") == "group"]
    if number is None:
        return None, {}
    values: list[float] = []
    named: list[dict[str, Any]] = []
    for index, raw in enumerate(number.get("values") or []):
        if raw is None:  # Datadog's "no data for this group"
            continue
        value = _number(raw, column=str(number.get("name", "")))
        values.append(value)
        if groups:
            named.append({"name": _group_name(groups, index), "value": value})
    if not values:
        return None, {}
    if not groups:
        return values[0], {}
    return values, _groups_metadata(named)


def _number(raw: object, *, column: str = "") -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        where = f" in column {column!r}" if column else ""
        raise DatadogFailure(f"could not parse numeric value {json.dumps(raw)}{where}")
    return float(raw)


def _group_name(groups: list[Mapping[str, Any]], index: int) -> str:
    """The label of row `index`: the tag values of every group column, joined with `,`."""
    parts: list[str] = []
    for column in groups:
        values = column.get("values") or []
        tags = values[index] if index < len(values) else None
        if not isinstance(tags, list) or not tags:
            raise DatadogFailure(f"could not parse group label at index {index}")
        parts.extend(str(tag) for tag in tags)
    return ",".join(parts)


def _groups_metadata(named: list[dict[str, Any]]) -> dict[str, str]:
    """`groups` as JSON, capped at MAX_GROUPS_IN_METADATA (both value extremes kept)."""
    metadata: dict[str, str] = {}
    if len(named) > MAX_GROUPS_IN_METADATA:
        ordered = sorted(named, key=lambda item: float(item["value"]))
        low = MAX_GROUPS_IN_METADATA // 2
        named = ordered[:low] + ordered[len(ordered) - (MAX_GROUPS_IN_METADATA - low) :]
        metadata["groups_truncated"] = "true"
    metadata["groups"] = json.dumps(named, separators=(",", ":"))
    return metadata


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 200 else text[:200] + "..."
