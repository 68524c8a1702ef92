"""Ephemeral pod metadata: labels and annotations a pod carries only while it plays a role
(`canaryMetadata` / `stableMetadata`, reference 1.3; Argo's `rollout/ephemeralmetadata.go`).

Who calls it: the canary engine, right after the desired ReplicaSet is created or found, and the
platforms' executors, which apply `SetEphemeralMetadata` with `metadata_patch`. As in Argo, what
was injected into a ReplicaSet is remembered in its `rollout.argoproj.io/ephemeral-metadata`
annotation (JSON), so that exactly those keys - and no label or annotation someone else put
there - are removed when the role ends. The ReplicaSet's pod template carries the metadata for
the pods it will create; its existing pods are patched the same way.

Roles: while an update is under way the desired ReplicaSet is the canary and the stable one is
stable; once the desired ReplicaSet is stable (or on the first deploy) it gets the stable
metadata; every other ReplicaSet gets none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rollwise.api import models as api
from rollwise.core import actions as act
from rollwise.core.canary_state import CanaryFacts, Outbox
from rollwise.core.observed import EPHEMERAL_METADATA_ANNOTATION, ReplicaSetView

if TYPE_CHECKING:
    from rollwise.core.bluegreen_state import BlueGreenFacts

PodMetadata = dict[str, dict[str, str]]
"""`{"labels": {...}, "annotations": {...}}`, empty maps left out (Argo's JSON shape)."""


def normalized(metadata: api.PodMetadata | Mapping[str, Any] | None) -> PodMetadata | None:
    """The metadata as compared and recorded: None when it holds no label or annotation."""
    if metadata is None:
        return None
    raw = metadata.to_raw() if isinstance(metadata, api.PodMetadata) else metadata
    result: PodMetadata = {}
    for key in ("labels", "annotations"):
        values = raw.get(key) or {}
        if values:
            result[key] = {str(k): str(v) for k, v in values.items()}
    return result or None


def parse_injected(annotation: str | None) -> PodMetadata | None:
    """What a ReplicaSet's ephemeral-metadata annotation says was injected (None if unreadable,
    as Argo treats it)."""
    if not annotation:
        return None
    try:
        loaded = json.loads(annotation)
    except ValueError:
        return None
    return normalized(loaded) if isinstance(loaded, Mapping) else None


def injected_annotation(metadata: PodMetadata | None) -> str | None:
    """The annotation value recording `metadata` (None removes the annotation)."""
    return None if metadata is None else json.dumps(metadata, sort_keys=True, separators=(",", ":"))


def metadata_patch(
    current: Mapping[str, Any], injected: PodMetadata | None, desired: PodMetadata | None
) -> dict[str, dict[str, str | None]]:
    """A merge patch of an object's `metadata` (labels/annotations; None deletes) that injects
    `desired` and removes what was `injected` before and is no longer wanted (Argo's
    SyncEphemeralPodMetadata); empty when the object already agrees."""
    patch: dict[str, dict[str, str | None]] = {}
    for key in ("labels", "annotations"):
        have: Mapping[str, Any] = current.get(key) or {}
        want = (desired or {}).get(key, {})
        before = (injected or {}).get(key, {})
        changes: dict[str, str | None] = {k: v for k, v in want.items() if have.get(k) != v}
        changes.update({k: None for k in before if k not in want and k in have})
        if changes:
            patch[key] = changes
    return patch


def _wanted(facts: CanaryFacts) -> list[tuple[ReplicaSetView, PodMetadata | None]]:
    canary = facts.canary
    stable_hash = facts.prev.get("stableRS") or ""
    new, stable = facts.new_rs, facts.stable_rs
    assert new is not None
    if not stable_hash or stable_hash == facts.pod_hash or stable is None:
        # Steady state (or the first deploy, which becomes stable): no canary.
        wanted = [(new, normalized(canary.stable_metadata))]
    else:
        wanted = [
            (new, normalized(canary.canary_metadata)),
            (stable, normalized(canary.stable_metadata)),
        ]
    named = {rs.name for rs, _ in wanted}
    wanted += [(rs, None) for rs in facts.observed.replica_sets if rs.name not in named]
    return wanted


def reconcile_ephemeral_metadata(facts: CanaryFacts, out: Outbox) -> None:
    """Ask for `SetEphemeralMetadata` where a ReplicaSet's recorded metadata is not its role's."""
    for rs, desired in _wanted(facts):
        recorded = (
            None if rs is facts.new_rs and facts.creating else parse_injected(rs.ephemeral_metadata)
        )
        if recorded != desired:
            out.actions.append(act.SetEphemeralMetadata(rs.name, desired))


def blue_green_metadata(facts: BlueGreenFacts, out: Outbox) -> None:
    """Blue-green's roles (`activeMetadata` / `previewMetadata`): the ReplicaSet the active
    Service selects is active; the desired one, while it is not active yet, is the preview;
    every other ReplicaSet wears no role."""
    blue_green = facts.blue_green
    active = facts.replica_set(facts.active_hash) or facts.stable_rs
    wanted: dict[str, PodMetadata | None] = {rs.name: None for rs in facts.observed.replica_sets}
    if active is not None:
        wanted[active.name] = normalized(blue_green.active_metadata)
    if active is None or active.name != facts.new_rs.name:
        wanted[facts.new_rs.name] = normalized(blue_green.preview_metadata)
    for rs in facts.observed.replica_sets:
        if parse_injected(rs.ephemeral_metadata) != wanted[rs.name]:
            out.actions.append(act.SetEphemeralMetadata(rs.name, wanted[rs.name]))


def template_without_injected(replica_set: Mapping[str, Any]) -> dict[str, Any]:
    """A ReplicaSet's pod template without the role metadata the rollout injected into it
    (what `undo` must put back: the injected labels would make it another revision)."""
    template = dict((replica_set.get("spec") or {}).get("template") or {})
    annotations = (replica_set.get("metadata") or {}).get("annotations") or {}
    injected = parse_injected(annotations.get(EPHEMERAL_METADATA_ANNOTATION))
    if injected is None:
        return template
    metadata = dict(template.get("metadata") or {})
    for key, values in injected.items():
        kept = {k: v for k, v in (metadata.get(key) or {}).items() if k not in values}
        if kept:
            metadata[key] = kept
        else:
            metadata.pop(key, None)
    template["metadata"] = metadata
    return template
