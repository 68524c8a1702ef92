"""Rules for the places that call analysis templates, and for the templates themselves.

Where this sits: called by `rollwise.api.validation` for AnalysisTemplate,
ClusterAnalysisTemplate and AnalysisRun documents, and by `rollwise.api.rollout_rules` for
every place a Rollout or Experiment names templates (step, background, pre/post-promotion and
experiment analyses). The metrics themselves are checked by `rollwise.api.metric_rules`.

Argo only finds out when it creates a run that a template is missing, that an argument is
never supplied (issue #1052) or that a step analysis can never finish; these rules report them
before anything is deployed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rollwise.api.context import Catalog, Report, TemplateFound
from rollwise.api.manifests import FieldPath
from rollwise.api.metric_rules import (
    check_metric_rules,
    check_metrics,
    check_template_args,
    never_finishes,
    value_sources,
)
from rollwise.api.models import (
    AnalysisTemplateSpec,
    Argument,
    DryRun,
    MeasurementRetention,
    Metric,
    RawObject,
    RolloutAnalysis,
)

_LABEL_REF = re.compile(r"metadata\.(labels|annotations)\[['\"]?(.+?)['\"]?\]")


def _field_ref_problem(owner: RawObject, field_path: str) -> str | None:
    """Argo resolves metadata.* field refs against the Rollout at validation time."""
    if not field_path.startswith("metadata."):
        return None  # walked through the live object when the run is created
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return None
    match = _LABEL_REF.fullmatch(field_path)
    if match is None:
        return (
            f"fieldRef {field_path!r} is not supported; use metadata.name, metadata.namespace,"
            " metadata.uid, metadata.labels['KEY'] or metadata.annotations['KEY']"
        )
    group, key = match.groups()
    metadata = owner.get("metadata")
    values = metadata.get(group) if isinstance(metadata, dict) else None
    if not isinstance(values, dict) or key not in values:
        noun = "label" if group == "labels" else "annotation"
        return (
            f"fieldRef {field_path} does not resolve: the {owner.get('kind')} has no {noun} {key!r}"
        )
    return None


def check_caller_args(
    report: Report, args: Sequence[Argument], path: FieldPath, *, owner: RawObject, rollout: bool
) -> None:
    """Args a Rollout or Experiment passes to its templates."""
    seen: dict[str, int] = {}
    for index, argument in enumerate(args):
        where = (*path, index)
        if argument.name in seen:
            report.error((*where, "name"), f"arg {argument.name!r} is given twice")
        seen.setdefault(argument.name, index)
        source = argument.value_from
        if argument.value is not None and source is not None:
            report.error(where, f"arg {argument.name!r} has both value and valueFrom; give one")
        if argument.value is None and source is None:
            report.warning(
                where,
                f"arg {argument.name!r} has neither value nor valueFrom;"
                " Argo Rollouts passes an empty string",
            )
        if source is None:
            continue
        if rollout and source.secret_key_ref is not None:
            report.error(
                (*where, "valueFrom", "secretKeyRef"),
                "secretKeyRef is only read in an AnalysisTemplate's args; a Rollout passes value,"
                " valueFrom.podTemplateHashValue or valueFrom.fieldRef",
            )
        elif len(value_sources(argument)) != 1:
            report.error(
                (*where, "valueFrom"),
                "valueFrom takes exactly one of podTemplateHashValue or fieldRef",
            )
        if source.field_ref is not None:
            problem = _field_ref_problem(owner, source.field_ref.field_path)
            if problem is not None:
                report.error((*where, "valueFrom", "fieldRef", "fieldPath"), problem)


# --- templates and references ------------------------------------------------------------------


def check_template_spec(
    report: Report, spec: AnalysisTemplateSpec, *, catalog: Catalog, namespace: str | None
) -> None:
    """An AnalysisTemplate or ClusterAnalysisTemplate on its own."""
    path: FieldPath = ("spec",)
    metrics = spec.metrics or []
    if not metrics and not spec.templates:
        report.error(
            (*path, "metrics"), "a template needs at least one metric (or templates to include)"
        )
    nested = bool(spec.templates)
    # With nested templates, args and metrics come from several templates merged into one run,
    # so what one template declares is not the whole story.
    declared = None if nested else frozenset(arg.name for arg in spec.args or [])
    check_template_args(report, spec.args or [], (*path, "args"))
    names = check_metrics(report, metrics, (*path, "metrics"), declared_args=declared)
    known_names = None if nested else names
    check_metric_rules(report, spec.dry_run or [], (*path, "dryRun"), metric_names=known_names)
    check_metric_rules(
        report,
        spec.measurement_retention or [],
        (*path, "measurementRetention"),
        metric_names=known_names,
    )
    for index, ref in enumerate(spec.templates or []):
        cluster = bool(ref.cluster_scope)
        where = (*path, "templates", index, "templateName")
        if not ref.template_name:
            report.error(where, "templateName is empty")
        elif catalog.find_template(ref.template_name, cluster=cluster, namespace=namespace) is None:
            report.error(where, _not_found(catalog, ref.template_name, cluster, namespace))


def check_run_spec(
    report: Report, metrics: Sequence[Metric], args: Sequence[Argument], rules: Sequence[DryRun]
) -> None:
    """An AnalysisRun written by hand: metrics as in templates, every arg already resolved."""
    path: FieldPath = ("spec",)
    if not metrics:
        report.error((*path, "metrics"), "an AnalysisRun needs at least one metric")
    check_template_args(report, args, (*path, "args"))
    for index, argument in enumerate(args):
        if argument.value is None and argument.value_from is None:
            report.error(
                (*path, "args", index),
                f"args.{argument.name} was not resolved: give it a value or valueFrom",
            )
    declared = frozenset(argument.name for argument in args)
    names = check_metrics(report, metrics, (*path, "metrics"), declared_args=declared)
    check_metric_rules(report, rules, (*path, "dryRun"), metric_names=names)


def _not_found(catalog: Catalog, name: str, cluster: bool, namespace: str | None) -> str:
    kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
    return (
        f"{kind} {name!r} not found: {catalog.where_looked(cluster=cluster, namespace=namespace)}"
    )


@dataclass(frozen=True)
class Caller:
    """Who runs the analysis, for messages and for whether it must finish on its own."""

    purpose: str  # "step analysis", "background analysis", "prePromotionAnalysis", ...
    args_hint: str  # where to add a missing arg: "the step's args"
    must_finish: bool  # a step or pre/post-promotion analysis blocks the rollout until it ends


@dataclass(frozen=True)
class TemplateRef:
    name: str
    cluster: bool
    path: FieldPath


def _resolve(
    report: Report, refs: Sequence[TemplateRef], *, catalog: Catalog, namespace: str | None
) -> tuple[list[TemplateFound], bool]:
    """The templates the refs name, nested ones included; complete=False when any is unknown."""
    found: list[TemplateFound] = []
    complete = True
    seen: set[tuple[str, str]] = set()

    def include(template: TemplateFound) -> None:
        nonlocal complete
        if (template.kind, template.name) in seen:
            return  # Argo de-duplicates templates by name when it flattens them
        seen.add((template.kind, template.name))
        found.append(template)
        if template.spec is None:
            complete = False
            return
        for ref in template.spec.templates or []:
            nested = catalog.find_template(
                ref.template_name, cluster=bool(ref.cluster_scope), namespace=namespace
            )
            if nested is None:
                complete = False  # reported at the template that names it
            else:
                include(nested)

    for ref in refs:
        if not ref.name:
            report.error(ref.path, "templateName is empty")
            complete = False
            continue
        template = catalog.find_template(ref.name, cluster=ref.cluster, namespace=namespace)
        if template is None:
            report.error(ref.path, _not_found(catalog, ref.name, ref.cluster, namespace))
            complete = False
        else:
            include(template)
    return found, complete


def _check_resolved(
    report: Report,
    templates: Sequence[TemplateFound],
    path: FieldPath,
    *,
    caller: Caller,
    args: Sequence[Argument],
    rules: Sequence[tuple[Sequence[DryRun | MeasurementRetention], FieldPath]],
) -> None:
    """What Argo checks when it merges the templates into a run, and what it never checks."""
    metrics: list[tuple[Metric, str]] = []
    owners: dict[str, str] = {}
    merged: dict[str, tuple[Argument, str]] = {}
    for template in templates:
        if template.spec is None:
            continue  # only called when every template was resolved; this keeps mypy sure
        for metric in template.spec.metrics or []:
            if metric.name in owners:
                report.error(
                    (*path, "templates"),
                    f"metric {metric.name!r} is in both {owners[metric.name]} and"
                    f" {template.name}; metric names must be unique across an analysis",
                )
                continue
            owners[metric.name] = template.name
            metrics.append((metric, template.name))
        for argument in template.spec.args or []:
            previous = merged.get(argument.name)
            if previous is None or (previous[0].value is None and previous[0].value_from is None):
                merged[argument.name] = (argument, template.name)
            elif (
                argument.value is not None
                and previous[0].value is not None
                and argument.value != previous[0].value
            ):
                report.error(
                    (*path, "templates"),
                    f"arg {argument.name!r} is {previous[0].value!r} in {previous[1]} and"
                    f" {argument.value!r} in {template.name}; merged templates must agree",
                )
    supplied = {argument.name for argument in args}
    for name, (argument, _) in merged.items():
        if argument.value is None and argument.value_from is None and name not in supplied:
            report.error(
                (*path, "args"), f"args.{name} was not resolved: add it to {caller.args_hint}"
            )
    names = ", ".join(template.name for template in templates)
    for index, argument in enumerate(args):
        if argument.name not in merged:
            report.warning(
                (*path, "args", index, "name"),
                f"arg {argument.name!r} is not declared by {names}; Argo Rollouts ignores it",
            )
    metric_names = [metric.name for metric, _ in metrics]
    for entries, where in rules:
        check_metric_rules(report, entries, where, metric_names=metric_names)
    if not caller.must_finish:
        return
    for metric, template_name in metrics:
        if never_finishes(metric):
            report.warning(
                path,
                f"metric {metric.name!r} has an interval and no count, so this"
                f" {caller.purpose} never completes (in template {template_name};"
                " give the metric a count)",
            )


def check_analysis_refs(
    report: Report,
    refs: Sequence[TemplateRef],
    path: FieldPath,
    *,
    args: Sequence[Argument],
    rules: Sequence[tuple[Sequence[DryRun | MeasurementRetention], FieldPath]] = (),
    caller: Caller,
    catalog: Catalog,
    namespace: str | None,
) -> None:
    templates, complete = _resolve(report, refs, catalog=catalog, namespace=namespace)
    if complete and templates:
        _check_resolved(report, templates, path, caller=caller, args=args, rules=rules)
    else:
        for entries, where in rules:
            check_metric_rules(report, entries, where, metric_names=None)


def check_rollout_analysis(
    report: Report,
    analysis: RolloutAnalysis,
    path: FieldPath,
    *,
    caller: Caller,
    catalog: Catalog,
    owner: RawObject,
    namespace: str | None,
) -> None:
    """A step, background, pre- or post-promotion analysis of a Rollout."""
    refs = [
        TemplateRef(
            ref.template_name, bool(ref.cluster_scope), (*path, "templates", i, "templateName")
        )
        for i, ref in enumerate(analysis.templates or [])
    ]
    if not refs:
        report.error(
            (*path, "templates"),
            f"a {caller.purpose} needs at least one template, e.g."
            " templates: [{templateName: success-rate}]",
        )
    args = analysis.args or []
    check_caller_args(report, args, (*path, "args"), owner=owner, rollout=True)
    rules: list[tuple[Sequence[DryRun | MeasurementRetention], FieldPath]] = [
        (analysis.dry_run or [], (*path, "dryRun")),
        (analysis.measurement_retention or [], (*path, "measurementRetention")),
    ]
    check_analysis_refs(
        report,
        refs,
        path,
        args=args,
        rules=rules,
        caller=caller,
        catalog=catalog,
        namespace=namespace,
    )
