"""The metric-provider protocol, the context a provider runs in, and the registry of providers.

Where it sits: below the controller and `rollwise analyze`, above the core. The analysis shell
asks `provider_for(metric)` for the provider of each metric that is due and awaits its `run`
(or `resume`/`terminate` for asynchronous providers such as `job`). A provider turns a metric
into a `Measurement` value: a failure to reach the metrics server, a bad query, a bad response
are Error measurements with a clear message, never exceptions (`measure`/`resume`/`terminate`
here also catch what a provider raised by mistake, so the loop never dies on a provider bug).

The registry is a dict keyed by provider name: the key of `metric.provider` (`prometheus`,
`web`, `job`, `datadog`, `newRelic`, ...) or `plugin:<name>` for `provider.plugin.<name>` (such
as `plugin:rollwise/builtin`). Provider modules register themselves with `@register(name)` when
imported; `provider_for` imports the module of a name lazily, so importing this module (and the
CLI commands that only read resources) stays cheap: no aiohttp here.

Secrets: `ProviderContext.secrets` holds resolved secret values; `mask` replaces each with
`*****`, and `measure` masks every message and metadata value of the returned measurement.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from rollwise.api.errors import UserError
from rollwise.api.models import Measurement, Metric
from rollwise.core.timestamps import Clock

MASK = "*****"

JobPhase = Literal["Running", "Succeeded", "Failed"]


class JobRunner(Protocol):
    """Runs the pod template of a `job` metric somewhere (a local process, a Kubernetes Job).

    `start` returns an opaque handle that `status`/`stop` take and that the job provider keeps
    in the measurement's metadata, so a controller restart can resume it.
    """

    async def start(self, name: str, namespace: str, pod_template: dict[str, Any]) -> str: ...

    async def status(self, handle: str) -> JobPhase: ...

    async def stop(self, handle: str) -> None: ...


@dataclass(frozen=True)
class ProviderServices:
    """Capabilities the shell injects; a provider that needs a missing one returns an Error."""

    # Traefik's Prometheus exposition text (`/metrics`), for the `rollwise/builtin` plugin.
    traefik_metrics: Callable[[], Awaitable[str]] | None = None
    job_runner: JobRunner | None = None


@dataclass(frozen=True)
class ProviderContext:
    """Everything a provider may know besides the metric itself. Providers keep no state
    between calls: what an asynchronous measurement needs later lives in its metadata.

    `secrets` are the secret values a provider may look up (`<secret>/<key>`, e.g. every
    Secret of the run's namespace); only those it actually reads (`secret`) and the run's own
    secret args (`masked_values`) are masked, so an unrelated secret such as `1` does not
    garble every number in a message."""

    clock: Clock
    namespace: str = "default"
    run_name: str = ""
    secrets: Mapping[str, str] = field(default_factory=dict)
    services: ProviderServices = field(default_factory=ProviderServices)
    masked_values: frozenset[str] = frozenset()
    _read: set[str] = field(default_factory=set, compare=False, repr=False)

    def now(self) -> datetime:
        return self.clock.now()

    def secret(self, key: str) -> str | None:
        """The secret value under `key` (`<secret>/<key>`), remembered for masking."""
        value = self.secrets.get(key) or None
        if value is not None:
            self._read.add(value)
        return value

    @property
    def sensitive(self) -> frozenset[str]:
        """Every value to hide: the run's secret args and the secrets providers read."""
        return self.masked_values | frozenset(self._read)

    def mask(self, text: str) -> str:
        """`text` with every sensitive value replaced by `*****` (longest first, so a secret
        that contains another is masked whole)."""
        for secret in sorted((s for s in self.sensitive if s), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text


class MetricProvider(Protocol):
    """One kind of metrics source. Every method returns a Measurement and never raises for a
    provider failure (unreachable server, bad response): that is an Error measurement."""

    async def run(self, metric: Metric, context: ProviderContext) -> Measurement: ...

    async def resume(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement: ...

    async def terminate(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement: ...


class UnknownProviderError(UserError):
    """The metric names no provider, several, or one rollwise does not know: fix the template."""


class SynchronousProvider(ABC):
    """Base for providers whose `run` finishes the measurement: resume and terminate have
    nothing to wait for, so they return the measurement unchanged (as Argo's do)."""

    @abstractmethod
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement: ...

    async def resume(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        return measurement

    async def terminate(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        return measurement


# --- registry -------------------------------------------------------------------------------------

ProviderFactory = Callable[[], MetricProvider]

# Which module registers each name; imported on first use only.
PROVIDER_MODULES: dict[str, str] = {
    "prometheus": "rollwise.providers.prometheus",
    "web": "rollwise.providers.web",
    "job": "rollwise.providers.job",
    "datadog": "rollwise.providers.datadog",
    "newRelic": "rollwise.providers.newrelic",
    "wavefront": "rollwise.providers.wavefront",
    "graphite": "rollwise.providers.graphite",
    "influxdb": "rollwise.providers.influxdb",
    "plugin:rollwise/builtin": "rollwise.providers.builtin",
    "plugin:rollwise/judge": "rollwise.providers.judge",
}

_registry: dict[str, ProviderFactory] = {}

F = TypeVar("F", bound=ProviderFactory)


def register(name: str) -> Callable[[F], F]:
    """Class (or factory) decorator: `@register("prometheus") class PrometheusProvider: ...`.

    The factory is called with no arguments for each `provider_for`; providers hold no state
    between calls, so a fresh instance is as good as a shared one.
    """

    def decorate(factory: F) -> F:
        _registry[name] = factory
        return factory

    return decorate


def provider_key(metric: Metric) -> str:
    """The registry key of the metric's provider; raises UnknownProviderError when there is
    not exactly one provider (or one plugin) named."""
    raw = metric.provider.to_raw() if metric.provider is not None else {}
    keys = [key for key, value in raw.items() if value is not None]
    if not keys:
        raise UnknownProviderError(f"metric {metric.name!r} has no provider")
    if len(keys) > 1:
        raise UnknownProviderError(
            f"metric {metric.name!r} has more than one provider: {', '.join(sorted(keys))}"
        )
    key = keys[0]
    if key != "plugin":
        return key
    plugins = raw["plugin"]
    if not isinstance(plugins, dict) or len(plugins) != 1:
        raise UnknownProviderError(
            f"metric {metric.name!r}: provider.plugin must name exactly one plugin"
        )
    return f"plugin:{next(iter(plugins))}"


def provider_for(metric: Metric) -> MetricProvider:
    """The provider of `metric`, importing its module on first use."""
    key = provider_key(metric)
    if key not in _registry and key in PROVIDER_MODULES:
        try:
            importlib.import_module(PROVIDER_MODULES[key])
        except ModuleNotFoundError as exc:
            if exc.name != PROVIDER_MODULES[key]:
                raise
    factory = _registry.get(key)
    if factory is None:
        known = ", ".join(sorted(PROVIDER_MODULES))
        raise UnknownProviderError(
            f"metric {metric.name!r}: provider {key!r} is not supported (known: {known})"
        )
    return factory()


def provider_config(metric: Metric, key: str) -> dict[str, Any]:
    """The raw (camelCase) configuration of the metric's provider `key` (`plugin:<name>` for a
    plugin), `{}` when it is not an object."""
    raw = metric.provider.to_raw() if metric.provider is not None else {}
    if key.startswith("plugin:"):
        plugins = raw.get("plugin")
        value = plugins.get(key.removeprefix("plugin:")) if isinstance(plugins, dict) else None
    else:
        value = raw.get(key)
    return dict(value) if isinstance(value, dict) else {}


# --- running, never raising -----------------------------------------------------------------------


def error_at(
    message: str,
    *,
    started_at: datetime,
    finished_at: datetime,
    metadata: Mapping[str, str] | None = None,
) -> Measurement:
    """An Error measurement with `message` (the core's `error_measurement`)."""
    from rollwise.core.analysis.evaluate import error_measurement

    return error_measurement(
        message, started_at=started_at, finished_at=finished_at, metadata=metadata
    )


def finished(
    metric: Metric,
    value: object,
    *,
    started_at: datetime,
    finished_at: datetime,
    metadata: Mapping[str, str] | None = None,
) -> Measurement:
    """A finished measurement of `value`: the metric's conditions decide its phase (the core's
    `measurement_from_value`, imported here so synchronous providers need not know where)."""
    from rollwise.core.analysis.evaluate import measurement_from_value

    return measurement_from_value(
        metric, value, started_at=started_at, finished_at=finished_at, metadata=metadata
    )


def masked(measurement: Measurement, context: ProviderContext) -> Measurement:
    """The measurement with secret values masked in its message, value and metadata."""
    if not context.sensitive:
        return measurement
    changes: dict[str, Any] = {}
    if measurement.message:
        changes["message"] = context.mask(measurement.message)
    if measurement.value:
        changes["value"] = context.mask(measurement.value)
    if measurement.metadata:
        changes["metadata"] = {k: context.mask(v) for k, v in measurement.metadata.items()}
    return measurement.copy_with(**changes) if changes else measurement


class ProviderFailure(Exception):
    """Inside a provider: a reason to end this measurement as Error (caught by `run_query`,
    never leaves the provider). `no_data`: the query worked and found nothing, so the metric's
    no-data policy (if it has one) decides instead."""

    def __init__(self, message: str, *, no_data: bool = False) -> None:
        super().__init__(message)
        self.no_data = no_data


async def run_query(
    metric: Metric,
    context: ProviderContext,
    query: Callable[[], Awaitable[object]],
    *,
    empty: object = None,
    metadata: dict[str, str] | None = None,
) -> Measurement:
    """One synchronous measurement: `query()` gives the value or raises ProviderFailure.
    `empty` is the value a no-data failure stands for (`[]` or nil, as the provider's result
    type); `metadata` may be filled by `query` as it goes."""
    from rollwise.core.analysis.nodata import no_data_policy_of

    started = context.now()
    try:
        value = await query()
    except ProviderFailure as failure:
        if failure.no_data and no_data_policy_of(metric) is not None:
            value = empty
        else:
            return error_at(
                str(failure),
                started_at=started,
                finished_at=context.now(),
                metadata=metadata or None,
            )
    return finished(
        metric, value, started_at=started, finished_at=context.now(), metadata=metadata or None
    )


async def measure(metric: Metric, context: ProviderContext) -> Measurement:
    """Take one measurement of `metric` now: an unknown provider or a provider bug is an Error
    measurement, not an exception; secrets are masked."""
    started = context.now()
    try:
        provider = provider_for(metric)
        result = await provider.run(metric, context)
    except UnknownProviderError as exc:
        result = error_at(str(exc), started_at=started, finished_at=context.now())
    except Exception as exc:  # a provider bug must not stop the analysis loop
        result = error_at(
            f"provider failed: {type(exc).__name__}: {exc}",
            started_at=started,
            finished_at=context.now(),
        )
    return masked(result, context)


async def resume(metric: Metric, measurement: Measurement, context: ProviderContext) -> Measurement:
    """Resume a Running measurement (asynchronous providers); errors as in `measure`."""
    try:
        result = await provider_for(metric).resume(metric, measurement, context)
    except Exception as exc:
        now = context.now()
        result = error_at(
            f"provider failed: {type(exc).__name__}: {exc}", started_at=now, finished_at=now
        )
        if measurement.started_at:
            result = result.copy_with(started_at=measurement.started_at)
    return masked(result, context)


async def terminate(
    metric: Metric, measurement: Measurement, context: ProviderContext
) -> Measurement:
    """Stop a Running measurement (the run was terminated); errors as in `measure`."""
    try:
        result = await provider_for(metric).terminate(metric, measurement, context)
    except Exception as exc:
        now = context.now()
        result = error_at(
            f"provider failed: {type(exc).__name__}: {exc}", started_at=now, finished_at=now
        )
        if measurement.started_at:
            result = result.copy_with(started_at=measurement.started_at)
    return masked(result, context)
