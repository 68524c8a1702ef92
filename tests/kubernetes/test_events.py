"""Events the Kubernetes controller records: Argo's reasons as v1 Events about the Rollout, a
repeat counted on the Event created before (as client-go's recorder does), never a failed
reconcile when the API server refuses one."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.kubernetes.apiserver import KubeApi
from tests.kubernetes.world import ARGO, SEED_ROLLOUT, seed

from rollwise.api.models import Rollout
from rollwise.core import actions as act
from rollwise.core.timestamps import ManualClock
from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.platforms.kubernetes.executor import KubeExecutor
from rollwise.platforms.kubernetes.store import KubeStore


async def test_a_repeated_event_is_counted_on_the_one_created_before(kube_api: KubeApi) -> None:
    seed(kube_api, SEED_ROLLOUT)
    rollout_raw = kube_api.get(ARGO, "Rollout", "myapp")
    assert rollout_raw is not None
    clock = ManualClock(datetime(2026, 11, 26, 5, 0, tzinfo=UTC))
    async with await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path)) as client:
        executor = KubeExecutor(
            KubeStore(client), client, clock=clock, routers=lambda raw, rollout: None
        )
        paused = act.EmitEvent("Normal", "RolloutPaused", "Rollout is paused (CanaryPauseStep)")
        rollout = Rollout.model_validate(rollout_raw)
        for _ in range(3):
            await executor.execute(rollout_raw, rollout, paused)
            clock.advance(30)
        await executor.execute(
            rollout_raw, rollout, act.EmitEvent("Normal", "RolloutResumed", "Rollout is resumed")
        )
    events = {e["reason"]: e for e in kube_api.objects("Event", namespace="default")}
    assert sorted(events) == ["RolloutPaused", "RolloutResumed"]
    assert events["RolloutPaused"]["count"] == 3
    assert events["RolloutPaused"]["firstTimestamp"] == "2026-11-26T05:00:00Z"
    assert events["RolloutPaused"]["lastTimestamp"] == "2026-11-26T05:01:00Z"
    assert events["RolloutPaused"]["involvedObject"]["uid"] == rollout_raw["metadata"]["uid"]
    assert events["RolloutPaused"]["source"] == {"component": "rollouts-controller"}
    patches = kube_api.requests_to(method="PATCH", path_prefix="/api/v1/namespaces/default/events")
    assert len(patches) == 2
    assert {p.content_type for p in patches} == {"application/merge-patch+json"}
