"""The local store shared by several real processes, and killed with SIGKILL mid-write."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from rollwise.platforms.local.store import SqliteStore

# Writes forever: each loop bumps two objects together in one transaction, creates and deletes a
# third, and records an event; prints one line per committed loop.
WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from rollwise.platforms.local.store import SqliteStore

store = SqliteStore(Path(sys.argv[1]))
for name in ("a", "b"):
    if store.get("Counter", name) is None:
        store.create({"kind": "Counter", "metadata": {"name": name}, "spec": {"n": 0}})
n = store.require("Counter", "a")["spec"]["n"]
while True:
    n += 1
    with store.transaction():
        store.patch("Counter", "a", merge={"spec": {"n": n}})
        scratch = {"kind": "Scratch", "metadata": {"generateName": "s-"}, "spec": {"n": n}}
        new = store.create(scratch)
        for old in store.list("Scratch"):
            if old["metadata"]["name"] != new["metadata"]["name"]:
                store.delete("Scratch", old["metadata"]["name"])
        store.patch("Counter", "b", merge={"spec": {"n": n}})
        store.patch("Counter", "a", merge={"done": n}, status=True)
    store.record_event(kind="Counter", name="a", namespace="default", type="Normal",
                       reason="Counted", message=str(n % 7), at=datetime.now(UTC))
    print(n, flush=True)
"""

# Increments one counter N times with optimistic concurrency, retrying conflicts.
INCREMENTER = """
import sys
from pathlib import Path
from rollwise.api.errors import ConflictError, TransientError
from rollwise.platforms.local.store import SqliteStore

store = SqliteStore(Path(sys.argv[1]))
done = conflicts = 0
while done < int(sys.argv[2]):
    current = store.require("Counter", "shared")
    current["spec"]["count"] += 1
    try:
        store.update(current)
    except (ConflictError, TransientError):
        conflicts += 1
        continue
    done += 1
print(conflicts, flush=True)
"""


def start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_at_any_moment_leaves_a_consistent_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    rng = random.Random(7)
    last_seen = 0
    for round_ in range(4):
        writer = start(WRITER, str(path))
        try:
            assert writer.stdout is not None
            first = writer.stdout.readline()
            assert first, writer.stderr.read() if writer.stderr else "writer died"
            time.sleep(rng.uniform(0.0, 0.08))  # land the kill somewhere inside the loop
            writer.send_signal(signal.SIGKILL)
            printed = [int(line) for line in [first, *writer.stdout.read().split()] if line]
        finally:
            writer.kill()
            writer.wait(timeout=10)
            for stream in (writer.stdout, writer.stderr):
                if stream is not None:
                    stream.close()

        raw = sqlite3.connect(str(path))
        try:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            raw.close()
        with SqliteStore(path) as store:
            a = store.require("Counter", "a")
            b = store.require("Counter", "b")
            assert a["spec"]["n"] == b["spec"]["n"] == a["status"]["done"]
            assert a["spec"]["n"] >= max(printed), "a printed loop was committed"
            assert a["spec"]["n"] > last_seen, "every round committed something"
            last_seen = a["spec"]["n"]
            assert [s["spec"]["n"] for s in store.list("Scratch")] == [a["spec"]["n"]]
            revision = store.revision()
            assert int(a["metadata"]["resourceVersion"]) <= revision
            changes = store.changes_since(revision - 5)
            assert [change.revision for change in changes] == list(
                range(revision - 4, revision + 1)
            )
            events = store.events(kind="Counter", name="a")
            # The event follows its transaction, so each kill may have cost one.
            counted = sum(event["count"] for event in events)
            assert a["spec"]["n"] - (round_ + 1) <= counted <= a["spec"]["n"]


def test_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStore(path) as store:
        store.create({"kind": "Counter", "metadata": {"name": "shared"}, "spec": {"count": 0}})
    workers = [start(INCREMENTER, str(path), "40") for _ in range(3)]
    try:
        outputs = [worker.communicate(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=10)
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert json.loads(out) >= 0
    with SqliteStore(path) as store:
        shared = store.require("Counter", "shared")
        assert shared["spec"]["count"] == 120
        assert shared["metadata"]["generation"] == 121
