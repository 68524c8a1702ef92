"""The Kubernetes controller's harder paths, end to end through real HTTP: a blue-green rollout
whose pre- and post-promotion analyses run as batch/v1 Jobs, a failing pre-promotion analysis
that aborts, a controller stopped and restarted in the middle of a rollout, and two
controllers on one cluster where only the leader acts."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from tests.kubernetes.apiserver import KubeApi, KubeControllerManager
from tests.kubernetes.world import (
    ARGO,
    FAST_LEASE,
    SEED_ROLLOUT,
    SEED_SERVICE,
    promote,
    replica_sets,
    running_controller,
    seed,
    set_image,
    status,
)

RawObject = dict[str, Any]
RESULT_LABEL = "test.rollwise.io/job-result"


def smoke_template(result: str) -> RawObject:
    """An AnalysisTemplate whose one metric is a Job (the stand-in kube-controller-manager
    ends its pod as the label says)."""
    return {
        "apiVersion": ARGO,
        "kind": "AnalysisTemplate",
        "metadata": {"name": f"smoke-{result.lower()}", "namespace": "default"},
        "spec": {
            "metrics": [
                {
                    "name": "smoke",
                    "provider": {
                        "job": {
                            "spec": {
                                "backoffLimit": 0,
                                "template": {
                                    "metadata": {"labels": {RESULT_LABEL: result}},
                                    "spec": {
                                        "restartPolicy": "Never",
                                        "containers": [
                                            {
                                                "name": "smoke",
                                                "image": "curlimages/curl",
                                                "command": ["curl", "-f", "http://myapp-preview"],
                                            }
                                        ],
                                    },
                                },
                            }
                        }
                    },
                }
            ]
        },
    }


def blue_green(pre: str, post: str) -> RawObject:
    rollout = copy.deepcopy(SEED_ROLLOUT)
    rollout["spec"]["replicas"] = 3
    rollout["spec"]["strategy"] = {
        "blueGreen": {
            "activeService": "myapp",
            "previewService": "myapp-preview",
            "prePromotionAnalysis": {"templates": [{"templateName": pre}]},
            "postPromotionAnalysis": {"templates": [{"templateName": post}]},
            "scaleDownDelaySeconds": 0,
        }
    }
    return rollout


def preview_service() -> RawObject:
    service = copy.deepcopy(SEED_SERVICE)
    service["metadata"]["name"] = "myapp-preview"
    return service


def selector_hash(kube_api: KubeApi, name: str) -> str | None:
    service = kube_api.get("v1", "Service", name, "default")
    assert service is not None
    return (service["spec"].get("selector") or {}).get("rollouts-pod-template-hash")


def runs(kube_api: KubeApi) -> list[RawObject]:
    return kube_api.objects("AnalysisRun", namespace="default")


async def test_a_blue_green_with_passing_analyses_switches_the_active_service(
    kube_api: KubeApi,
) -> None:
    seed(
        kube_api,
        SEED_SERVICE,
        preview_service(),
        smoke_template("Succeeded"),
        blue_green("smoke-succeeded", "smoke-succeeded"),
    )
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        (blue,) = replica_sets(kube_api)
        assert selector_hash(kube_api, "myapp") == blue
        set_image(kube_api, "argoproj/rollouts-demo:green")
        await kube_api.wait_for(lambda: len(replica_sets(kube_api)) == 2, timeout=20)
        (green,) = set(replica_sets(kube_api)) - {blue}
        await kube_api.wait_for(lambda: selector_hash(kube_api, "myapp-preview") == green, 20)
        assert selector_hash(kube_api, "myapp") == blue  # not before the analysis passed
        await kube_api.wait_for(
            lambda: (
                status(kube_api).get("phase") == "Healthy"
                and status(kube_api).get("stableRS") == green
            ),
            timeout=40,
        )
        assert selector_hash(kube_api, "myapp") == green
        kinds = sorted(run["metadata"]["labels"]["rollout-type"] for run in runs(kube_api))
        assert kinds == ["PostPromotion", "PrePromotion"]
        assert {run["status"]["phase"] for run in runs(kube_api)} == {"Successful"}
        jobs = kube_api.objects("Job", namespace="default")
        assert jobs, "each measurement ran as a batch/v1 Job"
        for job in jobs:
            assert job["metadata"]["ownerReferences"][0]["kind"] == "AnalysisRun"
            assert job["metadata"]["labels"]["analysisrun.argoproj.io/uid"]


async def test_a_failing_pre_promotion_analysis_keeps_the_active_service_and_aborts(
    kube_api: KubeApi,
) -> None:
    seed(
        kube_api,
        SEED_SERVICE,
        preview_service(),
        smoke_template("Failed"),
        smoke_template("Succeeded"),
        blue_green("smoke-failed", "smoke-succeeded"),
    )
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        (blue,) = replica_sets(kube_api)
        set_image(kube_api, "argoproj/rollouts-demo:bad-red")
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Degraded", timeout=40)
        assert status(kube_api).get("abort") is True
        assert selector_hash(kube_api, "myapp") == blue
        (run,) = runs(kube_api)
        assert run["status"]["phase"] == "Failed"


async def test_a_controller_restarted_mid_rollout_goes_on_from_the_same_step(
    kube_api: KubeApi,
) -> None:
    seed(kube_api, SEED_SERVICE, SEED_ROLLOUT)
    async with KubeControllerManager(kube_api):
        async with running_controller(kube_api):
            await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", 20)
            set_image(kube_api, "argoproj/rollouts-demo:yellow")
            await kube_api.wait_for(lambda: status(kube_api).get("currentStepIndex") == 1, 20)
            await promote(kube_api, full=False)
            await kube_api.wait_for(lambda: status(kube_api).get("currentStepIndex") == 3, 20)
        before = copy.deepcopy(status(kube_api))
        sets_before = {h: rs["spec"]["replicas"] for h, rs in replica_sets(kube_api).items()}
        kube_api.clear_requests()
        async with running_controller(kube_api):
            # The new controller lists everything and decides from the stored status: nothing
            # moves back, nothing is created twice.
            await asyncio.sleep(1.0)
            assert status(kube_api)["currentStepIndex"] == 3
            assert {h: rs["spec"]["replicas"] for h, rs in replica_sets(kube_api).items()} == (
                sets_before
            )
            creates = kube_api.requests_to(method="POST", path_prefix="/apis/apps/")
            assert creates == []
            # Nothing changed, so nothing was written: no status, no scale, no event.
            assert kube_api.requests_to(method="PUT") == []
            assert kube_api.requests_to(method="PATCH") == []
            await promote(kube_api, full=True)
            await kube_api.wait_for(
                lambda: (
                    status(kube_api).get("phase") == "Healthy"
                    and status(kube_api).get("stableRS") == before["currentPodHash"]
                ),
                timeout=30,
            )


async def test_two_controllers_only_the_leader_acts_and_the_other_takes_over(
    kube_api: KubeApi,
) -> None:
    seed(kube_api, SEED_SERVICE, SEED_ROLLOUT)
    elect = {"leader_elect": True, "lease": FAST_LEASE, "namespace": "default"}
    async with (
        KubeControllerManager(kube_api),
        running_controller(kube_api, **elect) as first,
    ):
        await asyncio.wait_for(first.leading.wait(), 10)
        async with running_controller(kube_api, **elect) as second:
            await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", 20)
            await asyncio.sleep(FAST_LEASE.lease_seconds)
            assert first.leading.is_set()
            assert not second.leading.is_set()
            lease = kube_api.get(
                "coordination.k8s.io/v1", "Lease", "rollwise-controller-lock", "default"
            )
            assert lease is not None
            assert lease["spec"]["holderIdentity"] == first.elector.identity  # type: ignore[union-attr]
            # The leader stops gracefully: it releases the lease, the other takes over.
            first.stop()
            await asyncio.wait_for(second.leading.wait(), FAST_LEASE.lease_seconds * 3)
            set_image(kube_api, "argoproj/rollouts-demo:yellow")
            await kube_api.wait_for(
                lambda: status(kube_api).get("currentStepIndex") == 1, timeout=20
            )


async def test_an_instance_id_shards_rollouts_between_controllers(kube_api: KubeApi) -> None:
    label = "argo-rollouts.argoproj.io/controller-instance-id"
    ours = copy.deepcopy(SEED_ROLLOUT)
    ours["metadata"]["labels"] = {label: "blue-team"}
    theirs = copy.deepcopy(SEED_ROLLOUT)
    theirs["metadata"]["name"] = "other"
    seed(kube_api, SEED_SERVICE, ours, theirs)
    async with (
        KubeControllerManager(kube_api),
        running_controller(kube_api, instance_id="blue-team"),
    ):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        await asyncio.sleep(0.5)
        assert status(kube_api, "other") == {}  # not this controller's
        assert replica_sets(kube_api, "other") == {}
