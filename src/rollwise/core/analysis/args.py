"""Arguments: merging templates into one run, resolving arg values, `{{args.x}}` substitution.

Where this sits: used when an AnalysisRun is made from templates (the controller's run
creation, `rollwise analyze`) and by `rollwise.core.analysis.runs` before every reconcile.
Pure: secrets and fields are read through the lookups the caller passes in.

Argo's rules (reference 2.1, 2.9), kept:
- `merge_templates`: metrics are concatenated (a duplicate name is an error), args with the same
  name must not carry two different values (a later template may fill one an earlier left
  empty), dryRun and measurementRetention rules are concatenated (duplicates are errors); the
  caller's args then override the templates' by name (undeclared ones are ignored), and a
  declared arg still without value or valueFrom fails: "args.X was not resolved".
- `substitute`: `{{args.x}}` is replaced over the JSON of the whole metric, so every string
  field can be parameterised, int-or-string fields included; whitespace inside the braces is
  trimmed; values are JSON-string-escaped; a tag that is not a known arg is an error
  ("failed to resolve {{args.x}}"), so a stray `{{` in a query breaks the run, as in Argo.
- secret values are fetched only to measure; `mask` replaces them with `*****` in any text that
  could be shown (messages, values, logs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rollwise.api.errors import UserError
from rollwise.api.models import (
    AnalysisTemplate,
    Argument,
    ClusterAnalysisTemplate,
    DryRun,
    MeasurementRetention,
    Metric,
)
from rollwise.core.analysis.nodata import is_no_data_annotation
from rollwise.core.analysis.onterminate import is_on_terminate_annotation

MASK = "*****"
SECRET_PLACEHOLDER = "temp-for-secret"
"""What a secret arg reads as when no secret lookup is given (scheduling and validation only,
as Argo does before it fetches the secret to measure)."""

SecretLookup = Callable[[str, str], str | None]
"""(secret name, key) -> the value, None when the secret or the key does not exist. May raise
UserError with a better message."""

FieldLookup = Callable[[str], str | None]
"""fieldPath -> the value of that field of the calling Rollout, None when it does not resolve."""

_OPEN, _CLOSE = "{{", "}}"


@dataclass(frozen=True)
class ResolvedArgs:
    values: Mapping[str, str | None]
    """Each arg's value; None for a declared arg nobody supplied (an error only if used)."""
    secrets: frozenset[str] = field(default_factory=frozenset)
    """The secret values among them, for `mask`."""


# --- masking -----------------------------------------------------------------------------------


