"""The Experiment state machine: `decide_experiment(experiment, observed, now)` (reference 1.13).

Who calls it: the Experiment reconciler (`rollwise.controller.experiments`), once per reconcile
of one Experiment, with what it observed of the objects the Experiment owns. Pure: no I/O, no
clock; the same inputs give the same status and no new actions.

Theory of operation (Argo's `experiments/experiment.go`, in its order):

1. every template gets a ReplicaSet `<experiment>-<template>` with its own pod-template hash (a
   different hash function from the Rollout's, as in Argo, so an experiment's pods can be told
   apart from the Rollout's even when they run the same pod spec), created at 0 and scaled to
   `replicas` (default 1); a template with `service` gets a Service selecting that hash;
2. a template is Progressing until all its replicas are available, then Running, Successful once
   `duration` has passed since every template became available (`status.availableAt`), Failed if
   it makes no progress for `progressDeadlineSeconds` (600);
3. analyses start once the Experiment is available: each becomes an AnalysisRun
   `<experiment>-<analysis>` owned by the Experiment, its arg values resolved from
   `{{templates.<name>.podTemplateHash}}`, `{{templates.<name>.replicaset.name}}`,
   `{{experiment.availableAt}}` and `{{experiment.finishedAt}}`;
4. the phase (`EXPERIMENT_TRANSITIONS`): Pending while templates progress, Running once they all
   run; a Failed/Error/Inconclusive analysis ends the Experiment early with that phase; when the
   duration passes the phase comes from the analyses if they are finished or
   `requiredForCompletion` (non-required runs still going are terminated: Successful);
   without a duration it runs until terminated, an analysis fails, or every required analysis
   succeeded - which also ends it before its duration (Argo issue #4161, kept);
5. once it is finished, terminated, or an analysis or template failed ("terminating"), every
   template is scaled to 0 after `scaleDownDelaySeconds` (30) and runs still going are
   terminated.

The pieces: `experiments_state` (the phase and template tables, the working state),
`experiments_templates` (steps 1-2, 5), `experiments_analyses` (step 3); this module decides the
phase and the conditions and is the entry point.

Where rollwise departs from Argo (both are bugs there, noted in docs/strategies.md): the phase of
a run this controller terminated is still recorded, so an Experiment whose required analyses
succeed while a non-required one runs ends Successful instead of staying Running forever; and a
template's Service is removed once its pods are gone rather than left until the Experiment is
deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from rollwise.api import models as api
from rollwise.core import actions as act
from rollwise.core.experiments_analyses import (
    analysis_run_name,
    experiment_variables,
    reconcile_analysis,
    resolve_analysis_args,
    resolve_value,
)
from rollwise.core.experiments_state import (
    COMPLETED_PHASES,
    ERROR,
    EXPERIMENT_NAME_ANNOTATION,
    EXPERIMENT_TRANSITIONS,
    FAILED,
    INCONCLUSIVE,
    PENDING,
    PROGRESSING,
    RUNNING,
    SUCCESSFUL,
    TEMPLATE_NAME_ANNOTATION,
    TEMPLATE_TRANSITIONS,
    ExperimentContext,
    ExperimentDecision,
    ExperimentObserved,
    ExperimentRunView,
    Raw,
    advance_phase,
    duration_seconds,
    progress_deadline_seconds,
    rank,
)
from rollwise.core.experiments_templates import (
    COUNT_KEYS,
    reconcile_template,
    replica_set_name,
    template_hash,
)
from rollwise.core.observed import ReplicaSetView
from rollwise.core.timestamps import format_time, parse_time_or_none

__all__ = [
    "EXPERIMENT_NAME_ANNOTATION",
    "EXPERIMENT_TRANSITIONS",
    "TEMPLATE_NAME_ANNOTATION",
    "TEMPLATE_TRANSITIONS",
    "ExperimentDecision",
    "ExperimentObserved",
    "ExperimentRunView",
    "analysis_run_name",
    "decide_experiment",
    "experiment_spec_problem",
    "experiment_variables",
    "observed_from_raw",
    "replica_set_name",
    "resolve_analysis_args",
    "resolve_value",
    "template_hash",
]

REQUIRED_ANALYSES_COMPLETED = "Required AnalysisRuns completed"
INVALID_SPEC = "InvalidSpec"
CONDITION_PROGRESSING = "Progressing"
COMPLETED_REASON = "ExperimentCompleted"
COMPLETED_MESSAGE = 'Experiment "{}" has successfully ran and completed.'
PROGRESSING_REASON = "ReplicaSetUpdated"
PROGRESSING_MESSAGE = 'Experiment "{}" is progressing.'
RUNNING_REASON = "NewReplicaSetAvailable"
RUNNING_MESSAGE = 'Experiment "{}" is running.'

# Best first, worst last: what decides the phase among several templates or analyses.
TEMPLATE_ORDER = (SUCCESSFUL, RUNNING, PROGRESSING, ERROR, FAILED)
ANALYSIS_ORDER = (SUCCESSFUL, RUNNING, PENDING, INCONCLUSIVE, ERROR, FAILED)


# --- validation ------------------------------------------------------------------------------


def experiment_spec_problem(experiment: api.Experiment) -> str | None:
    """Argo's VerifyExperimentSpec (its messages), plus what the engine cannot run."""
    name = experiment.name
    seen: set[str] = set()
    for index, template in enumerate(experiment.spec.templates):
        if template.selector is None:
            return f"Rollout has missing field '.Spec.Templates[{index}].Selector'"
        selector = template.selector
        if not (selector.match_labels or selector.match_expressions):
            return (
                f"This experiment is selecting all pods at index {index}. "
                "A non-empty selector is required."
            )
        if (template.min_ready_seconds or 0) > progress_deadline_seconds(experiment):
            return (
                "MinReadySeconds cannot be longer than ProgressDeadlineSeconds. "
                f"Check template index {index}"
            )
        if not template.name:
            return f"Experiment {name} has empty template name at index {index}"
        if template.name in seen:
            return f"Experiment {name} has repeated template name '{template.name}' in templates"
        seen.add(template.name)
        if not template.template:
            return f"Rollout has missing field '.Spec.Templates[{index}].Template'"
    try:
        duration_seconds(experiment)
    except ValueError as error:
        return f"spec.duration: {error}"
    return None


