"""What the Kubernetes-mode routers share: the Rollout they route for, and how they edit objects.

Where it sits: `rollwise.routers.registry.cluster_router` builds a `RolloutTarget` from the
Rollout for each reconcile and hands it, with an `ObjectClient`, to the routers in `istio`,
`nginx`, `traefik`, `smi` and `gatewayapi`. Those routers keep no state between reconciles:
everything they must find again (which destinations they added, which routes they manage) is
written into the proxy's own objects, so a restarted controller behaves the same.

Theory of operation:
- `edit_object` reads an object, applies a pure change to a copy and writes it back whole with
  the resourceVersion it read (a merge patch would replace lists whole and lose a concurrent
  edit of another route). On a conflict it reads again and retries once; a second conflict is
  raised (`ConflictError`: the controller retries at the next reconcile). A change that leaves
  the object equal writes nothing.
- Destinations added for experiment services are remembered in an annotation of the object that
  holds them (`tracked_names`), so they are removed when the experiment ends while destinations
  the user wrote are left alone.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollwise.api.errors import ConflictError, NotFoundError, UserError
from rollwise.api.models import StringMatch, WeightDestination
from rollwise.routers.objects import ObjectClient, RawObject

MANAGED_BY_ANNOTATION = "argo-rollouts.argoproj.io/managed-by-rollouts"
"""Argo's annotation on objects a Rollout manages (kept for tools that read it)."""
POD_TEMPLATE_HASH_LABEL = "rollouts-pod-template-hash"
DEFAULT_MAX_WEIGHT = 100


@dataclass(frozen=True, slots=True)
class RolloutTarget:
    """The Rollout a cluster router works for, as the current spec and status say."""

    name: str
    namespace: str
    stable_service: str | None
    """The Service in the stable role now (pingPong: resolved from the status by the caller)."""
    canary_service: str | None
    max_traffic_weight: int | None = None
    """`trafficRouting.maxTrafficWeight` as written (None: not set, 100 applies)."""
    managed_routes: tuple[str, ...] = ()
    owner_reference: Mapping[str, Any] | None = None
    """The Rollout's owner reference (apiVersion, kind, name, uid) for objects it owns."""

    @property
    def max_weight(self) -> int:
        return self.max_traffic_weight or DEFAULT_MAX_WEIGHT

    def stable_weight(self, canary_weight: int, additional: Sequence[WeightDestination]) -> int:
        """What the stable side gets: the total less the canary and experiment destinations."""
        return self.max_weight - canary_weight - sum(d.weight for d in additional)

    def services(self, router: str) -> tuple[str, str]:
        """(stable, canary) Service names; a router that splits between Services needs both."""
        if not self.stable_service or not self.canary_service:
            raise UserError(
                f"trafficRouting.{router} needs stableService and canaryService"
                f" (Rollout {self.namespace}/{self.name})"
            )
        return self.stable_service, self.canary_service

    def controller_reference(self) -> dict[str, Any]:
        """The ownerReference marking an object as created and controlled by this Rollout."""
        if self.owner_reference is None or not self.owner_reference.get("uid"):
            raise UserError(f"Rollout {self.namespace}/{self.name} has no uid to own objects with")
        reference = {
            key: self.owner_reference[key]
            for key in ("apiVersion", "kind", "name", "uid")
            if key in self.owner_reference
        }
        return {**reference, "controller": True, "blockOwnerDeletion": True}

    def controls(self, obj: Mapping[str, Any]) -> bool:
        """Whether `obj` names this Rollout as its controller (Kubernetes' IsControlledBy)."""
        uid = self.owner_reference.get("uid") if self.owner_reference else None
        references = obj.get("metadata", {}).get("ownerReferences") or []
        return bool(uid) and any(
            isinstance(ref, Mapping) and ref.get("controller") and ref.get("uid") == uid
            for ref in references
        )

    def managed_rank(self, route_name: str, *, step: str) -> int:
        """The precedence of a managed route (its place in `managedRoutes`); a route the spec does
        not list is refused, since only listed routes are ever removed again."""
        if route_name not in self.managed_routes:
            listed = ", ".join(self.managed_routes) or "none"
            raise UserError(
                f"{step} {route_name!r} is not in trafficRouting.managedRoutes ({listed}):"
                " rollwise only adds routes it can find and remove again"
            )
        return self.managed_routes.index(route_name)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Which object a router edits."""

    api_version: str
    kind: str
    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


async def read_object(client: ObjectClient, ref: ObjectRef, *, named_in: str) -> RawObject:
    """The object, or NotFoundError saying which field of the Rollout names it."""
    obj = await client.get(ref.api_version, ref.kind, ref.name, ref.namespace)
    if obj is None:
        raise NotFoundError(f"{ref} (named in {named_in}) not found")
    return obj


async def edit_object(
    client: ObjectClient,
    ref: ObjectRef,
    change: Callable[[RawObject], None],
    *,
    named_in: str,
) -> RawObject:
    """Read `ref`, let `change` edit a copy in place, write it back whole if it changed.

    The write carries the resourceVersion read; on a conflict the object is read and changed
    again once (the second conflict is raised)."""
    for attempt in (1, 2):
        current = await read_object(client, ref, named_in=named_in)
        edited = copy.deepcopy(current)
        change(edited)
        if edited == current:
            return current
        try:
            return await client.replace(edited)
        except ConflictError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def merge_diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `current` into `desired` ({} when they are equal)."""
    patch: dict[str, Any] = {}
    for key in current:
        if key not in desired:
            patch[key] = None
    for key, value in desired.items():
        old = current.get(key)
        if key in current and old == value:
            continue
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            patch[key] = merge_diff(old, value)
        else:
            patch[key] = copy.deepcopy(value)
    return patch


