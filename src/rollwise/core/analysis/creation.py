"""The AnalysisRun object a Rollout asks for (`CreateAnalysisRun`), built from its templates.

Who calls it: the platforms' executors, which look the (Cluster)AnalysisTemplates up and pass
a lookup in; pure otherwise. Argo's `NewAnalysisRunFromTemplates`: nested `templates[]` are
expanded (each template once), metrics, args, dryRun and measurementRetention merged with
Argo's errors, the caller's args filled in (`fieldRef` read from the Rollout). A run that cannot
be built this way (duplicate metric, unresolved required arg, missing template) is still
created, in phase Error with the reason, so the Rollout aborts with a message a person can act
on instead of retrying in silence, and nothing is ever measured from a half-resolved spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from rollwise.api import models as api
from rollwise.api.errors import UserError
from rollwise.core.analysis.args import merge_templates
from rollwise.core.timestamps import format_time

Template = api.AnalysisTemplate | api.ClusterAnalysisTemplate
TemplateLookup = Callable[[api.AnalysisTemplateRef], Template | None]


class RunRequest(Protocol):
    """What a run is built from: `CreateAnalysisRun` (a Rollout's) or
    `CreateExperimentAnalysisRun` (an Experiment's)."""

    @property
    def name(self) -> str: ...
    @property
    def analysis(self) -> api.RolloutAnalysis: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def annotations(self) -> Mapping[str, str]: ...


def rollout_field(rollout: Mapping[str, Any], field_path: str) -> str | None:
    """The value of a Rollout-side `fieldRef.fieldPath` (`metadata.name`,
    `metadata.labels['app']`, `spec.template.metadata.labels.version`, `status.x[0].y`), None
    when it does not end at a primitive."""
    value: Any = rollout
    path = field_path.replace("['", ".").replace("']", "").replace("[", ".").replace("]", "")
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if isinstance(value, Mapping | list) or value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expand_templates(
    refs: Sequence[api.AnalysisTemplateRef], lookup: TemplateLookup
) -> list[Template]:
    """The templates `refs` name, nested `templates[]` expanded depth-first, each once; raises
    UserError naming a template that does not exist."""
    found: list[Template] = []
    seen: set[tuple[bool, str]] = set()

    def visit(ref: api.AnalysisTemplateRef) -> None:
        key = (bool(ref.cluster_scope), ref.template_name)
        if key in seen:
            return
        seen.add(key)
        template = lookup(ref)
        if template is None:
            kind = "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate"
            raise UserError(f'{kind} "{ref.template_name}" not found')
        for nested in template.spec.templates or ():
            visit(nested)
        # Kept even without metrics of its own: its args, dryRun rules and annotations count.
        found.append(template)

    for ref in refs:
        visit(ref)
    return found


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The controller ownerReference that ties an object to its owner (a Rollout here)."""
    metadata = owner.get("metadata") or {}
    reference: dict[str, Any] = {
        "apiVersion": owner.get("apiVersion") or api.API_VERSION,
        "kind": owner.get("kind") or "Rollout",
        "name": metadata.get("name", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    if metadata.get("uid"):
        reference["uid"] = metadata["uid"]
    return reference


def analysis_run_object(
    action: RunRequest,
    *,
    rollout: Mapping[str, Any],
    lookup: TemplateLookup,
    now: datetime,
) -> dict[str, Any]:
    """The raw AnalysisRun to create for `action`, owned by `rollout` (the Rollout or the
    Experiment that asks for it; its fields are what `fieldRef` args read)."""
    metadata = rollout.get("metadata") or {}
    annotations = dict(action.annotations)
    spec: dict[str, Any] = {"metrics": []}
    status: dict[str, Any] | None = None
    analysis = action.analysis
    try:
        templates = expand_templates(analysis.templates or (), lookup)
        merged = merge_templates(
            templates,
            args=analysis.args or (),
            dry_run=analysis.dry_run or (),
            measurement_retention=analysis.measurement_retention or (),
            field_lookup=lambda path: rollout_field(rollout, path),
        )
    except UserError as error:
        status = {
            "phase": "Error",
            "message": f"Unable to create the AnalysisRun: {error}",
            "startedAt": format_time(now),
            "completedAt": format_time(now),
        }
    else:
        spec["metrics"] = [metric.to_raw() for metric in merged.metrics]
        if merged.args:
            spec["args"] = [arg.to_raw() for arg in merged.args]
        if merged.dry_run:
            spec["dryRun"] = [rule.to_raw() for rule in merged.dry_run]
        if merged.measurement_retention:
            spec["measurementRetention"] = [r.to_raw() for r in merged.measurement_retention]
        annotations.update(merged.annotations)
    run: dict[str, Any] = {
        "apiVersion": api.API_VERSION,
        "kind": "AnalysisRun",
        "metadata": {
            "name": action.name,
            "namespace": metadata.get("namespace") or "default",
            "labels": dict(action.labels),
            "annotations": annotations,
            "ownerReferences": [owner_reference(rollout)],
        },
        "spec": spec,
    }
    if status is not None:
        run["status"] = status
    return run
