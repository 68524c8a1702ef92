"""Rules for analysis: metrics of templates and runs, and the references that call templates.

Where this sits: called by `rollwise.api.validation` for AnalysisTemplate,
ClusterAnalysisTemplate and AnalysisRun documents, and by `rollwise.api.rollout_rules` for
every place a Rollout or Experiment names templates (step, background, pre/post-promotion and
experiment analyses).

The metric rules are Argo's `ValidateMetric` (reference section 2.3), which Argo only applies
when a run is created, turning a typo into an `Error` run in the middle of a release; here they
run at lint time. The reference rules go further than Argo's validation: a missing template,
an argument no one supplies (Argo issue #1052) and a step analysis that can never finish are
reported before anything is deployed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rollwise.api.context import Catalog, Report, TemplateFound
from rollwise.api.durations import parse_duration
from rollwise.api.manifests import FieldPath
from rollwise.api.models import (
    AnalysisTemplateSpec,
    Argument,
    DryRun,
    MeasurementRetention,
    Metric,
    MetricProvider,
    RawObject,
    RolloutAnalysis,
)

PROVIDERS: tuple[str, ...] = tuple(
    info.alias or name for name, info in MetricProvider.model_fields.items()
)
"""Provider keys in YAML spelling, in the order the error messages list them."""

# The one setting without which each provider cannot take a measurement.
_PROVIDER_NEEDS = {"prometheus": "query", "web": "url", "job": "spec", "graphite": "query"}

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_INTEGER = re.compile(r"[+-]?\d+")
_LIMITS = ("failureLimit", "inconclusiveLimit", "consecutiveErrorLimit", "consecutiveSuccessLimit")


# --- int-or-string numbers and durations ---------------------------------------------------------


@dataclass(frozen=True)
class _Number:
    """An int-or-string field read the way Argo reads it."""

    value: int | None  # None: unset, or a placeholder only known once args are substituted
    templated: bool = False
    junk: bool = False


def _read_number(raw: int | str | None) -> _Number:
    if raw is None:
        return _Number(None)
    if isinstance(raw, int):
        return _Number(raw)
    text = raw.strip()
    if _INTEGER.fullmatch(text):
        return _Number(int(text))
    if "{{" in text:
        return _Number(None, templated=True)
    return _Number(0, junk=True)  # Argo's int-or-string helper silently reads junk as 0


def check_duration(report: Report, path: FieldPath, value: int | str | None) -> float | None:
    if value is None or (isinstance(value, str) and "{{" in value):
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        report.error(path, str(error))
        return None
    if seconds < 0:
        report.error(path, f"duration {value!r} is negative")
    return seconds


def never_finishes(metric: Metric) -> bool:
    """A metric with an interval and no count measures until the run is terminated."""
    if not metric.interval:
        return False
    count = _read_number(metric.count)
    success = _read_number(metric.consecutive_success_limit)
    if count.templated or success.templated:
        return False  # known only once the caller's args are substituted
    return not count.value and not (success.value and success.value > 0)


# --- metrics -------------------------------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _check_provider(report: Report, metric: Metric, path: FieldPath) -> None:
    where = (*path, "provider")
    raw = metric.provider.to_raw() if metric.provider is not None else {}
    expected = ", ".join(PROVIDERS)
    if not raw:
        report.error(where, f"metric {metric.name!r} has no provider; expected one of {expected}")
        return
    known = [key for key in raw if key in PROVIDERS]
    for key in raw:
        if key not in PROVIDERS:
            report.error((*where, key), f"unknown provider {key!r}; expected one of {expected}")
    if len(known) > 1:
        report.error(
            where,
            f"metric {metric.name!r} names {len(known)} providers ({', '.join(known)});"
            " a metric takes exactly one",
        )
    for key in known:
        settings = raw[key]
        if not isinstance(settings, dict) or not settings:
            report.error((*where, key), f"provider {key} has no settings")
        elif key == "plugin" and len(settings) != 1:
            report.error(
                (*where, key),
                f"plugin names {len(settings)} plugins; it takes exactly one 'org/name': config",
            )
        elif key in _PROVIDER_NEEDS and not settings.get(_PROVIDER_NEEDS[key]):
            report.error((*where, key), f"provider {key} needs a {_PROVIDER_NEEDS[key]}")


def _check_limits(report: Report, metric: Metric, path: FieldPath) -> None:
    raw_values: dict[str, int | str | None] = {
        "count": metric.count,
        "failureLimit": metric.failure_limit,
        "inconclusiveLimit": metric.inconclusive_limit,
        "consecutiveErrorLimit": metric.consecutive_error_limit,
        "consecutiveSuccessLimit": metric.consecutive_success_limit,
    }
    numbers: dict[str, _Number] = {}
    for key, raw in raw_values.items():
        number = _read_number(raw)
        numbers[key] = number
        if number.junk:
            report.warning(
                (*path, key),
                f"{raw!r} is neither a number nor an {{{{args.NAME}}}} placeholder;"
                " Argo Rollouts reads it as 0",
            )
        if number.value is not None and number.value < 0:
            if key == "failureLimit" and number.value == -1:
                continue
            allowed = " (or -1 for no limit)" if key == "failureLimit" else ""
            report.error(
                (*path, key), f"{key} {number.value} is negative; expected 0 or more{allowed}"
            )
    if any(number.templated for number in numbers.values()):
        return  # the arithmetic below needs the values the caller's args will give
    count = numbers["count"].value or 0
    failure = numbers["failureLimit"].value or 0
    inconclusive = numbers["inconclusiveLimit"].value or 0
    success = numbers["consecutiveSuccessLimit"].value or 0
    if failure == -1 and success <= 0:
        report.error(
            (*path, "failureLimit"),
            "failureLimit -1 turns the failure check off and needs consecutiveSuccessLimit above 0",
        )
    if count > 0:
        if failure >= 0 and success >= 0 and count < failure + success:
            report.error(
                (*path, "count"),
                f"count {count} is less than failureLimit + consecutiveSuccessLimit"
                f" ({failure} + {success}); Argo Rollouts rejects the metric",
            )
        if count < inconclusive:
            report.error(
                (*path, "count"), f"count {count} is less than inconclusiveLimit {inconclusive}"
            )
        if count > 1 and not metric.interval:
            report.error((*path, "count"), f"count {count} needs an interval between measurements")


def _check_placeholders(
    report: Report, metric: Metric, path: FieldPath, declared: frozenset[str] | None
) -> None:
    seen: set[str] = set()
    for text in _strings(metric.to_raw()):
        for match in _TAG.finditer(text):
            tag = match.group(1).strip()
            if tag in seen:
                continue
            seen.add(tag)
            if not tag.startswith("args."):
                report.error(
                    path,
                    f"metric {metric.name!r} uses {{{{{tag}}}}}; only {{{{args.NAME}}}}"
                    " placeholders are filled in a metric",
                )
                continue
            name = tag.removeprefix("args.").strip()
            if declared is not None and name not in declared:
                known = ", ".join(sorted(declared)) if declared else "none"
                report.error(
                    path,
                    f"metric {metric.name!r} uses {{{{args.{name}}}}}, which is not one of the"
                    f" declared args ({known})",
                )


def check_metric(
    report: Report, metric: Metric, path: FieldPath, *, declared_args: frozenset[str] | None
) -> None:
    """Argo's ValidateMetric, plus: placeholders that name an arg nobody declares."""
    if not metric.name:
        report.error((*path, "name"), "a metric needs a name")
    _check_provider(report, metric, path)
    _check_limits(report, metric, path)
    check_duration(report, (*path, "interval"), metric.interval)
    check_duration(report, (*path, "initialDelay"), metric.initial_delay)
    _check_placeholders(report, metric, path, declared_args)


