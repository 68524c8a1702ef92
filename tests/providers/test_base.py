"""The provider protocol's shell: which provider a metric names, and that measuring never raises
and never shows a secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollwise.api.models import Measurement, Metric
from rollwise.core.timestamps import ManualClock
from rollwise.providers import base
from rollwise.providers.base import (
    MASK,
    ProviderContext,
    SynchronousProvider,
    UnknownProviderError,
    measure,
    provider_config,
    provider_for,
    provider_key,
    resume,
    terminate,
)

NOW = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)


def metric(provider: dict[str, Any] | None) -> Metric:
    raw: dict[str, Any] = {"name": "m"}
    if provider is not None:
        raw["provider"] = provider
    return Metric.model_validate(raw)


@pytest.mark.parametrize(
    ("provider", "key"),
    [
        ({"prometheus": {"query": "up"}}, "prometheus"),
        ({"web": {"url": "http://x"}}, "web"),
        ({"newRelic": {"query": "SELECT 1"}}, "newRelic"),
        ({"plugin": {"rollwise/builtin": {"metric": "success-rate"}}}, "plugin:rollwise/builtin"),
    ],
)
def test_the_provider_key_is_the_one_provider_named(provider: dict[str, Any], key: str) -> None:
    assert provider_key(metric(provider)) == key


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (None, "metric 'm' has no provider"),
        ({}, "metric 'm' has no provider"),
        ({"web": {}, "prometheus": {}}, "metric 'm' has more than one provider: prometheus, web"),
        (
            {"plugin": {"a/b": {}, "c/d": {}}},
            "metric 'm': provider.plugin must name exactly one plugin",
        ),
    ],
)
def test_a_metric_must_name_exactly_one_provider(
    provider: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(UnknownProviderError, match="^" + message.replace("(", r"\(")):
        provider_key(metric(provider))


def test_an_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(UnknownProviderError) as raised:
        provider_for(metric({"plugin": {"acme/magic": {}}}))
    assert str(raised.value).startswith(
        "metric 'm': provider 'plugin:acme/magic' is not supported (known: datadog, "
    )
    assert "prometheus" in str(raised.value)


def test_provider_config_reads_plain_and_plugin_providers() -> None:
    plain = metric({"prometheus": {"query": "up", "timeout": 5}})
    assert provider_config(plain, "prometheus") == {"query": "up", "timeout": 5}
    plugin = metric({"plugin": {"rollwise/builtin": {"metric": "error-rate"}}})
    assert provider_config(plugin, "plugin:rollwise/builtin") == {"metric": "error-rate"}
    assert provider_config(plugin, "web") == {}


def test_masking_replaces_every_secret_longest_first() -> None:
    context = ProviderContext(clock=ManualClock(NOW), masked_values=frozenset({"token", ""}))
    assert context.secret("nope") is None
    context = ProviderContext(
        clock=ManualClock(NOW),
        secrets={"b": "token-admin", "unrelated": "1"},
        masked_values=frozenset({"token", ""}),
    )
    assert context.secret("b") == "token-admin"
    assert context.mask("use token-admin or token") == f"use {MASK} or {MASK}"


def test_only_secrets_in_use_are_masked() -> None:
    """Every Secret of the namespace is there to look up; one nobody read (here "1") must not
    garble the numbers of every message."""
    context = ProviderContext(clock=ManualClock(NOW), secrets={"x/account-id": "1"})
    assert context.mask("0.01 of 100") == "0.01 of 100"
    assert context.secret("x/account-id") == "1"
    assert context.mask("account 1") == f"account {MASK}"


class Leaky(SynchronousProvider):
    """Reports the secret it was given, in every field a measurement has."""

    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        return Measurement(
            phase="Failed",
            message="login as admin:hunter2 refused",
            value="hunter2",
            metadata={"url": "http://admin:hunter2@host/"},
        )


class Broken(SynchronousProvider):
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        raise KeyError("hunter2")

    async def resume(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        raise RuntimeError("lost")


@pytest.fixture
def test_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base._registry, "plugin:tests/leaky", Leaky)
    monkeypatch.setitem(base._registry, "plugin:tests/broken", Broken)


def context() -> ProviderContext:
    # A run whose args resolved a secretKeyRef to "hunter2".
    return ProviderContext(clock=ManualClock(NOW), masked_values=frozenset({"hunter2"}))


@pytest.mark.usefixtures("test_providers")
async def test_measure_masks_secrets_in_message_value_and_metadata() -> None:
    measurement = await measure(metric({"plugin": {"tests/leaky": {}}}), context())
    assert measurement.message == f"login as admin:{MASK} refused"
    assert measurement.value == MASK
    assert measurement.metadata == {"url": f"http://admin:{MASK}@host/"}


@pytest.mark.usefixtures("test_providers")
async def test_a_provider_bug_is_an_error_measurement() -> None:
    broken = metric({"plugin": {"tests/broken": {}}})
    measurement = await measure(broken, context())
    assert measurement.phase == "Error"
    assert measurement.message == f"provider failed: KeyError: '{MASK}'"
    assert measurement.started_at == "2026-11-26T01:50:00Z"

    running = Measurement(phase="Running", started_at="2026-11-26T01:40:00Z")
    resumed = await resume(broken, running, context())
    assert resumed.phase == "Error"
    assert resumed.message == "provider failed: RuntimeError: lost"
    assert resumed.started_at == "2026-11-26T01:40:00Z"


async def test_an_unknown_provider_is_an_error_measurement() -> None:
    measurement = await measure(metric({"cloudWatch": {"interval": "5m"}}), context())
    assert measurement.phase == "Error"
    assert measurement.message is not None
    assert measurement.message.startswith("metric 'm': provider 'cloudWatch' is not supported")


@pytest.mark.usefixtures("test_providers")
async def test_synchronous_providers_resume_and_terminate_to_the_same_measurement() -> None:
    done = Measurement(phase="Successful", value="1")
    leaky = metric({"plugin": {"tests/leaky": {}}})
    assert await resume(leaky, done, context()) == done
    assert await terminate(leaky, done, context()) == done
