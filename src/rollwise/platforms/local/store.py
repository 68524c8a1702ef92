"""Local mode's API server: every resource as a raw Kubernetes-shaped dict in one SQLite file.

Who uses this: the local controller (reads, status writes, a watch by polling
`changes_since`), the CLI (apply, get, promote...), the pod supervisor (ReplicaSets and Pods) and
the dashboard. Several processes open the same `<home>/state.db` at once, so:

- the database runs in WAL mode (readers never wait for the writer) with a 5 s busy timeout;
  a lock held longer than that, and a disk too full for the write, surface as `TransientError`
  (retry later; the write was rolled back whole), keeping the cause;
- every write is one `BEGIN IMMEDIATE` transaction that bumps the global revision, stores the
  object with `metadata.resourceVersion` = that revision and appends one row to a bounded change
  log, so a `kill -9` at any instant leaves either all of a write or none of it;
- writes that change nothing are skipped: no new revision, no change row, nothing for watchers.

The semantics follow the Kubernetes API server where the controller depends on them:
optimistic concurrency on `resourceVersion` (`ConflictError`, the 409), `generation` bumped only
by spec changes, status written separately from the rest (`update` never touches status,
`update_status` touches nothing else), `generateName`, label-equality selection, and Events
that aggregate repeats into a count.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rollwise.api.errors import ConflictError, NotFoundError, TransientError, UserError
from rollwise.core.timestamps import Clock, SystemClock, format_time
from rollwise.platforms.local.merging import merge_patch, three_way_merge_patch

if TYPE_CHECKING:
    from rollwise.api.models import RawObject

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]

DEFAULT_NAMESPACE = "default"
STATE_FILE = "state.db"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Kinds without a namespace; they are stored under the empty namespace whatever the caller says.
CLUSTER_SCOPED_KINDS = frozenset({"ClusterAnalysisTemplate", "Namespace"})

# Metadata the server owns: a client's update or patch can never change these.
_SERVER_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
)

_KNOWN_KINDS = {
    kind.lower(): kind
    for kind in (
        "Rollout",
        "AnalysisTemplate",
        "ClusterAnalysisTemplate",
        "AnalysisRun",
        "Experiment",
        "Service",
        "ReplicaSet",
        "Pod",
        "Namespace",
    )
}

# Kubernetes' alphabet for generated names (no vowels, no look-alikes).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_by_owner
    ON objects (kind, namespace, json_extract(body, '$.metadata.ownerReferences[0].name'), name);
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value) VALUES ('revision', 0), ('event', 0);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    touched INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_object ON events (namespace, kind, name);
CREATE INDEX IF NOT EXISTS events_by_touch ON events (touched);
"""


@dataclass(frozen=True)
class Change:
    """One write, as a watcher sees it: which object, and whether it appeared, changed or left."""

    revision: int
    kind: str
    namespace: str
    name: str
    type: ChangeType


class ChangeLogExpiredError(ConflictError):
    """The change log no longer reaches back to the revision asked for (the 410 Gone of a watch):
    list the objects again and continue from `store.revision()`."""


def canonical_kind(kind: str) -> str:
    """`rollout` and `Rollout` name the same kind; unknown kinds pass through as given."""
    return _KNOWN_KINDS.get(kind.lower(), kind)


