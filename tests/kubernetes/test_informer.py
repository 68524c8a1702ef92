"""The Informer against the test API server: list, watch, resume, relist on 410, back-off."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from tests.kubernetes.apiserver import KubeApi

from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.platforms.kubernetes.informer import Informer

RS_PATH = "/apis/apps/v1/namespaces/default/replicasets"
HASH = "rollouts-pod-template-hash"


def replica_set(
    name: str, *, labels: dict[str, str] | None = None, owner: str | None = None
) -> dict:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "labels": {HASH: name[-3:]} if labels is None else labels,
    }
    if owner is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": owner, "uid": owner}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": metadata,
        "spec": {"replicas": 1},
    }


@pytest_asyncio.fixture
async def client(kube_api: KubeApi) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path))
    try:
        yield client
    finally:
        await client.close()


class Running:
    """An informer's run() as a task, cancelled on exit; `changes` records on_change calls."""

    def __init__(self, client: KubeClient, **options: Any) -> None:
        self.changes: list[tuple[str, str | None, str | None]] = []

        def name(obj: dict | None) -> str | None:
            return None if obj is None else obj["metadata"]["name"]

        def on_change(kind: str, old: dict | None, new: dict | None) -> None:
            self.changes.append((kind, name(old), name(new)))

        options.setdefault("label_selector", HASH)
        self.informer = Informer(
            client, "apps/v1", "ReplicaSet", "default", on_change=on_change, **options
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self._task = asyncio.create_task(self.informer.run())
        await asyncio.wait_for(self.informer.synced.wait(), timeout=10)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def names(informer: Informer, **kwargs: Any) -> list[str]:
    return [obj["metadata"]["name"] for obj in informer.list(**kwargs)]


async def until(kube_api: KubeApi, predicate: Callable[[], Any]) -> Any:
    return await kube_api.wait_for(predicate, timeout=10)


async def test_lists_then_follows_changes(kube_api: KubeApi, client: KubeClient) -> None:
    kube_api.create(replica_set("app-aaa"))
    async with Running(client) as running:
        informer = running.informer
        assert names(informer) == ["app-aaa"]
        kube_api.create(replica_set("app-bbb"))
        kube_api.patch("apps/v1", "ReplicaSet", "app-aaa", "default", {"spec": {"replicas": 3}})
        kube_api.delete("apps/v1", "ReplicaSet", "app-bbb")
        await until(kube_api, lambda: ("DELETED", "app-bbb", None) in running.changes)
        cached = informer.get("app-aaa", "default")
        assert cached is not None
        assert cached["spec"]["replicas"] == 3
        assert cached["kind"] == "ReplicaSet"
    assert running.changes == [
        ("ADDED", None, "app-aaa"),
        ("ADDED", None, "app-bbb"),
        ("MODIFIED", "app-aaa", "app-aaa"),
        ("DELETED", "app-bbb", None),
    ]


async def test_objects_outside_the_label_selector_never_enter(
    kube_api: KubeApi, client: KubeClient
) -> None:
    kube_api.create(replica_set("plain", labels={"app": "other"}))
    async with Running(client) as running:
        informer = running.informer
        kube_api.create(replica_set("also-plain", labels={"app": "other"}))
        kube_api.create(replica_set("app-ccc"))
        await until(kube_api, lambda: informer.get("app-ccc", "default"))
        assert names(informer) == ["app-ccc"]
        kube_api.patch(
            "apps/v1", "ReplicaSet", "plain", "default", {"metadata": {"labels": {HASH: "x"}}}
        )
        await until(kube_api, lambda: informer.get("plain", "default"))
        kube_api.patch(
            "apps/v1", "ReplicaSet", "plain", "default", {"metadata": {"labels": {HASH: None}}}
        )
        await until(kube_api, lambda: informer.get("plain", "default") is None)
    assert "also-plain" not in {name for _, _, name in running.changes}
    for request in kube_api.requests_to("GET", RS_PATH):
        assert request.query["labelSelector"] == HASH


async def test_resumes_after_a_watch_timeout_without_listing_again(
    kube_api: KubeApi, client: KubeClient
) -> None:
    async with Running(client, watch_timeout=1) as running:
        informer = running.informer
        kube_api.create(replica_set("app-aaa"))
        await until(kube_api, lambda: informer.get("app-aaa", "default"))
        seen = informer.resource_version
        await until(kube_api, lambda: len(watches(kube_api)) >= 2)  # the first one timed out
        kube_api.create(replica_set("app-bbb"))
        await until(kube_api, lambda: informer.get("app-bbb", "default"))
    assert len(lists(kube_api)) == 1
    resumed = watches(kube_api)[1]
    assert int(resumed.query["resourceVersion"]) >= int(seen or 0)
    assert running.changes == [("ADDED", None, "app-aaa"), ("ADDED", None, "app-bbb")]


def watches(kube_api: KubeApi) -> list[Any]:
    return [r for r in kube_api.requests_to("GET", RS_PATH) if r.query.get("watch")]


def lists(kube_api: KubeApi) -> list[Any]:
    return [r for r in kube_api.requests_to("GET", RS_PATH) if not r.query.get("watch")]


async def test_relists_on_410_and_reports_what_it_missed(
    kube_api: KubeApi, client: KubeClient
) -> None:
    kube_api.create(replica_set("app-aaa"))
    kube_api.create(replica_set("app-bbb"))
    async with Running(client, watch_timeout=1, first_backoff=0.05) as running:
        informer = running.informer
        # Break the watch, change things meanwhile, and forget the history: when the watch
        # comes back, its resourceVersion is too old (410) and only a new list can tell.
        kube_api.fail("GET", RS_PATH, status=500, times=None)
        # A second watch request was refused: no watch is open while the changes happen.
        await until(kube_api, lambda: len(watches(kube_api)) >= 2)
        kube_api.patch("apps/v1", "ReplicaSet", "app-aaa", "default", {"spec": {"replicas": 5}})
        kube_api.delete("apps/v1", "ReplicaSet", "app-bbb")
        kube_api.create(replica_set("app-ccc"))
        kube_api.compact()
        kube_api.clear_faults()
        await until(kube_api, lambda: names(informer) == ["app-aaa", "app-ccc"])
        assert informer.get("app-aaa", "default")["spec"]["replicas"] == 5  # type: ignore[index]
    assert len(lists(kube_api)) == 2
    assert running.changes[2:] == [
        ("DELETED", "app-bbb", None),
        ("MODIFIED", "app-aaa", "app-aaa"),
        ("ADDED", None, "app-ccc"),
    ]


async def test_backs_off_and_retries_until_the_api_answers(
    kube_api: KubeApi, client: KubeClient
) -> None:
    kube_api.create(replica_set("app-aaa"))
    kube_api.fail("GET", RS_PATH, status=503, times=3)
    async with Running(client, first_backoff=0.05) as running:
        assert names(running.informer) == ["app-aaa"]
    assert len(lists(kube_api)) == 4  # three failures, then the list that synced


async def test_keeps_running_when_forbidden_and_when_a_handler_fails(
    kube_api: KubeApi, client: KubeClient
) -> None:
    kube_api.fail("GET", RS_PATH, status=403, times=1)

    def broken(kind: str, old: dict | None, new: dict | None) -> None:
        raise RuntimeError("handler bug")

    informer = Informer(
        client, "apps/v1", "ReplicaSet", "default", on_change=broken, first_backoff=0.05
    )
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), timeout=10)
        kube_api.create(replica_set("app-aaa"))
        kube_api.create(replica_set("app-bbb"))
        await until(kube_api, lambda: len(informer.list()) == 2)
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_lists_by_owner_and_namespace(kube_api: KubeApi, client: KubeClient) -> None:
    kube_api.create(replica_set("one-aaa", owner="one"))
    kube_api.create(replica_set("one-bbb", owner="one"))
    kube_api.create(replica_set("two-ccc", owner="two"))
    informer = Informer(client, "apps/v1", "ReplicaSet", None, label_selector=HASH)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), timeout=10)
        assert names(informer, owner="one") == ["one-aaa", "one-bbb"]
        assert names(informer, owner="two") == ["two-ccc"]
        assert names(informer, namespace="elsewhere") == []
        kube_api.delete("apps/v1", "ReplicaSet", "one-aaa")
        await until(kube_api, lambda: names(informer, owner="one") == ["one-bbb"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
