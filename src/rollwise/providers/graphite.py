"""The `graphite` metric provider: one call of Graphite's render API in JSON.

Who calls it: the analysis shell through `rollwise.providers.base.provider_for("graphite")`.
As Argo does (reference 3.9), `query` is a raw render query string such as
`target=sumSeries(app.errors.*)&from=-5min`; every whitespace character is removed from it, its
`format` is replaced by `format=json`, and it is sent as

    GET <address>/render?<query>&format=json            (10 s timeout, no authentication)

A status of 400 or more is an Error quoting the body; a body that is not Graphite's JSON (a list
of `{"target", "datapoints": [[value, timestamp], ...]}`) is an Error.

Result typing (reference 2.10): the values of the first series, in order, with null points
dropped (a list of floats). No series, or a first series without data points, is an Error
"no values found", as in Argo (issue #3503 asks for it to be a valid empty result: a metric
with a `rollwise.io/no-data-policy` gets that policy's phase instead, see
`rollwise.core.analysis.nodata`). A first series whose points are all null gives `[]`, which
the conditions (or the no-data policy) see as an empty result, as in Argo.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rollwise.api.models import Measurement, Metric
from rollwise.providers.base import (
    ProviderContext,
    ProviderFailure,
    SynchronousProvider,
    provider_config,
    register,
    run_query,
)
from rollwise.providers.http import HTTPFailure, fetch

WHAT = "Graphite"
TIMEOUT_S = 10.0
_WHITESPACE = re.compile(r"\s+")


@register("graphite")
class GraphiteProvider(SynchronousProvider):
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        return await run_query(
            metric, context, lambda: self._query(provider_config(metric, "graphite")), empty=[]
        )

    async def _query(self, config: Mapping[str, Any]) -> list[float]:
        address = str(config.get("address") or "").strip()
        if not address or "://" not in address:
            raise ProviderFailure(f"Graphite address {address!r} is not a valid URL")
        url = render_url(address, str(config.get("query") or ""))
        answer = await fetch("GET", url, what=WHAT, timeout_s=TIMEOUT_S)
        if isinstance(answer, HTTPFailure):
            raise ProviderFailure(answer.message)
        if answer.status >= 400:
            raise ProviderFailure(
                f"Graphite at {url.split('?')[0]} answered HTTP {answer.status}: {answer.excerpt()}"
            )
        try:
            body = answer.json()
        except ValueError as exc:
            raise ProviderFailure(
                f"Graphite answered with a body that is not JSON ({exc}): {answer.excerpt()}"
            ) from exc
        return first_series_values(body)


def render_url(address: str, query: str) -> str:
    """`<address>/render?<query without whitespace>` with `format=json` (replacing any)."""
    parts = urlsplit(address)
    pairs = [
        (key, value)
        for key, value in parse_qsl(_WHITESPACE.sub("", query), keep_blank_values=True)
        if key != "format"
    ]
    pairs.append(("format", "json"))
    path = parts.path.rstrip("/") + "/render"
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(pairs), ""))


def first_series_values(body: Any) -> list[float]:
    """The non-null values of the first series; an error when there is no data point."""
    if not isinstance(body, list):
        raise ProviderFailure(f"Graphite answered an unexpected body: {json.dumps(body)[:200]}")
    if not body:
        raise ProviderFailure("no values found", no_data=True)
    first = body[0]
    points = first.get("datapoints") if isinstance(first, Mapping) else None
    if not isinstance(points, list):
        raise ProviderFailure(f"Graphite answered a series without datapoints: {first!r}"[:300])
    if not points:
        raise ProviderFailure("no values found", no_data=True)
    values: list[float] = []
    for point in points:
        if not isinstance(point, list) or len(point) != 2:
            raise ProviderFailure(f"error unmarshaling data point: {json.dumps(point)}")
        value = point[0]
        if value is None:
            continue
        try:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(value)
            values.append(float(value))
        except ValueError:
            raise ProviderFailure(f"error unmarshaling value: {json.dumps(value)}") from None
    return values
