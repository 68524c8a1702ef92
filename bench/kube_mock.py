"""The Kubernetes API mock of the tests, run as a process of its own for the scale benchmark,
holding N settled rollouts, with a kube-controller-manager stand-in that scales to them.

Who uses it: `bench.kube_scale` starts `python -m bench.kube_mock --dir D --count N` and talks
to it over stdin/stdout, one JSON object a line (commands below); the controller under test
runs in another process and reaches this one over HTTP only, so each side's CPU time and
memory are its own and the report can say which side is slow.

What it adds to `tests/kubernetes/apiserver.py` (which the tests use unchanged):
- `ScaleObjectStore`: the same store with indexes by uid and by owner uid, so that deleting a
  pod and garbage collection do not scan every object (the test store's `_delete_now` and
  `by_uid` are linear in the number of objects: fine for tests, a mock-side bottleneck at
  10,000 rollouts), and with a hook that times each rollout of a wave of updates;
- `IncrementalControllerManager`: the tests' `KubeControllerManager` reconciling only the
  ReplicaSets that changed (or whose pods changed) instead of every ReplicaSet, Pod, Deployment
  and Job after each change (its full pass is measured once and reported as `kcm_full_pass_ms`).

Seeding: the seed rollout (`tests.kubernetes.world.SEED_ROLLOUT`, its replicas set by
`--replicas`) is settled by a real `KubeController` in this process first, then its Rollout,
ReplicaSet and Pods are copied into N - 1 more rollouts (each with its own `app` label, so its
own pod-template hash) directly in the store: no HTTP, no controller, seconds for 10,000.

Commands (stdin) and answers (stdout):
    {"cmd": "wave", "start": S, "count": K, "image": "..."}
                                                   set the image of rollouts S to S + K - 1,
                                                   straight in the store; {"updated": K}
    {"cmd": "wave_wait", "timeout": S}            until every rollout of the wave reached its
                                                   first step (or S seconds): per-rollout times
    {"cmd": "stats"}                               CPU time, RSS, requests by verb since the
                                                   last stats, object counts
    {"cmd": "quit"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import resource
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
from tests.kubernetes.apiserver import (
    ApiError,
    ApiServer,
    KubeApi,
    KubeControllerManager,
    ObjectStore,
    ResourceType,
    Selector,
    merge_patch,
)
from tests.kubernetes.world import SEED_ROLLOUT, SEED_SERVICE, running_controller

from bench.child import answer
from rollwise.core.hashing import pod_template_hash

Obj = dict[str, Any]
Key = tuple[str, str, str, str]
HISTORY = 500_000
"""Watch history kept (changes): enough that no informer has to relist during a run."""
BATCH = 200
"""Objects handled between two yields to the event loop (the HTTP server keeps serving)."""


def rss_kb(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class WaveEntry:
    updated: float
    pod_hash: str
    replica_set: float | None = None
    first_step: float | None = None


class ScaleObjectStore(ObjectStore):
    """The tests' object store with uid and owner indexes, dirty sets and a wave timer."""

    def __init__(self, **kwargs: Any) -> None:
        self._keys_by_uid: dict[str, Key] = {}
        self._dependents: dict[str, set[Key]] = {}
        self.dirty_replica_sets: set[Key] = set()
        self.wave: dict[str, WaveEntry] = {}
        super().__init__(**kwargs)

    def _commit(self, rtype: ResourceType, old: Obj | None, new: Obj | None) -> Obj:
        committed = super()._commit(rtype, old, new)
        metadata = committed["metadata"]
        key = self.key(rtype, metadata.get("namespace"), metadata["name"])
        for gone in (old,) if old is not None else ():
            for ref in gone["metadata"].get("ownerReferences") or ():
                self._dependents.get(ref.get("uid", ""), set()).discard(key)
        if new is None:
            self._keys_by_uid.pop(metadata["uid"], None)
            self._dependents.pop(metadata["uid"], None)
        else:
            self._keys_by_uid[metadata["uid"]] = key
            for ref in metadata.get("ownerReferences") or ():
                self._dependents.setdefault(ref.get("uid", ""), set()).add(key)
        if rtype.kind == "ReplicaSet":
            self.dirty_replica_sets.add(key)
            if old is None and new is not None:
                self._replica_set_created(new)
        elif rtype.kind == "Pod":
            for ref in metadata.get("ownerReferences") or ():
                owner = self._keys_by_uid.get(ref.get("uid", ""))
                if owner is not None and owner[1] == "replicasets":
                    self.dirty_replica_sets.add(owner)
        elif rtype.kind == "Rollout" and new is not None and self.wave:
            self._rollout_written(new)
        return committed

    def _replica_set_created(self, rs: Obj) -> None:
        for ref in rs["metadata"].get("ownerReferences") or ():
            entry = self.wave.get(ref.get("name", ""))
            labels = rs["metadata"].get("labels") or {}
            if entry is not None and labels.get("rollouts-pod-template-hash") == entry.pod_hash:
                entry.replica_set = entry.replica_set or time.monotonic()

    def _rollout_written(self, rollout: Obj) -> None:
        entry = self.wave.get(rollout["metadata"]["name"])
        if entry is None or entry.first_step is not None:
            return
        status = rollout.get("status") or {}
        if status.get("currentPodHash") == entry.pod_hash and (
            int(status.get("currentStepIndex") or 0) >= 1
        ):
            entry.first_step = time.monotonic()

    def by_uid(self, uid: str) -> Obj | None:
        key = self._keys_by_uid.get(uid)
        return None if key is None else self._objects.get(key)

    def dependents(self, uid: str) -> list[Obj]:
        found = (self._objects.get(key) for key in sorted(self._dependents.get(uid, ())))
        return [obj for obj in found if obj is not None]

    def _delete_now(self, rtype: ResourceType, current: Obj, *, propagation: str) -> Obj:
        if rtype.kind == "CustomResourceDefinition":
            return super()._delete_now(rtype, current, propagation=propagation)
        uid = current["metadata"]["uid"]
        dependents = self.dependents(uid)
        deleted = self._commit(rtype, current, None)
        # As the test store's garbage collection, over the owner index instead of every object.
        for dependent in dependents:
            key = self.key(
                self._type_of(dependent),
                dependent["metadata"].get("namespace"),
                dependent["metadata"]["name"],
            )
            if key not in self._objects:
                continue
            references = dependent["metadata"].get("ownerReferences") or []
            dependent_type = self._type_of(dependent)
            if propagation == "Orphan":
                orphan = copy.deepcopy(dependent)
                orphan["metadata"]["ownerReferences"] = [
                    r for r in references if r.get("uid") != uid
                ]
                self._commit(dependent_type, dependent, orphan)
            elif all(self.by_uid(r.get("uid", "")) is None for r in references):
                with contextlib.suppress(ApiError):
                    self.delete(
                        dependent_type,
                        dependent["metadata"].get("namespace"),
                        dependent["metadata"]["name"],
                        propagation=propagation,
                    )
        return deleted


