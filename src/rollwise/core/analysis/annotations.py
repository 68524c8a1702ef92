"""rollwise's per-metric AnalysisRun annotations: `<base>` for every metric of the run,
`<base>.<metric-name>` for one metric (which wins).

Where this sits: the reading shared by `nodata` (`rollwise.io/no-data-policy`) and
`onterminate` (`rollwise.io/on-terminate`), which `rollwise.core.analysis.runs` calls when it
reads a run's spec (`rollwise.core.analysis.args.merge_templates` copies both from the
templates to the run). Settings live in annotations because Argo ignores them, so the YAML
stays valid for Argo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rollwise.api.errors import UserError


def is_per_metric_annotation(key: str, base: str) -> bool:
    return key == base or key.startswith(base + ".")


def per_metric_values(
    annotations: Mapping[str, str] | None,
    metric_names: Sequence[str],
    *,
    base: str,
    allowed: Sequence[str],
    what: str,
) -> dict[str, str]:
    """Metric name -> its value (lower-cased) for each metric that has one, the per-metric
    annotation winning over `base`. UserError for a value outside `allowed` (`what` names the
    kind of value, with its article: "a no-data policy") or a metric the run does not have."""
    found: dict[str, str] = {}
    default: str | None = None
    for key, raw in sorted((annotations or {}).items()):
        if not is_per_metric_annotation(key, base):
            continue
        value = raw.strip().lower()
        if value not in allowed:
            raise UserError(
                f"annotation {key}: {raw!r} is not {what}; expected one of {', '.join(allowed)}"
            )
        if key == base:
            default = value
            continue
        name = key.removeprefix(base + ".")
        if name not in metric_names:
            raise UserError(
                f"annotation {key}: no metric is named {name!r}"
                f" (metrics: {', '.join(metric_names) or 'none'})"
            )
        found[name] = value
    if default is not None:
        for name in metric_names:
            found.setdefault(name, default)
    return found
