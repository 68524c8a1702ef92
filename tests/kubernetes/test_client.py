"""KubeClient against the test API server over HTTP: paths, content types, errors, watches."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from tests.kubernetes.apiserver import KubeApi

from rollwise.api.errors import ConflictError, NotFoundError, TransientError, UserError
from rollwise.platforms.kubernetes.client import ApiStatusError, GoneError, KubeClient, WatchEvent
from rollwise.platforms.kubernetes.ratelimit import TokenBucket
from rollwise.platforms.kubernetes.resources import guess_plural, resource_for

ARGO = "argoproj.io/v1alpha1"
RS_PATH = "/apis/apps/v1/namespaces/default/replicasets"


def rollout(name: str = "app", **spec: object) -> dict:
    return {
        "apiVersion": ARGO,
        "kind": "Rollout",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, **spec},
    }


def replica_set(name: str, labels: dict[str, str]) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"replicas": 1},
    }


@pytest_asyncio.fixture
async def client(kube_api: KubeApi) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path))
    try:
        yield client
    finally:
        await client.close()


def content_types(kube_api: KubeApi, method: str) -> set[str | None]:
    return {r.content_type for r in kube_api.requests_to(method)}


async def test_connect_reads_the_context_namespace_and_sends_the_token(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    config = yaml.safe_load(kube_api.kubeconfig_path.read_text())
    config["contexts"][0]["context"]["namespace"] = "team-a"
    path = tmp_path / "team-a.yaml"
    path.write_text(yaml.safe_dump(config))
    async with await KubeClient.connect(kubeconfig=str(path)) as client:
        assert client.namespace == "team-a"
        await client.create(rollout())
    assert kube_api.get(ARGO, "Rollout", "app", "team-a") is not None
    (request,) = kube_api.requests_to("POST")
    assert request.headers["Authorization"] == f"Bearer {kube_api.token}"


async def test_connect_uses_the_kubeconfig_environment_variable(
    kube_api: KubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig_path))
    async with await KubeClient.connect() as client:
        assert await client.get(ARGO, "Rollout", "missing", None) is None


async def test_connect_without_any_configuration_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(UserError, match="no kubeconfig found"):
        await KubeClient.connect()


async def test_get_returns_the_object_or_none(kube_api: KubeApi, client: KubeClient) -> None:
    kube_api.create({**rollout(), "metadata": {"name": "app", "namespace": "default"}})
    found = await client.get(ARGO, "Rollout", "app", "default")
    assert found is not None
    assert (found["kind"], found["metadata"]["name"]) == ("Rollout", "app")
    assert await client.get(ARGO, "Rollout", "nope", "default") is None


async def test_create_then_create_again_is_a_conflict(client: KubeClient) -> None:
    created = await client.create(rollout())
    assert created["metadata"]["uid"]
    with pytest.raises(ConflictError) as raised:
        await client.create(rollout())
    assert isinstance(raised.value.__cause__, ApiStatusError)
    assert raised.value.__cause__.status == 409


async def test_replace_with_a_stale_resource_version_is_a_conflict(client: KubeClient) -> None:
    created = await client.create(rollout())
    await client.merge_patch(ARGO, "Rollout", "app", None, {"spec": {"replicas": 2}})
    created["spec"]["replicas"] = 5
    with pytest.raises(ConflictError):
        await client.replace(created)
    fresh = await client.get(ARGO, "Rollout", "app", None)
    assert fresh is not None
    fresh["spec"]["replicas"] = 5
    replaced = await client.replace(fresh)
    assert replaced["spec"]["replicas"] == 5


async def test_merge_patch_sends_the_merge_patch_content_type(
    kube_api: KubeApi, client: KubeClient
) -> None:
    await client.create(rollout(paused=True))
    patched = await client.merge_patch(ARGO, "Rollout", "app", None, {"spec": {"paused": None}})
    assert "paused" not in patched["spec"]
    (request,) = kube_api.requests_to("PATCH")
    assert request.content_type == "application/merge-patch+json"
    assert request.body == {"spec": {"paused": None}}
    with pytest.raises(NotFoundError):
        await client.merge_patch(ARGO, "Rollout", "nope", None, {"spec": {}})


async def test_status_writes_change_only_the_status(client: KubeClient) -> None:
    created = await client.create(rollout())
    created["status"] = {"phase": "Progressing"}
    created["spec"]["replicas"] = 9
    written = await client.replace_status(created)
    assert written["status"] == {"phase": "Progressing"}
    assert written["spec"]["replicas"] == 1
    with pytest.raises(ConflictError):
        await client.replace_status(created)  # its resourceVersion is stale now
    patched = await client.merge_patch(
        ARGO, "Rollout", "app", None, {"status": {"phase": "Healthy"}}, subresource="status"
    )
    assert patched["status"] == {"phase": "Healthy"}


async def test_scale_through_the_subresource(kube_api: KubeApi, client: KubeClient) -> None:
    await client.create(rollout())
    scale = await client.merge_patch(
        ARGO, "Rollout", "app", None, {"spec": {"replicas": 4}}, subresource="scale"
    )
    assert (scale["kind"], scale["spec"]["replicas"]) == ("Scale", 4)
    read = await client.get(ARGO, "Rollout", "app", None, subresource="scale")
    assert read is not None
    assert read["spec"]["replicas"] == 4
    (request,) = kube_api.requests_to("PATCH")
    assert request.path.endswith("/rollouts/app/scale")


async def test_apply_creates_then_merges_with_field_manager(
    kube_api: KubeApi, client: KubeClient
) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
    await client.apply({**config, "data": {"a": "1"}})
    applied = await client.apply({**config, "data": {"b": "2"}}, field_manager="rollwise-install")
    assert applied["data"] == {"a": "1", "b": "2"}
    requests = kube_api.requests_to("PATCH")
    assert {r.content_type for r in requests} == {"application/apply-patch+yaml"}
    assert [r.query for r in requests] == [
        {"fieldManager": "rollwise", "force": "true"},
        {"fieldManager": "rollwise-install", "force": "true"},
    ]


async def test_delete_ignores_missing_objects_and_sends_the_propagation(
    kube_api: KubeApi, client: KubeClient
) -> None:
    await client.create(rollout())
    await client.delete(ARGO, "Rollout", "app", None, propagation="Foreground")
    await client.delete(ARGO, "Rollout", "app", None)
    assert kube_api.get(ARGO, "Rollout", "app") is None
    first = kube_api.requests_to("DELETE")[0]
    assert first.body["propagationPolicy"] == "Foreground"


async def test_list_all_namespaces_with_a_label_selector_types_every_item(
    kube_api: KubeApi, client: KubeClient
) -> None:
    kube_api.create(replica_set("a", {"rollouts-pod-template-hash": "abc"}))
    kube_api.create(
        {
            **replica_set("b", {"rollouts-pod-template-hash": "def"}),
            "metadata": {
                "name": "b",
                "namespace": "other",
                "labels": {"rollouts-pod-template-hash": "def"},
            },
        }
    )
    kube_api.create(replica_set("c", {"app": "c"}))
    listed = await client.list(
        "apps/v1", "ReplicaSet", None, label_selector="rollouts-pod-template-hash"
    )
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed.items] == [
        ("default", "a"),
        ("other", "b"),
    ]
    assert {(i["apiVersion"], i["kind"]) for i in listed.items} == {("apps/v1", "ReplicaSet")}
    assert listed.resource_version == str(kube_api.resource_version)
    (request,) = kube_api.requests_to("GET", "/apis/apps/v1/replicasets")
    assert request.query == {"labelSelector": "rollouts-pod-template-hash"}


async def test_cluster_scoped_kinds_ignore_the_namespace(
    kube_api: KubeApi, client: KubeClient
) -> None:
    template = {
        "apiVersion": ARGO,
        "kind": "ClusterAnalysisTemplate",
        "metadata": {"name": "shared"},
        "spec": {"metrics": []},
    }
    await client.create(template)
    assert await client.get(ARGO, "ClusterAnalysisTemplate", "shared", "default") is not None
    assert {r.path for r in kube_api.requests} == {
        "/apis/argoproj.io/v1alpha1/clusteranalysistemplates",
        "/apis/argoproj.io/v1alpha1/clusteranalysistemplates/shared",
    }


async def test_watch_yields_changes_after_the_resource_version(
    kube_api: KubeApi, client: KubeClient
) -> None:
    listed = await client.list("apps/v1", "ReplicaSet", "default")
    kube_api.create(replica_set("a", {"x": "1"}))
    kube_api.patch("apps/v1", "ReplicaSet", "a", "default", {"spec": {"replicas": 2}})
    kube_api.delete("apps/v1", "ReplicaSet", "a")
    events: list[WatchEvent] = []
    watch = client.watch(
        "apps/v1",
        "ReplicaSet",
        "default",
        resource_version=listed.resource_version,
        timeout_seconds=1,
    )
    async with contextlib.aclosing(watch):
        async for event in watch:
            events.append(event)
    changes = [(e.type, e.object["metadata"]["name"]) for e in events if e.type != "BOOKMARK"]
    assert changes == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert events[0].object["kind"] == "ReplicaSet"
    (request,) = [r for r in kube_api.requests_to("GET", RS_PATH) if "watch" in r.query]
    assert request.query["watch"] == "1"
    assert request.query["resourceVersion"] == listed.resource_version


async def test_watch_from_a_compacted_resource_version_raises_gone(
    kube_api: KubeApi, client: KubeClient
) -> None:
    listed = await client.list("apps/v1", "ReplicaSet", "default")
    kube_api.create(replica_set("a", {"x": "1"}))
    kube_api.compact()
    watch = client.watch(
        "apps/v1",
        "ReplicaSet",
        "default",
        resource_version=listed.resource_version,
        timeout_seconds=5,
    )

    async def drain() -> None:
        async with contextlib.aclosing(watch):
            async for _ in watch:
                pass

    with pytest.raises(GoneError):
        await drain()
    assert issubclass(GoneError, TransientError)


async def test_an_abandoned_watch_releases_its_connection(
    kube_api: KubeApi, client: KubeClient
) -> None:
    watch = client.watch(
        "apps/v1", "ReplicaSet", "default", resource_version="", timeout_seconds=30
    )
    kube_api.create(replica_set("a", {"x": "1"}))
    async with contextlib.aclosing(watch):
        first = await anext(watch)
    assert first.type == "ADDED"
    await kube_api.wait_for(lambda: not kube_api.store._watchers)


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, TransientError), (503, TransientError), (429, TransientError), (403, UserError)],
)
async def test_server_failures_map_to_rollwise_errors(
    kube_api: KubeApi, client: KubeClient, status: int, error: type[Exception]
) -> None:
    kube_api.fail("POST", "/apis/argoproj.io", status=status)
    with pytest.raises(error) as raised:
        await client.create(rollout())
    assert isinstance(raised.value.__cause__, ApiStatusError)
    assert raised.value.__cause__.status == status
    if status == 403:
        assert "not allowed to create rollouts.argoproj.io default/app" in str(raised.value)


async def test_an_invalid_object_is_a_user_error_with_the_server_message(
    client: KubeClient,
) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"}},
    }
    with pytest.raises(UserError, match=r"spec\.scope: Unsupported value"):
        await client.create(crd)


async def test_an_unreachable_server_is_transient(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "gone", "user": {"token": "x"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
        "current-context": "gone",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    async with await KubeClient.connect(kubeconfig=str(path)) as client:
        assert client.namespace == "default"
        with pytest.raises(TransientError, match="cannot reach the Kubernetes API"):
            await client.get(ARGO, "Rollout", "app", None)


async def test_no_request_ever_sends_json_patch_for_a_dict(
    kube_api: KubeApi, client: KubeClient
) -> None:
    await client.create(rollout())
    await client.merge_patch(ARGO, "Rollout", "app", None, {"metadata": {"labels": {"a": "b"}}})
    await client.merge_patch(
        ARGO, "Rollout", "app", None, {"status": {"x": 1}}, subresource="status"
    )
    await client.apply(rollout())
    assert "application/json-patch+json" not in content_types(kube_api, "PATCH")
    assert content_types(kube_api, "PATCH") == {
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    }


async def test_requests_pass_the_rate_limit(kube_api: KubeApi) -> None:
    # Two tokens, refilled at 20/s: the last three of five requests each wait for a token.
    client = await KubeClient.connect(kubeconfig=str(kube_api.kubeconfig_path), qps=20, burst=2)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await asyncio.gather(*(client.get(ARGO, "Rollout", f"r{i}", None) for i in range(5)))
        assert loop.time() - started >= 3 / 20 * 0.9
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("arrivals", "waits"),
    [
        ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, 1.0]),  # burst 2, then one per 0.5 s in order
        ([0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.5]),  # refilled by 1 s of waiting
        ([0.0, 10.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.5]),  # never more than the burst
    ],
)
def test_token_bucket(arrivals: list[float], waits: list[float]) -> None:
    bucket = TokenBucket(qps=2.0, burst=2, now=0.0)
    assert [bucket.reserve(now) for now in arrivals] == pytest.approx(waits)


def test_token_bucket_without_a_limit() -> None:
    bucket = TokenBucket(qps=0, burst=1, now=0.0)
    assert [bucket.reserve(0.0) for _ in range(10)] == [0.0] * 10


@pytest.mark.parametrize(
    ("api_version", "kind", "path"),
    [
        ("v1", "Pod", "/api/v1/namespaces/ns/pods/x"),
        ("apps/v1", "ReplicaSet", "/apis/apps/v1/namespaces/ns/replicasets/x"),
        (
            "argoproj.io/v1alpha1",
            "ClusterAnalysisTemplate",
            "/apis/argoproj.io/v1alpha1/clusteranalysistemplates/x",
        ),
        (
            "networking.istio.io/v1alpha3",
            "VirtualService",
            "/apis/networking.istio.io/v1alpha3/namespaces/ns/virtualservices/x",
        ),
        (
            "split.smi-spec.io/v1alpha2",
            "TrafficSplit",
            "/apis/split.smi-spec.io/v1alpha2/namespaces/ns/trafficsplits/x",
        ),
        (
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes/x",
        ),
        ("example.com/v1", "NetworkPolicy", "/apis/example.com/v1/namespaces/ns/networkpolicies/x"),
    ],
)
def test_resource_paths(api_version: str, kind: str, path: str) -> None:
    assert resource_for(api_version, kind).object_path("x", "ns") == path


@pytest.mark.parametrize(
    ("kind", "plural"),
    [
        ("Widget", "widgets"),
        ("Ingress", "ingresses"),
        ("Policy", "policies"),
        ("Gateway", "gateways"),
    ],
)
def test_unknown_kinds_are_pluralised_as_kubernetes_guesses(kind: str, plural: str) -> None:
    assert guess_plural(kind) == plural
