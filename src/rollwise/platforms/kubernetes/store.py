"""Kubernetes mode's store: the informers' cache for reads, the API server for writes.

Who uses it: the Kubernetes controller (`rollwise.controller.kubernetes`) builds one, runs its
informers and hands it to the same reconcilers local mode uses; the executor
(`rollwise.platforms.kubernetes.executor`) reads through it (`rollwise.core.observing`). Reads
are lookups in memory, kept current by list+watch (`Informer`); writes go to the API server and
come back through the watch, as in every Kubernetes controller. A write based on an object the
cache has not caught up with yet fails with 409 and the key is reconciled again from the fresh
object, so a stale cache never overwrites newer state.

What is cached is filtered where Kubernetes lets us (Argo learned that caching every ReplicaSet
of a cluster costs gigabytes): ReplicaSets and Pods only with the `rollouts-pod-template-hash`
label, Rollouts, AnalysisRuns and Experiments only of this controller's instance id
(`argo-rollouts.argoproj.io/controller-instance-id`), everything only in the watched namespace
with `--namespaced`.

Events this controller records are kept in memory too (the last `EVENTS_KEPT`), for `/metrics`'
`rollout_events_total` and as the notifier's feed (`event_counter`, `events_since`). As in local
mode's store (and Kubernetes' own event aggregation), the same type, reason and message about
the same object again bumps the kept event's count and moves it to the newest counter value.
They live only as long as the process: this is what Argo's notifications read too (its
in-process event recorder), see `rollwise.platforms.kubernetes.notifications`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollwise.core.hashing import HASH_LABEL
from rollwise.core.timestamps import format_time
from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.platforms.kubernetes.informer import Informer

RawObject = dict[str, Any]
INSTANCE_ID_LABEL = "argo-rollouts.argoproj.io/controller-instance-id"
ARGO = "argoproj.io/v1alpha1"
EVENTS_KEPT = 10_000
ROLLOUTS_AS_WRITTEN_KEPT = 512
"""Events whose Rollout, as the next status write left it, is kept for the notifier (which
reads them within a poll; one that falls further behind renders with the cached Rollout)."""
STATUS_SUBRESOURCE = frozenset({"Rollout"})

EventKey = tuple[str, str, str, str, str, str]
"""(namespace, kind, name, type, reason, message): what makes two recordings the same event."""

ChangeHandler = Callable[[str, RawObject | None, RawObject | None], None]
"""(kind, old, new): an object of `kind` was added (old None), changed, or deleted (new None)."""


@dataclass(frozen=True)
class Watched:
    kind: str
    api_version: str
    cluster_scoped: bool = False
    label_selector: str | None = None
    instance_scoped: bool = False
    """Filtered by the controller's instance id (Argo shards controllers by this label)."""


WATCHED: tuple[Watched, ...] = (
    Watched("Rollout", ARGO, instance_scoped=True),
    Watched("AnalysisRun", ARGO, instance_scoped=True),
    Watched("Experiment", ARGO, instance_scoped=True),
    Watched("AnalysisTemplate", ARGO),
    Watched("ClusterAnalysisTemplate", ARGO, cluster_scoped=True),
    Watched("ReplicaSet", "apps/v1", label_selector=HASH_LABEL),
    Watched("Pod", "v1", label_selector=HASH_LABEL),
    Watched("Service", "v1"),
    Watched("Secret", "v1"),
    Watched("Deployment", "apps/v1"),
)
API_VERSIONS = {watched.kind: watched.api_version for watched in WATCHED}


def instance_selector(instance_id: str | None) -> str:
    """Argo's sharding: a controller with an instance id takes only objects labelled with it;
    one without takes only objects with no such label."""
    return f"{INSTANCE_ID_LABEL}={instance_id}" if instance_id else f"!{INSTANCE_ID_LABEL}"


def api_version_of(kind: str) -> str:
    try:
        return API_VERSIONS[kind]
    except KeyError:
        raise KeyError(f"kind {kind} is not one the Kubernetes store follows") from None


