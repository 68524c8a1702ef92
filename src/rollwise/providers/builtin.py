"""The `rollwise/builtin` metric plugin: per-version traffic metrics read straight from Traefik.

Who calls it: the analysis shell through `provider_for`, for
`provider: {plugin: {"rollwise/builtin": {...}}}` (a plugin entry, so the YAML stays valid for
Argo). It needs `context.services.traefik_metrics`: the local platform hands it Traefik's
`/metrics` text (`DataPlane.scrape_metrics`). Analysis then works with no Prometheus at all.

Config: `metric` (`success-rate` | `error-rate` | `latency-p50` | `latency-p90` | `latency-p95`
| `latency-p99` (any `latency-pNN`) | `request-count`), `service` (the Kubernetes Service whose
backends are measured, e.g. the rollout's canary Service), `namespace` (default: the run's),
`window` (a duration, default `30s`).

Theory of operation. Traefik exports counters since it started, per backend service:
`traefik_service_requests_total{service="<ns>-<svc>@file",code}` and the histogram
`traefik_service_request_duration_seconds_bucket{service,le}`. A value over a window is a
difference of two scrapes `window` apart, and providers keep no state between calls, so the
measurement is asynchronous, like Argo's Job provider:
1. `run` scrapes once and returns a `Running` measurement with `resumeAt = now + window` and the
   counters in its metadata (`rollwise.io/counters`, JSON) - restart-safe, as it lives in status.
2. `resume`, once `resumeAt` has passed, scrapes again and measures the difference: the traffic
   of exactly this window, so traffic a previous version served through the same Service (an
   earlier canary) never counts. `terminate` measures what the window has seen so far.
A counter that went down (Traefik restarted) counts from zero, as Prometheus' `rate` does.

Results (floats; conditions read `result >= 0.95`, not `result[0]`): success rate = non-5xx /
all (0..1), error rate = 5xx / all, latency quantile in milliseconds (Prometheus'
`histogram_quantile` interpolation over the buckets; the seed's queries multiply by 1000 too),
request count. With no request in the window a rate or latency is nil (`None`), so the metric's
no-data policy decides (Argo's default makes nil an Error); the request count is then 0.
Metadata: `requests` (how many requests the value rests on), `window`, `service` (Traefik's).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rollwise.api.durations import parse_duration
from rollwise.api.models import Measurement, Metric
from rollwise.core.timestamps import format_time, parse_time_or_none
from rollwise.providers.base import (
    ProviderContext,
    error_at,
    finished,
    provider_config,
    register,
)
from rollwise.providers.exposition import Sample, parse_samples, scrape_samples, value_text

PLUGIN = "rollwise/builtin"
KEY = f"plugin:{PLUGIN}"
DEFAULT_WINDOW = "30s"
COUNTERS_KEY = "rollwise.io/counters"
REQUESTS = "traefik_service_requests_total"
BUCKETS = "traefik_service_request_duration_seconds_bucket"


class BuiltinFailure(Exception):
    """Internal: a reason to end this measurement as Error (never leaves the module)."""


# --- counters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counters:
    """One backend service's request counters: by status code, and cumulative latency buckets
    by upper bound (`le`, seconds, `+Inf` last)."""

    codes: Mapping[str, float] = field(default_factory=dict)
    buckets: Mapping[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> float:
        return sum(self.codes.values())

    @property
    def errors(self) -> float:
        return sum(count for code, count in self.codes.items() if code.startswith("5"))

    def since(self, earlier: Counters) -> Counters:
        """The traffic between `earlier` and this scrape (all of it after a counter reset)."""
        keys_went_down = any(self.codes.get(k, 0.0) < v for k, v in earlier.codes.items()) or any(
            self.buckets.get(k, 0.0) < v for k, v in earlier.buckets.items()
        )
        if keys_went_down:
            return self
        return Counters(
            codes={k: v - earlier.codes.get(k, 0.0) for k, v in self.codes.items()},
            buckets={k: v - earlier.buckets.get(k, 0.0) for k, v in self.buckets.items()},
        )

    def to_json(self) -> str:
        return json.dumps({"codes": self.codes, "buckets": self.buckets}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Counters:
        raw = json.loads(text)
        return cls(
            codes={str(k): float(v) for k, v in raw.get("codes", {}).items()},
            buckets={str(k): float(v) for k, v in raw.get("buckets", {}).items()},
        )


def counters_of(text: str, service: str) -> Counters:
    """The counters of Traefik service `service` (e.g. `default-myapp-canary@file`), summed
    over methods and protocols."""
    return counters_in(parse_samples(text), service)


def counters_in(samples: Iterable[Sample], service: str) -> Counters:
    """`counters_of` over parsed samples. A counter that is not a finite number is no count
    at all (a broken exporter): BuiltinFailure, never a NaN rate judged as if measured."""
    codes: dict[str, float] = {}
    buckets: dict[str, float] = {}
    for sample in samples:
        if sample.labels.get("service") != service:
            continue
        if sample.name in (REQUESTS, BUCKETS) and not math.isfinite(sample.value):
            raise BuiltinFailure(
                f"{PLUGIN}: Traefik reported {value_text(sample.value)} for the counter "
                f"{sample.name} of {service}; a counter must be a finite number"
            )
        if sample.name == REQUESTS:
            code = sample.labels.get("code", "")
            codes[code] = codes.get(code, 0.0) + sample.value
        elif sample.name == BUCKETS:
            bound = sample.labels.get("le", "")
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Counters(codes=codes, buckets=buckets)


def histogram_quantile(quantile: float, buckets: Mapping[str, float]) -> float | None:
    """Prometheus' `histogram_quantile` over cumulative buckets, in seconds; None when empty."""
    bounds = sorted((float(le), count) for le, count in buckets.items())
    if not bounds or not math.isinf(bounds[-1][0]) or bounds[-1][1] <= 0:
        return None
    total = bounds[-1][1]
    rank = quantile * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return previous_bound  # in the +Inf bucket: the highest finite bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (
                count - previous_count
            )
        previous_bound, previous_count = bound, count
    return previous_bound