def check_metric_rules(
    report: Report,
    rules: Sequence[DryRun | MeasurementRetention],
    path: FieldPath,
    *,
    metric_names: Sequence[str] | None,
) -> None:
    """dryRun / measurementRetention: each metricName is an unanchored regex that must match."""
    for index, rule in enumerate(rules):
        where = (*path, index, "metricName")
        try:
            pattern = re.compile(rule.metric_name)
        except re.error as error:
            report.error(
                where,
                f"{rule.metric_name!r} is not a valid regular expression ({error});"
                " metricName is a regex, '.*' matches every metric",
            )
            continue
        if metric_names is not None and not any(pattern.search(name) for name in metric_names):
            report.error(
                where,
                f"{rule.metric_name!r} matches no metric ({', '.join(metric_names) or 'none'});"
                " Argo Rollouts fails the run",
            )
        if isinstance(rule, MeasurementRetention) and rule.limit < 0:
            report.error((*path, index, "limit"), f"limit {rule.limit} is negative")


def check_metrics(
    report: Report,
    metrics: Sequence[Metric],
    path: FieldPath,
    *,
    declared_args: frozenset[str] | None,
) -> list[str]:
    names: dict[str, int] = {}
    for index, metric in enumerate(metrics):
        if metric.name in names:
            report.error(
                (*path, index, "name"),
                f"metric name {metric.name!r} is also used by metrics[{names[metric.name]}];"
                " names must be unique",
            )
        names.setdefault(metric.name, index)
        check_metric(report, metric, (*path, index), declared_args=declared_args)
    return list(names)


# --- args ----------------------------------------------------------------------------------------


def _value_sources(argument: Argument) -> list[str]:
    source = argument.value_from
    if source is None:
        return []
    found = source.to_raw()
    return [key for key, value in found.items() if value is not None]


def check_template_args(report: Report, args: Sequence[Argument], path: FieldPath) -> None:
    """Args declared by a template or carried by a run."""
    seen: dict[str, int] = {}
    for index, argument in enumerate(args):
        where = (*path, index)
        if argument.name in seen:
            report.error((*where, "name"), f"arg {argument.name!r} is declared twice")
        seen.setdefault(argument.name, index)
        if argument.value is not None and argument.value_from is not None:
            report.error(where, f"arg {argument.name!r} has both value and valueFrom; give one")
        if argument.value_from is None:
            continue
        sources = _value_sources(argument)
        if argument.value_from.pod_template_hash_value is not None:
            report.error(
                (*where, "valueFrom", "podTemplateHashValue"),
                "podTemplateHashValue is only filled in a Rollout's args, not in a template's",
            )
        elif argument.value_from.field_ref is not None:
            report.warning(
                (*where, "valueFrom", "fieldRef"),
                "the analysis controller does not resolve fieldRef in a template's args;"
                " pass the value from the Rollout's args instead",
            )
        if len(sources) != 1:
            report.error(
                (*where, "valueFrom"), "valueFrom takes exactly one of secretKeyRef or fieldRef"
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
        elif len(_value_sources(argument)) != 1:
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
