"""Workload features of the Kubernetes controller through real HTTP: the scale subresource an
HPA uses (`status.HPAReplicas`, `status.selector`), a `workloadRef` to a Deployment scaled down
once the Rollout is healthy, a `secretKeyRef` analysis arg read from a Secret, and an
experiment step (its own ReplicaSets and Experiment object)."""

from __future__ import annotations

import asyncio
import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from tests.kubernetes.apiserver import KubeApi, KubeControllerManager
from tests.kubernetes.world import (
    ARGO,
    SEED_ROLLOUT,
    SEED_SERVICE,
    replica_sets,
    running_controller,
    seed,
    set_image,
    status,
)

from rollwise.core.timestamps import format_time
from rollwise.platforms.kubernetes.client import KubeClient

RawObject = dict[str, Any]


async def test_an_hpa_scales_the_rollout_through_its_scale_subresource(kube_api: KubeApi) -> None:
    seed(kube_api, SEED_SERVICE, SEED_ROLLOUT)
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        assert status(kube_api)["HPAReplicas"] == 5
        assert status(kube_api)["selector"] == "app=myapp"
        async with await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path)) as client:
            scale = await client.get(ARGO, "Rollout", "myapp", "default", subresource="scale")
            assert scale is not None
            assert scale["status"] == {"replicas": 5, "selector": "app=myapp"}
            # What the HPA controller does: a merge patch of the scale's spec.replicas.
            await client.merge_patch(
                ARGO, "Rollout", "myapp", "default", {"spec": {"replicas": 7}}, subresource="scale"
            )
        await kube_api.wait_for(lambda: status(kube_api).get("HPAReplicas") == 7, timeout=20)
        (only,) = replica_sets(kube_api).values()
        assert only["spec"]["replicas"] == 7


async def test_a_workload_ref_takes_the_deployments_template_and_scales_it_down(
    kube_api: KubeApi,
) -> None:
    template = copy.deepcopy(SEED_ROLLOUT["spec"]["template"])
    deployment: RawObject = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "myapp", "namespace": "default"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "myapp"}},
            "template": template,
        },
    }
    rollout = copy.deepcopy(SEED_ROLLOUT)
    del rollout["spec"]["template"]
    del rollout["spec"]["selector"]
    rollout["spec"]["workloadRef"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "myapp",
        "scaleDown": "onsuccess",
    }
    seed(kube_api, SEED_SERVICE, deployment, rollout)
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        (only,) = replica_sets(kube_api).values()
        image = only["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "argoproj/rollouts-demo:blue"

        def deployment_replicas() -> int:
            found = kube_api.get("apps/v1", "Deployment", "myapp", "default")
            assert found is not None
            return int(found["spec"]["replicas"])

        await kube_api.wait_for(lambda: deployment_replicas() == 0, timeout=20)


async def test_a_secret_key_ref_arg_reaches_the_web_metric_and_is_masked(
    kube_api: KubeApi, unused_tcp_port: int
) -> None:
    seen: list[str] = []

    async def metric(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"rate": 0.99})

    app = web.Application()
    app.router.add_get("/rate", metric)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    secret: RawObject = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "metrics-token", "namespace": "default"},
        "data": {"token": base64.b64encode(b"s3cr3t-t0ken").decode()},
    }
    template: RawObject = {
        "apiVersion": ARGO,
        "kind": "AnalysisTemplate",
        "metadata": {"name": "rate", "namespace": "default"},
        "spec": {
            "args": [{"name": "token"}],
            "metrics": [
                {
                    "name": "rate",
                    "successCondition": "result >= 0.95",
                    "provider": {
                        "web": {
                            "url": f"http://127.0.0.1:{unused_tcp_port}/rate",
                            "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}],
                            "jsonPath": "{$.rate}",
                        }
                    },
                }
            ],
        },
    }
    rollout = copy.deepcopy(SEED_ROLLOUT)
    rollout["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 20},
        {
            "analysis": {
                "templates": [{"templateName": "rate"}],
                "args": [
                    {
                        "name": "token",
                        "valueFrom": {"secretKeyRef": {"name": "metrics-token", "key": "token"}},
                    }
                ],
            }
        },
    ]
    seed(kube_api, SEED_SERVICE, secret, template, rollout)
    try:
        async with KubeControllerManager(kube_api), running_controller(kube_api):
            await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", 20)
            (stable,) = replica_sets(kube_api)
            set_image(kube_api, "argoproj/rollouts-demo:yellow")
            await kube_api.wait_for(
                lambda: (
                    status(kube_api).get("phase") == "Healthy"
                    and status(kube_api).get("stableRS") != stable
                ),
                timeout=30,
            )
    finally:
        await runner.cleanup()
    assert seen
    assert set(seen) == {"Bearer s3cr3t-t0ken"}
    (run,) = kube_api.objects("AnalysisRun", namespace="default")
    assert run["status"]["phase"] == "Successful"
    everything = str(kube_api.objects("AnalysisRun")) + str(kube_api.objects("Event"))
    assert "s3cr3t-t0ken" not in everything


async def test_an_experiment_step_runs_its_templates_as_replica_sets(kube_api: KubeApi) -> None:
    rollout = copy.deepcopy(SEED_ROLLOUT)
    rollout["spec"]["strategy"]["canary"]["steps"] = [
        {
            "experiment": {
                "duration": "2s",
                "templates": [
                    {"name": "baseline", "specRef": "stable", "replicas": 1},
                    {"name": "canary", "specRef": "canary", "replicas": 1},
                ],
            }
        },
        {"setWeight": 20},
        {"pause": {}},
    ]
    seed(kube_api, SEED_SERVICE, rollout)
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        set_image(kube_api, "argoproj/rollouts-demo:yellow")
        await kube_api.wait_for(
            lambda: len(kube_api.objects("Experiment", namespace="default")) == 1, timeout=20
        )
        (experiment,) = kube_api.objects("Experiment", namespace="default")
        assert experiment["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
        await kube_api.wait_for(
            lambda: (
                len(
                    [
                        rs
                        for rs in kube_api.objects("ReplicaSet", namespace="default")
                        if any(
                            ref.get("kind") == "Experiment"
                            for ref in rs["metadata"].get("ownerReferences") or ()
                        )
                    ]
                )
                == 2
            ),
            timeout=20,
        )
        await kube_api.wait_for(
            lambda: (
                status(kube_api).get("phase") == "Paused"
                and status(kube_api).get("currentStepIndex") == 2
            ),
            timeout=30,
        )
        (experiment,) = kube_api.objects("Experiment", namespace="default")
        assert experiment["status"]["phase"] == "Successful"


async def test_restart_evicts_the_pods_older_than_restart_at_one_at_a_time(
    kube_api: KubeApi,
) -> None:
    seed(kube_api, SEED_SERVICE, SEED_ROLLOUT)
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        before = {pod["metadata"]["name"] for pod in kube_api.objects("Pod", namespace="default")}
        assert len(before) == 5
        restart_at = format_time(datetime.now(UTC) + timedelta(seconds=1))
        await asyncio.sleep(1.1)
        kube_api.patch(ARGO, "Rollout", "myapp", "default", {"spec": {"restartAt": restart_at}})
        await kube_api.wait_for(
            lambda: (
                not before
                & {pod["metadata"]["name"] for pod in kube_api.objects("Pod", namespace="default")}
            ),
            timeout=30,
        )
        await kube_api.wait_for(
            lambda: status(kube_api).get("restartedAt") == restart_at, timeout=20
        )
    deletes = kube_api.requests_to(method="DELETE", path_prefix="/api/v1/namespaces/default/pods")
    assert len(deletes) == 5
