"""The test API server behaves like kube-apiserver where rollwise depends on it (raw HTTP)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from tests.kubernetes.apiserver import (
    KubeApi,
    KubeControllerManager,
    Selector,
    parse_label_selector,
    running_kube_api,
)

RS_PATH = "/apis/apps/v1/namespaces/default/replicasets"
ROLLOUTS = "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts"


def replica_set(name: str, *, replicas: int = 1, labels: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1"}]},
            },
        },
    }


@pytest_asyncio.fixture
async def http(kube_api: KubeApi) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {kube_api.token}"}
    async with aiohttp.ClientSession(base_url=kube_api.url, headers=headers) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = None if body is None else body if isinstance(body, str) else json.dumps(body)
    async with http.request(
        method, path, data=data, params=params, headers={"Content-Type": content_type}
    ) as response:
        return response.status, await response.json()


async def watch_lines(
    http: aiohttp.ClientSession, path: str, params: dict[str, str], count: int
) -> list[dict]:
    """The first `count` events of a watch (bounded by the caller's timeoutSeconds)."""
    events: list[dict] = []
    async with http.get(path, params={"watch": "true", **params}) as response:
        assert response.status == 200
        async for line in response.content:
            if line.strip():
                events.append(json.loads(line))
            if len(events) == count:
                break
    return events


# -- create, get, list


async def test_create_fills_metadata_and_answers_201(http: aiohttp.ClientSession) -> None:
    status, created = await call(http, "POST", RS_PATH, replica_set("web"))
    assert status == 201
    metadata = created["metadata"]
    assert metadata["uid"]
    assert metadata["creationTimestamp"].endswith("Z")
    assert metadata["generation"] == 1
    status, again = await call(http, "POST", RS_PATH, replica_set("other"))
    assert int(again["metadata"]["resourceVersion"]) > int(metadata["resourceVersion"])
    assert again["metadata"]["uid"] != metadata["uid"]


async def test_duplicate_create_is_409_already_exists(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", RS_PATH, replica_set("web"))
    status, body = await call(http, "POST", RS_PATH, replica_set("web"))
    assert status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'replicasets.apps "web" already exists'


async def test_generate_name_gets_a_suffix(http: aiohttp.ClientSession) -> None:
    obj = replica_set("x")
    obj["metadata"] = {"generateName": "web-"}
    status, created = await call(http, "POST", RS_PATH, obj)
    assert status == 201
    name = created["metadata"]["name"]
    assert name.startswith("web-")
    assert len(name) == len("web-") + 5


async def test_create_drops_status_of_kinds_with_a_status_subresource(
    http: aiohttp.ClientSession,
) -> None:
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "app"},
        "spec": {"replicas": 1},
        "status": {"phase": "Healthy"},
    }
    _, created = await call(http, "POST", ROLLOUTS, rollout)
    assert "status" not in created
    run = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "run"},
        "spec": {"metrics": []},
        "status": {"phase": "Running"},
    }
    _, created = await call(
        http, "POST", "/apis/argoproj.io/v1alpha1/namespaces/default/analysisruns", run
    )
    assert created["status"] == {"phase": "Running"}  # Argo's CRD declares no status subresource


async def test_get_missing_is_404_not_found(http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "GET", f"{RS_PATH}/nope")
    assert status == 404
    assert (body["reason"], body["details"]["kind"]) == ("NotFound", "replicasets")


async def test_list_carries_resource_version_and_builtin_items_lack_type(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.create(replica_set("a"))
    kube_api.create({**replica_set("b"), "metadata": {"name": "b", "namespace": "other"}})
    _, listed = await call(http, "GET", RS_PATH)
    assert listed["metadata"]["resourceVersion"] == str(kube_api.resource_version)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["a"]
    assert "kind" not in listed["items"][0]  # as the real server lists built-in kinds
    _, everywhere = await call(http, "GET", "/apis/apps/v1/replicasets")
    assert [item["metadata"]["name"] for item in everywhere["items"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "b"]),
        ("tier==web", ["a", "b"]),
        ("tier!=web", ["c", "d"]),
        ("tier in (web,db)", ["a", "b", "c"]),
        ("tier notin (web)", ["c", "d"]),
        ("track", ["b"]),
        ("!track", ["a", "c", "d"]),
        ("tier=web,!track", ["a"]),
        ("tier in (web, db),track notin (canary)", ["a", "c"]),
    ],
)
async def test_label_selectors(
    kube_api: KubeApi, http: aiohttp.ClientSession, selector: str, expected: list[str]
) -> None:
    labels = {
        "a": {"tier": "web"},
        "b": {"tier": "web", "track": "canary"},
        "c": {"tier": "db"},
        "d": {},
    }
    for name, some in labels.items():
        kube_api.create(replica_set(name, labels=some))
    _, listed = await call(http, "GET", RS_PATH, params={"labelSelector": selector})
    assert [item["metadata"]["name"] for item in listed["items"]] == expected