# --- the phase (Argo's calculateStatus) ----------------------------------------------------------


def assess_templates(ctx: ExperimentContext) -> tuple[str, str]:
    """The worst template status, as an Experiment phase, and its message."""
    worst, message = SUCCESSFUL, ""
    for template in ctx.experiment.spec.templates:
        status = ctx.templates.get(template.name) or {}
        current = str(status.get("status") or PROGRESSING)
        if rank(TEMPLATE_ORDER, current) > rank(TEMPLATE_ORDER, worst):
            worst, message = current, str(status.get("message") or "")
    phase = {PROGRESSING: PENDING, FAILED: FAILED, ERROR: ERROR, SUCCESSFUL: SUCCESSFUL}
    return phase.get(worst, RUNNING), message


def assess_analyses(ctx: ExperimentContext) -> tuple[str, str]:
    """The worst analysis phase and its message (Successful when there are none)."""
    worst, message = SUCCESSFUL, ""
    for analysis in ctx.experiment.spec.analyses or ():
        status = ctx.runs.get(analysis.name) or {}
        phase = str(status.get("phase") or "")
        if rank(ANALYSIS_ORDER, phase) > rank(ANALYSIS_ORDER, worst):
            worst, message = phase, str(status.get("message") or "")
    if ctx.required_successful(ctx.runs) and rank(ANALYSIS_ORDER, worst) == 0:
        return SUCCESSFUL, REQUIRED_ANALYSES_COMPLETED
    if worst == PENDING:
        worst = RUNNING  # the Experiment is running while its runs start
    return worst, message


