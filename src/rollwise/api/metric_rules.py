"""Rules for metrics, as in templates and runs: Argo's `ValidateMetric`, at lint time.

Where this sits: used by `rollwise.api.analysis_rules` for AnalysisTemplate,
ClusterAnalysisTemplate and AnalysisRun documents and for the templates a Rollout merges into
one run. Argo applies these rules only when it creates a run, so a typo becomes an `Error` run
in the middle of a release (reference section 2.3); here they run before anything is deployed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rollwise.api.context import Report
from rollwise.api.durations import parse_duration
from rollwise.api.manifests import FieldPath
from rollwise.api.models import Argument, DryRun, MeasurementRetention, Metric, MetricProvider

PROVIDERS: tuple[str, ...] = tuple(
    info.alias or name for name, info in MetricProvider.model_fields.items()
)
"""Provider keys in YAML spelling, in the order the error messages list them."""

# The one setting without which each provider cannot take a measurement.
_PROVIDER_NEEDS = {"prometheus": "query", "web": "url", "job": "spec", "graphite": "query"}

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_INTEGER = re.compile(r"[+-]?\d+")


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


def value_sources(argument: Argument) -> list[str]:
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
        sources = value_sources(argument)
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
