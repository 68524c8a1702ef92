"""The `prometheus` metric provider: Argo's fields, Argo's result typing, one HTTP call.

Who calls it: the analysis shell through `rollwise.providers.base.provider_for`. One `run` is one
instant query (`/api/v1/query` with `time=now`) or one range query (`/api/v1/query_range`), sent
as a form POST like Argo's client (falling back to GET when the server answers 405).

Fields (reference 3.1): `address` (else env `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`), `query`,
`timeout` (seconds, default 30, negative rejected), `insecure`, `headers[{key,value}]`,
`authentication.basicAuth{username,password}`, `authentication.oauth2{tokenUrl, clientId,
clientSecret, scopes}` (client credentials), `authentication.sigv4` (Amazon Managed Prometheus:
not supported, an Error), `rangeQuery{start, end, step}` with start/end expressions such as
`now() - duration("10m")`.

Result typing (reference 2.10): scalar -> float; vector -> list of floats in response order
(empty vector -> []); matrix -> one flat list of every sample; NaN and +-Inf are floats; a string
result is an Error. The measurement metadata holds `ResolvedPrometheusQuery` (the query after
argument substitution, as Argo's metric metadata does) and Prometheus' `warnings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollwise.api.durations import parse_duration
from rollwise.api.models import Measurement, Metric
from rollwise.core.expressions import ExpressionError, compile_expression
from rollwise.providers.base import (
    ProviderContext,
    SynchronousProvider,
    error_at,
    finished,
    provider_config,
    register,
)
from rollwise.providers.http import HTTPAnswer, HTTPFailure, fetch, header_pairs, oauth2_token

ADDRESS_ENV = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS"
DEFAULT_TIMEOUT_S = 30.0
RESOLVED_QUERY_KEY = "ResolvedPrometheusQuery"
WHAT = "Prometheus"


class PrometheusFailure(Exception):
    """Internal: a reason to end this measurement as Error (never leaves the module)."""


@dataclass(frozen=True)
class QueryResult:
    """The typed `result` of a query, and Prometheus' warnings about it."""

    value: object
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueryFailure:
    """Why the query gave no result (becomes the Error measurement's message)."""

    message: str


@register("prometheus")
class PrometheusProvider(SynchronousProvider):
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        started = context.now()
        config = provider_config(metric, "prometheus")
        metadata = {RESOLVED_QUERY_KEY: str(config.get("query") or "")}
        outcome = await self.query(metric, context)
        if isinstance(outcome, QueryFailure):
            return error_at(
                outcome.message, started_at=started, finished_at=context.now(), metadata=metadata
            )
        if outcome.warnings:
            metadata["warnings"] = "; ".join(outcome.warnings)
        return finished(
            metric, outcome.value, started_at=started, finished_at=context.now(), metadata=metadata
        )

    async def query(self, metric: Metric, context: ProviderContext) -> QueryResult | QueryFailure:
        """The metric's query, answered and typed as Argo types it (see the module doc)."""
        config = provider_config(metric, "prometheus")
        try:
            value, warnings = await self._query(config, str(config.get("query") or ""), context)
        except PrometheusFailure as failure:
            return QueryFailure(str(failure))
        return QueryResult(value=value, warnings=tuple(warnings))

    async def _query(
        self, config: Mapping[str, Any], query: str, context: ProviderContext
    ) -> tuple[object, list[str]]:
        address = str(config.get("address") or os.environ.get(ADDRESS_ENV) or "").rstrip("/")
        if not address:
            raise PrometheusFailure(
                f"prometheus.address is not set (nor the environment variable {ADDRESS_ENV})"
            )
        if not query.strip():
            raise PrometheusFailure("prometheus.query is empty")
        timeout = _timeout(config.get("timeout"))
        insecure = bool(config.get("insecure"))
        headers = header_pairs(config.get("headers"))
        auth = config.get("authentication")
        auth = auth if isinstance(auth, Mapping) else {}
        basic = _basic_auth(auth.get("basicAuth"))
        if auth.get("sigv4") and "aps-workspaces" in address:
            raise PrometheusFailure(
                "prometheus.authentication.sigv4 (Amazon Managed Prometheus) is not supported "
                "in rollwise yet; use an OAuth2 or header-authenticated address"
            )
        oauth2 = auth.get("oauth2")
        if isinstance(oauth2, Mapping) and oauth2.get("tokenUrl"):
            token = await oauth2_token(oauth2, what=WHAT, timeout_s=timeout, insecure=insecure)
            if isinstance(token, HTTPFailure):
                raise PrometheusFailure(token.message)
            headers.append(("Authorization", f"Bearer {token}"))

        range_query = config.get("rangeQuery")
        now = context.now()
        if isinstance(range_query, Mapping) and range_query:
            path = "/api/v1/query_range"
            form = {"query": query, **_range_params(range_query, now)}
        else:
            path = "/api/v1/query"
            form = {"query": query, "time": _unix(now)}

        url = address + path
        answer = await fetch(
            "POST",
            url,
            what=WHAT,
            timeout_s=timeout,
            insecure=insecure,
            headers=headers,
            data=form,
            auth=basic,
        )
        if isinstance(answer, HTTPAnswer) and answer.status == 405:
            answer = await fetch(
                "GET",
                url,
                what=WHAT,
                timeout_s=timeout,
                insecure=insecure,
                headers=headers,
                params=form,
                auth=basic,
            )
        if isinstance(answer, HTTPFailure):
            raise PrometheusFailure(answer.message)
        return _result(answer, url)