def test_a_malformed_label_selector_is_refused() -> None:
    with pytest.raises(Exception, match="unable to parse"):
        parse_label_selector("tier in (web")
    assert Selector.parse(None, "metadata.name=a").matches({"metadata": {"name": "a"}})
    assert not Selector.parse(None, "metadata.name!=a").matches({"metadata": {"name": "a"}})


async def test_field_selector_on_name(kube_api: KubeApi, http: aiohttp.ClientSession) -> None:
    kube_api.create(replica_set("a"))
    kube_api.create(replica_set("b"))
    _, listed = await call(http, "GET", RS_PATH, params={"fieldSelector": "metadata.name=b"})
    assert [item["metadata"]["name"] for item in listed["items"]] == ["b"]


async def test_cluster_scoped_kinds(http: aiohttp.ClientSession) -> None:
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ClusterAnalysisTemplate",
        "metadata": {"name": "success-rate", "namespace": "ignored"},
        "spec": {"metrics": []},
    }
    path = "/apis/argoproj.io/v1alpha1/clusteranalysistemplates"
    status, created = await call(http, "POST", path, template)
    assert status == 201
    assert "namespace" not in created["metadata"]
    status, _ = await call(http, "GET", f"{path}/success-rate")
    assert status == 200
    status, _ = await call(
        http, "GET", "/apis/argoproj.io/v1alpha1/namespaces/default/clusteranalysistemplates"
    )
    assert status == 404


# -- replace, status, generation