def mask(text: str, secrets: Collection[str]) -> str:
    """`text` with every secret value replaced by `*****`, longest first (a secret containing
    another is masked whole)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


# --- merging args ------------------------------------------------------------------------------


def _resolve_caller_arg(argument: Argument, field_lookup: FieldLookup | None) -> Argument:
    """A caller (Rollout-side) arg with its fieldRef read; podTemplateHashValue must already be
    filled by the rollout engine (`rollwise.core.analysis_runs.resolve_args`)."""
    source = argument.value_from
    if argument.value is not None or source is None:
        return argument
    if source.field_ref is not None:
        path = source.field_ref.field_path
        value = field_lookup(path) if field_lookup is not None else None
        if value is None:
            raise UserError(f"args.{argument.name}: fieldRef {path!r} does not resolve")
        return Argument(name=argument.name, value=value)
    if source.pod_template_hash_value is not None:
        raise UserError(
            f"args.{argument.name}: podTemplateHashValue {source.pod_template_hash_value}"
            " is only known to the rollout that creates the run"
        )
    return argument


def merge_args(
    template_args: Sequence[Argument],
    caller_args: Sequence[Argument] = (),
    *,
    field_lookup: FieldLookup | None = None,
) -> list[Argument]:
    """Argo's `MergeArgs`: the templates' args with the caller's values by name; raises
    UserError "args.X was not resolved" for a declared arg left without value or valueFrom."""
    merged = [argument.model_copy(deep=True) for argument in template_args]
    index = {argument.name: position for position, argument in enumerate(merged)}
    for incoming in caller_args:
        position = index.get(incoming.name)
        if position is None:
            continue  # Argo ignores args the templates do not declare
        resolved = _resolve_caller_arg(incoming, field_lookup)
        if resolved.value is not None:
            merged[position] = Argument(name=incoming.name, value=resolved.value)
        elif resolved.value_from is not None:
            merged[position] = Argument(name=incoming.name, value_from=resolved.value_from)
    for argument in merged:
        if argument.value is None and argument.value_from is None:
            raise UserError(f"args.{argument.name} was not resolved")
    return merged


def resolve_args(
    template_args: Sequence[Argument] | None,
    caller_args: Sequence[Argument] | None = None,
    *,
    field_lookup: FieldLookup | None = None,
    secret_lookup: SecretLookup | None = None,
) -> ResolvedArgs:
    """The value of each arg, ready for `substitute`.

    With `caller_args` (creating a run) the two lists are merged first (`merge_args`, strict).
    Without them (`template_args` are a run's `spec.args`) an arg without a value reads as None
    and only fails if a metric uses it. `secretKeyRef` is read with `secret_lookup`, or reads as
    `SECRET_PLACEHOLDER` when none is given; `fieldRef` with `field_lookup`.
    """
    args = list(template_args or ())
    if caller_args is not None:
        args = merge_args(args, caller_args, field_lookup=field_lookup)
    values: dict[str, str | None] = {}
    secrets: set[str] = set()
    for argument in args:
        source = argument.value_from
        value = argument.value
        if value is None and source is not None:
            if source.secret_key_ref is not None:
                ref = source.secret_key_ref
                if secret_lookup is None:
                    value = SECRET_PLACEHOLDER
                else:
                    value = secret_lookup(ref.name, ref.key)
                    if value is None:
                        raise UserError(f"key '{ref.key}' does not exist in secret '{ref.name}'")
                    secrets.add(value)
            elif source.field_ref is not None and field_lookup is not None:
                value = field_lookup(source.field_ref.field_path)
        values[argument.name] = value
    return ResolvedArgs(values=values, secrets=frozenset(secrets))


# --- substitution ------------------------------------------------------------------------------


def substitute_text(template: str, args: Mapping[str, str | None], *, escape: bool) -> str:
    """`{{args.x}}` in `template` replaced (fasttemplate's rules); UserError on a bad tag."""
    out: list[str] = []
    position = 0
    while True:
        start = template.find(_OPEN, position)
        if start < 0:
            out.append(template[position:])
            return "".join(out)
        out.append(template[position:start])
        end = template.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            rest = template[start + len(_OPEN) :]
            excerpt = rest if len(rest) <= 60 else rest[:60] + "..."
            raise UserError(f'Cannot find end tag="}}}}" starting from "{excerpt}"')
        tag = template[start + len(_OPEN) : end]
        cleaned = tag.strip()
        name = cleaned.removeprefix("args.") if cleaned.startswith("args.") else None
        if name is None or name not in args:
            raise UserError(f"failed to resolve {{{{{tag}}}}}")
        value = args[name]
        if value is None:
            raise UserError(f'argument "{name}" was not supplied')
        out.append(json.dumps(value, ensure_ascii=False)[1:-1] if escape else value)
        position = end + len(_CLOSE)


def substitute(metric: Metric, args: Mapping[str, str | None]) -> Metric:
    """The metric with every `{{args.x}}` replaced, over its whole JSON (Argo's
    `ResolveMetricArgs`); UserError for an unknown tag, an unclosed `{{` or an unsupplied arg."""
    raw = metric.to_raw()
    text = json.dumps(raw, ensure_ascii=False)
    if _OPEN not in text:
        return metric
    resolved: dict[str, Any] = json.loads(substitute_text(text, args, escape=True))
    result = Metric.model_validate(resolved)
    # Keep what rides on the in-memory metric (e.g. the no-data policy) but is not YAML.
    extra = {k: v for k, v in (metric.model_extra or {}).items() if k not in raw}
    return result.model_copy(update=extra) if extra else result


# --- merging templates -------------------------------------------------------------------------


@dataclass(frozen=True)
class MergedTemplates:
    """What several templates and their caller make of one AnalysisRun spec."""

    metrics: tuple[Metric, ...]
    args: tuple[Argument, ...]
    dry_run: tuple[DryRun, ...]
    measurement_retention: tuple[MeasurementRetention, ...]
    annotations: Mapping[str, str]
    """The templates' `rollwise.io/no-data-policy*` and `rollwise.io/on-terminate*` annotations,
    to put on the run."""


def _no_duplicates(names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(f"two {what} have the same name '{name}'")
        seen.add(name)


def _flatten_args(
    templates: Sequence[AnalysisTemplate | ClusterAnalysisTemplate],
) -> list[Argument]:
    combined: list[Argument] = []
    for template in templates:
        for incoming in template.spec.args or ():
            for position, previous in enumerate(combined):
                if previous.name != incoming.name:
                    continue
                if (
                    previous.value is not None
                    and incoming.value is not None
                    and previous.value != incoming.value
                ):
                    raise UserError(
                        f"Argument `{previous.name}` specified multiple times with different"
                        f" values: '{previous.value}', '{incoming.value}'"
                    )
                if previous.value is None:
                    combined[position] = incoming
                break
            else:
                combined.append(incoming)
    return combined


def merge_templates(
    templates: Sequence[AnalysisTemplate | ClusterAnalysisTemplate],
    *,
    args: Sequence[Argument] = (),
    dry_run: Sequence[DryRun] = (),
    measurement_retention: Sequence[MeasurementRetention] = (),
    field_lookup: FieldLookup | None = None,
) -> MergedTemplates:
    """Argo's `NewAnalysisRunFromTemplates` (minus the object): the templates, in the order
    given (Argo puts namespaced templates before cluster ones), flattened into one spec with the
    caller's args, dryRun and measurementRetention merged in. Raises UserError with Argo's
    messages. Nested `templates[]` references must already be expanded by the caller."""
    metrics = [metric for template in templates for metric in template.spec.metrics or ()]
    _no_duplicates([metric.name for metric in metrics], "metrics")
    template_dry = [rule for template in templates for rule in template.spec.dry_run or ()]
    _no_duplicates([rule.metric_name for rule in template_dry], "Dry-Run metric rules")
    template_retention = [
        rule for template in templates for rule in template.spec.measurement_retention or ()
    ]
    _no_duplicates(
        [rule.metric_name for rule in template_retention], "Measurement Retention metric rules"
    )
    merged_args = merge_args(_flatten_args(templates), args, field_lookup=field_lookup)
    all_dry = [*dry_run, *template_dry]
    _no_duplicates([rule.metric_name for rule in all_dry], "Dry-Run metric rules")
    all_retention = [*measurement_retention, *template_retention]
    _no_duplicates(
        [rule.metric_name for rule in all_retention], "Measurement Retention metric rules"
    )
    annotations: dict[str, str] = {}
    for template in templates:
        for key, value in (template.metadata.annotations or {}).items():
            if not (is_no_data_annotation(key) or is_on_terminate_annotation(key)):
                continue
            if key in annotations and annotations[key] != value:
                raise UserError(
                    f"annotation {key} is {annotations[key]!r} in one template and {value!r}"
                    " in another"
                )
            annotations[key] = value
    return MergedTemplates(
        metrics=tuple(metrics),
        args=tuple(merged_args),
        dry_run=tuple(all_dry),
        measurement_retention=tuple(all_retention),
        annotations=annotations,
    )
