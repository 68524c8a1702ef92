"""The Kubernetes objects a cluster router reads and writes, behind one small Protocol.

Where it sits: the routers of Kubernetes mode (`rollwise.routers.istio`, `nginx`, `traefik`,
`smi`, `gatewayapi`) patch the proxy's own resources (VirtualService, Ingress, TraefikService,
TrafficSplit, HTTPRoute). They may not import the platform, so they talk through this Protocol;
`rollwise.platforms.kubernetes.client.KubeClient` implements it over HTTP, and
`rollwise.routers.objects.InMemoryObjects` implements it in memory for the routers' unit tests.

Errors: `NotFoundError` when the object does not exist (get returns None instead),
`ConflictError` when `replace` carried a stale `metadata.resourceVersion`, `TransientError` when
the API server cannot be reached. Objects are raw dicts in Kubernetes shape.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

from rollwise.api.errors import ConflictError, NotFoundError

RawObject = dict[str, Any]


class ObjectClient(Protocol):
    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> RawObject | None:
        """The object, or None when it does not exist."""
        ...

    async def create(self, obj: RawObject) -> RawObject:
        """Create `obj` (apiVersion/kind/metadata in it); ConflictError if it exists."""
        ...

    async def replace(self, obj: RawObject) -> RawObject:
        """Write `obj` whole (PUT); ConflictError if its resourceVersion is stale."""
        ...

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
    ) -> RawObject:
        """JSON merge patch (RFC 7386: None deletes a key, lists are replaced whole)."""
        ...

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        """Delete the object; deleting one that does not exist is not an error."""
        ...


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch of `patch` onto `target` (a new value; inputs unchanged)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


class InMemoryObjects:
    """`ObjectClient` over a dict, with resourceVersions: the routers' unit tests use it."""

    def __init__(self, *objects: RawObject) -> None:
        self.objects: dict[tuple[str, str, str], RawObject] = {}
        self._version = 0
        for obj in objects:
            self._store(copy.deepcopy(obj))

    @staticmethod
    def _key(kind: str, name: str, namespace: str | None) -> tuple[str, str, str]:
        return (kind, namespace or "", name)

    def _store(self, obj: RawObject) -> RawObject:
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        metadata = obj["metadata"]
        self.objects[self._key(obj["kind"], metadata["name"], metadata.get("namespace"))] = obj
        return copy.deepcopy(obj)

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> RawObject | None:
        obj = self.objects.get(self._key(kind, name, namespace))
        return None if obj is None else copy.deepcopy(obj)

    async def create(self, obj: RawObject) -> RawObject:
        metadata = obj["metadata"]
        if self._key(obj["kind"], metadata["name"], metadata.get("namespace")) in self.objects:
            raise ConflictError(f"{obj['kind']} {metadata['name']} already exists")
        return self._store(copy.deepcopy(obj))

    async def replace(self, obj: RawObject) -> RawObject:
        metadata = obj["metadata"]
        key = self._key(obj["kind"], metadata["name"], metadata.get("namespace"))
        current = self.objects.get(key)
        if current is None:
            raise NotFoundError(f"{obj['kind']} {metadata['name']} not found")
        stale = metadata.get("resourceVersion") not in (
            None,
            current["metadata"]["resourceVersion"],
        )
        if stale:
            raise ConflictError(f"{obj['kind']} {metadata['name']} was changed meanwhile")
        return self._store(copy.deepcopy(obj))

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
    ) -> RawObject:
        current = self.objects.get(self._key(kind, name, namespace))
        if current is None:
            raise NotFoundError(f"{kind} {name} not found")
        patched: RawObject = merge(current, patch)
        return self._store(patched)

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        self.objects.pop(self._key(kind, name, namespace), None)
