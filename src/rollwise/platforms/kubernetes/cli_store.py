"""The CLI's store in the kubernetes context: the local store's calls, answered by the API server.

Where it sits: `rollwise.cli.state.open_store` hands a `KubeCliStore` to the verbs when the
context is `kubernetes`, so `get`, `promote`, `apply`... make the same calls as against a local
home (`SqliteStore`: get, list, create, update, update_status, patch(merge=), apply, transaction,
revision) and the cluster answers them, like `kubectl argo rollouts` ("there is no Argo Rollouts
API"). It is synchronous, like the verbs, and sends the same `wire` requests as the controller's
`KubeClient` through `BlockingTransport` (the standard library: no asyncio, no aiohttp, so a
command against a cluster starts as fast as a local one).

How the local store's guarantees carry over:
- A read-modify-write runs inside `transaction()`. Every object read there is remembered with
  its resourceVersion, and a patch of it carries that `metadata.resourceVersion`, so the API
  server refuses (409, `ConflictError`) a write computed from a stale read; the CLI then runs the
  whole read-modify-write again (`rollwise.cli.state.read_modify_write`), as Argo's CLI retries
  on conflict. `update` and `update_status` send the resourceVersion of the object they are given.
- Patches are JSON merge patches (`application/merge-patch+json`, never JSON Patch). A status
  patch goes to the status subresource; a kind whose CRD has none (404 there) gets the same
  patch on the object, as Argo's CLI falls back for old CRDs.
- `apply` is server-side apply with its own field manager (`rollwise-apply`, forced): the fields
  a file sets become the file's, fields others own and the file does not set (the controller's
  status, `spec.paused` from `rollwise pause`, the hash the controller adds to a Service's
  selector) stay. "created/configured/unchanged" comes from the resourceVersion before and after.
- `revision()` is what `get -w` and `status` poll: on its first call it opens one watch per
  collection read so far (a get watches its namespace's collection and counts only its name; a
  list keeps its label selector), each from the resourceVersion of that read so nothing between
  the read and the watch is missed, and later reads add watches. It returns the number of
  changes seen. A watch the server ends is resumed; a 410 restarts from the present; any other
  failure is raised by the next `revision()` call (transient ones after a few retries).

Watches run in daemon threads, one per collection, each on its own connection.
"""

from __future__ import annotations

import builtins
import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from rollwise.api.errors import NotFoundError, RollwiseError, TransientError, UserError
from rollwise.platforms.kubernetes.blocking import BlockingTransport, Stream
from rollwise.platforms.kubernetes.config import load_configuration
from rollwise.platforms.kubernetes.resources import resource_for
from rollwise.platforms.kubernetes.wire import GoneError, ObjectList, Request, Requests

RawObject = dict[str, Any]

APPLY_FIELD_MANAGER = "rollwise-apply"
WATCH_SECONDS = 300  # the server ends each watch after this; it is resumed
WATCH_ATTEMPTS = 5  # consecutive transient failures of one watch before giving up

ARGO = "argoproj.io/v1alpha1"
# The kinds the CLI names without an apiVersion (the local store keys objects by kind alone):
# Argo's, what a rollout's tree shows, Secrets, and what a `workloadRef` may name.
KIND_API_VERSIONS: dict[str, str] = {
    "Rollout": ARGO,
    "AnalysisTemplate": ARGO,
    "ClusterAnalysisTemplate": ARGO,
    "AnalysisRun": ARGO,
    "Experiment": ARGO,
    "Service": "v1",
    "Pod": "v1",
    "Secret": "v1",
    "PodTemplate": "v1",
    "ReplicaSet": "apps/v1",
    "Deployment": "apps/v1",
    "Event": "v1",
}
_BY_LOWER = {kind.lower(): kind for kind in KIND_API_VERSIONS}
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def kind_and_api_version(kind: str) -> tuple[str, str]:
    """(`Rollout`, `argoproj.io/v1alpha1`) for `rollout`/`Rollout`; UserError for other kinds."""
    canonical = _BY_LOWER.get(kind.lower())
    if canonical is None:
        known = ", ".join(sorted(KIND_API_VERSIONS))
        raise UserError(f"rollwise does not read kind '{kind}' from a cluster (it reads {known})")
    return canonical, KIND_API_VERSIONS[canonical]