# --- the metrics ----------------------------------------------------------------------------------

Measure = Callable[[Counters], float | None]


def _success_rate(counters: Counters) -> float | None:
    total = counters.requests
    return (total - counters.errors) / total if total else None


def _error_rate(counters: Counters) -> float | None:
    total = counters.requests
    return counters.errors / total if total else None


def _request_count(counters: Counters) -> float | None:
    return counters.requests


def _latency(quantile: float) -> Measure:
    def measure(counters: Counters) -> float | None:
        seconds = histogram_quantile(quantile, counters.buckets)
        return None if seconds is None else seconds * 1000

    return measure


MEASURES: dict[str, Measure] = {
    "success-rate": _success_rate,
    "error-rate": _error_rate,
    "request-count": _request_count,
}
_LATENCY = re.compile(r"latency-p(\d{1,2}(?:\.\d+)?)")


def measure_for(name: str) -> Measure:
    if name in MEASURES:
        return MEASURES[name]
    match = _LATENCY.fullmatch(name)
    if match and 0 < float(match.group(1)) < 100:
        return _latency(float(match.group(1)) / 100)
    known = ", ".join([*MEASURES, "latency-p50", "latency-p90", "latency-p95", "latency-p99"])
    raise BuiltinFailure(f"{PLUGIN}: unknown metric {name!r} (one of {known})")


# --- the provider ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinConfig:
    measure: Measure
    traefik_service: str
    window_s: float
    window: str


def read_config(raw: Mapping[str, Any], context: ProviderContext) -> BuiltinConfig:
    name = str(raw.get("metric") or "")
    if not name:
        raise BuiltinFailure(f"{PLUGIN}: `metric` is required")
    service = str(raw.get("service") or "")
    if not service:
        raise BuiltinFailure(f"{PLUGIN}: `service` (a Kubernetes Service name) is required")
    namespace = str(raw.get("namespace") or context.namespace or "default")
    window = str(raw.get("window") or DEFAULT_WINDOW)
    try:
        window_s = parse_duration(window)
    except ValueError as exc:
        raise BuiltinFailure(f"{PLUGIN}: window: {exc}") from exc
    if window_s <= 0:
        raise BuiltinFailure(f"{PLUGIN}: window must be positive ({window!r})")
    # Traefik's name for a Service's backends (rollwise.platforms.local.dataplane_config).
    traefik_service = service if "@" in service else f"{namespace}-{service}@file"
    return BuiltinConfig(
        measure=measure_for(name), traefik_service=traefik_service, window_s=window_s, window=window
    )


async def scrape(context: ProviderContext, service: str) -> Counters:
    source = context.services.traefik_metrics
    if source is None:
        raise BuiltinFailure(
            f"{PLUGIN} reads Traefik's metrics, which only the local platform provides"
        )
    try:
        text = await source()
        samples = scrape_samples(text, source="Traefik's /metrics")
    except Exception as exc:  # whatever the source raises, the measurement says it
        raise BuiltinFailure(f"{PLUGIN}: cannot read Traefik's metrics: {exc}") from exc
    return counters_in(samples, service)


@register(KEY)
class BuiltinProvider:
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        started = context.now()
        try:
            config = read_config(provider_config(metric, KEY), context)
            counters = await scrape(context, config.traefik_service)
        except BuiltinFailure as failure:
            return error_at(str(failure), started_at=started, finished_at=context.now())
        return Measurement(
            phase="Running",
            started_at=format_time(started),
            resume_at=format_time(started + timedelta(seconds=config.window_s)),
            metadata={
                COUNTERS_KEY: counters.to_json(),
                "window": config.window,
                "service": config.traefik_service,
            },
        )

    async def resume(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        due = parse_time_or_none(measurement.resume_at)
        if measurement.phase != "Running" or (due is not None and context.now() < due):
            return measurement
        return await self._finish(metric, measurement, context)

    async def terminate(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        if measurement.phase != "Running":
            return measurement
        return await self._finish(metric, measurement, context)

    async def _finish(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        started = parse_time_or_none(measurement.started_at) or context.now()
        metadata = dict(measurement.metadata or {})
        try:
            config = read_config(provider_config(metric, KEY), context)
            try:
                before = Counters.from_json(metadata.pop(COUNTERS_KEY))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise BuiltinFailure(
                    f"{PLUGIN}: the measurement lost its starting counters ({exc!r})"
                ) from exc
            window = (await scrape(context, config.traefik_service)).since(before)
        except BuiltinFailure as failure:
            return error_at(
                str(failure), started_at=started, finished_at=context.now(), metadata=metadata
            )
        metadata["requests"] = f"{window.requests:g}"
        return finished(
            metric,
            config.measure(window),
            started_at=started,
            finished_at=context.now(),
            metadata=metadata,
        )
