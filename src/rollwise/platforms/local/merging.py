"""JSON merge patches (RFC 7386) and kubectl's three-way apply patch, on raw objects.

Who uses this: `store.SqliteStore.patch` and `.apply`. Pure functions on JSON-shaped values;
they never modify their arguments.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` with the RFC 7386 merge `patch` applied: objects merge, `null` deletes a key,
    anything else (lists included) replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def three_way_merge_patch(
    original: Mapping[str, Any], modified: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, Any]:
    """The merge patch `kubectl apply` sends for a custom resource.

    `original` is what was applied last time, `modified` what is applied now, `current` what is
    stored. Keys the person removed from their file since the last apply are deleted; keys they
    never wrote (set by a controller or another command, e.g. `spec.paused` from `pause`) are
    kept; every value they wrote wins.
    """
    # The two never disagree on a leaf: deletions name keys absent from `modified`, changes
    # name keys present in it; where both hold a sub-object they are laid over each other.
    return _overlay(_deleted_keys(original, modified), _changed_keys(current, modified))


def _changed_keys(current: Mapping[str, Any], modified: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in modified.items():
        present = current.get(key)
        if isinstance(value, Mapping) and isinstance(present, Mapping):
            sub = _changed_keys(present, value)
            if sub:
                patch[key] = sub
        elif key not in current or present != value:
            patch[key] = copy.deepcopy(value)
    return patch


def _deleted_keys(original: Mapping[str, Any], modified: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in original.items():
        if key not in modified:
            patch[key] = None
            continue
        after = modified[key]
        if isinstance(value, Mapping) and isinstance(after, Mapping):
            sub = _deleted_keys(value, after)
            if sub:
                patch[key] = sub
    return patch


def _overlay(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in top.items():
        below = result.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            result[key] = _overlay(below, value)
        else:
            result[key] = value
    return result
