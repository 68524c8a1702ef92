"""rollwise.core.analysis: AnalysisRun semantics, pure and synchronous (reference section 2).

Modules (import from them; this package imports nothing so that a provider importing
`evaluate` does not load the reconciler):

- `evaluate`: one measurement from a provider's value.
    `measurement_from_value(metric, value, *, started_at, finished_at, metadata=None,
    no_data_policy=None) -> Measurement`; `error_measurement(message, *, started_at,
    finished_at, metadata=None) -> Measurement`; `outcome_of(metric, value) -> (phase, message)`;
    `render_value(value) -> str` (Go's `%v`).
- `runs`: the reconciler. `plan(run, now, *, secret_lookup=None) -> Plan(to_run, to_resume,
    to_terminate, status, requeue_after, metrics, secrets)`; `record(run, results, now, *,
    secrets=(), metric_metadata=None) -> AnalysisRunStatus`.
- `args`: `merge_templates(templates, *, args=(), dry_run=(), measurement_retention=(),
    field_lookup=None) -> MergedTemplates`; `merge_args(template_args, caller_args=(), *,
    field_lookup=None) -> list[Argument]`; `resolve_args(template_args, caller_args=None, *,
    field_lookup=None, secret_lookup=None) -> ResolvedArgs`; `substitute(metric, args) ->
    Metric`; `mask(text, secrets) -> str`.
- `nodata`: the `rollwise.io/no-data-policy[.<metric>]` annotations (succeed | fail |
    inconclusive | error); Argo's behaviour when absent.
- `onterminate`: the `rollwise.io/on-terminate[.<metric>]` annotations (successful |
    inconclusive): what a terminated metric with no Successful measurement ends as; Argo's
    Successful when absent. `annotations`: the per-metric annotation reading both share.
- `phases`: phase names, severity order, counters, limit checks, `assess_metric`.
- `settings`: int-or-string and duration reading, effective count, Argo's `ValidateMetric`.

Time is always passed in (timezone-aware); nothing here reads a clock or does I/O.
"""