async def test_put_with_a_stale_resource_version_is_409(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    first = kube_api.create(replica_set("web"))
    kube_api.patch("apps/v1", "ReplicaSet", "web", "default", {"metadata": {"labels": {"x": "1"}}})
    first["spec"]["replicas"] = 3
    status, body = await call(http, "PUT", f"{RS_PATH}/web", first)
    assert status == 409
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


async def test_generation_bumps_only_when_spec_changes(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.create(replica_set("web"))
    _, current = await call(http, "GET", f"{RS_PATH}/web")
    current["metadata"]["labels"]["new"] = "label"
    _, labelled = await call(http, "PUT", f"{RS_PATH}/web", current)
    assert labelled["metadata"]["generation"] == 1
    labelled["spec"]["replicas"] = 5
    _, scaled = await call(http, "PUT", f"{RS_PATH}/web", labelled)
    assert scaled["metadata"]["generation"] == 2


async def test_a_write_that_changes_nothing_keeps_the_resource_version(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    created = kube_api.create(replica_set("web"))
    _, same = await call(http, "PUT", f"{RS_PATH}/web", created)
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_status_is_separate_from_the_main_resource(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.create(replica_set("web"))
    _, current = await call(http, "GET", f"{RS_PATH}/web")
    current["status"] = {"replicas": 7}
    current["spec"]["replicas"] = 2
    _, after_put = await call(http, "PUT", f"{RS_PATH}/web", current)
    assert "status" not in after_put
    assert after_put["spec"]["replicas"] == 2
    after_put["status"] = {"replicas": 7}
    after_put["spec"]["replicas"] = 9
    _, after_status = await call(http, "PUT", f"{RS_PATH}/web/status", after_put)
    assert after_status["status"] == {"replicas": 7}
    assert after_status["spec"]["replicas"] == 2
    patch = {"spec": {"replicas": 4}, "status": {"replicas": 1}}
    _, patched = await call(
        http, "PATCH", f"{RS_PATH}/web", patch, content_type="application/merge-patch+json"
    )
    assert (patched["spec"]["replicas"], patched["status"]) == (4, {"replicas": 7})
    _, status_patched = await call(
        http, "PATCH", f"{RS_PATH}/web/status", patch, content_type="application/merge-patch+json"
    )
    assert (status_patched["spec"]["replicas"], status_patched["status"]) == (4, {"replicas": 1})


# -- patches


async def test_merge_patch_deletes_with_null_and_replaces_lists(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    obj = replica_set("web", labels={"a": "1", "b": "2"})
    kube_api.create(obj)
    patch = {
        "metadata": {"labels": {"a": None}},
        "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "y"}]}}},
    }
    status, patched = await call(
        http, "PATCH", f"{RS_PATH}/web", patch, content_type="application/merge-patch+json"
    )
    assert status == 200
    assert patched["metadata"]["labels"] == {"b": "2"}
    assert patched["spec"]["template"]["spec"]["containers"] == [{"name": "x", "image": "y"}]


async def test_merge_patch_with_a_stale_resource_version_is_409(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    created = kube_api.create(replica_set("web"))
    kube_api.patch("apps/v1", "ReplicaSet", "web", "default", {"spec": {"replicas": 2}})
    patch = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}}
    status, _ = await call(
        http, "PATCH", f"{RS_PATH}/web", patch, content_type="application/merge-patch+json"
    )
    assert status == 409


async def test_strategic_merge_patch_is_served_as_a_merge_patch(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.create(replica_set("web"))
    status, patched = await call(
        http,
        "PATCH",
        f"{RS_PATH}/web",
        {"spec": {"replicas": 6}},
        content_type="application/strategic-merge-patch+json",
    )
    assert (status, patched["spec"]["replicas"]) == (200, 6)


async def test_json_patch_operations(kube_api: KubeApi, http: aiohttp.ClientSession) -> None:
    kube_api.create(replica_set("web"))
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/new~1key", "value": "v"},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "side"}},
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "remove", "path": "/metadata/labels/app"},
    ]
    status, patched = await call(
        http, "PATCH", f"{RS_PATH}/web", ops, content_type="application/json-patch+json"
    )
    assert status == 200
    assert patched["spec"]["replicas"] == 3
    assert patched["metadata"]["labels"] == {"new/key": "v"}
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == [
        "main",
        "side",
    ]
    failing = [{"op": "test", "path": "/spec/replicas", "value": 99}]
    status, body = await call(
        http, "PATCH", f"{RS_PATH}/web", failing, content_type="application/json-patch+json"
    )
    assert (status, body["reason"]) == (422, "Invalid")


async def test_server_side_apply_creates_then_merges(http: aiohttp.ClientSession) -> None:
    path = "/api/v1/namespaces/default/configmaps/settings"
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
    status, body = await call(
        http, "PATCH", path, applied, content_type="application/apply-patch+yaml"
    )
    assert (status, body["reason"]) == (422, "Invalid")  # fieldManager is required
    manager = {"fieldManager": "test", "force": "true"}
    yaml_body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n"
    status, created = await call(
        http, "PATCH", path, yaml_body, content_type="application/apply-patch+yaml", params=manager
    )
    assert (status, created["data"]) == (201, {"a": "1"})
    status, merged = await call(
        http,
        "PATCH",
        path,
        {**applied, "data": {"b": "2"}},
        content_type="application/apply-patch+yaml",
        params=manager,
    )
    assert (status, merged["data"]) == (200, {"a": "1", "b": "2"})


async def test_unknown_patch_content_type_is_415(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.create(replica_set("web"))
    status, body = await call(http, "PATCH", f"{RS_PATH}/web", {"spec": {}})
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")


# -- scale


async def test_scale_subresource_of_replica_sets_and_deployments(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.create(replica_set("web", replicas=2))
    status, scale = await call(http, "GET", f"{RS_PATH}/web/scale")
    assert status == 200
    assert (scale["kind"], scale["spec"]["replicas"], scale["status"]["selector"]) == (
        "Scale",
        2,
        "app=web",
    )
    _, scaled = await call(
        http,
        "PATCH",
        f"{RS_PATH}/web/scale",
        {"spec": {"replicas": 5}},
        content_type="application/merge-patch+json",
    )
    assert scaled["spec"]["replicas"] == 5
    assert kube_api.get("apps/v1", "ReplicaSet", "web")["spec"]["replicas"] == 5  # type: ignore[index]
    deployment = {**replica_set("api"), "apiVersion": "apps/v1", "kind": "Deployment"}
    kube_api.create(deployment)
    scale_body = {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 0}}
    status, _ = await call(
        http, "PUT", "/apis/apps/v1/namespaces/default/deployments/api/scale", scale_body
    )
    assert status == 200
    assert kube_api.get("apps/v1", "Deployment", "api")["spec"]["replicas"] == 0  # type: ignore[index]


async def test_rollout_scale_reads_hpa_replicas_and_selector_from_status(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {"replicas": 4},
            "status": {"HPAReplicas": 3, "selector": "app=app"},
        }
    )
    _, scale = await call(http, "GET", f"{ROLLOUTS}/app/scale")
    assert (scale["spec"]["replicas"], scale["status"]) == (
        4,
        {"replicas": 3, "selector": "app=app"},
    )
    await call(
        http,
        "PATCH",
        f"{ROLLOUTS}/app/scale",
        {"spec": {"replicas": 8}},
        content_type="application/merge-patch+json",
    )
    rollout = kube_api.get("argoproj.io/v1alpha1", "Rollout", "app")
    assert rollout is not None
    assert rollout["spec"]["replicas"] == 8
    assert rollout["metadata"]["generation"] == 2


# -- delete


def owned_by(owner: dict, obj: dict) -> dict:
    obj["metadata"]["ownerReferences"] = [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
    ]
    return obj


async def test_deleting_a_rollout_collects_what_it_owns(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    rollout = kube_api.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {},
        }
    )
    rs = kube_api.create(owned_by(rollout, replica_set("app-abc")))
    kube_api.create(owned_by(rs, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}))
    kube_api.create(
        owned_by(
            rollout,
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AnalysisRun",
                "metadata": {"name": "run", "namespace": "default"},
                "spec": {},
            },
        )
    )
    kube_api.create(replica_set("unrelated"))
    status, _ = await call(http, "DELETE", f"{ROLLOUTS}/app")
    assert status == 200
    assert [o["metadata"]["name"] for o in kube_api.objects("ReplicaSet")] == ["unrelated"]
    assert kube_api.objects("AnalysisRun") == []
    assert kube_api.objects("Pod") == []


