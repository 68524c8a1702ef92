"""The rollwise/judge provider against a real Prometheus scraping real demo apps: the seed's
series (`http_requests_total{service,version,status}` and the duration histogram), selected per
version, differenced between looks by the judge itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from tests.providers.conftest import (
    Processes,
    PrometheusServer,
    send_requests,
    start_demo_app,
)

from rollwise.api.models import Metric
from rollwise.core.timestamps import ManualClock
from rollwise.providers.base import ProviderContext, measure, resume

from .conftest import prometheus

__all__ = ["prometheus"]


def arm(version: str) -> dict[str, str]:
    selector = f'service="shop",version="{version}"'
    return {
        "requests": f"http_requests_total{{{selector}}}",
        "errors": f'http_requests_total{{{selector},status=~"5.."}}',
        "buckets": f"http_request_duration_seconds_bucket{{{selector}}}",
    }


async def test_a_canary_answering_half_its_requests_with_500_is_failed(
    prometheus: PrometheusServer, module_processes: Processes
) -> None:
    canary = start_demo_app(module_processes, "bad-red", service="shop", version="c1")
    stable = start_demo_app(module_processes, "blue", service="shop", version="s1")
    prometheus.scrape([canary.address, stable.address])
    prometheus.wait_until(
        # Both versions scraped (each exports its 200 and 500 series from the start).
        'count(count by (version) (http_requests_total{service="shop"}))',
        lambda v: v == [2.0],
        seconds=30,
    )
    config: dict[str, Any] = {
        "source": "prometheus",
        "address": prometheus.url,
        "window": "5s",
        "canary": arm("c1"),
        "baseline": arm("s1"),
        "latency": {"quantile": 0.9},
    }
    metric = Metric.model_validate(
        {"name": "judge", "provider": {"plugin": {"rollwise/judge": config}}}
    )
    # Queries are evaluated at the clock's time: start it now, so Prometheus has the samples.
    clock = ManualClock(datetime.now(UTC))
    context = ProviderContext(clock=clock)
    started = await measure(metric, context)
    assert started.phase == "Running", started.message

    await asyncio.to_thread(send_requests, canary.url + "/", 40)
    await asyncio.to_thread(send_requests, stable.url + "/", 160)
    prometheus.wait_until(
        'sum(http_requests_total{service="shop"})', lambda v: v == [200.0], seconds=30
    )
    clock.advance(5)
    done = await resume(metric, started, context)
    assert done.phase == "Failed", done.metadata
    assert done.value == "fail"
    metadata = done.metadata or {}
    assert (metadata["canaryRequests"], metadata["canaryErrors"]) == ("40", "20")
    assert (metadata["baselineRequests"], metadata["baselineErrors"]) == ("160", "0")
    assert metadata["latency"].startswith("calibrating: baseline 160 of 100") is False
    assert done.message is not None
    assert done.message.startswith("errors: canary 50% errors of 40 requests vs baseline 0% of 160")