class SqliteStore:
    """The resources of one local rollwise home, in SQLite. Synchronous; one connection each.

    Safe to use from several threads of one process (calls are serialized) and from several
    processes at once (SQLite's locking, WAL mode).
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
        change_log_size: int = 50_000,
        event_limit: int = 5_000,
    ) -> None:
        self.path = Path(path)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._change_log_size = change_log_size
        self._event_limit = event_limit
        self._lock = threading.RLock()
        self._depth = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a write transaction is
            # exactly what the code says and reads outside one see the latest commit.
            self._conn = sqlite3.connect(
                str(self.path),
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.OperationalError as error:
            raise TransientError(f"cannot open the local store {self.path}: {error}") from error
        try:
            self._setup(busy_timeout)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open_home(cls, home: Path, *, clock: Clock | None = None) -> SqliteStore:
        """The store of a rollwise home directory: `<home>/state.db`."""
        return cls(Path(home) / STATE_FILE, clock=clock)

    def _setup(self, busy_timeout: float) -> None:
        self._execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self._execute("PRAGMA journal_mode = WAL")
        # NORMAL is crash-safe in WAL mode: a killed process never loses a commit; only a power
        # cut may lose the last few, never consistency.
        self._execute("PRAGMA synchronous = NORMAL")
        self._execute("PRAGMA foreign_keys = OFF")
        version = self._execute("PRAGMA user_version").fetchone()[0]
        if version == _SCHEMA_VERSION:
            return
        if version > _SCHEMA_VERSION:
            raise UserError(
                f"the local store {self.path} was written by a newer rollwise "
                f"(schema {version}, this one knows {_SCHEMA_VERSION}); upgrade rollwise"
            )
        with self._write():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._execute(statement)
            self._execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE) -> RawObject | None:
        kind = canonical_kind(kind)
        row = self._execute(
            "SELECT body FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
            (kind, _namespace_of(kind, namespace), name),
        ).fetchone()
        return None if row is None else _loads(row[0])

    def require(self, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE) -> RawObject:
        obj = self.get(kind, name, namespace)
        if obj is None:
            raise NotFoundError(_missing(canonical_kind(kind), name, namespace))
        return obj

    def list(
        self,
        kind: str,
        namespace: str | None = DEFAULT_NAMESPACE,
        *,
        labels: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> list[RawObject]:
        """Objects of a kind in a namespace (`None`: every namespace), those whose labels hold
        every pair in `labels` and, with `owner`, whose first ownerReference (the controller
        reference rollwise writes) names `owner`; sorted by namespace, then name. The owner
        lookup is indexed: a controller with many rollouts reads only what one rollout owns."""
        kind = canonical_kind(kind)
        # Without statistics SQLite prefers the primary key (it also gives the order); the owner
        # index is the one that makes a per-rollout read independent of the namespace's size.
        indexed = " INDEXED BY objects_by_owner" if owner is not None and namespace else ""
        sql = f"SELECT body FROM objects{indexed} WHERE kind = ?"
        params: list[Any] = [kind]
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(_namespace_of(kind, namespace))
        if owner is not None:
            sql += " AND json_extract(body, '$.metadata.ownerReferences[0].name') = ?"
            params.append(owner)
        for key, value in (labels or {}).items():
            sql += " AND json_extract(body, ?) = ?"
            params.extend((_label_path(key), value))
        sql += " ORDER BY namespace, name"
        found = [_loads(row[0]) for row in self._execute(sql, params).fetchall()]
        if labels:
            # json_extract also matches a number label value against its text; be exact.
            found = [obj for obj in found if _labels_match(obj, labels)]
        return found

    def revision(self) -> int:
        """The global change counter: every write that changed something increments it."""
        row = self._execute("SELECT value FROM counters WHERE name = 'revision'").fetchone()
        return int(row[0])

    def changes_since(self, revision: int, *, limit: int = 1000) -> builtins.list[Change]:
        """Writes after `revision`, oldest first, at most `limit` of them: a watch by polling.

        Raises `ChangeLogExpiredError` when the bounded log no longer reaches back that far.
        """
        with self._lock:
            # Read the counter first: every revision up to it has its row unless trimmed, so a
            # gap after `revision` means the log was trimmed, even if writers race with us.
            current = self.revision()
            rows = self._execute(
                "SELECT revision, kind, namespace, name, type FROM changes"
                " WHERE revision > ? ORDER BY revision LIMIT ?",
                (revision, limit),
            ).fetchall()
            expired = rows[0][0] > revision + 1 if rows else current > revision
            if expired:
                raise ChangeLogExpiredError(
                    f"the change log of {self.path} no longer reaches back to revision "
                    f"{revision}; list the objects again and continue from revision {current}"
                )
        return [Change(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    # --- writing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes into one atomic transaction (`BEGIN IMMEDIATE ... COMMIT`).

        Nested uses join the outer transaction. An exception rolls everything back.
        """
        with self._write():
            yield

    def create(self, obj: RawObject) -> RawObject:
        """Store a new object; the server fills uid, resourceVersion, generation 1 and
        creationTimestamp, and a name from `metadata.generateName` when there is no name."""
        body = _copy(obj)
        kind = _kind_of(body)
        metadata = body.setdefault("metadata", {})
        namespace = _namespace_of(kind, metadata.get("namespace"))
        with self._write():
            name = metadata.get("name")
            if not name:
                prefix = metadata.get("generateName")
                if not prefix:
                    raise UserError(f"a {kind} needs metadata.name or metadata.generateName")
                name = self._generate_name(kind, namespace, prefix)
            elif self._row(kind, namespace, name) is not None:
                raise ConflictError(_phrase(kind, name, namespace, "already exists"))
            _set_identity(body, kind=kind, name=name, namespace=namespace)
            metadata["uid"] = str(uuid.uuid4())
            metadata["generation"] = 1
            metadata["creationTimestamp"] = format_time(self._clock.now())
            metadata.pop("resourceVersion", None)
            return self._put(body, "ADDED")

    def update(self, obj: RawObject) -> RawObject:
        """Replace everything but status (labels, annotations, ownerReferences, spec...).

        `ConflictError` if `metadata.resourceVersion` is given and stale. Generation grows only
        when the spec changes; a write that changes nothing is skipped.
        """
        kind, name, namespace = _key_of(obj)
        with self._write():
            stored = self._require_fresh(obj, kind, name, namespace)
            wanted = {key: _copy(value) for key, value in obj.items() if key != "status"}
            wanted["metadata"] = {
                **{
                    key: _copy(value)
                    for key, value in obj.get("metadata", {}).items()
                    if key not in _SERVER_METADATA
                },
                **{
                    key: stored["metadata"][key]
                    for key in _SERVER_METADATA
                    if key in stored["metadata"]
                },
            }
            wanted["kind"] = stored["kind"]
            if "status" in stored:
                wanted["status"] = stored["status"]
            return self._replace(stored, wanted)

    def update_status(self, obj: RawObject) -> RawObject:
        """Replace the status only (absent or null: no status). Same optimistic check as
        `update`; skipped when the status is unchanged."""
        kind, name, namespace = _key_of(obj)
        with self._write():
            stored = self._require_fresh(obj, kind, name, namespace)
            wanted = dict(stored)
            status = obj.get("status")
            if status is None:
                wanted.pop("status", None)
            else:
                wanted["status"] = _copy(status)
            return self._replace(stored, wanted)

    async def write_status(self, obj: RawObject) -> RawObject:
        """`update_status` as the controller's reconcilers call it on every platform (awaited:
        in Kubernetes mode it is a request to the API server)."""
        return self.update_status(obj)

    def apply(self, obj: RawObject) -> tuple[RawObject, str]:
        """Create the object, or bring it to what `obj` says the way `kubectl apply` does.

        Returns the stored object and "created", "configured" or "unchanged". Status is never
        applied. Fields set by others (a controller, `rollwise pause`) and absent from the
        applied object are kept; fields removed since the previous apply are removed.
        """
        applied = _copy(obj)
        applied.pop("status", None)
        metadata = applied.setdefault("metadata", {})
        for key in ("uid", "resourceVersion", "generation", "creationTimestamp"):
            metadata.pop(key, None)
        annotations = metadata.setdefault("annotations", {})
        annotations.pop(LAST_APPLIED, None)
        if not annotations:
            metadata.pop("annotations")
        record = json.dumps(applied, separators=(",", ":"), sort_keys=True)
        metadata.setdefault("annotations", {})[LAST_APPLIED] = record
        kind, name, namespace = _key_of(applied)
        with self._write():
            stored = self._row(kind, namespace, name)
            if stored is None:
                return self.create(applied), "created"
            previous = stored.get("metadata", {}).get("annotations", {}).get(LAST_APPLIED)
            original = json.loads(previous) if previous else {}
            patch = three_way_merge_patch(original, applied, _without_status(stored))
            wanted = merge_patch(stored, patch)
            _restore_server_fields(wanted, stored)
            result = self._replace(stored, wanted)
            changed = result["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]
            return result, "configured" if changed else "unchanged"

    def patch(
        self,
        kind: str,
        name: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        merge: Mapping[str, Any],
        status: bool = False,
    ) -> RawObject:
        """Apply an RFC 7386 JSON merge patch to the object (`status=False`; the patch may not
        touch status) or to its status (`status=True`; `merge` is the status patch). No
        resourceVersion check: the read-modify-write is one transaction."""
        kind = canonical_kind(kind)
        if not status and "status" in merge:
            raise UserError(
                f"a patch of {_describe(kind, name, namespace)} may not change its status;"
                " patch the status separately"
            )
        with self._write():
            stored = self._row(kind, namespace, name)
            if stored is None:
                raise NotFoundError(_missing(kind, name, namespace))
            if status:
                wanted = dict(stored)
                new_status = merge_patch(stored.get("status") or {}, merge)
                wanted["status"] = new_status
                if not new_status and "status" not in stored:
                    wanted.pop("status")
            else:
                wanted = merge_patch(stored, merge)
                _restore_server_fields(wanted, stored)
            return self._replace(stored, wanted)

    def delete(self, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE) -> bool:
        """Remove the object; False when there was nothing to remove."""
        kind = canonical_kind(kind)
        namespace = _namespace_of(kind, namespace)
        with self._write():
            if self._row(kind, namespace, name) is None:
                return False
            self._execute(
                "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                (kind, namespace, name),
            )
            self._log_change(self._next_revision(), kind, namespace, name, "DELETED")
            return True

    # --- events ------------------------------------------------------------------------------

    def record_event(
        self,
        *,
        kind: str,
        name: str,
        namespace: str,
        type: str,
        reason: str,
        message: str,
        at: datetime,
    ) -> None:
        """Record a Kubernetes-like Event about an object. The same type, reason and message
        about the same object again bumps its count and lastTimestamp instead of adding one."""
        kind = canonical_kind(kind)
        namespace = _namespace_of(kind, namespace)
        stamp = format_time(at)
        with self._write():
            touched = self._next_counter("event")
            row = self._execute(
                "SELECT id FROM events WHERE namespace = ? AND kind = ? AND name = ?"
                " AND type = ? AND reason = ? AND message = ?",
                (namespace, kind, name, type, reason, message),
            ).fetchone()
            if row is not None:
                self._execute(
                    "UPDATE events SET count = count + 1, last_at = ?, touched = ? WHERE id = ?",
                    (stamp, touched, row[0]),
                )
                return
            self._execute(
                "INSERT INTO events (touched, namespace, kind, name, type, reason, message,"
                " count, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (touched, namespace, kind, name, type, reason, message, stamp, stamp),
            )
            self._execute("DELETE FROM events WHERE touched <= ?", (touched - self._event_limit,))

    def events(
        self,
        *,
        kind: str | None = None,
        name: str | None = None,
        namespace: str | None = DEFAULT_NAMESPACE,
        limit: int = 200,
    ) -> builtins.list[RawObject]:
        """The most recent `limit` events matching the filters, oldest first, as v1 Events."""
        sql = (
            "SELECT id, namespace, kind, name, type, reason, message, count, first_at, last_at"
            " FROM events WHERE 1 = 1"
        )
        params: list[Any] = []
        if kind is not None:
            kind = canonical_kind(kind)
            sql += " AND kind = ?"
            params.append(kind)
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace if kind is None else _namespace_of(kind, namespace))
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        sql += " ORDER BY touched DESC LIMIT ?"
        params.append(limit)
        rows = self._execute(sql, params).fetchall()
        return [_event_object(row) for row in reversed(rows)]

    def event_counter(self) -> int:
        """The event counter: every event recorded, or repeated, takes the next value."""
        row = self._execute("SELECT value FROM counters WHERE name = 'event'").fetchone()
        return int(row[0])

    def events_since(
        self, counter: int, *, limit: int = 500
    ) -> builtins.list[tuple[int, RawObject]]:
        """Events recorded or repeated after `counter`, oldest first, each with the counter
        value of its latest recording: a reader that keeps the last value sees each recording
        once (the notifier's feed). A repeat moves an event forward, so two repeats between
        reads are seen once, with their count."""
        rows = self._execute(
            "SELECT id, namespace, kind, name, type, reason, message, count, first_at, last_at,"
            " touched FROM events WHERE touched > ? ORDER BY touched LIMIT ?",
            (counter, limit),
        ).fetchall()
        return [(int(row[10]), _event_object(row[:10])) for row in rows]

    # --- internals ---------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._rollback()
                raise
            self._depth = 0
            try:
                self._execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            # The original error is the one worth reporting.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._conn.execute(sql, params)
            except sqlite3.OperationalError as error:
                mapped = _store_error(self.path, error)
                if mapped is error:
                    raise
                raise mapped from error

    def _row(self, kind: str, namespace: str, name: str) -> RawObject | None:
        row = self._execute(
            "SELECT body FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
            (kind, namespace, name),
        ).fetchone()
        return None if row is None else _loads(row[0])

    def _require_fresh(
        self, obj: Mapping[str, Any], kind: str, name: str, namespace: str
    ) -> RawObject:
        stored = self._row(kind, namespace, name)
        if stored is None:
            raise NotFoundError(_missing(kind, name, namespace))
        given = obj.get("metadata", {}).get("resourceVersion")
        current = stored["metadata"].get("resourceVersion")
        if given and str(given) != current:
            raise ConflictError(
                f"{_describe(kind, name, namespace)} was modified since it was read"
                f" (resourceVersion {given}, now {current}); read it again and retry"
            )
        return stored

    def _replace(self, stored: RawObject, wanted: RawObject) -> RawObject:
        """Store `wanted` in place of `stored` unless nothing changed."""
        wanted = _copy(wanted)
        wanted["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
        wanted["metadata"]["generation"] = stored["metadata"].get("generation", 1)
        if wanted == stored:
            return stored
        if wanted.get("spec") != stored.get("spec"):
            wanted["metadata"]["generation"] = stored["metadata"].get("generation", 1) + 1
        return self._put(wanted, "MODIFIED")

    def _put(self, body: RawObject, change: ChangeType) -> RawObject:
        kind, name, namespace = _key_of(body)
        revision = self._next_revision()
        body["metadata"]["resourceVersion"] = str(revision)
        self._execute(
            "INSERT OR REPLACE INTO objects (kind, namespace, name, revision, body)"
            " VALUES (?, ?, ?, ?, ?)",
            (kind, namespace, name, revision, json.dumps(body, separators=(",", ":"))),
        )
        self._log_change(revision, kind, namespace, name, change)
        return body

    def _log_change(
        self, revision: int, kind: str, namespace: str, name: str, change: ChangeType
    ) -> None:
        self._execute(
            "INSERT INTO changes (revision, kind, namespace, name, type) VALUES (?, ?, ?, ?, ?)",
            (revision, kind, namespace, name, change),
        )
        self._execute(
            "DELETE FROM changes WHERE revision <= ?", (revision - self._change_log_size,)
        )

    def _next_revision(self) -> int:
        return self._next_counter("revision")

    def _next_counter(self, counter: str) -> int:
        row = self._execute(
            "UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value", (counter,)
        ).fetchone()
        return int(row[0])

    def _generate_name(self, kind: str, namespace: str, prefix: str) -> str:
        for _ in range(100):
            name = prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
            if self._row(kind, namespace, name) is None:
                return name
        raise ConflictError(f"no free name for a {kind} with generateName {prefix!r}")


# --- helpers -------------------------------------------------------------------------------------


def _store_error(path: Path, error: sqlite3.OperationalError) -> Exception:
    """What a failed statement means for the caller: a lock held too long and a full disk are
    TransientErrors (retry once the other process or the disk lets go; the write was rolled
    back whole), anything else stays the sqlite3 error (a bug, or a broken file)."""
    name = getattr(error, "sqlite_errorname", "")
    text = str(error).lower()
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return TransientError(
            f"the local store {path} is busy (another rollwise process holds its lock);"
            f" retry: {error}"
        )
    if name == "SQLITE_FULL" or "disk is full" in text:
        return TransientError(
            f"the local store {path} cannot be written: its disk is full (nothing was"
            f" changed; free some space and retry): {error}"
        )
    return error


def _copy(value: Any) -> Any:
    # A JSON round trip copies deeply and proves the object can be stored.
    return json.loads(json.dumps(value))


def _loads(text: str) -> RawObject:
    value: RawObject = json.loads(text)
    return value


def _kind_of(obj: Mapping[str, Any]) -> str:
    kind = obj.get("kind")
    if not kind or not isinstance(kind, str):
        raise UserError("the object has no kind")
    return canonical_kind(kind)


def _namespace_of(kind: str, namespace: str | None) -> str:
    if kind in CLUSTER_SCOPED_KINDS:
        return ""
    return namespace or DEFAULT_NAMESPACE


def _key_of(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    kind = _kind_of(obj)
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if not name or not isinstance(name, str):
        raise UserError(f"the {kind} has no metadata.name")
    return kind, name, _namespace_of(kind, metadata.get("namespace"))


def _set_identity(body: RawObject, *, kind: str, name: str, namespace: str) -> None:
    body["kind"] = kind
    metadata = body["metadata"]
    metadata["name"] = name
    if namespace:
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)


def _restore_server_fields(wanted: RawObject, stored: RawObject) -> None:
    """Undo whatever a patch did to fields only the server may set."""
    wanted["kind"] = stored["kind"]
    if "apiVersion" in stored:
        wanted["apiVersion"] = stored["apiVersion"]
    metadata = wanted.get("metadata")
    if not isinstance(metadata, dict):
        metadata = wanted["metadata"] = {}
    for key in _SERVER_METADATA:
        if key in stored["metadata"]:
            metadata[key] = stored["metadata"][key]
        else:
            metadata.pop(key, None)
    if "status" in stored:
        wanted["status"] = stored["status"]
    else:
        wanted.pop("status", None)


def _without_status(obj: RawObject) -> RawObject:
    return {key: value for key, value in obj.items() if key != "status"}


def _missing(kind: str, name: str, namespace: str | None) -> str:
    return _phrase(kind, name, namespace, "not found")


def _phrase(kind: str, name: str, namespace: str | None, predicate: str) -> str:
    """ "rollout 'x' not found in namespace 'default'" (no namespace for cluster-scoped kinds)."""
    where = _namespace_of(kind, namespace)
    text = f"{kind.lower()} '{name}' {predicate}"
    return f"{text} in namespace '{where}'" if where else text


def _describe(kind: str, name: str, namespace: str | None) -> str:
    where = _namespace_of(kind, namespace)
    text = f"{kind.lower()} '{name}'"
    return f"{text} in namespace '{where}'" if where else text


def _label_path(key: str) -> str:
    # Label keys may hold dots and slashes, so the JSON path quotes them.
    return '$.metadata.labels."' + key.replace('"', '\\"') + '"'


def _labels_match(obj: RawObject, wanted: Mapping[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in wanted.items())


def _event_object(row: tuple[Any, ...]) -> RawObject:
    event_id, namespace, kind, name, type_, reason, message, count, first_at, last_at = row
    metadata: RawObject = {"name": f"{name}.{event_id:x}"}
    involved: RawObject = {"kind": kind, "name": name}
    if namespace:
        metadata["namespace"] = namespace
        involved["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": metadata,
        "involvedObject": involved,
        "type": type_,
        "reason": reason,
        "message": message,
        "count": count,
        "firstTimestamp": first_at,
        "lastTimestamp": last_at,
    }
