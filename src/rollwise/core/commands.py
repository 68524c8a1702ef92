"""What a person's command writes to a Rollout: the merge patches of Argo's CLI, as values.

Who calls it: the CLI (`rollwise promote|abort|retry|pause|restart|set image|undo`) and the
dashboard. They read the rollout (and, for undo, its ReplicaSets), ask this module for the
patches, and write them with the store's merge patch: `object_patch` against the object,
`status_patch` against the status subresource. Nothing here reads a clock or a store; the
functions return the same patches `kubectl argo rollouts` sends (reference section 5.1), so
either tool can drive either mode and the controller only has to watch the same fields.

Patches are RFC 7386 merge patches (a `None` value deletes the field): `object_patch` in full
object shape (`{"spec": {"paused": false}}`), `status_patch` of the status subresource
(`{"abort": true}`), as `SqliteStore.patch(..., merge=..., status=True)` takes it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rollwise.api.errors import UserError
from rollwise.core.timestamps import format_time

RawObject = dict[str, Any]

HASH_LABEL = "rollouts-pod-template-hash"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Patches:
    """The writes of one command; an empty patch means "write nothing".

    `object_patch` is a merge patch of the object (spec and metadata), `status_patch` one of
    its status. `note` explains a command that, on purpose, writes nothing.
    """

    object_patch: Mapping[str, Any] = field(default_factory=dict)
    status_patch: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None

    @property
    def empty(self) -> bool:
        return not self.object_patch and not self.status_patch


def _spec(rollout: Mapping[str, Any]) -> Mapping[str, Any]:
    return rollout.get("spec") or {}


def _status(rollout: Mapping[str, Any]) -> Mapping[str, Any]:
    return rollout.get("status") or {}


def _name(rollout: Mapping[str, Any]) -> str:
    return str((rollout.get("metadata") or {}).get("name", ""))


def _canary_steps(rollout: Mapping[str, Any]) -> list[Any] | None:
    """The canary steps, or None for a rollout that is not a canary."""
    canary = (_spec(rollout).get("strategy") or {}).get("canary")
    if canary is None:
        return None
    return list(canary.get("steps") or [])


def _next_step_index(rollout: Mapping[str, Any], steps: Sequence[Any]) -> int:
    # Argo's GetCurrentCanaryStep treats a missing index as 0 and never moves past the end.
    index = _status(rollout).get("currentStepIndex") or 0
    return index + 1 if index < len(steps) else index


def _step_analysis_inconclusive(rollout: Mapping[str, Any]) -> bool:
    run = (_status(rollout).get("canary") or {}).get("currentStepAnalysisRunStatus") or {}
    return _canary_steps(rollout) is not None and run.get("status") == "Inconclusive"


def promote_patch(rollout: Mapping[str, Any], *, full: bool) -> Patches:
    """`promote [--full]`, as Argo's `getPatches` (cmd/promote/promote.go).

    Without `full`: clear `spec.paused` and the pause conditions. A canary that the controller
    has not paused (no pause conditions; e.g. waiting on a step analysis or experiment) is moved
    to the next step instead; an Inconclusive step analysis also clears `controllerPause` and
    moves on, otherwise the rollout would stay stuck on it. Like Argo, a rollout paused only by
    `spec.paused` is unpaused *and* moved to the next step.
    With `full`: `status.promoteFull: true` (skip every remaining step, pause and analysis),
    and unpause; nothing is written for a rollout whose current revision is already stable.
    """
    spec = _spec(rollout)
    status = _status(rollout)
    paused = bool(spec.get("paused"))
    pause_conditions = bool(status.get("pauseConditions"))
    spec_patch: RawObject = {"spec": {"paused": False}} if paused else {}

    if full:
        if status.get("currentPodHash") == status.get("stableRS"):
            return Patches(
                object_patch=spec_patch,
                note=f"rollout '{_name(rollout)}' is already fully promoted",
            )
        status_fields: RawObject = {"promoteFull": True}
        if pause_conditions:
            status_fields["pauseConditions"] = None
        return Patches(object_patch=spec_patch, status_patch=status_fields)

    steps = _canary_steps(rollout)
    if _step_analysis_inconclusive(rollout) and pause_conditions and status.get("controllerPause"):
        assert steps is not None  # an inconclusive step analysis implies a canary
        return Patches(
            object_patch=spec_patch,
            status_patch={
                "pauseConditions": None,
                "controllerPause": False,
                "currentStepIndex": _next_step_index(rollout, steps),
            },
        )
    if pause_conditions:
        return Patches(object_patch=spec_patch, status_patch={"pauseConditions": None})
    if steps:
        return Patches(
            object_patch=spec_patch,
            status_patch={
                "pauseConditions": None,
                "currentStepIndex": _next_step_index(rollout, steps),
            },
        )
    return Patches(object_patch=spec_patch)


def abort_patch(rollout: Mapping[str, Any]) -> Patches:
    """`abort`: the controller sends traffic back to stable and marks the rollout Degraded."""
    return Patches(status_patch={"abort": True})


def retry_patch(rollout: Mapping[str, Any]) -> Patches:
    """`retry rollout`: clear the abort, so the steps start again from the first."""
    return Patches(status_patch={"abort": False})


def pause_patch(rollout: Mapping[str, Any]) -> Patches:
    """`pause`: a manual pause, lifted only by `promote`."""
    return Patches(object_patch={"spec": {"paused": True}})


def restart_patch(
    rollout: Mapping[str, Any], now: datetime, *, delay: timedelta = timedelta(0)
) -> Patches:
    """`restart [--in D]`: pods older than `spec.restartAt` are replaced, one at a time."""
    return Patches(object_patch={"spec": {"restartAt": format_time(now + delay)}})


def container_names(template: Mapping[str, Any]) -> list[str]:
    """Names of every container of a pod template (init, app and ephemeral), in that order."""
    pod_spec = template.get("spec") or {}
    return [c.get("name", "") for key in CONTAINER_LISTS for c in pod_spec.get(key) or []]


def set_image_patch(rollout: Mapping[str, Any], container: str, image: str) -> Patches:
    """`set image ROLLOUT CONTAINER=IMAGE`; `*` names every container.

    Merge patches replace lists whole, so each changed container list is written complete.
    """
    if not container or not image:
        raise UserError(f"expected CONTAINER=IMAGE with both parts set, got '{container}={image}'")
    template = _spec(rollout).get("template") or {}
    pod_spec = template.get("spec") or {}
    changed: RawObject = {}
    found = False
    for key in CONTAINER_LISTS:
        containers = pod_spec.get(key)
        if not containers:
            continue
        updated = copy.deepcopy(list(containers))
        for entry in updated:
            if container == "*" or entry.get("name") == container:
                entry["image"] = image
                found = True
        if updated != containers:
            changed[key] = updated
    if not found:
        names = container_names(template)
        existing = ", ".join(names) if names else "none"
        raise UserError(
            f"rollout '{_name(rollout)}' has no container named '{container}' "
            f"(containers: {existing})"
        )
    if not changed:
        return Patches(note=f"rollout '{_name(rollout)}' already runs {image}")
    return Patches(object_patch={"spec": {"template": {"spec": changed}}})


def revision_of(replica_set: Mapping[str, Any]) -> int | None:
    """The rollout revision a ReplicaSet holds (its `rollout.argoproj.io/revision`)."""
    annotations = (replica_set.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations[REVISION_ANNOTATION])
    except (KeyError, TypeError, ValueError):
        return None


def template_without_hash(template: Mapping[str, Any]) -> RawObject:
    """A copy of a pod template without the hash label the controller adds to its ReplicaSet."""
    result = copy.deepcopy(dict(template))
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        labels = metadata.get("labels")
        if isinstance(labels, dict):
            labels.pop(HASH_LABEL, None)
            if not labels:
                del metadata["labels"]
        if not metadata:
            del result["metadata"]
    return result


def replacement_patch(current: Any, target: Any) -> Any:
    """The RFC 7386 merge patch that turns `current` into exactly `target`.

    Keys missing from `target` become `None` (delete); lists and scalars are replaced whole.
    """
    if not isinstance(current, Mapping) or not isinstance(target, Mapping):
        return copy.deepcopy(target)
    patch: RawObject = {}
    for key in current:
        if key not in target:
            patch[key] = None
    for key, value in target.items():
        if key not in current:
            patch[key] = copy.deepcopy(value)
        elif current[key] != value:
            patch[key] = replacement_patch(current[key], value)
    return patch


def undo_patch(
    rollout: Mapping[str, Any],
    replica_sets: Sequence[Mapping[str, Any]],
    to_revision: int | None,
) -> Patches:
    """`undo [--to-revision N]`: put the pod template of revision N back in `spec.template`.

    `replica_sets` are the ReplicaSets the rollout owns. Without a revision, the previous one
    (second newest) is used, as Argo does. The controller then sees a known template and treats
    it as a rollback.
    """
    name = _name(rollout)
    by_revision: dict[int, Mapping[str, Any]] = {}
    for replica_set in replica_sets:
        revision = revision_of(replica_set)
        if revision is not None:
            by_revision[revision] = replica_set
    known = sorted(by_revision)
    listed = ", ".join(str(r) for r in known) if known else "none"
    if to_revision is None or to_revision == 0:
        if len(known) < 2:
            raise UserError(
                f"rollout '{name}' has no previous revision to undo to (revisions: {listed})"
            )
        revision = known[-2]
    else:
        if to_revision not in by_revision:
            raise UserError(
                f"revision {to_revision} of rollout '{name}' not found (revisions: {listed})"
            )
        revision = to_revision
    # Without the role metadata it wears now (canaryMetadata/stableMetadata), or the template
    # would be a new revision instead of a rollback. (Imported here: the other commands need
    # no models, and the CLI starts faster without them.)
    from rollwise.core.canary_metadata import template_without_injected

    target = template_without_hash(template_without_injected(by_revision[revision]))
    current = _spec(rollout).get("template") or {}
    if template_without_hash(current) == target:
        return Patches(
            note=f"skipped rollback (current template already matches revision {revision})"
        )
    return Patches(object_patch={"spec": {"template": replacement_patch(current, target)}})
