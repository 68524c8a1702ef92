"""Benchmark 5: a controller-like process holding N settled rollouts (memory budget: ≤ 100 KB
per idle rollout; DESIGN.md also aims at 10,000 rollouts kept current by one 2-core controller).

Each N runs in a fresh child process (`python -m bench.memory --child N`), so its memory is its
own. The child settles the seed rollout through the real reconciler (`bench.reconcile`), copies
it and its ReplicaSets into N rollouts of one namespace, then does what the local controller does
at start: queue every key, reconcile each once (a resync). It reports its resident memory before
the copies and after the resync, the resync's duration, and how long one no-op reconcile takes
with N rollouts in the store. The parent turns that into rows.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.child import rss_kb
from bench.reconcile import NAME, NAMESPACE, SettledHome, check_noop
from bench.report import REPO, Budget, Row, Section, Summary
from rollwise.api.models import Rollout
from rollwise.controller.workqueue import WorkQueue
from rollwise.core.observing import owned_objects
from rollwise.platforms.local.store import SqliteStore

SIZES = (100, 300, 1000, 10_000)
SAMPLE = 100
"""No-op reconciles timed per size, spread over the rollouts."""
BUDGET_KB = 100.0
TARGET_ROLLOUTS = 10_000
CHILD_TIMEOUT_S = 600.0


def _clone(
    store: SqliteStore, source: dict[str, Any], replica_sets: list[dict[str, Any]], name: str
) -> None:
    """A copy of the settled rollout `source` named `name`, with its own ReplicaSets."""
    body = copy.deepcopy(source)
    metadata = body["metadata"]
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp"):
        metadata.pop(key, None)
    metadata["name"] = name
    status = body.pop("status")
    created = store.create(body)
    status["observedGeneration"] = str(created["metadata"]["generation"])
    store.update_status({**created, "status": status})
    for rs in replica_sets:
        pod_hash = rs["metadata"]["labels"]["rollouts-pod-template-hash"]
        copy_rs = copy.deepcopy(rs)
        rs_meta = copy_rs["metadata"]
        for key in ("uid", "resourceVersion", "generation", "creationTimestamp"):
            rs_meta.pop(key, None)
        rs_meta["name"] = f"{name}-{pod_hash}"
        rs_meta["ownerReferences"] = [
            {**ref, "name": name, "uid": created["metadata"]["uid"]}
            for ref in rs_meta.get("ownerReferences") or ()
        ]
        rs_status = copy_rs.pop("status")
        stored = store.create(copy_rs)
        store.update_status({**stored, "status": rs_status})


async def _child(count: int, home: Path) -> dict[str, Any]:
    settled = SettledHome.open(home)
    try:
        await settled.deploy_seed()
        store = settled.store
        source = store.require("Rollout", NAME, NAMESPACE)
        replica_sets = owned_objects(
            store, "ReplicaSet", NAMESPACE, owner_kind="Rollout", owner=NAME
        )
        gc.collect()
        before_kb = rss_kb()
        start = time.perf_counter()
        with store.transaction():
            for i in range(1, count):
                _clone(store, source, replica_sets, f"{NAME}-{i:05d}")
        fill_s = time.perf_counter() - start

        queue = WorkQueue()
        for rollout in store.list("Rollout", None):
            queue.add(
                f"{rollout['metadata'].get('namespace', NAMESPACE)}/{rollout['metadata']['name']}"
            )
        keys = queue.pop_ready(now=time.monotonic())
        writes = 0
        start = time.perf_counter()
        for key in keys:
            namespace, name = key.split("/", 1)
            outcome = await settled.reconciler.reconcile(namespace, name)
            writes += bool(outcome.actions or outcome.status_written)
        resync_s = time.perf_counter() - start

        names = [key.split("/", 1)[1] for key in keys]
        step = max(1, len(names) // SAMPLE)
        timings: list[float] = []
        for name in names[::step][:SAMPLE]:
            start = time.perf_counter()
            outcome = await settled.reconciler.reconcile(NAMESPACE, name)
            timings.append((time.perf_counter() - start) * 1000)
            check_noop(outcome)
        first = Rollout.model_validate(source)
        observe_ms: list[float] = []
        for _ in range(20):
            start = time.perf_counter()
            settled.executor.observe(first)
            observe_ms.append((time.perf_counter() - start) * 1000)
        gc.collect()
        return {
            "observe_ms": sorted(observe_ms)[len(observe_ms) // 2],
            "rollouts": len(keys),
            "replica_sets": len(store.list("ReplicaSet", None)),
            "rss_before_kb": before_kb,
            "rss_after_kb": rss_kb(),
            "rss_peak_kb": rss_kb("VmHWM"),
            "fill_s": fill_s,
            "resync_s": resync_s,
            "resync_writes": writes,
            "reconcile_ms": timings,
        }
    finally:
        settled.close()


def _measure(count: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", str(count)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory child for N={count} failed:\n{result.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def run() -> Section:
    section = Section(
        name="memory",
        title="A controller holding N settled rollouts",
        what=(
            "A fresh process per N settles the seed rollout through the real reconciler, "
            "copies it (with its 2 ReplicaSets) into N rollouts of one namespace in the "
            "SQLite store, then does what `rollwise controller` does at start: queue every "
            "key and reconcile each once. Memory is the process's resident set (`VmRSS`) "
            "after the resync minus before the copies, divided by N; reconcile times are "
            f"{SAMPLE} no-op reconciles spread over the N rollouts, after the resync."
        ),
    )
    rows_memory: list[tuple[int, dict[str, Any]]] = []
    for count in SIZES:
        data = _measure(count)
        rows_memory.append((count, data))
        per_rollout = (data["rss_after_kb"] - data["rss_before_kb"]) / data["rollouts"]
        section.rows.append(
            Row(
                f"RSS growth per rollout, N = {count}",
                Summary.of([per_rollout]),
                "KB",
                Budget(BUDGET_KB, on="median"),
            )
        )
        section.rows.append(
            Row(
                f"no-op reconcile with N = {count} in the namespace",
                Summary.of(data["reconcile_ms"]),
                "ms",
                Budget(50.0, on="p99"),
            )
        )
    table = [
        "",
        "| N | ReplicaSets | RSS before → after (peak) | SQLite files | resync of all N "
        "| mean per reconcile in the resync | of which `observe` (median) | writes in the resync |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for count, data in rows_memory:
        table.append(
            f"| {count} | {data['replica_sets']} | {data['rss_before_kb'] / 1024:.1f} → "
            f"{data['rss_after_kb'] / 1024:.1f} MiB ({data['rss_peak_kb'] / 1024:.1f}) "
            f"| {data['db_bytes'] / 1024 / 1024:.1f} MiB | {data['resync_s']:.2f} s "
            f"| {data['resync_s'] / data['rollouts'] * 1000:.2f} ms "
            f"| {data['observe_ms']:.2f} ms | {data['resync_writes']} |"
        )
    section.what += "\n" + "\n".join(table)
    largest, data = rows_memory[-1]
    per_reconcile_ms = data["resync_s"] / data["rollouts"] * 1000
    section.notes += [
        "`LocalExecutor.observe` reads a rollout's ReplicaSets and AnalysisRuns through the "
        "store's owner index, so a no-op reconcile should not grow with the number of rollouts "
        "in the namespace (compare the rows above).",
        f"A resync of {largest:,} rollouts took {data['resync_s']:.1f} s "
        f"({per_reconcile_ms:.2f} ms a rollout), against DESIGN.md's aim of "
        f"{TARGET_ROLLOUTS:,} rollouts kept current by one 2-core controller (the real "
        "controller under a wave of updates: `python -m bench local-scale`).",
        "RSS per rollout is an upper bound: it includes what SQLite's page cache and "
        "Python's allocator kept after the resync. Pods are left out (no process is started), "
        "so the pod supervisor's per-pod records are not counted.",
    ]
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", type=int, required=True, help="number of rollouts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rollwise-bench-") as tmp:
        home = Path(tmp) / "home"
        data = asyncio.run(_child(args.child, home))
        data["db_bytes"] = sum(path.stat().st_size for path in home.glob("state.db*"))
    print(json.dumps(data))


if __name__ == "__main__":
    main()