def experiment_phase(ctx: ExperimentContext, status: Raw) -> tuple[str, str]:
    """The phase and message this decision writes (sets `availableAt` in `status` when every
    template runs for the first time)."""
    current = str(ctx.prev.get("phase") or "")
    message = str(ctx.prev.get("message") or "")
    if current == "":
        return PENDING, message
    if current not in (PENDING, RUNNING):
        return current, message
    template_phase, template_message = assess_templates(ctx)
    analyses_phase, analyses_message = assess_analyses(ctx)
    if template_phase == RUNNING and status.get("availableAt") is None:
        status["availableAt"] = ctx.now_text
    if template_phase in COMPLETED_PHASES:
        has_required = any(a.required_for_completion for a in ctx.experiment.spec.analyses or ())
        if template_phase == SUCCESSFUL and (analyses_phase in COMPLETED_PHASES or has_required):
            # The templates ran their course: the analyses have the last word.
            return analyses_phase, analyses_message
        return template_phase, template_message
    if analyses_phase in COMPLETED_PHASES and analyses_phase != SUCCESSFUL:
        return analyses_phase, analyses_message
    if ctx.required_successful(ctx.runs):
        # Argo issue #4161: the required analyses decide, even before the duration ends.
        return analyses_phase, analyses_message
    return template_phase, template_message


def _set_condition(conditions: list[Raw], condition: Raw, *, keep_same_reason: bool) -> None:
    """Argo's SetExperimentCondition (or, without `keep_same_reason`, a plain refresh that
    keeps lastTransitionTime while the status stays)."""
    current = next((c for c in conditions if c.get("type") == condition["type"]), None)
    if current is not None:
        same_status = current.get("status") == condition["status"]
        if keep_same_reason and same_status and current.get("reason") == condition["reason"]:
            return
        if same_status:
            condition["lastTransitionTime"] = current.get("lastTransitionTime")
    conditions[:] = [c for c in conditions if c.get("type") != condition["type"]]
    conditions.append(condition)


def _conditions(ctx: ExperimentContext, status: Raw) -> list[Raw]:
    """Argo's calculateExperimentConditions (after the InvalidSpec check passed)."""
    experiment = ctx.experiment
    conditions = [
        dict(c) for c in ctx.prev.get("conditions") or () if c.get("type") != INVALID_SPEC
    ]
    now = ctx.now_text

    def condition(state: str, reason: str, message: str) -> Raw:
        return {
            "type": CONDITION_PROGRESSING,
            "status": state,
            "reason": reason,
            "message": message,
            "lastUpdateTime": now,
            "lastTransitionTime": now,
        }

    old = {str(t.get("name")): t for t in ctx.prev_templates()}
    new = {str(t.get("name")): t for t in status.get("templateStatuses") or ()}
    progressed = len(old) < len(new) or any(
        any(before.get(key, 0) != new[name].get(key, 0) for key in COUNT_KEYS)
        for name, before in old.items()
        if name in new
    )
    if status.get("phase") in COMPLETED_PHASES:
        _set_condition(
            conditions,
            condition("False", COMPLETED_REASON, COMPLETED_MESSAGE.format(experiment.name)),
            keep_same_reason=True,
        )
    elif progressed:
        _set_condition(
            conditions,
            condition("True", PROGRESSING_REASON, PROGRESSING_MESSAGE.format(experiment.name)),
            keep_same_reason=False,
        )
    elif ctx.available_at is not None and not ctx.passed_duration():
        _set_condition(
            conditions,
            condition("True", RUNNING_REASON, RUNNING_MESSAGE.format(experiment.name)),
            keep_same_reason=True,
        )
    return conditions


def _invalid(experiment: api.Experiment, message: str, now: datetime) -> ExperimentDecision:
    prev = experiment.status.to_raw() if experiment.status is not None else {}
    conditions = [dict(c) for c in prev.get("conditions") or ()]
    current = next((c for c in conditions if c.get("type") == INVALID_SPEC), None)
    if current is not None and current.get("message") == message:
        return ExperimentDecision(status=experiment.status or api.ExperimentStatus())
    stamp = format_time(now)
    conditions = [c for c in conditions if c.get("type") != INVALID_SPEC]
    conditions.append(
        {
            "type": INVALID_SPEC,
            "status": "True",
            "reason": INVALID_SPEC,
            "message": message,
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        }
    )
    status = {**prev, "conditions": conditions}
    return ExperimentDecision(
        status=api.ExperimentStatus.model_validate(status),
        actions=(act.EmitEvent("Warning", INVALID_SPEC, message),),
    )


