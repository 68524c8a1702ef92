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
with `--namespaced`. Events this controller records are kept in memory too (a bounded list) for
`/metrics`' `rollout_events_total`.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import deque
from collections.abc import Callable, Iterable
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
        self._events: deque[RawObject] = deque(maxlen=EVENTS_KEPT)
        self.informers: dict[str, Informer] = {}
        for item in watched:
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

    async def write_status(self, obj: RawObject) -> RawObject:
        """The status subresource, with the resourceVersion read: ConflictError when stale."""
        return await self.client.replace_status(obj)

    # --- events -------------------------------------------------------------------------------

    def remember_event(self, event: RawObject) -> None:
        self._events.append(event)

    def events(
        self,
        *,
        kind: str | None = None,
        name: str | None = None,
        namespace: str | None = "default",
        limit: int = 200,
    ) -> builtins.list[RawObject]:
        """The events this controller recorded, oldest first (what `/metrics` counts)."""
        found = [
            event
            for event in self._events
            if (kind is None or event["involvedObject"].get("kind") == kind)
            and (name is None or event["involvedObject"].get("name") == name)
            and (namespace is None or event["metadata"].get("namespace") == namespace)
        ]
        return found[-limit:]


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