async def test_orphan_propagation_keeps_dependents(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    rs = kube_api.create(replica_set("web"))
    kube_api.create(owned_by(rs, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}))
    await call(http, "DELETE", f"{RS_PATH}/web", {"propagationPolicy": "Orphan"})
    (pod,) = kube_api.objects("Pod")
    assert pod["metadata"]["ownerReferences"] == []


async def test_finalizers_hold_a_deletion_until_removed(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    obj = replica_set("web")
    obj["metadata"]["finalizers"] = ["test/hold"]
    kube_api.create(obj)
    status, marked = await call(http, "DELETE", f"{RS_PATH}/web")
    assert status == 200
    assert marked["metadata"]["deletionTimestamp"]
    await call(
        http,
        "PATCH",
        f"{RS_PATH}/web",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    assert kube_api.get("apps/v1", "ReplicaSet", "web") is None


# -- watch


async def test_watch_from_a_resource_version_honours_the_label_selector(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    start = kube_api.resource_version
    kube_api.create(replica_set("a", labels={"watched": "yes"}))
    kube_api.create(replica_set("b", labels={"other": "yes"}))
    kube_api.patch("apps/v1", "ReplicaSet", "a", "default", {"spec": {"replicas": 2}})
    kube_api.patch(
        "apps/v1", "ReplicaSet", "b", "default", {"metadata": {"labels": {"watched": "yes"}}}
    )
    kube_api.patch(
        "apps/v1", "ReplicaSet", "a", "default", {"metadata": {"labels": {"watched": None}}}
    )
    kube_api.delete("apps/v1", "ReplicaSet", "b")
    params = {"resourceVersion": str(start), "labelSelector": "watched", "timeoutSeconds": "5"}
    events = await watch_lines(http, RS_PATH, params, 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("ADDED", "b"),  # started matching
        ("DELETED", "a"),  # stopped matching
        ("DELETED", "b"),
    ]
    assert events[0]["object"]["kind"] == "ReplicaSet"  # watch events carry the type


async def test_watch_streams_live_changes(kube_api: KubeApi, http: aiohttp.ClientSession) -> None:
    params = {"resourceVersion": str(kube_api.resource_version), "timeoutSeconds": "5"}
    watching = asyncio.ensure_future(watch_lines(http, RS_PATH, params, 2))
    await kube_api.wait_for(lambda: kube_api.store._watchers)
    kube_api.create(replica_set("live"))
    kube_api.delete("apps/v1", "ReplicaSet", "live")
    events = await watching
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_watch_from_a_compacted_resource_version_gets_410(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    start = kube_api.resource_version
    kube_api.create(replica_set("a"))
    kube_api.compact()
    events = await watch_lines(http, RS_PATH, {"resourceVersion": str(start)}, 1)
    assert events[0]["type"] == "ERROR"
    assert (events[0]["object"]["code"], events[0]["object"]["reason"]) == (410, "Expired")


async def test_history_size_bounds_what_a_watch_can_resume(tmp_path: Path) -> None:
    async with running_kube_api(tmp_path, history_size=2) as api:
        headers = {"Authorization": f"Bearer {api.token}"}
        async with aiohttp.ClientSession(base_url=api.url, headers=headers) as session:
            start = api.resource_version
            for name in "abc":
                api.create(replica_set(name))
            old = await watch_lines(session, RS_PATH, {"resourceVersion": str(start)}, 1)
            assert old[0]["object"]["code"] == 410
            recent = {"resourceVersion": str(start + 1), "timeoutSeconds": "5"}
            events = await watch_lines(session, RS_PATH, recent, 2)
            assert [e["object"]["metadata"]["name"] for e in events] == ["b", "c"]


async def test_watch_ends_at_timeout_with_a_bookmark(tmp_path: Path) -> None:
    async with running_kube_api(tmp_path, bookmark_interval=0.1) as api:
        headers = {"Authorization": f"Bearer {api.token}"}
        async with aiohttp.ClientSession(base_url=api.url, headers=headers) as session:
            params = {
                "watch": "true",
                "resourceVersion": str(api.resource_version),
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "1",
            }
            async with session.get(RS_PATH, params=params) as response:
                lines = [json.loads(line) async for line in response.content if line.strip()]
    assert lines
    assert {line["type"] for line in lines} == {"BOOKMARK"}
    assert lines[-1]["object"]["metadata"]["resourceVersion"] == str(api.resource_version)


async def test_watch_without_resource_version_starts_with_the_current_objects(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.create(replica_set("existing"))
    events = await watch_lines(http, RS_PATH, {"timeoutSeconds": "5"}, 1)
    assert (events[0]["type"], events[0]["object"]["metadata"]["name"]) == ("ADDED", "existing")


# -- CRDs, discovery


def crd(schema: dict) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


async def test_a_created_crd_makes_its_kind_served(http: aiohttp.ClientSession) -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "port": {
                        "x-kubernetes-int-or-string": True,
                        "anyOf": [{"type": "integer"}, {"type": "string"}],
                    }
                },
            }
        },
    }
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    status, created = await call(http, "POST", path, crd(schema))
    assert status == 201
    conditions = {c["type"]: c["status"] for c in created["status"]["conditions"]}
    assert conditions["Established"] == "True"
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    status, _ = await call(http, "POST", "/apis/example.com/v1/namespaces/default/widgets", widget)
    assert status == 201
    _, discovery = await call(http, "GET", "/apis/example.com/v1")
    assert {r["name"] for r in discovery["resources"]} == {"widgets", "widgets/status"}


async def test_a_crd_without_a_structural_schema_is_invalid(http: aiohttp.ClientSession) -> None:
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    nullable_in_any_of = {
        "type": "object",
        "properties": {"spec": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    }
    status, body = await call(http, "POST", path, crd(nullable_in_any_of))
    assert (status, body["reason"]) == (422, "Invalid")
    assert "properties[spec].type: Required value" in body["message"]
    no_schema = crd({"type": "object"})
    del no_schema["spec"]["versions"][0]["schema"]
    status, body = await call(http, "POST", path, no_schema)
    assert status == 422
    assert "openAPIV3Schema" in body["message"]


async def test_discovery_lists_groups_and_resources(http: aiohttp.ClientSession) -> None:
    _, groups = await call(http, "GET", "/apis")
    names = {group["name"] for group in groups["groups"]}
    assert {"apps", "argoproj.io", "networking.istio.io", "split.smi-spec.io"} <= names
    _, argo = await call(http, "GET", "/apis/argoproj.io/v1alpha1")
    by_name = {r["name"]: r for r in argo["resources"]}
    assert by_name["rollouts/scale"]["kind"] == "Scale"
    assert by_name["clusteranalysistemplates"]["namespaced"] is False
    _, core = await call(http, "GET", "/api/v1")
    assert "pods/status" in {r["name"] for r in core["resources"]}


# -- the log, faults, auth


async def test_request_log_records_method_path_query_content_type_body(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.create(replica_set("web"))
    kube_api.clear_requests()
    await call(
        http,
        "PATCH",
        f"{RS_PATH}/web",
        {"spec": {"replicas": 2}},
        content_type="application/merge-patch+json",
        params={"fieldManager": "t"},
    )
    (logged,) = kube_api.requests_to("PATCH", RS_PATH)
    assert (logged.method, logged.path, logged.query) == (
        "PATCH",
        f"{RS_PATH}/web",
        {"fieldManager": "t"},
    )
    assert logged.content_type == "application/merge-patch+json"
    assert logged.body == {"spec": {"replicas": 2}}


async def test_fault_hooks_fail_the_next_matching_requests(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.fail("GET", RS_PATH, status=503, times=2)
    statuses = [(await call(http, "GET", RS_PATH))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    kube_api.fail(None, "/apis/apps", status=429, times=None)
    assert (await call(http, "POST", RS_PATH, replica_set("x")))[0] == 429
    kube_api.clear_faults()
    assert (await call(http, "POST", RS_PATH, replica_set("x")))[0] == 201


async def test_a_wrong_token_is_401(kube_api: KubeApi) -> None:
    headers = {"Authorization": "Bearer wrong"}
    async with (
        aiohttp.ClientSession(base_url=kube_api.url, headers=headers) as session,
        session.get(RS_PATH) as response,
    ):
        assert response.status == 401


# -- kube-controller-manager


async def test_controller_manager_keeps_pods_equal_to_replicas(kube_api: KubeApi) -> None:
    async with KubeControllerManager(kube_api):
        rs = kube_api.create(replica_set("web", replicas=3))
        status = await kube_api.wait_for(
            lambda: (kube_api.get("apps/v1", "ReplicaSet", "web") or {}).get("status")
        )
        assert status == {
            "replicas": 3,
            "fullyLabeledReplicas": 3,
            "readyReplicas": 3,
            "availableReplicas": 3,
            "observedGeneration": 1,
        }
        pods = kube_api.objects("Pod")
        assert len(pods) == 3
        pod = pods[0]
        assert pod["metadata"]["name"].startswith("web-")
        assert pod["metadata"]["labels"] == {"app": "web"}
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["status"]["phase"] == "Running"
        assert {"type": "Ready", "status": "True"} in pod["status"]["conditions"]
        kube_api.patch("apps/v1", "ReplicaSet", "web", "default", {"spec": {"replicas": 1}})
        await kube_api.wait_for(lambda: len(kube_api.objects("Pod")) == 1)
        await kube_api.wait_for(
            lambda: kube_api.get("apps/v1", "ReplicaSet", "web")["status"]["replicas"] == 1  # type: ignore[index]
        )


async def test_controller_manager_can_keep_replica_sets_unready(kube_api: KubeApi) -> None:
    unready = {"bad"}
    async with KubeControllerManager(
        kube_api, unready=lambda rs: rs["metadata"]["name"] in unready
    ):
        kube_api.create(replica_set("bad", replicas=2))
        rs = await kube_api.wait_for(
            lambda: (kube_api.get("apps/v1", "ReplicaSet", "bad") or {}).get("status")
        )
        assert rs == {"replicas": 2, "fullyLabeledReplicas": 2, "observedGeneration": 1}
        unready.clear()
        await kube_api.wait_for(
            lambda: (
                kube_api.get("apps/v1", "ReplicaSet", "bad")["status"].get("readyReplicas")  # type: ignore[index]
                == 2
            )
        )


@pytest.mark.parametrize(
    ("label", "condition"),
    [({}, "Complete"), ({"test.rollwise.io/job-result": "Failed"}, "Failed")],
)
async def test_controller_manager_runs_jobs_to_their_end(
    kube_api: KubeApi, label: dict[str, str], condition: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "check", "namespace": "default", "labels": label},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }
    async with KubeControllerManager(kube_api):
        kube_api.create(job)
        status = await kube_api.wait_for(
            lambda: (
                (kube_api.get("batch/v1", "Job", "check") or {}).get("status", {}).get("conditions")
            )
        )
    assert status[0]["type"] == condition
    (pod,) = kube_api.objects("Pod")
    assert pod["metadata"]["labels"]["job-name"] == "check"
    assert pod["status"]["phase"] == ("Succeeded" if condition == "Complete" else "Failed")


async def test_controller_manager_reports_deployment_status(kube_api: KubeApi) -> None:
    async with KubeControllerManager(kube_api):
        kube_api.create({**replica_set("api", replicas=2), "kind": "Deployment"})
        status = await kube_api.wait_for(
            lambda: (kube_api.get("apps/v1", "Deployment", "api") or {}).get("status")
        )
    assert (status["replicas"], status["availableReplicas"], status["observedGeneration"]) == (
        2,
        2,
        1,
    )


# -- kubectl


async def kubectl(api: KubeApi, home: Path, *args: str, stdin: str | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(api.kubeconfig_path),
        "--cache-dir",
        str(home / "cache"),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(home)},
    )
    try:
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin else None), timeout=60
        )
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_kubectl_gets_and_applies(kube_api: KubeApi, tmp_path: Path) -> None:
    kube_api.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "seeded", "namespace": "default"}}
    )
    table = await kubectl(kube_api, tmp_path, "get", "pods")
    assert table.split()[:3] == ["NAME", "AGE", "seeded"]
    manifest = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: app\n"
        "spec:\n  replicas: 2\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n"
    )
    out = await kubectl(kube_api, tmp_path, "apply", "-f", "-", stdin=manifest)
    assert "rollout.argoproj.io/app created" in out
    out = await kubectl(
        kube_api, tmp_path, "apply", "-f", "-", stdin=manifest.replace("replicas: 2", "replicas: 3")
    )
    assert "rollout.argoproj.io/app configured" in out
    rollout = kube_api.get("argoproj.io/v1alpha1", "Rollout", "app")
    assert rollout is not None
    assert rollout["spec"]["replicas"] == 3
    (patch,) = kube_api.requests_to("PATCH", ROLLOUTS)
    assert patch.content_type == "application/merge-patch+json"
    listed = json.loads(await kubectl(kube_api, tmp_path, "get", "ro", "-o", "json"))
    assert [item["metadata"]["name"] for item in listed["items"]] == ["app"]


