"""The local store behaves like the Kubernetes API server where the controller depends on it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rollwise.api.errors import ConflictError, NotFoundError, TransientError, UserError
from rollwise.platforms.local.store import (
    LAST_APPLIED,
    Change,
    ChangeLogExpiredError,
    SqliteStore,
)

T0 = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with SqliteStore.open_home(tmp_path / "home", clock=FixedClock(T0)) as opened:
        yield opened


def rollout(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, **spec},
    }


def test_create_fills_server_fields(store: SqliteStore, tmp_path: Path) -> None:
    created = store.create(rollout())
    metadata = created["metadata"]
    assert metadata["namespace"] == "default"
    assert metadata["generation"] == 1
    assert metadata["creationTimestamp"] == "2026-11-26T01:50:00Z"
    assert metadata["resourceVersion"] == str(store.revision())
    assert len(metadata["uid"]) == 36
    assert store.get("Rollout", "web") == created
    assert store.get("rollout", "web") == created, "kinds are case-insensitive"
    assert (tmp_path / "home" / "state.db").exists()


def test_create_twice_is_a_conflict(store: SqliteStore) -> None:
    store.create(rollout())
    with pytest.raises(ConflictError, match="rollout 'web' already exists in namespace 'default'"):
        store.create(rollout())


def test_require_names_what_is_missing(store: SqliteStore) -> None:
    with pytest.raises(NotFoundError) as raised:
        store.require("Rollout", "x")
    assert str(raised.value) == "rollout 'x' not found in namespace 'default'"
    assert store.get("Rollout", "x") is None


def test_generate_name_appends_five_safe_characters(store: SqliteStore) -> None:
    body = rollout()
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "web-"
    first = store.create(body)["metadata"]["name"]
    second = store.create(body)["metadata"]["name"]
    assert first != second
    for name in (first, second):
        assert name.startswith("web-")
        suffix = name.removeprefix("web-")
        assert len(suffix) == 5
        assert set(suffix) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_stale_resource_version_is_a_conflict(store: SqliteStore) -> None:
    read = store.create(rollout())
    store.update({**read, "spec": {"replicas": 2}})
    with pytest.raises(ConflictError, match="read it again"):
        store.update({**read, "spec": {"replicas": 3}})
    with pytest.raises(ConflictError):
        store.update_status({**read, "status": {"phase": "Healthy"}})
    assert store.require("Rollout", "web")["spec"] == {"replicas": 2}


def test_update_without_resource_version_is_not_checked(store: SqliteStore) -> None:
    store.create(rollout())
    body = rollout(paused=True)
    updated = store.update(body)
    assert updated["spec"]["paused"] is True


def test_generation_grows_with_spec_changes_only(store: SqliteStore) -> None:
    created = store.create(rollout())
    relabelled = store.update(
        {**created, "metadata": {**created["metadata"], "labels": {"a": "b"}}}
    )
    assert relabelled["metadata"]["generation"] == 1
    assert relabelled["metadata"]["labels"] == {"a": "b"}
    assert relabelled["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    rescaled = store.update({**relabelled, "spec": {"replicas": 5}})
    assert rescaled["metadata"]["generation"] == 2
    status_only = store.update_status({**rescaled, "status": {"replicas": 5}})
    assert status_only["metadata"]["generation"] == 2


def test_writes_that_change_nothing_are_skipped(store: SqliteStore) -> None:
    created = store.create(rollout())
    with_status = store.update_status({**created, "status": {"phase": "Progressing"}})
    revision = store.revision()
    assert store.update(with_status) == with_status
    assert store.update_status(with_status) == with_status
    assert store.patch("Rollout", "web", merge={"spec": {"replicas": 1}}) == with_status
    assert store.revision() == revision
    assert store.changes_since(revision) == []


def test_update_keeps_status_and_server_metadata(store: SqliteStore) -> None:
    created = store.create(rollout())
    store.update_status({**created, "status": {"phase": "Healthy"}})
    forged = rollout(replicas=3)
    forged["metadata"].update(uid="forged", creationTimestamp="1999-01-01T00:00:00Z")
    forged["status"] = {"phase": "Degraded"}
    updated = store.update(forged)
    assert updated["status"] == {"phase": "Healthy"}
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == "2026-11-26T01:50:00Z"
    assert updated["spec"] == {"replicas": 3}


def test_update_status_touches_nothing_else(store: SqliteStore) -> None:
    created = store.create(rollout())
    changed = {**created, "spec": {"replicas": 9}, "status": {"phase": "Paused"}}
    updated = store.update_status(changed)
    assert updated["spec"] == {"replicas": 1}
    assert updated["status"] == {"phase": "Paused"}
    cleared = store.update_status({"kind": "Rollout", "metadata": {"name": "web"}})
    assert "status" not in cleared


def test_update_of_a_missing_object_is_not_found(store: SqliteStore) -> None:
    with pytest.raises(NotFoundError):
        store.update(rollout())
    with pytest.raises(NotFoundError):
        store.patch("Rollout", "web", merge={"spec": {}})


def test_merge_patch_follows_rfc_7386(store: SqliteStore) -> None:
    body = rollout(paused=True, strategy={"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}})
    store.create(body)
    patched = store.patch(
        "Rollout",
        "web",
        merge={
            "metadata": {"annotations": {"note": "x"}, "name": "renamed", "uid": "forged"},
            "spec": {"paused": None, "strategy": {"canary": {"steps": [{"setWeight": 50}]}}},
        },
    )
    assert patched["metadata"]["name"] == "web"
    assert patched["metadata"]["uid"] != "forged"
    assert patched["metadata"]["annotations"] == {"note": "x"}
    assert "paused" not in patched["spec"]
    assert patched["spec"]["strategy"]["canary"]["steps"] == [{"setWeight": 50}]
    assert patched["metadata"]["generation"] == 2


def test_status_is_patched_separately(store: SqliteStore) -> None:
    store.create(rollout())
    with pytest.raises(UserError, match="status"):
        store.patch("Rollout", "web", merge={"status": {"abort": True}})
    patched = store.patch("Rollout", "web", merge={"abort": True, "phase": "Degraded"}, status=True)
    assert patched["status"] == {"abort": True, "phase": "Degraded"}
    assert patched["metadata"]["generation"] == 1
    patched = store.patch("Rollout", "web", merge={"abort": None}, status=True)
    assert patched["status"] == {"phase": "Degraded"}


def test_apply_creates_then_reports_unchanged(store: SqliteStore) -> None:
    created, outcome = store.apply(rollout())
    assert outcome == "created"
    assert LAST_APPLIED in created["metadata"]["annotations"]
    again, outcome = store.apply(rollout())
    assert outcome == "unchanged"
    assert again == created


def test_apply_keeps_what_others_set_and_drops_what_the_file_dropped(store: SqliteStore) -> None:
    store.apply(rollout(revisionHistoryLimit=2))
    store.patch("Rollout", "web", merge={"spec": {"paused": True}})
    store.patch("Rollout", "web", merge={"phase": "Paused"}, status=True)
    applied, outcome = store.apply(rollout(replicas=4))
    assert outcome == "configured"
    assert applied["spec"] == {"replicas": 4, "paused": True}, "paused kept, history limit dropped"
    assert applied["status"] == {"phase": "Paused"}
    assert applied["metadata"]["generation"] == 3, "created, paused, applied"


def test_apply_ignores_status_and_server_fields(store: SqliteStore) -> None:
    store.apply(rollout())
    body = rollout()
    body["status"] = {"phase": "Degraded"}
    body["metadata"]["resourceVersion"] = "1"
    body["metadata"]["uid"] = "forged"
    applied, outcome = store.apply(body)
    assert outcome == "unchanged"
    assert "status" not in applied


def test_list_filters_by_namespace_and_labels_and_sorts_by_name(store: SqliteStore) -> None:
    for name, namespace, hash_ in [
        ("b", "default", "h1"),
        ("a", "default", "h1"),
        ("c", "default", "h2"),
        ("a", "other", "h1"),
    ]:
        store.create(
            {
                "kind": "ReplicaSet",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"rollouts-pod-template-hash": hash_, "app.kubernetes.io/name": "x"},
                },
            }
        )
    store.create(rollout("z"))

    def names(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in found]

    assert names(store.list("ReplicaSet")) == [("default", "a"), ("default", "b"), ("default", "c")]
    assert names(store.list("ReplicaSet", None)) == [
        ("default", "a"),
        ("default", "b"),
        ("default", "c"),
        ("other", "a"),
    ]
    selected = store.list(
        "ReplicaSet",
        None,
        labels={"rollouts-pod-template-hash": "h1", "app.kubernetes.io/name": "x"},
    )
    assert names(selected) == [("default", "a"), ("default", "b"), ("other", "a")]
    assert store.list("ReplicaSet", labels={"rollouts-pod-template-hash": "nope"}) == []


def test_cluster_scoped_kinds_have_no_namespace(store: SqliteStore) -> None:
    created = store.create(
        {"kind": "ClusterAnalysisTemplate", "metadata": {"name": "t", "namespace": "x"}}
    )
    assert "namespace" not in created["metadata"]
    assert store.get("ClusterAnalysisTemplate", "t", "anything") == created
    with pytest.raises(NotFoundError) as raised:
        store.require("ClusterAnalysisTemplate", "u")
    assert str(raised.value) == "clusteranalysistemplate 'u' not found"


def test_changes_since_is_a_watch(store: SqliteStore) -> None:
    start = store.revision()
    created = store.create(rollout())
    store.update({**created, "spec": {"replicas": 2}})
    assert store.delete("Rollout", "web") is True
    assert store.delete("Rollout", "web") is False
    changes = store.changes_since(start)
    assert [change.type for change in changes] == ["ADDED", "MODIFIED", "DELETED"]
    assert [change.revision for change in changes] == [start + 1, start + 2, start + 3]
    assert changes[0] == Change(start + 1, "Rollout", "default", "web", "ADDED")
    assert store.changes_since(start, limit=1) == changes[:1]
    assert store.changes_since(changes[-1].revision) == []
    assert store.get("Rollout", "web") is None


def test_changes_since_a_forgotten_revision_says_list_again(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.db", change_log_size=3) as small:
        for index in range(6):
            small.create(rollout(f"r{index}"))
        assert len(small.changes_since(3)) == 3
        with pytest.raises(ChangeLogExpiredError, match="list the objects again"):
            small.changes_since(1)


def test_events_aggregate_repeats(store: SqliteStore) -> None:
    common = {"kind": "Rollout", "name": "web", "namespace": "default", "type": "Normal"}
    store.record_event(**common, reason="RolloutUpdated", message="updated to v2", at=T0)
    later = T0 + timedelta(seconds=30)
    store.record_event(**common, reason="RolloutPaused", message="paused", at=later)
    store.record_event(**common, reason="RolloutUpdated", message="updated to v2", at=later)
    store.record_event(
        kind="Rollout",
        name="api",
        namespace="default",
        type="Warning",
        reason="X",
        message="y",
        at=T0,
    )
    events = store.events(kind="Rollout", name="web")
    assert [(e["reason"], e["count"]) for e in events] == [
        ("RolloutPaused", 1),
        ("RolloutUpdated", 2),
    ]
    updated = events[1]
    assert updated["firstTimestamp"] == "2026-11-26T01:50:00Z"
    assert updated["lastTimestamp"] == "2026-11-26T01:50:30Z"
    assert updated["involvedObject"] == {"kind": "Rollout", "name": "web", "namespace": "default"}
    assert len(store.events()) == 3
    assert [e["reason"] for e in store.events(limit=1)] == ["X"], "the last one recorded"


def test_a_failed_transaction_leaves_nothing(store: SqliteStore) -> None:
    revision = store.revision()

    def create_two_then_fail() -> None:
        with store.transaction():
            store.create(rollout("a"))
            store.create(rollout("b"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        create_two_then_fail()
    assert store.list("Rollout") == []
    assert store.revision() == revision
    with store.transaction():
        store.create(rollout("a"))
        store.create(rollout("b"))
    assert len(store.list("Rollout")) == 2


def test_a_lock_held_too_long_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteStore(path, busy_timeout=0.05) as impatient:
        other = sqlite3.connect(str(path), isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(TransientError, match="busy") as raised:
                impatient.create(rollout())
            assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
            assert impatient.get("Rollout", "web") is None, "readers are not blocked in WAL mode"
        finally:
            other.execute("ROLLBACK")
            other.close()
        impatient.create(rollout())


def test_list_by_owner_returns_only_what_the_owner_controls(store: SqliteStore) -> None:
    def replica_set(name: str, owner: str | None) -> dict[str, Any]:
        refs = [{"kind": "Rollout", "name": owner, "controller": True}] if owner else []
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name, "ownerReferences": refs},
            "spec": {"replicas": 1},
        }

    for name, owner in [("a-1", "a"), ("a-2", "a"), ("b-1", "b"), ("loose", None)]:
        store.create(replica_set(name, owner))
    names = [rs["metadata"]["name"] for rs in store.list("ReplicaSet", owner="a")]
    assert names == ["a-1", "a-2"]
    assert store.list("ReplicaSet", owner="nobody") == []
    assert len(store.list("ReplicaSet")) == 4
