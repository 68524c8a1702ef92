"""A list+watch cache of one kind, kept current from the API server.

Where it sits: Kubernetes mode's store (`rollwise.platforms.kubernetes.store`) runs one
`Informer` per kind it reads (Rollouts, ReplicaSets with the rollouts-pod-template-hash label,
Services, AnalysisRuns, ...); the controller reads from memory and hears of every change through
`on_change(type, old, new)`.

Theory of operation: `run()` lists, then watches from the list's resourceVersion. A watch the
server ends normally (its timeoutSeconds) is resumed from the last resourceVersion seen (events
and bookmarks both advance it), without listing again. A 410 Gone (the history the server keeps
no longer reaches back to that resourceVersion) means events were missed: list again and report
the differences from the cache as ADDED, MODIFIED and DELETED changes. Any other failure
(the API unreachable, 5xx, 429, RBAC) is retried after a back-off that doubles up to a cap
(10 s, as Argo's), from the same resourceVersion; a `label_selector` is applied by the server,
so objects outside it never enter the cache. `run()` only ends when cancelled.

Reads (`get`, `list`) return the cached dicts themselves, without a copy: callers must not
mutate them (copy first).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from rollwise.platforms.kubernetes.client import GoneError, KubeClient, WatchEvent

RawObject = dict[str, Any]
ChangeHandler = Callable[[str, RawObject | None, RawObject | None], None]
Key = tuple[str, str]  # namespace ("" when cluster-scoped), name

log = logging.getLogger(__name__)

WATCH_TIMEOUT_SECONDS = 300
MAX_BACKOFF_SECONDS = 10.0


def _key(obj: RawObject) -> Key:
    metadata = obj.get("metadata") or {}
    return (metadata.get("namespace") or "", metadata.get("name") or "")


def _first(item: tuple[Key, RawObject]) -> Key:
    return item[0]


def _version(obj: RawObject | None) -> str | None:
    return None if obj is None else (obj.get("metadata") or {}).get("resourceVersion")


class Informer:
    """The objects of one kind (in one namespace or all), with an index by owner name."""

    def __init__(
        self,
        client: KubeClient,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        on_change: ChangeHandler | None = None,
        watch_timeout: int = WATCH_TIMEOUT_SECONDS,
        first_backoff: float = 0.2,
        max_backoff: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.on_change = on_change
        self.watch_timeout = watch_timeout
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.synced = asyncio.Event()
        self.resource_version: str | None = None  # the last one seen; None: list next
        self._objects: dict[Key, RawObject] = {}
        self._by_owner: dict[str, set[Key]] = {}

    # -- reads

    def get(self, name: str, namespace: str | None) -> RawObject | None:
        """The cached object (do not mutate it), or None."""
        return self._objects.get((namespace or "", name))

    def list(self, namespace: str | None = None, *, owner: str | None = None) -> list[RawObject]:
        """Cached objects (do not mutate them), in `namespace` (None: all), owned by `owner`."""
        # `/metrics` lists from a worker thread while the loop changes the cache: copy in one
        # step (atomic under the GIL), and skip a key whose object went away meanwhile.
        if owner is not None:
            keys = sorted(self._by_owner.get(owner, ()))
            found = (self._objects.get(key) for key in keys)
            objects = [obj for obj in found if obj is not None]
        else:
            objects = [obj for _, obj in sorted(self._objects.items(), key=_first)]
        if namespace is None:
            return objects
        return [obj for obj in objects if _key(obj)[0] == namespace]

    # -- the loop

    async def run(self) -> None:
        """List, then watch, forever (until cancelled); see the module docstring."""
        failures = 0
        while True:
            try:
                if self.resource_version is None:
                    await self._relist()
                await self._watch()
                failures = 0
            except GoneError:
                log.info("%s watch expired at %s: listing again", self.kind, self.resource_version)
                self.resource_version = None
            except asyncio.CancelledError:
                raise
            except Exception as error:  # never die: the controller depends on the cache
                delay = min(self.first_backoff * 2**failures, self.max_backoff)
                failures += 1
                log.warning("%s list/watch failed (%s); retrying in %.1fs", self.kind, error, delay)
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        listing = await self.client.list(
            self.api_version,
            self.kind,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        listed = {_key(obj): obj for obj in listing.items}
        for key in [key for key in self._objects if key not in listed]:
            self._forget(key)
        for obj in listing.items:
            self._store(obj)
        self.resource_version = listing.resource_version
        self.synced.set()

    async def _watch(self) -> None:
        assert self.resource_version is not None
        events = self.client.watch(
            self.api_version,
            self.kind,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=self.watch_timeout,
        )
        async with contextlib.aclosing(events):
            async for event in events:
                self._apply(event)

    def _apply(self, event: WatchEvent) -> None:
        version = _version(event.object)
        if event.type == "DELETED":
            key = _key(event.object)
            if key in self._objects:
                self._forget(key, last=event.object)
        elif event.type in ("ADDED", "MODIFIED"):
            self._store(event.object)
        if version:
            self.resource_version = version

    # -- the cache and its index

    def _store(self, obj: RawObject) -> None:
        key = _key(obj)
        old = self._objects.get(key)
        if old is not None and _version(old) == _version(obj):
            return  # already known (a relist finds most objects unchanged)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        for owner in self._owners(obj):
            self._by_owner.setdefault(owner, set()).add(key)
        self._notify("MODIFIED" if old is not None else "ADDED", old, obj)

    def _forget(self, key: Key, *, last: RawObject | None = None) -> None:
        old = self._objects.pop(key)
        self._unindex(key, old)
        self._notify("DELETED", last or old, None)

    def _unindex(self, key: Key, obj: RawObject) -> None:
        for owner in self._owners(obj):
            keys = self._by_owner.get(owner)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_owner[owner]

    @staticmethod
    def _owners(obj: RawObject) -> builtins.list[str]:
        references = (obj.get("metadata") or {}).get("ownerReferences") or []
        return [str(reference["name"]) for reference in references if reference.get("name")]

    def _notify(self, event_type: str, old: RawObject | None, new: RawObject | None) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(event_type, old, new)
        except Exception:  # a handler's bug must not stop the cache
            log.exception("%s change handler failed", self.kind)
