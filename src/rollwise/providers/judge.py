"""The `rollwise/judge` metric plugin: an anytime-valid comparison of canary and baseline.

Who calls it: the analysis shell through `provider_for`, for
`provider: {plugin: {"rollwise/judge": {...}}}` (a plugin entry, so the YAML stays valid for
Argo). The statistics are `rollwise.core.judge`; this module reads the counts and keeps the
judgement going. `docs/judge.md` is the user's guide.

Config (camelCase; numbers may be strings such as "0.01" or "0.1%", so `{{args.*}}` works):
`source` (`traefik` | `prometheus`, default `traefik`); for traefik `canaryService`,
`baselineService` (Kubernetes Services, e.g. the rollout's canary and stable Services),
`namespace`; for prometheus `address` (else env `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`), `headers`,
`timeout`, `insecure`, `authentication.basicAuth`, and `canary` / `baseline`, each with
`requests` and `errors` (PromQL selecting the *counters*, e.g.
`http_requests_total{service="shop",version="{{args.canary-hash}}"}`: the judge sums the series
and differences them between looks itself, so no `rate()`/`increase()`) and optionally `buckets`
(a histogram's `_bucket` series, with their `le` label). Judgement: `window` (time between looks,
default 10s), `alpha` (default 0.01), `passAlpha` (0.05), `marginRatio` (1.2), `marginAbs`
(0.1%), `minRequests` (200), `maxDuration` (none: when set, no decision by then ends the
measurement Inconclusive), `errors` (default true: compare error counts), `latency`
(`{quantile: 0.99, marginRatio: 1.5, marginAbs, calibrationRequests}`; absent: no latency test).

Theory of operation. One measurement is one judgement, like a Job: it stays `Running` while the
evidence accumulates and finishes when the judge decides.
1. `run` reads the counters once and returns a `Running` measurement with `resumeAt = now +
   window`; its metadata holds the counters (`rollwise.io/judge-counters`) and the judge's
   state (`rollwise.io/judge-state`), both JSON. Everything lives in the AnalysisRun's status,
   so a controller restart resumes where it was.
2. Each `resume` (one *look*) reads the counters again, feeds the increase since the previous
   look to the judge, and records the evidence in the metadata (counts, e-value, p-value,
   bounds, decision, reason, estimated requests and time to a decision). `pass` ends the
   measurement Successful, `fail` Failed (value "pass"/"fail"); otherwise it stays Running
   (value "continue" or "no-data") and looks again one window later. When the metric has a
   `successCondition`/`failureCondition`, those judge the final value instead (write
   `result == "pass"` / `result == "fail"`). Past `maxDuration` the value is the undecided
   decision and the measurement is Inconclusive, so the rollout pauses for a person.
3. A metric with neither `count` nor `interval` takes one measurement: the step then lasts
   exactly as long as the evidence needs. A failed read keeps the judgement (the measurement
   stays Running and retries one window later); the fifth failure in a row is an Error.
4. `terminate` takes a last look and returns what it says.

Counters are differenced per series: a series that went down restarted (its new value is the
increase), a new series counts from zero. Traffic served before the measurement never counts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from rollwise.api.durations import parse_duration
from rollwise.api.models import Measurement, Metric
from rollwise.core.judge import (
    FAIL,
    PASS,
    CanaryJudge,
    ErrorRateTest,
    JudgeState,
    JudgeVerdict,
    LatencyTest,
    Traffic,
    Verdict,
)
from rollwise.core.judge.rates import count_text, number_text, rate_text
from rollwise.core.timestamps import format_time, parse_time_or_none
from rollwise.providers.base import (
    ProviderContext,
    error_at,
    finished,
    provider_config,
    register,
)
from rollwise.providers.builtin import BUCKETS, REQUESTS
from rollwise.providers.exposition import Sample, parse_samples, scrape_samples, value_text
from rollwise.providers.http import HTTPFailure, fetch, header_pairs

PLUGIN = "rollwise/judge"
KEY = f"plugin:{PLUGIN}"
COUNTERS_KEY = "rollwise.io/judge-counters"
STATE_KEY = "rollwise.io/judge-state"
FAILURES_KEY = "rollwise.io/judge-failures"
LOOKED_AT_KEY = "rollwise.io/judge-looked-at"
DEFAULT_WINDOW = "10s"
MAX_READ_FAILURES = 5
ADDRESS_ENV = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS"
DEFAULT_TIMEOUT_S = 30.0

PHASES = {PASS: "Successful", FAIL: "Failed"}
"""A decided judgement's phase when the metric has no condition; anything else: Inconclusive."""


