"""`rollwise --context kubernetes`: every verb against the Kubernetes API server over HTTP.

The API server (`tests.kubernetes.apiserver`) runs on its own thread and event loop, so that
the CLI runs in this one, in-process, as `CliRunner` runs it for the local tests; objects are
seeded straight into the server. Where local mode has an answer, the same verb runs against a
local home seeded with the same objects and the results are compared: the cluster must end up
with exactly the fields the local CLI writes.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from tests.kubernetes.apiserver import KubeApi, running_kube_api
from typer.testing import CliRunner, Result

from rollwise.cli.main import app
from rollwise.platforms.local.store import SqliteStore

T = TypeVar("T")
ARGO = "argoproj.io/v1alpha1"
SEED = Path(__file__).resolve().parents[1] / "api" / "fixtures" / "seed"
ROLLOUTS = "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts"


class Cluster:
    """The test API server on a thread of its own; `do(fn)` runs `fn(kube_api)` there."""

    def __init__(self, directory: Path) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self.api: KubeApi | None = None
        self._thread = threading.Thread(target=self._run, args=(directory,), daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self.api is None:
            raise RuntimeError(f"the API server did not start: {self._failure!r}")

    def _run(self, directory: Path) -> None:
        try:
            self._loop.run_until_complete(self._serve(directory))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    async def _serve(self, directory: Path) -> None:
        try:
            async with running_kube_api(directory) as api:
                self.api, self._stop = api, asyncio.Event()
                self._ready.set()
                await self._stop.wait()
        except BaseException as error:
            self._failure = error
            self._ready.set()
            raise

    def do(self, work: Callable[[KubeApi], T]) -> T:
        api = self.api
        assert api is not None

        async def run() -> T:
            return work(api)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def on_first_request(self, method: str, work: Callable[[KubeApi], Any]) -> Future[Any]:
        """Run `work(kube_api)` on the server's loop as soon as a `method` request arrives."""
        api = self.api
        assert api is not None

        async def wait_then_work() -> Any:
            # the request log has no event to wait on; the held request waits for this
            while not api.requests_to(method):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            return work(api)

        return asyncio.run_coroutine_threadsafe(wait_then_work(), self._loop)

    def close(self) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)

    # shortcuts
    @property
    def kubeconfig(self) -> Path:
        assert self.api is not None
        return self.api.kubeconfig_path

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.do(lambda api: api.create(obj))

    def rollout(self, name: str = "myapp", namespace: str = "default") -> dict[str, Any]:
        found = self.do(lambda api: api.get(ARGO, "Rollout", name, namespace))
        assert found is not None
        return found

    def requests(self, method: str | None = None, path_prefix: str = "") -> list[Any]:
        return self.do(lambda api: list(api.requests_to(method, path_prefix)))

    def clear_requests(self) -> None:
        self.do(lambda api: api.clear_requests())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    server = Cluster(tmp_path)
    try:
        yield server
    finally:
        server.close()


def kube(cluster: Cluster, *args: str, env: dict[str, str] | None = None) -> Result:
    """`rollwise --context kubernetes --kubeconfig <the server's> ARGS...`, in-process."""
    return CliRunner().invoke(
        app, ["--context", "kubernetes", "--kubeconfig", str(cluster.kubeconfig), *args], env=env
    )


def local(home: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--home", str(home), *args])


def written(cluster: Cluster) -> list[Any]:
    return [r for r in cluster.requests() if r.method not in ("GET",)]


# --- objects --------------------------------------------------------------------------------------

BLUE, YELLOW, GREEN = (f"argoproj/rollouts-demo:{color}" for color in ("blue", "yellow", "green"))
STABLE_HASH, CANARY_HASH = "6c5c5d8f9b", "789746c88d"
CREATED = "2026-11-15T00:00:00Z"  # ages in days: equal whenever the two views are drawn

PAUSED_AT_STEP_1 = {
    "phase": "Paused",
    "message": "CanaryPauseStep",
    "currentStepIndex": 1,
    "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-11-26T01:50:00Z"}],
    "controllerPause": True,
    "currentPodHash": CANARY_HASH,
    "stableRS": STABLE_HASH,
    "replicas": 6,
    "updatedReplicas": 1,
    "readyReplicas": 6,
    "availableReplicas": 6,
    "canary": {},
}


def template(image: str, name: str = "myapp") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": name, "image": image}]},
    }


