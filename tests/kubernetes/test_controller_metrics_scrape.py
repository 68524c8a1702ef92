"""The Kubernetes controller's `/metrics` and `/healthz`, scraped over HTTP during a canary on the
API server: Argo's series (rollout_info, rollout_phase, rollout_reconcile, rollout_events_total,
analysis_run_info, the controller info), rollwise's canary weight, and `ok` on the health port,
from the leader and from a standby replica waiting for the lease."""

from __future__ import annotations

import asyncio
import copy
import re
import socket
from collections.abc import Iterable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.kubernetes.apiserver import KubeApi, KubeControllerManager
from tests.kubernetes.world import (
    ARGO,
    SEED_ROLLOUT,
    SEED_SERVICE,
    rollout,
    running_controller,
    seed,
    set_image,
)

from rollwise import __version__
from rollwise.controller import kubernetes
from rollwise.controller.kubernetes import KubeController
from rollwise.core.commands import promote_patch

pytestmark = pytest.mark.timeout(60)

RawObject = dict[str, Any]
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

CHECK_TEMPLATE: RawObject = {
    "apiVersion": ARGO,
    "kind": "AnalysisTemplate",
    "metadata": {"name": "check", "namespace": "default"},
    "spec": {
        "metrics": [
            {
                "name": "check",
                "provider": {
                    "job": {
                        "spec": {
                            "backoffLimit": 0,
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [
                                        {"name": "check", "image": "busybox", "command": ["true"]}
                                    ],
                                }
                            },
                        }
                    }
                },
            }
        ]
    },
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def scrape(url: str) -> Series:
    """Every sample of a `/metrics` page, by name (exactly as written: Argo's counters have no
    `_total`, which prometheus_client's parser would add) and labels."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    list(text_string_to_metric_families(text))  # the page parses as Prometheus' text format
    series: Series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample = SAMPLE.fullmatch(line)
            assert sample is not None, line
            labels = frozenset(LABEL.findall(sample["labels"] or ""))
            series[(sample["name"], labels)] = float(sample["value"])
    return series


def value(series: Series, metric: str, /, **labels: str) -> float | None:
    """The value of the one sample named `metric` whose labels include `labels`."""
    found = [
        sample_value
        for (sample_name, sample_labels), sample_value in series.items()
        if sample_name == metric and set(labels.items()) <= sample_labels
    ]
    assert len(found) <= 1, f"{metric}{labels} matches {len(found)} samples"
    return found[0] if found else None


def labelled(series: Series, metric: str) -> Iterable[dict[str, str]]:
    return [dict(labels) for sample_name, labels in series if sample_name == metric]


def recorded(kube_api: KubeApi, reason: str) -> int:
    """Recordings of `reason` about the Rollout on the API server (a repeat is counted on the
    Event created before, as client-go's recorder does)."""
    return sum(
        int(event.get("count") or 1)
        for event in kube_api.objects("Event", namespace="default")
        if event["reason"] == reason and event["involvedObject"]["kind"] == "Rollout"
    )


def seen(controller: KubeController) -> RawObject:
    """The Rollout's status in the controller's cache (what a scrape reads)."""
    cached = controller.store.get("Rollout", "myapp", "default") or {}
    return cached.get("status") or {}


def promote(kube_api: KubeApi) -> None:
    patch = promote_patch(rollout(kube_api), full=False).status_patch
    kube_api.patch(ARGO, "Rollout", "myapp", "default", {"status": dict(patch)})


async def test_metrics_and_health_of_the_kubernetes_controller_during_a_canary(
    kube_api: KubeApi,
) -> None:
    manifest = copy.deepcopy(SEED_ROLLOUT)
    manifest["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 20},
        {"pause": {}},
        {"setWeight": 40},
        {"pause": {}},  # paused again, with the same message: the event's count goes to 2
        {"analysis": {"templates": [{"templateName": "check"}]}},
    ]
    seed(kube_api, CHECK_TEMPLATE, SEED_SERVICE, manifest)
    metrics_port, healthz_port = free_port(), free_port()
    ports = {"metrics_port": metrics_port, "healthz_port": healthz_port, "host": "127.0.0.1"}
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    async with (
        KubeControllerManager(kube_api),
        running_controller(kube_api, **ports) as controller,
    ):
        await kube_api.wait_for(lambda: seen(controller).get("phase") == "Healthy", timeout=20)
        healthz = f"http://127.0.0.1:{healthz_port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(healthz) as response:
            assert (response.status, await response.text()) == (200, "ok\n")

        set_image(kube_api, "argoproj/rollouts-demo:yellow")
        await kube_api.wait_for(
            lambda: (
                seen(controller).get("phase") == "Paused"
                and seen(controller).get("availableReplicas") == 5
            ),
            timeout=20,
        )
        paused = await scrape(metrics)
        ids = {"namespace": "default", "name": "myapp"}
        assert value(paused, "rollout_info", **ids, strategy="canary", phase="Paused") == 1
        assert value(paused, "rollout_phase", **ids, phase="Paused") == 1
        assert value(paused, "rollout_phase", **ids, phase="Completed") == 0
        assert value(paused, "rollwise_rollout_canary_weight", **ids) == 20
        assert value(paused, "rollwise_rollout_step", **ids) == 1
        assert (value(paused, "rollout_reconcile_count", **ids) or 0) >= 1
        assert value(paused, "rollout_reconcile_bucket", **ids, le="+Inf") == value(
            paused, "rollout_reconcile_count", **ids
        )
        assert value(paused, "rollwise_controller_info", mode="kubernetes") == 1
        assert value(paused, "argo_rollouts_controller_info", version=__version__) == 1
        assert value(paused, "rollout_events_total", **ids, reason="RolloutPaused") == 1

        promote(kube_api)
        await kube_api.wait_for(
            lambda: (
                seen(controller).get("currentStepIndex") == 3
                and seen(controller).get("phase") == "Paused"
                and seen(controller).get("availableReplicas") == 5
            ),
            timeout=20,
        )
        second_pause = await scrape(metrics)
        promote(kube_api)
        await kube_api.wait_for(
            lambda: (
                seen(controller).get("phase") == "Healthy"
                and seen(controller).get("stableRS") == seen(controller).get("currentPodHash")
                and recorded(kube_api, "RolloutCompleted") == 2
            ),
            timeout=20,
        )
        done = await scrape(metrics)

    runs = kube_api.objects("AnalysisRun", namespace="default")
    assert len(runs) == 1
    run_name = runs[0]["metadata"]["name"]
    assert value(done, "analysis_run_info", namespace="default", name=run_name) == 1
    assert {labels["phase"] for labels in labelled(done, "analysis_run_info")} == {"Successful"}
    assert value(done, "rollout_phase", **ids, phase="Completed") == 1  # Argo's name
    # Without a traffic router, the canary's share of the available pods: 2 of 5 at 40%; none
    # once it is the stable revision.
    assert value(second_pause, "rollwise_rollout_canary_weight", **ids) == 40
    assert value(done, "rollwise_rollout_canary_weight", **ids) == 0
    for reason in ("RolloutPaused", "RolloutStepCompleted", "RolloutUpdated", "RolloutCompleted"):
        assert recorded(kube_api, reason) >= 1
        assert value(done, "rollout_events_total", **ids, reason=reason) == recorded(
            kube_api, reason
        ), reason
    assert value(done, "rollout_events_total", **ids, reason="RolloutPaused") == 2
    assert (value(done, "rollout_reconcile_count", **ids) or 0) > (
        value(paused, "rollout_reconcile_count", **ids) or 0
    )


async def test_a_standby_replica_stays_healthy_while_it_waits_for_the_lease(
    kube_api: KubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any wait counts as a stall now: only a loop that should be turning can stall.
    monkeypatch.setattr(kubernetes, "STALLED_LOOP_SECONDS", 0.0)
    seed(kube_api, SEED_SERVICE, SEED_ROLLOUT)
    elect = {"leader_elect": True, "namespace": "default", "host": "127.0.0.1"}
    async with running_controller(kube_api, **elect) as leader:
        await asyncio.wait_for(leader.leading.wait(), 10)
        healthz_port = free_port()
        async with running_controller(kube_api, **elect, healthz_port=healthz_port) as standby:
            await asyncio.wait_for(standby.store.wait_synced(), 10)
            healthz = f"http://127.0.0.1:{healthz_port}/healthz"
            async with aiohttp.ClientSession() as session, session.get(healthz) as response:
                assert (response.status, await response.text()) == (200, "ok\n")
            assert not standby.leading.is_set()
