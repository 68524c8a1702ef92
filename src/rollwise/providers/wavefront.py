"""The `wavefront` metric provider: a point-in-time query of Wavefront's chart API.

Who calls it: the analysis shell through `rollwise.providers.base.provider_for("wavefront")`.
Argo (reference 3.6) asks Wavefront's Go client for one point, at second granularity, in a
window that starts and ends now; rollwise sends the request that client sends:

    GET https://<address>/api/v2/chart/api?q=<query>&s=<now ms>&e=<now ms>&g=s&p=1&i=true
        &autoEvents=false&listmode=false&strict=false&includeObsoleteMetrics=false
    Authorization: Bearer <token>      Accept: application/json

`address` is a host name as in Argo (`example.wavefront.com`, HTTPS); an address with a scheme
(`http://127.0.0.1:2878`) is used as written. Answers outside 2xx are an Error quoting the body.

Result typing (reference 2.10): from each series the data point (`[epoch seconds, value]`)
closest to the measurement's start; one series -> a float; several -> a list of floats; no
series -> Error "No TimeSeries found in response from Wavefront" (a metric with a
`rollwise.io/no-data-policy` gets that policy's phase instead). The measurement metadata holds
`timestamps` (the epoch seconds of the points used) and `drift` (their distance to now, in
seconds), as in Argo, and Wavefront's `warnings`. Deliberate difference: Argo reads a series with
no points as 0.0; rollwise leaves such series out (and errors when none has a point).

Token (see `credentials`): Argo reads the secret `wavefront-api-tokens`, whose keys are
Wavefront addresses; locally `ProviderContext.secrets["wavefront-api-tokens/<address>"]`, else
the environment variable `WAVEFRONT_API_TOKEN`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
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

WHAT = "Wavefront"
TOKENS_SECRET = "wavefront-api-tokens"
ENV_TOKEN = "WAVEFRONT_API_TOKEN"
CHART_PATH = "/api/v2/chart/api"
TIMEOUT_S = 30.0


@register("wavefront")
class WavefrontProvider(SynchronousProvider):
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        metadata: dict[str, str] = {}
        config = provider_config(metric, "wavefront")
        return await run_query(
            metric,
            context,
            lambda: self._query(config, context, context.now(), metadata),
            metadata=metadata,
        )

    async def _query(
        self,
        config: Mapping[str, Any],
        context: ProviderContext,
        started: datetime,
        metadata: dict[str, str],
    ) -> object:
        address = str(config.get("address") or "").strip()
        query = str(config.get("query") or "")
        if not address:
            raise ProviderFailure("wavefront.address is not set")
        if not query.strip():
            raise ProviderFailure("wavefront.query is empty")
        token = from_secret(context, TOKENS_SECRET, address) or from_environment(ENV_TOKEN)
        if not token:
            raise ProviderFailure(
                f"API token not found: set the key {address!r} of the secret {TOKENS_SECRET!r}"
                f" (or {ENV_TOKEN})"
            )
        url = chart_url(address)
        now_ms = str(int(started.timestamp()) * 1000)
        answer = await fetch(
            "GET",
            url,
            what=WHAT,
            timeout_s=TIMEOUT_S,
            headers=[("Authorization", f"Bearer {token}"), ("Accept", "application/json")],
            params=query_params(query, now_ms),
        )
        if isinstance(answer, HTTPFailure):
            raise ProviderFailure(answer.message)
        if not answer.ok:
            raise ProviderFailure(
                f"Wavefront at {url} answered HTTP {answer.status}: {answer.excerpt()}"
            )
        try:
            body = answer.json()
        except ValueError as exc:
            raise ProviderFailure(
                f"Wavefront at {url} answered with a body that is not JSON ({exc}): "
                f"{answer.excerpt()}"
            ) from exc
        if not isinstance(body, Mapping):
            raise ProviderFailure(f"Wavefront answered an unexpected body: {answer.excerpt()}")
        if body.get("warnings"):
            metadata["warnings"] = str(body["warnings"])
        return closest_values(body, started, metadata)


def chart_url(address: str) -> str:
    """The chart API URL of an address (a bare host means HTTPS, like Wavefront's client)."""
    base = address if "://" in address else f"https://{address}"
    return base.rstrip("/") + CHART_PATH


def query_params(query: str, now_ms: str) -> dict[str, str]:
    """The chart query parameters Argo's client sends (start = end = now, one point)."""
    return {
        "q": query,
        "s": now_ms,
        "e": now_ms,
        "g": "s",
        "p": "1",
        "i": "true",
        "autoEvents": "false",
        "listmode": "false",
        "strict": "false",
        "includeObsoleteMetrics": "false",
    }


def closest_values(body: Mapping[str, Any], started: datetime, metadata: dict[str, str]) -> object:
    """One float (one series) or a list (several): each series' point closest to `started`;
    `timestamps` and `drift` go into `metadata`."""
    series = body.get("timeseries") or []
    if not isinstance(series, list):
        raise ProviderFailure(f"Wavefront answered timeseries that are not a list: {series!r}")
    start_s = started.timestamp()
    chosen: list[tuple[float, int, int]] = []
    for item in series:
        points = item.get("data") if isinstance(item, Mapping) else None
        best = _closest(points or [], start_s)
        if best is not None:
            chosen.append(best)
    if not chosen:
        detail = body.get("errorMessage")
        if detail:
            raise ProviderFailure(f"Wavefront query failed: {detail}")
        if series:
            raise ProviderFailure(
                "no data points in the TimeSeries returned by Wavefront", no_data=True
            )
        raise ProviderFailure("No TimeSeries found in response from Wavefront", no_data=True)
    if len(chosen) == 1:
        value, epoch, drift = chosen[0]
        metadata["timestamps"] = str(epoch)
        metadata["drift"] = str(drift)
        return value
    metadata["timestamps"] = "[" + ",".join(str(epoch) for _, epoch, _ in chosen) + "]"
    metadata["drift"] = "[" + ",".join(str(drift) for _, _, drift in chosen) + "]"
    return [value for value, _, _ in chosen]


def _closest(points: list[Any], start_s: float) -> tuple[float, int, int] | None:
    best: tuple[float, int, int] | None = None
    best_delta = float("inf")
    for point in points:
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(
                isinstance(part, int | float) and not isinstance(part, bool) for part in point
            )
        ):
            raise ProviderFailure(f"Wavefront answered a malformed data point: {json.dumps(point)}")
        delta = float(point[0]) - start_s
        if abs(delta) < abs(best_delta):
            best_delta = delta
            best = (float(point[1]), int(point[0]), int(delta))
    return best
