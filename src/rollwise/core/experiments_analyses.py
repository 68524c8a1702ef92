"""An Experiment's analyses: their AnalysisRuns and the variables their args may use.

Who calls it: `rollwise.core.experiments.decide_experiment`, once per analysis per decision
(Argo's reconcileAnalysisRun). Before the Experiment is available only the template is checked
(a missing one is an Error at once); then the run `<experiment>-<analysis>` is created, owned by
the Experiment, with its arg values resolved from `{{templates.<name>.podTemplateHash}}`,
`{{templates.<name>.replicaset.name}}`, `{{experiment.availableAt}}` and
`{{experiment.finishedAt}}` (an unknown name is an Error: "failed to resolve {{x}}"); its phase
and message are mirrored into `status.analysisRuns`, and it is terminated when the Experiment
is. The run is measured by the AnalysisRun reconciler like any other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from rollwise.api import models as api
from rollwise.core import actions as act
from rollwise.core.experiments_state import (
    COMPLETED_PHASES,
    ERROR,
    FAILED,
    INCONCLUSIVE,
    PENDING,
    ExperimentContext,
    Raw,
    duration_seconds,
)
from rollwise.core.observed import ReplicaSetView
from rollwise.core.timestamps import format_time, parse_time_or_none

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def analysis_run_name(experiment: str, analysis: str) -> str:
    return f"{experiment}-{analysis}"


def experiment_variables(
    experiment: api.Experiment, replica_sets: Mapping[str, ReplicaSetView]
) -> dict[str, str]:
    """The names an analysis arg value may use (`templates.<name>.podTemplateHash`...)."""
    variables: dict[str, str] = {}
    status = experiment.status
    available = parse_time_or_none(status.available_at if status else None)
    if available is not None:
        variables["experiment.availableAt"] = format_time(available)
        try:
            seconds = duration_seconds(experiment)
        except ValueError:
            seconds = None
        if seconds is not None:
            variables["experiment.finishedAt"] = format_time(available + timedelta(seconds=seconds))
    for template in experiment.spec.templates:
        rs = replica_sets.get(template.name)
        if rs is not None:
            variables[f"templates.{template.name}.podTemplateHash"] = rs.pod_template_hash
            variables[f"templates.{template.name}.replicaset.name"] = rs.name
    return variables


def resolve_value(text: str, variables: Mapping[str, str]) -> str:
    """`text` with each `{{name}}` replaced (whitespace inside the braces trimmed); ValueError
    "failed to resolve {{x}}" for a name it does not know, as Argo's fasttemplate does."""
    unresolved: list[str] = []

    def replace(match: re.Match[str]) -> str:
        value = variables.get(match.group(1).strip())
        if value is None:
            unresolved.append(match.group(1))
            return ""
        return value

    result = _TAG.sub(replace, text)
    if unresolved:
        raise ValueError(f"failed to resolve {{{{{unresolved[-1]}}}}}")
    if "{{" in result:
        raise ValueError(f'cannot find end tag="}}}}" in the template="{text}"')
    return result


def resolve_analysis_args(
    args: Sequence[api.Argument] | None, variables: Mapping[str, str]
) -> list[api.Argument]:
    """The args of an experiment analysis with the experiment's variables filled in; args with
    `valueFrom` (a secret, a field) are passed on for the run to read."""
    resolved: list[api.Argument] = []
    for arg in args or ():
        if arg.value is not None:
            resolved.append(api.Argument(name=arg.name, value=resolve_value(arg.value, variables)))
        else:
            resolved.append(arg)
    return resolved


def reconcile_analysis(ctx: ExperimentContext, analysis: api.ExperimentAnalysisTemplateRef) -> None:
    """Create, read or terminate the analysis' run; write its status (and an event on a new
    phase, `AnalysisRun<Phase>`)."""
    previous = ctx.runs.get(analysis.name) or {"name": analysis.name}
    status = dict(previous)
    _reconcile_run(ctx, analysis, previous, status)
    old, new = previous.get("phase") or "", status.get("phase") or ""
    if old != new and new:
        text = f"AnalysisRun '{analysis.name}' transitioned from {old} -> {new}"
        if status.get("message"):
            text += f": {status['message']}"
        ctx.event(f"AnalysisRun{new}", text, warning=new in (FAILED, ERROR, INCONCLUSIVE))
    ctx.runs[analysis.name] = status


def _reconcile_run(
    ctx: ExperimentContext,
    analysis: api.ExperimentAnalysisTemplateRef,
    previous: Mapping[str, Any],
    status: Raw,
) -> None:
    if ctx.available_at is None:
        # Not available yet: no run, but a template that does not exist is an Error now.
        if (bool(analysis.cluster_scope), analysis.template_name) in ctx.observed.missing_templates:
            kind = "ClusterAnalysisTemplate" if analysis.cluster_scope else "AnalysisTemplate"
            status["phase"] = ERROR
            status["message"] = (
                f"{kind} verification failed for analysis '{analysis.name}': "
                f'{kind.lower()}.argoproj.io "{analysis.template_name}" not found'
            )
        return
    run_name = str(previous.get("analysisRun") or "")
    if not run_name:
        if not ctx.terminating:
            _create_run(ctx, analysis, status)
        return
    if previous.get("phase") in COMPLETED_PHASES:
        return
    run = ctx.observed.analysis_runs.get(run_name)
    if run is None:
        status["phase"] = ERROR
        status["message"] = f'analysisrun.argoproj.io "{run_name}" not found'
        return
    if ctx.terminating and not run.completed and not run.terminate_requested:
        ctx.actions.append(act.TerminateAnalysisRun(run.name))
        ctx.event("AnalysisRunTerminating", f"Terminating {analysis.name} ({run.name})")
    if run.phase:
        # (Argo stops reading a run once it terminated it; its final phase is recorded here.)
        status["phase"] = run.phase
        if run.message:
            status["message"] = run.message
        else:
            status.pop("message", None)


def _create_run(
    ctx: ExperimentContext, analysis: api.ExperimentAnalysisTemplateRef, status: Raw
) -> None:
    spec = ctx.experiment.spec
    try:
        args = resolve_analysis_args(
            analysis.args, experiment_variables(ctx.experiment, ctx.observed.replica_sets)
        )
    except ValueError as error:
        status["phase"] = ERROR
        status["message"] = f"Failed to create AnalysisRun for analysis '{analysis.name}': {error}"
        return
    metadata = spec.analysis_run_metadata
    name = analysis_run_name(ctx.experiment.name, analysis.name)
    runs = ctx.observed.analysis_runs
    if name in runs and (runs[name].completed or runs[name].terminate_requested):
        # A run of an earlier attempt (`retry experiment`): Argo's collision counter.
        base, n = name, 1
        while f"{base}.{n}" in runs:
            n += 1
        name = f"{base}.{n}"
    ctx.actions.append(
        act.CreateExperimentAnalysisRun(
            name=name,
            analysis=api.RolloutAnalysis(
                templates=[
                    api.AnalysisTemplateRef(
                        template_name=analysis.template_name, cluster_scope=analysis.cluster_scope
                    )
                ],
                args=args or None,
                dry_run=spec.dry_run,
                measurement_retention=spec.measurement_retention,
            ),
            labels=dict((metadata.labels if metadata else None) or {}),
            annotations=dict((metadata.annotations if metadata else None) or {}),
        )
    )
    status["phase"] = PENDING
    status["analysisRun"] = name
    status.pop("message", None)