def _version(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def label_selector(
    labels: Mapping[str, str] | None = None, selector: str | None = None
) -> str | None:
    """One selector string from equality pairs and a selector in Kubernetes' syntax."""
    terms = [f"{key}={value}" for key, value in sorted((labels or {}).items())]
    if selector:
        terms.append(selector)
    return ",".join(terms) or None


@dataclass(frozen=True)
class _Collection:
    """What one watch follows: a kind in a namespace (None: cluster-wide), maybe selected."""

    api_version: str
    kind: str
    namespace: str | None
    selector: str | None


@dataclass
class _Watch:
    names: set[str] | None  # None: every object of the collection counts, else only these
    resource_version: str  # where to start ("": from now)
    thread: threading.Thread | None = None
    stream: Stream | None = None


class KubeCliStore:
    """The subset of `SqliteStore` the CLI uses, over the Kubernetes API (see the module doc)."""

    def __init__(self, transport: BlockingTransport) -> None:
        self._transport = transport
        self._requests = Requests(transport.cluster.namespace)
        self.namespace = transport.cluster.namespace
        """The namespace of the kubeconfig context (or the pod's): the CLI's default."""
        self._versions: dict[tuple[str, str, str], str] | None = None
        self._watches: dict[_Collection, _Watch] = {}
        self._watching = False
        self._lock = threading.Lock()  # the watches' bookkeeping, shared with their threads
        self._changes = 0
        self._failure: RollwiseError | None = None
        self._stopping = threading.Event()

    @classmethod
    def open(cls, *, kubeconfig: str | None = None, context: str | None = None) -> KubeCliStore:
        """Load the kubeconfig (`kubeconfig`, $KUBECONFIG, ~/.kube/config, else in-cluster) and
        its `context` (default: the current one). No request is made yet."""
        return cls(BlockingTransport(load_configuration(kubeconfig=kubeconfig, context=context)))

    def close(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            if watch.stream is not None:
                watch.stream.close()
        self._transport.close()

    def __enter__(self) -> KubeCliStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, request: Request) -> Any:
        return self._transport.call(request)

    # --- reading -----------------------------------------------------------------------------

    def _namespace(self, api_version: str, kind: str, namespace: str | None) -> str | None:
        if not resource_for(api_version, kind).namespaced:
            return None
        return namespace or self.namespace

    def get(self, kind: str, name: str, namespace: str | None = None) -> RawObject | None:
        kind, api_version = kind_and_api_version(kind)
        where = self._namespace(api_version, kind, namespace)

        obj: RawObject | None = self._call(self._requests.get(api_version, kind, name, where))
        self._read(_Collection(api_version, kind, where, None), {name}, _version(obj))
        if obj is not None:
            self._remember_version(obj)
        return obj

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        selector: str | None = None,
    ) -> builtins.list[RawObject]:
        """Objects of `kind` in `namespace` (None: every namespace; cluster-scoped kinds ignore
        it) whose labels hold `labels` and match `selector` (Kubernetes' syntax: `a in (x,y)`),
        sorted by namespace and name as the local store returns them."""
        kind, api_version = kind_and_api_version(kind)
        resource = resource_for(api_version, kind)
        where = namespace if resource.namespaced else None
        wanted = label_selector(labels, selector)

        listing: ObjectList = self._call(
            self._requests.list(api_version, kind, where, label_selector=wanted)
        )
        self._read(_Collection(api_version, kind, where, wanted), None, listing.resource_version)
        for obj in listing.items:
            self._remember_version(obj)
        return sorted(
            listing.items,
            key=lambda o: ((o.get("metadata") or {}).get("namespace") or "", _name(o)),
        )

    # --- writing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A read-modify-write: writes of objects read inside carry the resourceVersion read,
        so a change made by someone else in between fails with ConflictError (nothing written
        by that call). Not atomic across objects: the API server has no transactions."""
        if self._versions is not None:
            yield  # nested: joins the outer one
            return
        self._versions = {}
        try:
            yield
        finally:
            self._versions = None

    def _remember_version(self, obj: RawObject) -> None:
        if self._versions is not None and _version(obj):
            key = (str(obj.get("kind") or ""), _ns_of(obj) or "", _name(obj))
            self._versions[key] = _version(obj)

    def create(self, obj: RawObject) -> RawObject:
        created: RawObject = self._call(self._requests.create(obj))
        self._remember_version(created)
        return created

    def update(self, obj: RawObject) -> RawObject:
        """PUT the object (its status is not written where the kind has a status subresource);
        ConflictError if its metadata.resourceVersion is stale."""
        updated: RawObject = self._call(self._requests.replace(obj))
        self._remember_version(updated)
        return updated

    def update_status(self, obj: RawObject) -> RawObject:
        """PUT the object's status (`status` absent or None: no status); ConflictError if its
        metadata.resourceVersion is stale."""
        body = dict(obj)
        body.setdefault("status", None)

        updated: RawObject
        try:
            updated = self._call(self._requests.replace(body, subresource="status"))
        except NotFoundError:
            # No status subresource (Argo's AnalysisRun and Experiment CRDs): the status is
            # a field of the object; a missing object is a NotFoundError here too.
            updated = self._call(self._requests.replace(body))
        self._remember_version(updated)
        return updated

    def patch(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        merge: Mapping[str, Any],
        status: bool = False,
    ) -> RawObject:
        """A merge patch of the object (`status=False`; it may not touch status) or of its
        status (`status=True`; `merge` is the patch of the status), as `SqliteStore.patch`."""
        kind, api_version = kind_and_api_version(kind)
        where = self._namespace(api_version, kind, namespace)
        if not status and "status" in merge:
            raise UserError(
                f"a patch of {kind.lower()} '{name}' may not change its status;"
                " patch the status separately"
            )
        body: dict[str, Any] = {"status": dict(merge)} if status else dict(merge)
        version = (self._versions or {}).get((kind, where or "", name))
        if version:
            body["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": version}

        patched: RawObject
        try:
            patched = self._call(
                self._requests.merge_patch(
                    api_version, kind, name, where, body, subresource="status" if status else None
                )
            )
        except NotFoundError:
            if not status:
                raise
            patched = self._call(self._requests.merge_patch(api_version, kind, name, where, body))
        self._remember_version(patched)
        return patched

    def apply(self, obj: RawObject) -> tuple[RawObject, str]:
        """Server-side apply of `obj` (its status and server-owned metadata left out); returns
        the object and "created", "configured" or "unchanged", as `kubectl apply` prints."""
        applied = {key: value for key, value in obj.items() if key != "status"}
        applied["metadata"] = {
            key: value
            for key, value in (obj.get("metadata") or {}).items()
            if key not in _SERVER_METADATA
        }
        kind, api_version = str(obj["kind"]), str(obj["apiVersion"])
        where = self._namespace(api_version, kind, applied["metadata"].get("namespace"))
        name = _name(applied)

        before = self._call(self._requests.get(api_version, kind, name, where))
        after: RawObject = self._call(
            self._requests.apply(applied, field_manager=APPLY_FIELD_MANAGER, force=True)
        )
        if before is None:
            return after, "created"
        return after, "unchanged" if _version(before) == _version(after) else "configured"

    # --- watching ----------------------------------------------------------------------------

    def events(
        self,
        *,
        kind: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        limit: int = 200,
    ) -> builtins.list[RawObject]:
        """The v1 Events about `kind`/`name` in `namespace`, oldest first, as the local store
        returns them (the dashboard's event list and weight history read these)."""
        found = [
            event
            for event in self.list("Event", namespace)
            if (kind is None or (event.get("involvedObject") or {}).get("kind") == kind)
            and (name is None or (event.get("involvedObject") or {}).get("name") == name)
        ]
        found.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return found[-limit:]

    def event_counter(self) -> int:
        """Changes seen so far, events included (what the dashboard's live streams poll)."""
        return self.revision()

    def revision(self) -> int:
        """How many changes the watches of what was read have seen (see the module doc)."""
        with self._lock:
            if not self._watching:
                self._watching = True
                for collection, watch in self._watches.items():
                    self._start(collection, watch)
            if self._failure is not None:
                raise self._failure
            return self._changes

    def _read(self, collection: _Collection, names: set[str] | None, version: str) -> None:
        """Note a read, so `revision()` follows that collection from `version`."""
        with self._lock:
            watch = self._watches.get(collection)
            if watch is None:
                watch = self._watches[collection] = _Watch(names, version)
            elif watch.names is not None:
                watch.names = None if names is None else watch.names | names
            if watch.thread is None:
                watch.resource_version = version or watch.resource_version
                if self._watching:
                    self._start(collection, watch)

    def _start(self, collection: _Collection, watch: _Watch) -> None:
        watch.thread = threading.Thread(
            target=self._follow, args=(collection, watch), name="rollwise-watch", daemon=True
        )
        watch.thread.start()

    def _count(self, changes: int) -> None:
        with self._lock:
            self._changes += changes

    def _follow(self, collection: _Collection, watch: _Watch) -> None:
        version, failures = watch.resource_version, 0
        while not self._stopping.is_set():
            request = self._requests.watch(
                collection.api_version,
                collection.kind,
                collection.namespace,
                resource_version=version,
                label_selector=collection.selector,
                timeout_seconds=WATCH_SECONDS,
            )
            try:
                watch.stream = self._transport.stream(request, idle_timeout=WATCH_SECONDS + 30)
                for event in watch.stream:
                    failures = 0
                    version = _version(event.object) or version
                    if event.type != "BOOKMARK" and (
                        watch.names is None or _name(event.object) in watch.names
                    ):
                        self._count(1)
            except GoneError:
                version = ""  # the history is gone: follow from now, and redraw once
                self._count(1)
            except TransientError as error:
                failures += 1
                if failures >= WATCH_ATTEMPTS:
                    self._failure = error
                    return
                self._stopping.wait(min(0.2 * 2**failures, 5.0))
            except RollwiseError as error:
                self._failure = error
                return


def _ns_of(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("namespace") or None