async def test_delayed_requests_are_answered_after_undelayed_ones(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    kube_api.delay("GET", RS_PATH, seconds=0.3, times=1)
    finished: list[str] = []

    async def timed(label: str, method: str, path: str, body: Any = None) -> None:
        await call(http, method, path, body)
        finished.append(label)

    await asyncio.gather(
        timed("delayed list", "GET", RS_PATH),
        timed("create", "POST", RS_PATH, replica_set("web")),
    )
    assert finished == ["create", "delayed list"]
    assert (await call(http, "GET", RS_PATH))[0] == 200  # times=1: only the first was delayed


async def test_server_dry_run_changes_nothing(
    kube_api: KubeApi, http: aiohttp.ClientSession
) -> None:
    dry = {"dryRun": "All"}
    status, _ = await call(http, "POST", RS_PATH, replica_set("web"), params=dry)
    assert status == 201
    assert kube_api.get("apps/v1", "ReplicaSet", "web") is None
    kube_api.create(replica_set("web"))
    version = kube_api.resource_version
    patch = {"spec": {"replicas": 9}}
    status, patched = await call(
        http,
        "PATCH",
        f"{RS_PATH}/web",
        patch,
        content_type="application/merge-patch+json",
        params=dry,
    )
    assert (status, patched["spec"]["replicas"]) == (200, 9)
    await call(http, "DELETE", f"{RS_PATH}/web", params=dry)
    assert kube_api.get("apps/v1", "ReplicaSet", "web")["spec"]["replicas"] == 1  # type: ignore[index]
    assert kube_api.resource_version == version