def _timeout(raw: object) -> float:
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT_S
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise TypeError(type(raw).__name__)
        seconds = float(raw)
    except (TypeError, ValueError) as exc:
        raise PrometheusFailure(
            f"prometheus.timeout must be a number of seconds, not {raw!r}"
        ) from exc
    if seconds < 0:
        raise PrometheusFailure(f"prometheus.timeout must not be negative ({raw!r})")
    return seconds or DEFAULT_TIMEOUT_S


def _basic_auth(raw: object) -> tuple[str, str] | None:
    if not isinstance(raw, Mapping) or not (raw.get("username") or raw.get("password")):
        return None
    return str(raw.get("username") or ""), str(raw.get("password") or "")


def _unix(moment: datetime) -> str:
    return f"{moment.timestamp():.3f}"


# --- range queries --------------------------------------------------------------------------------


def _range_params(config: Mapping[str, Any], now: datetime) -> dict[str, str]:
    start = _moment(config.get("start"), now, field="start")
    end = _moment(config.get("end"), now, field="end")
    step_raw = config.get("step")
    if not step_raw:
        raise PrometheusFailure("prometheus.rangeQuery.step is required")
    try:
        step = parse_duration(step_raw)
    except ValueError as exc:
        raise PrometheusFailure(f"prometheus.rangeQuery.step: {exc}") from exc
    if step <= 0:
        raise PrometheusFailure(f"prometheus.rangeQuery.step must be positive ({step_raw!r})")
    if end < start:
        raise PrometheusFailure("prometheus.rangeQuery: end is before start")
    return {"start": _unix(start), "end": _unix(end), "step": f"{step:g}"}


def _moment(raw: object, now: datetime, *, field: str) -> datetime:
    """A rangeQuery bound: an expression over `now()` and `duration()` yielding a time."""
    text = str(raw or "").strip()
    if not text:
        raise PrometheusFailure(f"prometheus.rangeQuery.{field} is required")
    try:
        value = _evaluate_time(text, now)
    except ValueError as exc:
        raise PrometheusFailure(f"prometheus.rangeQuery.{field} {text!r}: {exc}") from exc
    return value


def _evaluate_time(text: str, now: datetime) -> datetime:
    """Argo evaluates the bounds as expr expressions with `now()` and `duration()`."""
    try:
        value = compile_expression(text).evaluate({}, now=now)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(value, datetime):
        raise ValueError(f"must yield a time, not {type(value).__name__} {value!r}")
    return value


# --- results --------------------------------------------------------------------------------------


def _result(answer: HTTPAnswer, url: str) -> tuple[object, list[str]]:
    """Argo's typing of a Prometheus API answer; an error answer becomes PrometheusFailure."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        raise PrometheusFailure(
            f"{WHAT} at {url} answered HTTP {answer.status} without a JSON body: {answer.excerpt()}"
        )
    if body.get("status") != "success":
        kind = body.get("errorType") or f"HTTP {answer.status}"
        detail = body.get("error") or answer.excerpt()
        raise PrometheusFailure(f"{WHAT} query failed: {kind}: {detail}")
    warnings = [str(w) for w in body.get("warnings") or []]
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise PrometheusFailure(f"{WHAT} answer has no data: {answer.excerpt()}")
    try:
        return _typed(data), warnings
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise PrometheusFailure(
            f"{WHAT} answer could not be read ({type(exc).__name__}): {answer.excerpt()}"
        ) from exc


def _typed(data: Mapping[str, Any]) -> object:
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return _sample(result)
    if kind == "vector":
        return [_sample(item["value"]) for item in result or []]
    if kind == "matrix":
        return [_sample(point) for item in result or [] for point in item.get("values") or []]
    raise PrometheusFailure(f"Prometheus metric type not supported: {kind}")


def _sample(pair: Any) -> float:
    # Prometheus sends `[unix_time, "value"]`; values are strings so NaN/+Inf/-Inf survive JSON.
    return float(pair[1])
