"""What the Kubernetes-mode controller tests share: the seed's objects, a controller running
in the test's loop against the `kube_api` server, and small readers of what it wrote."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from tests.kubernetes.apiserver import KubeApi

from rollwise.controller.kubernetes import KubeController, KubeOptions
from rollwise.core.commands import promote_patch
from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.platforms.kubernetes.leader import LeaseTimings

ARGO = "argoproj.io/v1alpha1"
RawObject = dict[str, Any]

SEED = Path(__file__).resolve().parents[1] / "api" / "fixtures" / "seed"


def _seed_documents(name: str) -> dict[str, RawObject]:
    """The seed's YAML as written (tests/api checks these copies against the seed), by kind,
    each in the `default` namespace."""
    documents: dict[str, RawObject] = {}
    for document in yaml.safe_load_all((SEED / name).read_text()):
        document["metadata"].setdefault("namespace", "default")
        documents[document["kind"]] = document
    return documents


_PART3 = _seed_documents("part3-rollout.yaml")
SEED_SERVICE: RawObject = _PART3["Service"]
SEED_ROLLOUT: RawObject = _PART3["Rollout"]

FAST_LEASE = LeaseTimings(lease_seconds=3.0, renew_deadline_seconds=2.0, retry_period_seconds=0.5)


def seed(kube_api: KubeApi, *objects: RawObject) -> None:
    for obj in objects:
        kube_api.create(copy.deepcopy(obj))


@asynccontextmanager
async def running_controller(kube_api: KubeApi, **options: Any) -> AsyncIterator[KubeController]:
    """A Kubernetes controller in this loop against `kube_api` (no leader election and no
    HTTP ports unless asked), stopped gracefully at the end."""
    settings: dict[str, Any] = {"leader_elect": False, "metrics_port": 0, "healthz_port": 0}
    settings.update(options)
    client = await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path))
    controller = KubeController(client, KubeOptions(**settings))
    task = asyncio.create_task(controller.run())
    try:
        yield controller
    finally:
        controller.stop()
        try:
            async with asyncio.timeout(30):
                await task
        finally:
            await client.close()


def rollout(kube_api: KubeApi, name: str = "myapp") -> RawObject:
    found = kube_api.get(ARGO, "Rollout", name, "default")
    assert found is not None
    return found


def status(kube_api: KubeApi, name: str = "myapp") -> RawObject:
    return rollout(kube_api, name).get("status") or {}


def replica_sets(kube_api: KubeApi, name: str = "myapp") -> dict[str, RawObject]:
    """The Rollout's ReplicaSets by pod-template hash."""
    return {
        rs["metadata"]["labels"]["rollouts-pod-template-hash"]: rs
        for rs in kube_api.objects("ReplicaSet", namespace="default")
        if any(ref.get("name") == name for ref in rs["metadata"].get("ownerReferences") or ())
    }


def set_image(kube_api: KubeApi, image: str, name: str = "myapp") -> None:
    current = rollout(kube_api, name)
    template = copy.deepcopy(current["spec"]["template"])
    template["spec"]["containers"][0]["image"] = image
    kube_api.patch(ARGO, "Rollout", name, "default", {"spec": {"template": template}})


async def promote(kube_api: KubeApi, *, full: bool, name: str = "myapp") -> None:
    """What `rollwise promote [--full]` writes: the core's patch, on the status subresource."""
    await status_patch(kube_api, promote_patch(rollout(kube_api, name), full=full).status_patch)


async def status_patch(kube_api: KubeApi, patch: Any, name: str = "myapp") -> None:
    async with await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path)) as client:
        await client.merge_patch(
            ARGO, "Rollout", name, "default", {"status": dict(patch)}, subresource="status"
        )