class KubeStore:
    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str | None = None,
        instance_id: str | None = None,
        on_change: ChangeHandler | None = None,
        watched: Iterable[Watched] = WATCHED,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.instance_id = instance_id
        self._on_change = on_change
        # Oldest recording first; a repeat moves to the end. Guarded: scrapes read in a thread.
        self._events: OrderedDict[EventKey, tuple[int, RawObject]] = OrderedDict()
        self._event_counter = 0
        self._events_lock = threading.Lock()
        # The resourceVersion of each status this controller wrote that the cache has not
        # caught up with yet (see `status_pending`).
        self._written: dict[tuple[str, str, str], str] = {}
        # Counters of the events about each Rollout recorded since its last status write, and
        # the Rollout as the write after them left it (see `rollout_as_written`).
        self._unwritten: dict[tuple[str, str], builtins.list[int]] = {}
        self._as_written: OrderedDict[int, RawObject] = OrderedDict()
        self.informers: dict[str, Informer] = {}
        for item in watched:
            if item.cluster_scoped and namespace is not None:
                # A namespaced controller has a Role only: cluster-scoped kinds (the
                # ClusterAnalysisTemplates) are not its to read, as in Argo's namespaced mode.
                continue
            selectors = [item.label_selector] if item.label_selector else []
            if item.instance_scoped:
                selectors.append(instance_selector(instance_id))
            self.informers[item.kind] = Informer(
                client,
                item.api_version,
                item.kind,
                None if item.cluster_scoped else namespace,
                label_selector=",".join(selectors) or None,
                on_change=self._changed(item.kind),
            )

    def _changed(self, kind: str) -> Callable[[str, RawObject | None, RawObject | None], None]:
        def changed(_type: str, old: RawObject | None, new: RawObject | None) -> None:
            if self._written:
                self._caught_up(kind, old if new is None else new, deleted=new is None)
            if new is None and old is not None and kind == "Rollout":
                metadata = old.get("metadata") or {}
                self._unwritten.pop(
                    (metadata.get("namespace") or "default", metadata["name"]), None
                )
            if self._on_change is not None:
                self._on_change(kind, old, new)

        return changed

    async def run(self) -> None:
        """Run every informer until cancelled."""
        await asyncio.gather(*(informer.run() for informer in self.informers.values()))

    async def wait_synced(self) -> None:
        await asyncio.gather(*(informer.synced.wait() for informer in self.informers.values()))

    # --- reads (the ObjectReader of rollwise.core.observing, and the metrics' store) ----------

    def get(self, kind: str, name: str, namespace: str = "default") -> RawObject | None:
        informer = self.informers.get(kind)
        return None if informer is None else informer.get(name, namespace)

    def list(
        self, kind: str, namespace: str | None = "default", *, owner: str | None = None
    ) -> builtins.list[RawObject]:
        informer = self.informers.get(kind)
        return [] if informer is None else informer.list(namespace, owner=owner)

    # --- writes -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Nothing to group: the API server has no transactions (a reconcile's events and its
        status write are separate requests, as in Argo)."""
        yield

    async def write_status(self, obj: RawObject) -> RawObject:
        """Write `obj`'s status with the resourceVersion read (ConflictError when stale): through
        the status subresource for a Rollout, with an update of the whole object for an
        AnalysisRun or Experiment (Argo's CRDs give only Rollout a status subresource)."""
        if obj.get("kind") in STATUS_SUBRESOURCE:
            written = await self.client.replace_status(obj)
        else:
            written = await self.client.replace(obj)
        metadata = written.get("metadata") or {}
        version = str(metadata.get("resourceVersion") or "")
        kind, namespace = str(written.get("kind")), metadata.get("namespace") or "default"
        cached = self.get(kind, metadata["name"], namespace)
        # The watch may have brought the write before its answer came.
        if version and not _holds(cached, version):
            self._written[(kind, namespace, metadata["name"])] = version
        if kind == "Rollout":
            for counter in self._unwritten.pop((namespace, metadata["name"]), ()):
                self._as_written[counter] = written
            while len(self._as_written) > ROLLOUTS_AS_WRITTEN_KEPT:
                self._as_written.popitem(last=False)
        return written

    def rollout_as_written(self, counter: int) -> RawObject | None:
        """The Rollout an event (by its counter) is about, as the status write that followed it
        left it: the status of the reconcile that recorded the event, even when later
        reconciles have moved on (the notifier renders with it). None until it is written."""
        return self._as_written.get(counter)

    def status_pending(self, kind: str, namespace: str, name: str) -> bool:
        """Has this controller written a status of that object the cache does not hold yet?
        (The write's answer comes at once; the cache learns it from the watch a moment later.
        The notifier waits for it, so its templates show the status the reconcile wrote.)"""
        return (kind, namespace, name) in self._written

    def _caught_up(self, kind: str, obj: RawObject | None, *, deleted: bool) -> None:
        metadata = (obj or {}).get("metadata") or {}
        key = (kind, metadata.get("namespace") or "default", metadata.get("name") or "")
        written = self._written.get(key)
        if written is not None and (deleted or _holds(obj, written)):
            del self._written[key]

    # --- events -------------------------------------------------------------------------------

    def remember_event(self, event: RawObject) -> RawObject:
        """Keep an event this controller recorded (a repeat bumps the kept one's count); the
        kept event (its `count` says whether it is a repeat)."""
        involved = event.get("involvedObject") or {}
        key: EventKey = (
            str(involved.get("namespace") or (event.get("metadata") or {}).get("namespace") or ""),
            str(involved.get("kind") or ""),
            str(involved.get("name") or ""),
            str(event.get("type") or ""),
            str(event.get("reason") or ""),
            str(event.get("message") or ""),
        )
        with self._events_lock:
            self._event_counter += 1
            kept = self._events.pop(key, None)
            if kept is not None:
                earlier = kept[1]
                event = {
                    **earlier,
                    "count": int(earlier.get("count") or 1) + 1,
                    "lastTimestamp": event.get("lastTimestamp") or earlier.get("lastTimestamp"),
                }
            self._events[key] = (self._event_counter, event)
            if key[1] == "Rollout":
                waiting = self._unwritten.setdefault((key[0], key[2]), [])
                waiting.append(self._event_counter)
                del waiting[:-ROLLOUTS_AS_WRITTEN_KEPT]
            while len(self._events) > EVENTS_KEPT:
                self._events.popitem(last=False)
            return event

    def events(
        self,
        *,
        kind: str | None = None,
        name: str | None = None,
        namespace: str | None = "default",
        limit: int = 200,
    ) -> builtins.list[RawObject]:
        """The events this controller recorded, oldest first (what `/metrics` counts)."""
        with self._events_lock:
            kept = [event for _, event in self._events.values()]
        found = [
            event
            for event in kept
            if (kind is None or event["involvedObject"].get("kind") == kind)
            and (name is None or event["involvedObject"].get("name") == name)
            and (namespace is None or event["metadata"].get("namespace") == namespace)
        ]
        return found[-limit:]

    def event_counter(self) -> int:
        """Every recording (or repeat) of an event takes the next value of this counter."""
        with self._events_lock:
            return self._event_counter

    def events_since(
        self, counter: int, *, limit: int = 500
    ) -> builtins.list[tuple[int, RawObject]]:
        """Events recorded or repeated after `counter`, oldest first, each with the counter
        value of its latest recording (the notifier's feed, as local mode's store gives it)."""
        with self._events_lock:
            newer: builtins.list[tuple[int, RawObject]] = []
            for touched, event in reversed(self._events.values()):
                if touched <= counter:
                    break
                newer.append((touched, event))
        newer.reverse()
        return newer[:limit]


def _holds(obj: RawObject | None, version: str) -> bool:
    """Does the cached `obj` hold the write that made `version`? resourceVersions are opaque,
    but the API server's are etcd revisions (integers): a newer one (a relist that skipped
    ours) holds our write too."""
    seen = str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")
    if seen == version:
        return True
    return seen.isdigit() and version.isdigit() and int(seen) >= int(version)


def event_object(
    involved: RawObject, *, type: str, reason: str, message: str, at: datetime
) -> RawObject:
    """A v1 Event about `involved`, as Argo's controller records them (component
    `rollouts-controller`; notifications and `kubectl describe` read these)."""
    metadata = involved.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    stamp = format_time(at)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata.get('name', 'object')}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", ARGO),
            "kind": involved.get("kind"),
            "name": metadata.get("name"),
            "namespace": namespace,
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "type": type,
        "reason": reason,
        "message": message,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": "rollouts-controller"},
        "reportingComponent": "rollouts-controller",
    }