def annotations_of(obj: RawObject) -> dict[str, Any]:
    """The object's annotations, created empty if missing (for editing in place)."""
    metadata = obj.setdefault("metadata", {})
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        return annotations
    created: dict[str, Any] = {}
    metadata["annotations"] = created
    return created


def drop_empty_annotations(obj: RawObject) -> None:
    metadata = obj.get("metadata", {})
    if metadata.get("annotations") == {}:
        del metadata["annotations"]


def tracked_names(obj: Mapping[str, Any], key: str) -> list[str]:
    """Names kept in annotation `key` (comma-separated), e.g. destinations a router added."""
    text = (obj.get("metadata", {}).get("annotations") or {}).get(key)
    if not isinstance(text, str):
        return []
    return [name for name in text.split(",") if name]


def set_tracked_names(obj: RawObject, key: str, names: Iterable[str]) -> None:
    """Remember `names` in annotation `key`; no names removes the annotation."""
    unique = sorted(set(names))
    if unique:
        annotations_of(obj)[key] = ",".join(unique)
        return
    annotations = obj.get("metadata", {}).get("annotations")
    if isinstance(annotations, dict) and key in annotations:
        del annotations[key]
        drop_empty_annotations(obj)


def quote_meta(text: str) -> str:
    """Go's regexp.QuoteMeta, so a prefix becomes a regex (Python's re.escape also escapes
    characters RE2 and PCRE reject when escaped)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def prefix_pattern(prefix: str) -> str:
    return f"^{quote_meta(prefix)}.*"


def whole_pattern(regex: str) -> str:
    """A regex matching the whole value, as Istio and local mode match header regexes."""
    return f"^(?:{regex})$"


def match_kind(match: StringMatch) -> tuple[str, str]:
    """("exact" | "prefix" | "regex", value) of a string match; UserError when none is set."""
    for kind in ("exact", "prefix", "regex"):
        value = getattr(match, kind)
        if value is not None:
            return kind, value
    raise UserError("a match needs one of exact, prefix or regex")


def additional_by_service(
    additional: Sequence[WeightDestination],
) -> dict[str, WeightDestination]:
    """Experiment destinations by Service name (those without a Service cannot be routed)."""
    return {d.service_name: d for d in additional if d.service_name}


def short_host(host: object) -> str:
    """The Service name of an Istio host (`svc`, `svc.ns`, `svc.ns.svc.cluster.local`)."""
    return str(host).split(".", 1)[0] if host else ""


def object_name(name: str, namespace: str) -> tuple[str, str]:
    """(name, namespace) of a reference written `name`, `name.namespace` (Argo) or
    `namespace/name`."""
    if "/" in name:
        namespace, _, name = name.partition("/")
        return name, namespace
    parts = name.split(".")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    return name, namespace