class IncrementalControllerManager(KubeControllerManager):
    """The tests' kube-controller-manager, reconciling only the ReplicaSets that changed."""

    store: ScaleObjectStore

    async def _run(self) -> None:
        rs_type = self._type("apps/v1", "ReplicaSet")
        while True:
            dirty = self.store.dirty_replica_sets
            if not dirty:
                await self.store.changed()
                continue
            for done, key in enumerate(list(dirty)):
                dirty.discard(key)
                rs = self.store._objects.get(key)
                if rs is not None:
                    pods = [
                        pod
                        for pod in self.store.dependents(rs["metadata"]["uid"])
                        if pod["kind"] == "Pod"
                    ]
                    self._reconcile_replica_set(rs_type, rs, pods)
                if done % BATCH == BATCH - 1:
                    await asyncio.sleep(0)


@dataclass
class Mock:
    api: KubeApi
    store: ScaleObjectStore
    count: int
    names: list[str]
    requests_seen: int = 0

    def stats(self) -> dict[str, Any]:
        log = self.api.handler.log
        verbs = Counter(request.method for request in log)
        kinds = Counter(
            f"{request.method} {_resource(request.path)}"
            for request in log
            if request.method != "GET"
        )
        watches = sum(1 for r in log if r.query.get("watch") in ("true", "1"))
        log.clear()
        objects = Counter(key[1] for key in self.store._objects)
        return {
            "cpu_s": cpu_seconds(),
            "rss_kb": rss_kb(),
            "rss_peak_kb": rss_kb("VmHWM"),
            "requests": dict(verbs),
            "writes": dict(kinds),
            "watches": watches,
            "objects": dict(objects),
            "resource_version": self.store.resource_version,
            "at": time.monotonic(),
        }

    async def wave(self, start: int, count: int, image: str) -> dict[str, Any]:
        rollout_type = self.store.types.by_kind("argoproj.io/v1alpha1", "Rollout")
        self.store.wave.clear()
        started = time.monotonic()
        names = self.names[start : start + count]
        for done, name in enumerate(names):
            current = self.store.find(rollout_type, "default", name)
            assert current is not None
            template = copy.deepcopy(current["spec"]["template"])
            template["spec"]["containers"][0]["image"] = image
            self.store.wave[name] = WaveEntry(time.monotonic(), pod_template_hash(template))
            patched = merge_patch(current, {"spec": {"template": template}})
            self.store.update(rollout_type, patched)
            if done % BATCH == BATCH - 1:
                await asyncio.sleep(0)
        return {"updated": len(names), "seconds": time.monotonic() - started}

    async def wave_wait(self, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        entries = self.store.wave
        while time.monotonic() < deadline:
            if all(entry.first_step is not None for entry in entries.values()):
                break
            await asyncio.sleep(0.1)
        first_step = [e.first_step - e.updated for e in entries.values() if e.first_step]
        replica_set = [e.replica_set - e.updated for e in entries.values() if e.replica_set]
        ends = [e.first_step for e in entries.values() if e.first_step]
        starts = [e.updated for e in entries.values()]
        return {
            "rollouts": len(entries),
            "reached": len(first_step),
            "first_step_s": first_step,
            "replica_set_s": replica_set,
            "span_s": (max(ends) - min(starts)) if ends else None,
        }


def _resource(path: str) -> str:
    parts = [part for part in path.split("/") if part]
    if "namespaces" in parts:
        index = parts.index("namespaces")
        rest = parts[index + 2 :]
    else:
        rest = parts[2:] if parts and parts[0] == "api" else parts[3:]
    return "/".join(rest[:1] + rest[2:3]) if rest else path


def _clone(store: ScaleObjectStore, settled: list[Obj], name: str) -> None:
    """The settled rollout `myapp` (first of `settled`), its ReplicaSet and Pods, as `name`."""
    rollout = settled[0]
    template = json.loads(json.dumps(rollout["spec"]["template"]).replace("myapp", name))
    old_hash = pod_template_hash(rollout["spec"]["template"])
    new_hash = pod_template_hash(template)
    text = json.dumps(settled).replace("myapp", name).replace(old_hash, new_hash)
    objects: list[Obj] = json.loads(text)
    uids: dict[str, str] = {}
    for obj in objects:
        metadata = obj["metadata"]
        for ref in metadata.get("ownerReferences") or ():
            ref["uid"] = uids.get(ref["uid"], ref["uid"])
        old_uid = metadata.pop("uid")
        for key in ("resourceVersion", "creationTimestamp", "generateName"):
            metadata.pop(key, None)
        rtype = store.types.by_kind(obj["apiVersion"], obj["kind"])
        created = store.create(rtype, obj)
        uids[old_uid] = created["metadata"]["uid"]


async def _settle_seed(api: KubeApi, replicas: int) -> list[Obj]:
    rollout = copy.deepcopy(SEED_ROLLOUT)
    rollout["spec"]["replicas"] = replicas
    api.create(copy.deepcopy(SEED_SERVICE))
    api.create(rollout)
    async with KubeControllerManager(api), running_controller(api):
        await api.wait_for(
            lambda: (
                (
                    (api.get("argoproj.io/v1alpha1", "Rollout", "myapp") or {}).get("status") or {}
                ).get("phase")
                == "Healthy"
            ),
            timeout=30,
        )
    settled = api.get("argoproj.io/v1alpha1", "Rollout", "myapp")
    assert settled is not None
    return [settled, *api.objects("ReplicaSet"), *api.objects("Pod")]


async def serve(directory: Path, *, count: int, replicas: int) -> None:
    store = ScaleObjectStore(history_size=HISTORY, bookmark_interval=2.0)
    handler = ApiServer(store=store, token=f"rollwise-bench-{uuid.uuid4().hex[:12]}")
    async with handler, kmock.Server(handler) as server:
        api = KubeApi(handler, server, directory)
        try:
            started = time.perf_counter()
            settled = await _settle_seed(api, replicas)
            settle_s = time.perf_counter() - started
            started = time.perf_counter()
            names = ["myapp"]
            for i in range(1, count):
                name = f"myapp-{i:05d}"
                _clone(store, settled, name)
                names.append(name)
            clone_s = time.perf_counter() - started
            # What the tests' kube-controller-manager would pay per change at this size.
            full = KubeControllerManager(api)
            started = time.perf_counter()
            full.reconcile()
            full_pass_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            store.select(store.types.by_kind("v1", "Pod"), None, Selector())
            select_ms = (time.perf_counter() - started) * 1000
            mock = Mock(api, store, count, names)
            store.dirty_replica_sets.clear()
            async with IncrementalControllerManager(api):
                answer(
                    {
                        "ready": True,
                        "kubeconfig": str(api.kubeconfig_path),
                        "settle_s": settle_s,
                        "clone_s": clone_s,
                        "kcm_full_pass_ms": full_pass_ms,
                        "select_pods_ms": select_ms,
                        **mock.stats(),
                    }
                )
                await _commands(mock)
        finally:
            store.close_watches()
            await asyncio.sleep(0)


async def _commands(mock: Mock) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        command = json.loads(line)
        match command["cmd"]:
            case "wave":
                answer(
                    await mock.wave(
                        int(command["start"]), int(command["count"]), str(command["image"])
                    )
                )
            case "wave_wait":
                answer(await mock.wave_wait(float(command["timeout"])))
            case "stats":
                answer(mock.stats())
            case "quit":
                answer({"bye": True})
                return
            case other:
                answer({"error": f"unknown command {other}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="where to write the kubeconfig")
    parser.add_argument("--count", type=int, required=True, help="rollouts to hold")
    parser.add_argument("--replicas", type=int, default=5, help="replicas of each rollout")
    args = parser.parse_args()
    asyncio.run(serve(args.dir, count=args.count, replicas=args.replicas))


if __name__ == "__main__":
    main()