def _requeue(ctx: ExperimentContext, status: Raw) -> float | None:
    """Argo's calculateEnqueueDuration, plus the scale-down delays being waited out."""
    moments = list(ctx.requeue)
    phase = status.get("phase")
    if phase not in COMPLETED_PHASES and not ctx.experiment.spec.terminate:
        available = parse_time_or_none(status.get("availableAt"))
        seconds = duration_seconds(ctx.experiment)
        if available is not None and seconds is not None:
            end = available + timedelta(seconds=seconds)
            if end >= ctx.now:
                # Just after the end: the duration has passed only once `now > end`.
                moments.append((end - ctx.now).total_seconds() + 0.5)
    return min(moments) if moments else None


def decide_experiment(
    experiment: api.Experiment, observed: ExperimentObserved, now: datetime
) -> ExperimentDecision:
    """The Experiment's new status and the actions that bring its objects towards it."""
    if now.tzinfo is None:
        raise ValueError("decide_experiment() needs a timezone-aware `now`")
    problem = experiment_spec_problem(experiment)
    if problem is not None:
        return _invalid(experiment, problem, now)
    ctx = ExperimentContext(experiment, observed, now)
    for template in experiment.spec.templates:
        reconcile_template(ctx, template)
    for analysis in experiment.spec.analyses or ():
        reconcile_analysis(ctx, analysis)

    status: Raw = {}
    if ctx.prev.get("availableAt"):
        status["availableAt"] = ctx.prev["availableAt"]
    status["templateStatuses"] = [
        ctx.templates[t.name] for t in experiment.spec.templates if t.name in ctx.templates
    ]
    if experiment.spec.analyses:
        status["analysisRuns"] = [
            ctx.runs[a.name] for a in experiment.spec.analyses if a.name in ctx.runs
        ]
    old_phase = str(ctx.prev.get("phase") or "")
    phase, message = experiment_phase(ctx, status)
    status["phase"] = advance_phase(old_phase, phase)
    if message:
        status["message"] = message
    status["conditions"] = _conditions(ctx, status)

    requeue = _requeue(ctx, status)
    if status == ctx.prev and experiment.status is not None:
        return ExperimentDecision(
            status=experiment.status, actions=tuple(ctx.actions), requeue_after=requeue
        )
    return ExperimentDecision(
        status=api.ExperimentStatus.model_validate(status),
        actions=tuple(ctx.actions),
        requeue_after=requeue,
    )


# --- reading raw objects -----------------------------------------------------------------------


def template_name_of(raw: Mapping[str, Any]) -> str | None:
    """The experiment template a raw ReplicaSet or Service was made for."""
    annotations = (raw.get("metadata") or {}).get("annotations") or {}
    name = annotations.get(TEMPLATE_NAME_ANNOTATION)
    return None if name is None else str(name)


def observed_from_raw(
    experiment: api.Experiment,
    *,
    replica_sets: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    analysis_runs: Sequence[Mapping[str, Any]],
    template_exists: Callable[[bool, str], bool],
    replica_set_view: Callable[[Mapping[str, Any]], ReplicaSetView],
) -> ExperimentObserved:
    """The observed snapshot from the raw objects the Experiment owns."""
    defined = {t.name for t in experiment.spec.templates}
    by_template: dict[str, ReplicaSetView] = {}
    for raw in replica_sets:
        name = template_name_of(raw)
        if name in defined and name is not None and name not in by_template:
            by_template[name] = replica_set_view(raw)
    service_names: dict[str, str] = {}
    for raw in services:
        name = template_name_of(raw)
        if name in defined and name is not None and name not in service_names:
            service_names[name] = str((raw.get("metadata") or {}).get("name", ""))
    runs: dict[str, ExperimentRunView] = {}
    for raw in analysis_runs:
        metadata = raw.get("metadata") or {}
        status = raw.get("status") or {}
        run = ExperimentRunView(
            name=str(metadata.get("name", "")),
            phase=str(status.get("phase") or ""),
            message=str(status.get("message") or ""),
            terminate_requested=bool((raw.get("spec") or {}).get("terminate")),
        )
        runs[run.name] = run
    missing = frozenset(
        (bool(a.cluster_scope), a.template_name)
        for a in experiment.spec.analyses or ()
        if not template_exists(bool(a.cluster_scope), a.template_name)
    )
    return ExperimentObserved(
        replica_sets=by_template,
        services=service_names,
        analysis_runs=runs,
        missing_templates=missing,
    )