class JudgeFailure(Exception):
    """Internal: a reason the judge cannot read or go on (never leaves the module)."""


# --- counters of one moment ---------------------------------------------------------------------

Series = dict[str, float]
"""Cumulative counter values by series (a label set, or a status code for Traefik)."""


@dataclass(frozen=True)
class ArmReading:
    """One version's counters at one moment."""

    requests: Series = field(default_factory=dict)
    errors: Series = field(default_factory=dict)
    buckets: dict[str, Series] = field(default_factory=dict)
    """Histogram buckets: `le` (as Prometheus writes it, `+Inf` included) -> series."""

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "buckets": self.buckets}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ArmReading:
        return cls(
            requests={str(k): float(v) for k, v in raw["requests"].items()},
            errors={str(k): float(v) for k, v in raw["errors"].items()},
            buckets={
                str(le): {str(k): float(v) for k, v in series.items()}
                for le, series in raw["buckets"].items()
            },
        )


@dataclass(frozen=True)
class Reading:
    canary: ArmReading
    baseline: ArmReading

    def to_json(self) -> str:
        return json.dumps(
            {"canary": self.canary.to_json(), "baseline": self.baseline.to_json()},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Reading:
        raw = json.loads(text)
        return cls(
            canary=ArmReading.from_json(raw["canary"]),
            baseline=ArmReading.from_json(raw["baseline"]),
        )


def increase(before: Series, after: Series) -> float:
    """What the counters counted between two readings, series by series: a series that went
    down restarted (its value is the increase); one that is new counts from zero."""
    total = 0.0
    for key, value in after.items():
        earlier = before.get(key, 0.0)
        total += value - earlier if value >= earlier else value
    return total


def bucket_increase(before: dict[str, Series], after: dict[str, Series]) -> dict[float, float]:
    """Cumulative bucket counts of the increase, monotone in `le` (counters are not all read at
    the same instant, so a larger bucket may briefly lag a smaller one)."""
    counts = {_le(le): increase(before.get(le, {}), series) for le, series in after.items()}
    monotone: dict[float, float] = {}
    running = 0.0
    for le in sorted(counts):
        running = max(running, counts[le])
        monotone[le] = running
    return monotone


def _le(text: str) -> float:
    return math.inf if text.strip() in ("+Inf", "Inf", "inf") else float(text)


def traffic_between(before: Reading, after: Reading, *, latency: bool) -> Traffic:
    def arm(b: ArmReading, a: ArmReading) -> tuple[float, float, dict[float, float] | None]:
        requests = increase(b.requests, a.requests)
        errors = min(increase(b.errors, a.errors), requests)
        buckets = bucket_increase(b.buckets, a.buckets) if latency else None
        return requests, errors, buckets

    canary = arm(before.canary, after.canary)
    baseline = arm(before.baseline, after.baseline)
    return Traffic(
        canary_requests=canary[0],
        canary_errors=canary[1],
        baseline_requests=baseline[0],
        baseline_errors=baseline[1],
        canary_buckets=canary[2],
        baseline_buckets=baseline[2],
    )


# --- sources --------------------------------------------------------------------------------------


class Source(Protocol):
    async def read(self, context: ProviderContext) -> Reading: ...


@dataclass(frozen=True)
class TraefikSource:
    """Traefik's per-service counters (the local platform's data plane)."""

    canary_service: str
    baseline_service: str

    async def read(self, context: ProviderContext) -> Reading:
        scrape = context.services.traefik_metrics
        if scrape is None:
            raise JudgeFailure(
                f"{PLUGIN} with source traefik reads Traefik's metrics, which only the local "
                "platform provides; use source: prometheus"
            )
        try:
            text = await scrape()
            samples = scrape_samples(text, source="Traefik's /metrics")
        except Exception as exc:  # whatever the scrape raises, the measurement says it
            raise JudgeFailure(f"{PLUGIN}: cannot read Traefik's metrics: {exc}") from exc
        return Reading(
            canary=traefik_arm(samples, self.canary_service),
            baseline=traefik_arm(samples, self.baseline_service),
        )


def traefik_arm(text: str | Iterable[Sample], service: str) -> ArmReading:
    """One Traefik service's counters: requests by code, 5xx errors, buckets by `le`. A
    counter that is not a finite number is a broken exporter: JudgeFailure (a failed read)."""
    requests: Series = {}
    buckets: dict[str, Series] = {}
    for sample in parse_samples(text) if isinstance(text, str) else text:
        if sample.labels.get("service") != service:
            continue
        if sample.name in (REQUESTS, BUCKETS) and not math.isfinite(sample.value):
            raise JudgeFailure(
                f"{PLUGIN}: Traefik reported {value_text(sample.value)} for the counter "
                f"{sample.name} of {service}; a counter must be a finite number"
            )
        if sample.name == REQUESTS:
            key = _series_key(sample.labels)
            requests[key] = requests.get(key, 0.0) + sample.value
        elif sample.name == BUCKETS:
            le = sample.labels.get("le", "")
            key = _series_key({k: v for k, v in sample.labels.items() if k != "le"})
            series = buckets.setdefault(le, {})
            series[key] = series.get(key, 0.0) + sample.value
    errors = {
        key: value for key, value in requests.items() if _labels_of(key).get("code", "")[:1] == "5"
    }
    return ArmReading(requests=requests, errors=errors, buckets=buckets)


def _series_key(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"))


def _labels_of(key: str) -> dict[str, str]:
    raw = json.loads(key)
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


@dataclass(frozen=True)
class ArmQueries:
    requests: str
    errors: str
    buckets: str | None


@dataclass(frozen=True)
class PrometheusSource:
    """Instant queries of the counters of both versions."""

    address: str
    canary: ArmQueries
    baseline: ArmQueries
    headers: tuple[tuple[str, str], ...] = ()
    basic_auth: tuple[str, str] | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    insecure: bool = False

    async def read(self, context: ProviderContext) -> Reading:
        return Reading(
            canary=await self._arm(self.canary, context),
            baseline=await self._arm(self.baseline, context),
        )

    async def _arm(self, queries: ArmQueries, context: ProviderContext) -> ArmReading:
        requests = await self._series(queries.requests, context)
        errors = await self._series(queries.errors, context)
        buckets: dict[str, Series] = {}
        if queries.buckets:
            for key, value in (await self._series(queries.buckets, context)).items():
                labels = _labels_of(key)
                le = labels.pop("le", None)
                if le is None:
                    raise JudgeFailure(
                        f"{PLUGIN}: the buckets query gave a series without an `le` label: "
                        f"{queries.buckets}"
                    )
                buckets.setdefault(le, {})[_series_key(labels)] = value
        return ArmReading(requests=requests, errors=errors, buckets=buckets)

    async def _series(self, query: str, context: ProviderContext) -> Series:
        url = self.address.rstrip("/") + "/api/v1/query"
        answer = await fetch(
            "POST",
            url,
            what="Prometheus",
            timeout_s=self.timeout_s,
            insecure=self.insecure,
            headers=self.headers,
            data={"query": query, "time": f"{context.now().timestamp():.3f}"},
            auth=self.basic_auth,
        )
        if isinstance(answer, HTTPFailure):
            raise JudgeFailure(answer.message)
        try:
            body = answer.json()
        except ValueError:
            body = None
        if not isinstance(body, Mapping) or body.get("status") != "success":
            detail = body.get("error") if isinstance(body, Mapping) else answer.excerpt()
            raise JudgeFailure(f"Prometheus query {query!r} failed: {detail}")
        data = body.get("data")
        data = data if isinstance(data, Mapping) else {}
        kind, result = data.get("resultType"), data.get("result")
        result = result if isinstance(result, list) else []
        try:
            if kind == "scalar":
                return {_series_key({}): float(result[1])}
            if kind == "vector":
                series: Series = {}
                for item in result or []:
                    value = float(item["value"][1])
                    if math.isfinite(value):
                        series[_series_key(item.get("metric") or {})] = value
                return series
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise JudgeFailure(f"Prometheus answer to {query!r} could not be read") from exc
        raise JudgeFailure(
            f"Prometheus query {query!r} gave a {kind}; the judge needs an instant vector of "
            "counters (no range selector)"
        )


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeConfig:
    judge: CanaryJudge
    source: Source
    window_s: float
    window: str
    max_duration_s: float | None
    latency: bool


def number(raw: Mapping[str, Any], name: str, default: float) -> float:
    """A number from the config: 0.01, "0.01" or "1%" (a percentage)."""
    value = raw.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise JudgeFailure(f"{PLUGIN}: {name} must be a number, not {value!r}")
    try:
        if isinstance(value, str) and value.strip().endswith("%"):
            return float(value.strip()[:-1]) / 100
        return float(value)
    except (TypeError, ValueError) as exc:
        raise JudgeFailure(f"{PLUGIN}: {name} must be a number, not {value!r}") from exc


def _duration(raw: Mapping[str, Any], name: str, default: str | None) -> float | None:
    value = raw.get(name) or default
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise JudgeFailure(f"{PLUGIN}: {name}: {exc}") from exc
    if seconds <= 0:
        raise JudgeFailure(f"{PLUGIN}: {name} must be positive ({value!r})")
    return seconds


def _flag(raw: Mapping[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


def read_config(raw: Mapping[str, Any], context: ProviderContext) -> JudgeConfig:
    window = str(raw.get("window") or DEFAULT_WINDOW)
    window_s = _duration(raw, "window", DEFAULT_WINDOW)
    assert window_s is not None
    latency_raw = raw.get("latency")
    use_errors = _flag(raw, "errors", True)
    use_latency = isinstance(latency_raw, Mapping) or _flag(raw, "latency", False)
    latency_cfg: Mapping[str, Any] = latency_raw if isinstance(latency_raw, Mapping) else {}
    if not use_errors and not use_latency:
        raise JudgeFailure(f"{PLUGIN}: nothing to judge (errors: false and no latency)")
    alpha = number(raw, "alpha", 0.01)
    pass_alpha = number(raw, "passAlpha", 0.05)
    min_requests = number(raw, "minRequests", 200)
    try:
        errors = (
            ErrorRateTest(
                margin_ratio=number(raw, "marginRatio", 1.2),
                margin_abs=number(raw, "marginAbs", 0.001),
                min_requests=min_requests,
            )
            if use_errors
            else None
        )
        latency = None
        if use_latency:
            calibration = number(latency_cfg, "calibrationRequests", -1)
            margin_abs = number(latency_cfg, "marginAbs", -1)
            latency = LatencyTest(
                quantile=number(latency_cfg, "quantile", 0.99),
                margin_ratio=number(latency_cfg, "marginRatio", 1.5),
                margin_abs=None if margin_abs < 0 else margin_abs,
                min_requests=number(latency_cfg, "minRequests", min_requests),
                calibration_requests=None if calibration < 0 else calibration,
            )
        judge = CanaryJudge.build(
            alpha=alpha, pass_alpha=pass_alpha, errors=errors, latency=latency
        )
    except ValueError as exc:
        raise JudgeFailure(f"{PLUGIN}: {exc}") from exc
    return JudgeConfig(
        judge=judge,
        source=_source(raw, context),
        window_s=window_s,
        window=window,
        max_duration_s=_duration(raw, "maxDuration", None),
        latency=use_latency,
    )


def _source(raw: Mapping[str, Any], context: ProviderContext) -> Source:
    kind = str(raw.get("source") or "traefik")
    if kind == "traefik":
        namespace = str(raw.get("namespace") or context.namespace or "default")
        names = []
        for field_name in ("canaryService", "baselineService"):
            service = str(raw.get(field_name) or "")
            if not service:
                raise JudgeFailure(f"{PLUGIN}: `{field_name}` (a Kubernetes Service) is required")
            # Traefik's name for a Service's backends (rollwise.platforms.local).
            names.append(service if "@" in service else f"{namespace}-{service}@file")
        return TraefikSource(canary_service=names[0], baseline_service=names[1])
    if kind == "prometheus":
        address = str(raw.get("address") or os.environ.get(ADDRESS_ENV) or "")
        if not address:
            raise JudgeFailure(
                f"{PLUGIN}: `address` is required with source prometheus (or the environment "
                f"variable {ADDRESS_ENV})"
            )
        auth = raw.get("authentication")
        basic = auth.get("basicAuth") if isinstance(auth, Mapping) else None
        timeout = number(raw, "timeout", DEFAULT_TIMEOUT_S)
        return PrometheusSource(
            address=address,
            canary=_queries(raw, "canary"),
            baseline=_queries(raw, "baseline"),
            headers=tuple(header_pairs(raw.get("headers"))),
            basic_auth=(str(basic.get("username") or ""), str(basic.get("password") or ""))
            if isinstance(basic, Mapping)
            else None,
            timeout_s=timeout if timeout > 0 else DEFAULT_TIMEOUT_S,
            insecure=_flag(raw, "insecure", False),
        )
    raise JudgeFailure(f"{PLUGIN}: source must be traefik or prometheus, not {kind!r}")


def _queries(raw: Mapping[str, Any], arm: str) -> ArmQueries:
    config = raw.get(arm)
    if not isinstance(config, Mapping):
        raise JudgeFailure(f"{PLUGIN}: `{arm}` (with `requests` and `errors` queries) is required")
    requests, errors = str(config.get("requests") or ""), str(config.get("errors") or "")
    if not requests or not errors:
        raise JudgeFailure(f"{PLUGIN}: `{arm}.requests` and `{arm}.errors` are required")
    return ArmQueries(requests=requests, errors=errors, buckets=config.get("buckets") or None)


# --- what a look leaves in the measurement ------------------------------------------------------


def duration_text(seconds: float) -> str:
    whole = max(0, round(seconds))
    if whole < 120:
        return f"{whole}s"
    minutes, rest = divmod(whole, 60)
    if minutes < 120:
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _bounds_text(bounds: tuple[float, float] | None) -> str:
    return "-" if bounds is None else f"{rate_text(bounds[0])}..{rate_text(bounds[1])}"


def evidence_metadata(verdict: JudgeVerdict, *, canary_per_s: float | None) -> dict[str, str]:
    """The figures of a look, as strings for the measurement's metadata."""
    v = verdict.verdict
    out = {
        "decision": v.decision,
        "reason": v.reason,
        "evidence": number_text(v.e_value),
        "threshold": number_text(v.threshold),
        "pValue": f"{v.p_value:.3g}",
        "canaryRequests": count_text(v.canary_requests).replace(",", ""),
        "baselineRequests": count_text(v.baseline_requests).replace(",", ""),
    }
    if verdict.errors is not None:
        e = verdict.errors
        out |= {
            "canaryErrors": count_text(e.canary_events).replace(",", ""),
            "baselineErrors": count_text(e.baseline_events).replace(",", ""),
            "canaryErrorRate": rate_text(e.canary_rate),
            "baselineErrorRate": rate_text(e.baseline_rate),
            "canaryBounds": _bounds_text(e.canary_bounds),
            "baselineBounds": _bounds_text(e.baseline_bounds),
            "margin": rate_text(e.margin),
        }
    if verdict.latency is not None:
        out["latency"] = verdict.latency.reason
        if verdict.errors is not None:
            out["errors"] = verdict.errors.reason
    if canary_per_s is not None:
        out["canaryRequestRate"] = f"{canary_per_s:.3g}/s"
    if v.requests_needed is not None:
        out["requestsNeeded"] = str(v.requests_needed)
        if v.expected is not None:
            out["expected"] = v.expected
        if canary_per_s:
            out["estimatedTime"] = duration_text(v.requests_needed / canary_per_s)
    return out


_EVIDENCE_KEYS = (
    "decision",
    "reason",
    "evidence",
    "threshold",
    "pValue",
    "canaryRequests",
    "baselineRequests",
    "canaryErrors",
    "baselineErrors",
    "canaryErrorRate",
    "baselineErrorRate",
    "canaryBounds",
    "baselineBounds",
    "margin",
    "latency",
    "errors",
    "canaryRequestRate",
    "requestsNeeded",
    "expected",
    "estimatedTime",
)
"""Metadata a look rewrites (a key the previous look wrote and this one does not is dropped)."""


# --- the provider ---------------------------------------------------------------------------------


@register(KEY)
class JudgeProvider:
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        started = context.now()
        try:
            config = read_config(provider_config(metric, KEY), context)
            reading = await config.source.read(context)
        except JudgeFailure as failure:
            return error_at(str(failure), started_at=started, finished_at=context.now())
        return Measurement(
            phase="Running",
            started_at=format_time(started),
            resume_at=format_time(started + timedelta(seconds=config.window_s)),
            value="no-data",
            metadata={
                COUNTERS_KEY: reading.to_json(),
                STATE_KEY: json.dumps(config.judge.initial_state().to_json()),
                LOOKED_AT_KEY: format_time(started),
                "decision": "no-data",
                "reason": "waiting for the first window",
                "window": config.window,
            },
        )

    async def resume(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        due = parse_time_or_none(measurement.resume_at)
        if measurement.phase != "Running" or (due is not None and context.now() < due):
            return measurement
        return await self._look(metric, measurement, context, last=False)

    async def terminate(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        if measurement.phase != "Running":
            return measurement
        return await self._look(metric, measurement, context, last=True)

    async def _look(
        self, metric: Metric, measurement: Measurement, context: ProviderContext, *, last: bool
    ) -> Measurement:
        now = context.now()
        started = parse_time_or_none(measurement.started_at) or now
        metadata = dict(measurement.metadata or {})
        try:
            config = read_config(provider_config(metric, KEY), context)
            try:
                before = Reading.from_json(metadata[COUNTERS_KEY])
                state = JudgeState.from_json(json.loads(metadata[STATE_KEY]))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise JudgeFailure(
                    f"{PLUGIN}: the measurement lost its counters or its state ({exc!r})"
                ) from exc
        except JudgeFailure as failure:
            return error_at(str(failure), started_at=started, finished_at=now, metadata=metadata)
        try:
            after = await config.source.read(context)
        except JudgeFailure as failure:
            return self._read_failed(failure, measurement, metadata, config, now=now, last=last)

        traffic = traffic_between(before, after, latency=config.latency)
        try:
            state, verdict = config.judge.update(state, traffic)
        except ValueError as exc:  # a count the judge refuses: say so rather than guess
            return error_at(
                f"{PLUGIN}: {exc}", started_at=started, finished_at=now, metadata=metadata
            )
        looked_at = parse_time_or_none(metadata.get(LOOKED_AT_KEY)) or started
        seconds = (now - looked_at).total_seconds()
        canary_per_s = traffic.canary_requests / seconds if seconds > 0 else None

        for key in (*_EVIDENCE_KEYS, FAILURES_KEY, "lastError"):
            metadata.pop(key, None)
        metadata |= evidence_metadata(verdict, canary_per_s=canary_per_s)
        metadata[COUNTERS_KEY] = after.to_json()
        metadata[STATE_KEY] = json.dumps(state.to_json())
        metadata[LOOKED_AT_KEY] = format_time(now)
        metadata["looks"] = str(state.looks)

        decision = verdict.verdict.decision
        overdue = (
            config.max_duration_s is not None
            and (now - started).total_seconds() >= config.max_duration_s
        )
        if decision in (PASS, FAIL) or overdue or last:
            message = verdict.verdict.reason
            if overdue and decision not in (PASS, FAIL):
                limit = duration_text(config.max_duration_s or 0)
                message = f"no decision within maxDuration {limit}: {message}"
            return self._decided(
                metric,
                verdict.verdict,
                started=started,
                now=now,
                metadata=metadata,
                message=message,
            )
        return Measurement(
            phase="Running",
            started_at=format_time(started),
            resume_at=format_time(now + timedelta(seconds=config.window_s)),
            value=decision,
            metadata=metadata,
        )

    @staticmethod
    def _decided(
        metric: Metric,
        verdict: Verdict,
        *,
        started: datetime,
        now: datetime,
        metadata: dict[str, str],
        message: str,
    ) -> Measurement:
        value = verdict.decision
        if metric.success_condition or metric.failure_condition:
            measured = finished(
                metric, value, started_at=started, finished_at=now, metadata=metadata
            )
            if measured.phase == "Error":
                return measured
            return measured.copy_with(message=message)
        return Measurement(
            phase=PHASES.get(value, "Inconclusive"),
            message=message,
            started_at=format_time(started),
            finished_at=format_time(now),
            value=value,
            metadata=metadata,
        )

    @staticmethod
    def _read_failed(
        failure: JudgeFailure,
        measurement: Measurement,
        metadata: dict[str, str],
        config: JudgeConfig,
        *,
        now: datetime,
        last: bool,
    ) -> Measurement:
        """Keep the evidence through a failed read: retry one window later, up to
        MAX_READ_FAILURES in a row."""
        failures = int(metadata.get(FAILURES_KEY, "0") or 0) + 1
        started = parse_time_or_none(measurement.started_at) or now
        if failures >= MAX_READ_FAILURES or last:
            return error_at(
                f"{failure} ({failures} failed reads in a row)" if failures > 1 else str(failure),
                started_at=started,
                finished_at=now,
                metadata=metadata,
            )
        metadata[FAILURES_KEY] = str(failures)
        metadata["lastError"] = str(failure)
        return measurement.copy_with(
            resume_at=format_time(now + timedelta(seconds=config.window_s)), metadata=metadata
        )