def rollout(
    name: str = "myapp",
    *,
    namespace: str = "default",
    image: str = YELLOW,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {"duration": "2m"}}]
    return {
        "apiVersion": ARGO,
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": name}},
            "template": template(image, name),
            "strategy": {"canary": {"steps": steps}},
        },
        "status": copy.deepcopy(status if status is not None else PAUSED_AT_STEP_1),
    }


def owner(kind: str, obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": obj["apiVersion"],
            "kind": kind,
            "name": obj["metadata"]["name"],
            "uid": obj["metadata"].get("uid", ""),
            "controller": True,
        }
    ]


def replica_set(
    owner_obj: dict[str, Any], pod_hash: str, *, revision: int, image: str, replicas: int
) -> dict[str, Any]:
    name = owner_obj["metadata"]["name"]
    labels = {"app": name, "rollouts-pod-template-hash": pod_hash}
    pod_template = template(image, name)
    pod_template["metadata"]["labels"] = labels
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name}-{pod_hash}",
            "namespace": owner_obj["metadata"].get("namespace", "default"),
            "labels": labels,
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "ownerReferences": owner("Rollout", owner_obj),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": pod_template,
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


def pod(rs: dict[str, Any], suffix: str) -> dict[str, Any]:
    image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{rs['metadata']['name']}-{suffix}",
            "namespace": rs["metadata"]["namespace"],
            "labels": dict(rs["metadata"]["labels"]),
            "ownerReferences": owner("ReplicaSet", rs),
        },
        "spec": {"containers": [{"name": "myapp", "image": image}]},
        "status": {
            "phase": "Running",
            "startTime": CREATED,
            "containerStatuses": [{"name": "myapp", "ready": True, "restartCount": 0}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def analysis_run(owner_obj: dict[str, Any], pod_hash: str, *, revision: int) -> dict[str, Any]:
    name = owner_obj["metadata"]["name"]
    return {
        "apiVersion": ARGO,
        "kind": "AnalysisRun",
        "metadata": {
            "name": f"{name}-{pod_hash}-{revision}-1",
            "namespace": "default",
            "labels": {"rollout-type": "Step", "rollouts-pod-template-hash": pod_hash},
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "ownerReferences": owner("Rollout", owner_obj),
        },
        "spec": {"metrics": [{"name": "success-rate", "provider": {"job": {}}}]},
        "status": {
            "phase": "Running",
            "metricResults": [{"name": "success-rate", "phase": "Running", "successful": 2}],
        },
    }


def seed_tree(create: Callable[[dict[str, Any]], dict[str, Any]], name: str = "myapp") -> None:
    """The seed lab mid-update: a canary of one pod (revision 2) over five stable pods, and the
    canary's analysis run; `create` stores an object and returns it as stored."""
    stored = create(rollout(name))
    canary = create(replica_set(stored, CANARY_HASH, revision=2, image=YELLOW, replicas=1))
    stable = create(replica_set(stored, STABLE_HASH, revision=1, image=BLUE, replicas=5))
    create(pod(canary, "qx2lp"))
    for suffix in ("2mtpz", "8hkwd", "kz7vj", "wq4ns", "b9x2k"):
        create(pod(stable, suffix))
    create(analysis_run(stored, CANARY_HASH, revision=2))


def local_store(home: Path) -> SqliteStore:
    return SqliteStore.open_home(home)


def seed_local(home: Path, name: str = "myapp") -> None:
    with local_store(home) as store:
        seed_tree(store.create, name)


def without_ages(text: str) -> str:
    """A drawn view with its AGE column blanked: the two stores stamp their own times."""
    text = re.sub(r"(?<![\w:-])\d+(s|m|h|d)(\d+(s|m|h))?(?![\w:-])", "<age>", text)
    return re.sub(r" +", " ", text)


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What a verb may change: spec and status (metadata is each server's own)."""
    return {"spec": obj.get("spec"), "status": obj.get("status")}


# --- apply ----------------------------------------------------------------------------------------


def test_apply_creates_the_seed_canary_by_server_side_apply(cluster: Cluster) -> None:
    part3, template_file = SEED / "part3-rollout.yaml", SEED / "part4-analysis-template.yaml"
    first = kube(cluster, "apply", "-f", str(part3), "-f", str(template_file))
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "service/myapp created",
        "rollout.argoproj.io/myapp created",
        "analysistemplate.argoproj.io/success-rate created",
    ]
    documents = [d for d in yaml.safe_load_all(part3.read_text()) if d]
    expected = {d["kind"]: d for d in documents}
    assert cluster.rollout()["spec"] == expected["Rollout"]["spec"]
    service = cluster.do(lambda api: api.get("v1", "Service", "myapp"))
    assert service is not None
    assert service["spec"]["selector"] == {"app": "myapp"}
    applies = written(cluster)
    assert [r.method for r in applies] == ["PATCH"] * 3
    for request in applies:
        assert request.content_type == "application/apply-patch+yaml"
        assert request.query == {"fieldManager": "rollwise-apply", "force": "true"}
        assert "status" not in request.body

    again = kube(cluster, "apply", "-f", str(part3), "-f", str(template_file))
    assert again.stdout.splitlines() == [
        "service/myapp unchanged",
        "rollout.argoproj.io/myapp unchanged",
        "analysistemplate.argoproj.io/success-rate unchanged",
    ]
    # Part 4's rollout refers to the template only the cluster holds: known, so it applies.
    updated = kube(cluster, "apply", "-f", str(SEED / "part4-rollout.yaml"))
    assert (updated.exit_code, updated.stdout) == (0, "rollout.argoproj.io/myapp configured\n")
    steps = cluster.rollout()["spec"]["strategy"]["canary"]["steps"]
    assert steps[2] == {
        "analysis": {
            "templates": [{"templateName": "success-rate"}],
            "args": [{"name": "service-name", "value": "myapp"}],
        }
    }


def test_apply_validates_as_locally_and_writes_nothing_on_an_error(
    cluster: Cluster, tmp_path: Path
) -> None:
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(
        (SEED / "part4-rollout.yaml").read_text().replace("success-rate", "no-such-template")
    )
    refused = kube(cluster, "apply", "-f", str(manifest))
    assert refused.exit_code == 1
    *problems, last = refused.stderr.splitlines()
    assert problems
    assert all(p.startswith(f"{manifest}:") and "no-such-template" in p for p in problems)
    assert last == f"Error: {len(problems)} problem{'s' if len(problems) > 1 else ''} found;" + (
        " nothing applied"
    )
    assert written(cluster) == []
    # the same problems as locally, where the image table adds its own
    local_problems = local(tmp_path / "home", "apply", "-f", str(manifest)).stderr.splitlines()
    assert set(problems) < set(local_problems)


# --- reads ----------------------------------------------------------------------------------------


def test_get_rollout_draws_the_local_tree_from_label_selected_reads(
    cluster: Cluster, tmp_path: Path
) -> None:
    seed_tree(cluster.create)
    seed_tree(cluster.create, "other")  # another rollout's objects in the same namespace
    home = tmp_path / "home"
    seed_local(home)
    cluster.clear_requests()

    drawn = kube(cluster, "get", "rollout", "myapp")
    assert drawn.exit_code == 0, drawn.output
    expected = local(home, "get", "rollout", "myapp")
    assert expected.exit_code == 0, expected.output
    assert without_ages(drawn.stdout) == without_ages(expected.stdout)
    assert "myapp-789746c88d-qx2lp" in drawn.stdout
    assert "myapp-789746c88d-2-1" in drawn.stdout
    assert "other" not in drawn.stdout

    lists = {r.path.rsplit("/", 1)[-1]: r.query for r in cluster.requests("GET")}
    assert lists["replicasets"] == {"labelSelector": "app=myapp"}
    assert lists["pods"] == {"labelSelector": "app=myapp"}
    hashes = f"rollouts-pod-template-hash in ({STABLE_HASH},{CANARY_HASH})"
    assert lists["analysisruns"] == {"labelSelector": hashes}
    assert lists["experiments"] == {"labelSelector": hashes}

    as_json = kube(cluster, "get", "rollout", "myapp", "-o", "json")
    assert json.loads(as_json.stdout) == cluster.rollout()


def test_list_rollouts_and_status_read_the_cluster(cluster: Cluster) -> None:
    cluster.create(rollout("myapp"))
    healthy = {
        "phase": "Healthy",
        "stableRS": "x",
        "currentPodHash": "x",
        "observedGeneration": "1",
    }
    cluster.create(rollout("shop-front", namespace="shop", status=healthy))
    listed = kube(cluster, "list", "rollouts")
    assert listed.exit_code == 0, listed.output
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["NAME", "myapp"]
    everywhere = kube(cluster, "list", "rollouts", "-A")
    rows = [line.split()[:2] for line in everywhere.stdout.splitlines()[1:]]
    assert rows == [["default", "myapp"], ["shop", "shop-front"]]

    paused = kube(cluster, "status", "myapp", "--no-watch")
    assert (paused.exit_code, paused.stdout) == (0, "Paused - CanaryPauseStep\n")
    done = kube(cluster, "-n", "shop", "status", "shop-front", "--timeout", "30s")
    assert (done.exit_code, done.stdout) == (0, "Healthy\n")
    # a status that does not follow changes opens no watch
    assert not [r for r in cluster.requests("GET") if r.query.get("watch")]


def test_the_namespace_defaults_to_the_kubeconfig_context_and_n_goes_anywhere(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.create(rollout("front", namespace="shop"))
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["contexts"][0]["context"]["namespace"] = "shop"
    shop_config = tmp_path / "shop-kubeconfig"
    shop_config.write_text(yaml.safe_dump(config))
    base = ["--context", "kubernetes", "--kubeconfig", str(shop_config)]

    in_shop = CliRunner().invoke(app, [*base, "get", "rollout", "front"])
    assert in_shop.exit_code == 0, in_shop.output
    assert "Namespace:       shop" in in_shop.stdout
    in_default = CliRunner().invoke(app, [*base, "get", "rollout", "front", "-n", "default"])
    assert (in_default.exit_code, in_default.stderr) == (
        1,
        "Error: rollout 'front' not found in namespace 'default'\n",
    )
    after_group = CliRunner().invoke(app, [*base, "get", "--namespace=default", "rollout", "front"])
    assert after_group.stderr == in_default.stderr
    # the context and the kubeconfig from the environment, as kubectl takes KUBECONFIG
    from_env = CliRunner().invoke(
        app,
        ["pause", "front"],
        env={"ROLLWISE_CONTEXT": "kubernetes", "KUBECONFIG": str(shop_config)},
    )
    assert (from_env.exit_code, from_env.stdout) == (0, "rollout 'front' paused\n")
    front = cluster.rollout("front", "shop")
    assert front["spec"]["paused"] is True


# --- writes ---------------------------------------------------------------------------------------

VERBS = [
    ("pause", "myapp"),
    ("promote", "myapp"),
    ("promote", "myapp", "--full"),
    ("abort", "myapp"),
    ("retry", "rollout", "myapp"),
    ("set", "image", "myapp", f"myapp={GREEN}"),
    ("undo", "myapp"),
    ("undo", "myapp", "--to-revision", "1"),
]


@pytest.mark.parametrize(
    "verb", VERBS, ids=[" ".join(v[:-1] if v[-1] == "myapp" else v) for v in VERBS]
)
def test_each_verb_writes_what_the_local_cli_writes_as_merge_patches(
    cluster: Cluster, tmp_path: Path, verb: tuple[str, ...]
) -> None:
    seed_tree(cluster.create)
    home = tmp_path / "home"
    seed_local(home)
    before = cluster.rollout()
    cluster.clear_requests()

    on_cluster = kube(cluster, *verb)
    assert on_cluster.exit_code == 0, on_cluster.output
    locally = local(home, *verb)
    assert locally.exit_code == 0, locally.output
    assert on_cluster.stdout == locally.stdout
    with local_store(home) as store:
        expected = store.get("Rollout", "myapp", "default")
    assert expected is not None
    after = cluster.rollout()
    assert comparable(after) == comparable(expected)
    assert comparable(after) != comparable(before)

    patches = written(cluster)
    assert patches
    for request in patches:
        assert (request.method, request.content_type) == ("PATCH", "application/merge-patch+json")
        assert request.path.startswith(f"{ROLLOUTS}/myapp")
        # computed from what was read: the server refuses it if someone wrote in between
        assert request.body["metadata"]["resourceVersion"]
    status_patches = [r for r in patches if r.path.endswith("/status")]
    assert all(set(r.body) == {"status", "metadata"} for r in status_patches)


def test_restart_sets_restart_at_to_now(cluster: Cluster) -> None:
    cluster.create(rollout())
    before = datetime.now(UTC).replace(microsecond=0)
    result = kube(cluster, "restart", "myapp")
    after = datetime.now(UTC)
    assert (result.exit_code, result.stdout) == (0, "rollout 'myapp' restarts in 0s\n")
    restart_at = datetime.fromisoformat(cluster.rollout()["spec"]["restartAt"])
    assert before <= restart_at <= after
    [patch] = written(cluster)
    assert patch.content_type == "application/merge-patch+json"


def test_a_conflict_reads_and_writes_again(cluster: Cluster) -> None:
    cluster.create(rollout())
    cluster.do(lambda api: api.fail("PATCH", f"{ROLLOUTS}/myapp", status=409, times=1))
    result = kube(cluster, "pause", "myapp")
    assert (result.exit_code, result.stdout) == (0, "rollout 'myapp' paused\n")
    assert cluster.rollout()["spec"]["paused"] is True
    assert len(cluster.requests("GET", f"{ROLLOUTS}/myapp")) == 2
    assert len(cluster.requests("PATCH", f"{ROLLOUTS}/myapp")) == 2


def test_a_write_after_someone_elses_is_refused_then_redone(cluster: Cluster) -> None:
    stored = cluster.create(rollout())
    # Our first PATCH is held while someone else writes: it arrives with a stale version.
    cluster.do(lambda api: api.delay("PATCH", f"{ROLLOUTS}/myapp", seconds=1.0, times=1))
    other = cluster.on_first_request(
        "PATCH",
        lambda api: api.patch(ARGO, "Rollout", "myapp", "default", {"spec": {"replicas": 3}}),
    )
    result = kube(cluster, "pause", "myapp")
    other.result(timeout=30)
    assert (result.exit_code, result.stdout) == (0, "rollout 'myapp' paused\n")
    first, second = cluster.requests("PATCH")
    assert first.body["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert second.body["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]
    final = cluster.rollout()
    assert (final["spec"]["paused"], final["spec"]["replicas"]) == (True, 3)


def test_endless_conflicts_end_in_one_line(cluster: Cluster) -> None:
    cluster.create(rollout())
    cluster.do(lambda api: api.fail("PATCH", f"{ROLLOUTS}/myapp", status=409, times=None))
    result = kube(cluster, "abort", "myapp")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot patch the status of rollouts.argoproj.io")
    assert len(result.stderr.splitlines()) == 1
    assert len(cluster.requests("PATCH")) == 5


# --- analysis runs, experiments, secrets ----------------------------------------------------------


def test_analysis_run_verbs(cluster: Cluster, tmp_path: Path) -> None:
    stored = cluster.create(rollout())
    run = cluster.create(analysis_run(stored, CANARY_HASH, revision=2))
    name = run["metadata"]["name"]
    home = tmp_path / "home"
    with local_store(home) as store:
        store.create(analysis_run(rollout(), CANARY_HASH, revision=2))

    shown = kube(cluster, "get", "analysisrun", name)
    assert shown.exit_code == 0, shown.output
    assert without_ages(shown.stdout) == without_ages(
        local(home, "get", "analysisrun", name).stdout
    )
    listed = kube(cluster, "list", "analysisruns")
    assert name in listed.stdout

    cluster.clear_requests()
    terminated = kube(cluster, "terminate", "analysisrun", name)
    assert (terminated.exit_code, terminated.stdout) == (0, f"analysisrun '{name}' terminated\n")
    got = cluster.do(lambda api: api.get(ARGO, "AnalysisRun", name))
    assert got is not None
    assert got["spec"]["terminate"] is True
    [patch] = written(cluster)
    assert (patch.content_type, patch.body["spec"]) == (
        "application/merge-patch+json",
        {"terminate": True},
    )


def experiment() -> dict[str, Any]:
    return {
        "apiVersion": ARGO,
        "kind": "Experiment",
        "metadata": {"name": "exp", "namespace": "default"},
        "spec": {
            "duration": "5m",
            "templates": [
                {
                    "name": "baseline",
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "exp-baseline"}},
                    "template": template(BLUE, "exp-baseline"),
                }
            ],
        },
        "status": {"phase": "Running", "availableAt": "2026-11-26T01:50:00Z"},
    }


def test_experiment_verbs(cluster: Cluster) -> None:
    stored = cluster.create(experiment())
    rs = replica_set(stored, "5f6d7c8b9", revision=1, image=BLUE, replicas=1)
    rs["metadata"]["name"] = "exp-baseline"
    rs["metadata"]["labels"]["app"] = "exp-baseline"
    rs["spec"]["template"]["metadata"]["labels"]["app"] = "exp-baseline"
    rs["metadata"]["ownerReferences"][0]["kind"] = "Experiment"
    cluster.create(rs)
    cluster.clear_requests()

    shown = kube(cluster, "get", "experiment", "exp")
    assert shown.exit_code == 0, shown.output
    assert "exp-baseline" in shown.stdout
    selectors = {r.query.get("labelSelector") for r in cluster.requests("GET")}
    assert "app=exp-baseline" in selectors

    retried = kube(cluster, "retry", "experiment", "exp")
    assert (retried.exit_code, retried.stdout) == (0, "experiment 'exp' restarted\n")
    got = cluster.do(lambda api: api.get(ARGO, "Experiment", "exp"))
    assert got is not None
    assert "status" not in got or got["status"] is None
    terminated = kube(cluster, "terminate", "experiment", "exp")
    assert terminated.exit_code == 0, terminated.output
    got = cluster.do(lambda api: api.get(ARGO, "Experiment", "exp"))
    assert got is not None
    assert got["spec"]["terminate"] is True


def test_create_secret_generic_creates_then_replaces(cluster: Cluster) -> None:
    first = kube(cluster, "create", "secret", "generic", "token", "--from-literal", "key=s3cret")
    assert (first.exit_code, first.stdout) == (0, "secret/token created\n")
    second = kube(cluster, "create", "secret", "generic", "token", "--from-literal", "key=other")
    assert (second.exit_code, second.stdout) == (0, "secret/token configured\n")
    secret = cluster.do(lambda api: api.get("v1", "Secret", "token"))
    assert secret is not None
    assert base64.b64decode(secret["data"]["key"]) == b"other"
    assert [r.method for r in written(cluster)] == ["POST", "PUT"]


def test_lint_knows_the_templates_of_the_cluster(cluster: Cluster) -> None:
    part4 = str(SEED / "part4-rollout.yaml")
    unknown = kube(cluster, "lint", "-f", part4)
    assert unknown.exit_code == 1
    assert "success-rate" in unknown.stdout
    applied = kube(cluster, "apply", "-f", str(SEED / "part4-analysis-template.yaml"))
    assert applied.exit_code == 0, applied.output
    known = kube(cluster, "lint", "-f", part4)
    assert (known.exit_code, known.stdout) == (0, "")


# --- errors ---------------------------------------------------------------------------------------


def test_an_unreachable_api_server_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "gone", "user": {}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
                "current-context": "gone",
            }
        )
    )
    result = CliRunner().invoke(
        app, ["--context", "kubernetes", "--kubeconfig", str(config), "get", "rollout", "myapp"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: cannot reach the Kubernetes API at http://127.0.0.1:{port}"
    )
    assert len(result.stderr.splitlines()) == 1


def test_rbac_refusals_and_unknown_rollouts_are_one_line(cluster: Cluster) -> None:
    cluster.create(rollout())
    missing = kube(cluster, "promote", "nope")
    assert (missing.exit_code, missing.stderr) == (
        1,
        "Error: rollout 'nope' not found in namespace 'default'\n",
    )
    cluster.do(lambda api: api.fail("PATCH", f"{ROLLOUTS}/myapp", status=403, times=None))
    refused = kube(cluster, "pause", "myapp")
    assert refused.exit_code == 1
    assert refused.stderr.startswith(
        "Error: not allowed to patch rollouts.argoproj.io default/myapp: injected fault: 403"
    )
    assert len(refused.stderr.splitlines()) == 1
    cluster.do(lambda api: api.fail("GET", ROLLOUTS, status=403, times=None))
    unreadable = kube(cluster, "get", "rollout", "myapp")
    assert unreadable.exit_code == 1
    assert unreadable.stderr.startswith("Error: not allowed to get rollouts.argoproj.io")
    assert len(unreadable.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("demo",), "`rollwise demo`"),
        (("controller",), "`rollwise controller --local`"),
        (("analyze", "-f", str(SEED / "part4-analysis-template.yaml")), "`rollwise analyze`"),
        (
            ("notifications", "test", "--trigger", "on-rollout-aborted", "--rollout", "myapp"),
            "`rollwise notifications test`",
        ),
    ],
)
def test_local_only_commands_are_refused_in_one_line(
    tmp_path: Path, args: tuple[str, ...], what: str
) -> None:
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path / "home"), "--context", "kubernetes", *args]
    )
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: {what} acts on a local rollwise home only, not on a cluster; "
        "run it as `rollwise --context local ...`\n",
    )
    assert not (tmp_path / "home").exists()
