"""The pod-template hash that names a revision (`rollouts-pod-template-hash`).

Who calls it: the core, to tell whether `spec.template` is a new revision; the platforms, to
label ReplicaSets and pods. Like Kubernetes' `controller.ComputeHash`: FNV-32a over the template
(here a canonical JSON, so dict order never matters) plus the collision count, and the decimal
form of the 32-bit sum mapped through `rand.SafeEncodeString`'s alphabet (no vowels, no 0/1/3,
so a hash can never spell a word). The decimal is zero-padded to 10 digits so every hash has the
same length.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

HASH_LABEL = "rollouts-pod-template-hash"

# Kubernetes' k8s.io/apimachinery/pkg/util/rand alphanums.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32a(data: bytes) -> int:
    """The 32-bit FNV-1a sum of `data`."""
    value = _FNV32_OFFSET
    for byte in data:
        value ^= byte
        value = (value * _FNV32_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """Kubernetes' SafeEncodeString: each character mapped into the vowel-free alphabet."""
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in text)


def template_without_hash_label(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `template` without the hash label (and without metadata left empty by that).

    A ReplicaSet's template carries the label, the Rollout's does not; both must hash the same.
    """
    result = dict(template)
    metadata = result.get("metadata")
    if isinstance(metadata, Mapping):
        labels = metadata.get("labels")
        if isinstance(labels, Mapping) and HASH_LABEL in labels:
            new_labels = {k: v for k, v in labels.items() if k != HASH_LABEL}
            new_metadata = dict(metadata)
            if new_labels:
                new_metadata["labels"] = new_labels
            else:
                del new_metadata["labels"]
            if new_metadata:
                result["metadata"] = new_metadata
            else:
                del result["metadata"]
    return result


def pod_template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The 10-character hash of a pod template, independent of key order and of the hash label."""
    canonical = json.dumps(
        template_without_hash_label(template),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    ).encode()
    if collision_count is not None:
        # Kubernetes writes the collision count into the hasher after the object.
        canonical += (collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(f"{fnv32a(canonical):010d}")


def template_with_hash_label(template: Mapping[str, Any], pod_hash: str) -> dict[str, Any]:
    """A copy of `template` whose metadata.labels carry `rollouts-pod-template-hash: pod_hash`."""
    result = dict(template)
    metadata = dict(result.get("metadata") or {})
    labels = dict(metadata.get("labels") or {})
    labels[HASH_LABEL] = pod_hash
    metadata["labels"] = labels
    result["metadata"] = metadata
    return result
