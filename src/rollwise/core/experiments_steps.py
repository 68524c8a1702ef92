"""The canary `experiment` step: which Experiments a Rollout needs, and what their phases mean.

Who calls it: the canary engine, once per decision (after traffic, before analysis runs, as in
Argo's `rollout/experiment.go`), and the traffic code for the weights of a running experiment.
The Rollout and the Experiment controller talk only through the Experiment object: this module
asks for one to be created or terminated and reads back its `status.phase`.

- Reaching an experiment step creates Experiment `<rollout>-<podHash>-<revision>-<stepIndex>`
  (`-1`, `-2`... when that name is taken by a finished one), event `ExperimentCreated`. Its
  templates take the pod template of the stable (`specRef: stable`) or new (`specRef: canary`)
  ReplicaSet; its analyses get their `podTemplateHashValue`/`fieldRef` args resolved here.
- The step completes when the Experiment is Successful; Failed or Error aborts the update with
  the Experiment's message; Inconclusive pauses it (`InconclusiveExperiment`), and a `promote`
  then runs the step again with a new Experiment.
- `status.canary.currentExperiment` names it while it runs. It is terminated when the step is
  skipped (promote), the update is aborted or fully promoted; finished Experiments beyond the
  history limits, or of revisions whose ReplicaSet is gone, are deleted.
- While it is Running, each template with a `weight` gets that share of the Rollout's traffic
  through its Service (`status.canary.weights.additional`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rollwise.api import models as api
from rollwise.core import actions as act
from rollwise.core import steps as st
from rollwise.core.analysis.creation import rollout_field
from rollwise.core.analysis_runs import DEFAULT_RUN_HISTORY_LIMIT, resolve_args
from rollwise.core.canary_state import CanaryFacts, Progress, Raw
from rollwise.core.experiments_observed import ExperimentView
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import REVISION_ANNOTATION, ReplicaSetView

INCONCLUSIVE_EXPERIMENT = "InconclusiveExperiment"
WEIGHT_WITHOUT_ROUTING = "Experiment template weight cannot be set unless TrafficRouting is enabled"
WEIGHT_ROUTERS = "Experiment template weight is only available for TrafficRouting with SMI, ALB, and Istio at this time"  # noqa: E501
INVALID_SPEC_REF = "Invalid template step SpecRef: must be canary or stable"


def experiment_step_problem(
    canary: api.CanaryStrategy, missing_templates: Collection[str] = ()
) -> str | None:
    """Argo's validation of experiment steps (its messages), for the InvalidSpec check;
    `missing_templates` are the (Cluster)AnalysisTemplate names the store lacks."""
    routing = canary.traffic_routing
    for i, step in enumerate(canary.steps or ()):
        experiment = step.experiment
        if experiment is None:
            continue
        for k, analysis in enumerate(experiment.analyses or ()):
            if analysis.template_name in missing_templates:
                kind = "ClusterAnalysisTemplate" if analysis.cluster_scope else "AnalysisTemplate"
                return (
                    f"spec.strategy.canary.steps[{i}].experiment.analyses[{k}].templateName: "
                    f'{kind} "{analysis.template_name}" not found'
                )
        for j, template in enumerate(experiment.templates):
            where = f"spec.strategy.canary.steps[{i}].experiment.templates[{j}]"
            if template.spec_ref not in ("canary", "stable"):
                return f"{where}.specRef: Invalid value: {template.spec_ref!r}: {INVALID_SPEC_REF}"
            if template.weight is None:
                continue
            invalid = f"{where}.weight: Invalid value: {template.weight}"
            if routing is None:
                return f"{invalid}: {WEIGHT_WITHOUT_ROUTING}"
            routers = (routing.smi, routing.alb, routing.istio, routing.plugins)
            if all(router is None for router in routers):
                return f"{invalid}: {WEIGHT_ROUTERS}"
    return None


def experiment_name(rollout: str, pod_hash: str, revision: int, step_index: int) -> str:
    return f"{rollout}-{pod_hash}-{revision}-{step_index}"


def _current_step(facts: CanaryFacts, progress: Progress) -> api.RolloutExperimentStep | None:
    step = st.current_step(facts.steps, progress.index)
    return None if step is None else step.experiment


def _by_name(experiments: Iterable[ExperimentView], name: str | None) -> ExperimentView | None:
    if not name:
        return None
    return next((e for e in experiments if e.name == name), None)


def _current(facts: CanaryFacts, progress: Progress) -> ExperimentView | None:
    """The Experiment the status names, if it belongs to the desired revision."""
    found = _by_name(facts.observed.experiments, (progress.experiment or {}).get("name"))
    if found is None or found.pod_template_hash != facts.pod_hash:
        return None
    return found


def weighted_destinations(
    facts: CanaryFacts, progress: Progress
) -> tuple[api.WeightDestination, ...]:
    """The extra traffic destinations of a running weighted experiment step (Argo: only while
    the Experiment is Running, never once the update is aborted or promoted)."""
    step = _current_step(facts, progress)
    if step is None or progress.aborted or progress.promote_full or progress.fully_promoted:
        return ()
    current = _current(facts, progress)
    if current is None or current.phase != "Running":
        return ()
    weights = {t.name: t.weight for t in step.templates if t.weight is not None}
    return tuple(
        api.WeightDestination(
            weight=weights[template.name],
            service_name=template.service_name,
            pod_template_hash=template.pod_template_hash,
        )
        for template in current.templates
        if template.name in weights and template.service_name
    )


# --- the Experiment a step asks for ----------------------------------------------------------


def _selector(rollout: api.Rollout, rs: ReplicaSetView) -> Raw:
    """The selector of a Rollout's ReplicaSet: the Rollout's, plus its hash."""
    selector = rollout.spec.selector.to_raw() if rollout.spec.selector is not None else {}
    labels = dict(selector.get("matchLabels") or {})
    labels[HASH_LABEL] = rs.pod_template_hash
    selector["matchLabels"] = labels
    return selector


def _template(rollout: api.Rollout, step: api.RolloutExperimentTemplate, rs: ReplicaSetView) -> Raw:
    pod_template: Raw = {**rs.template}
    metadata = dict(pod_template.get("metadata") or {})
    selector = step.selector.to_raw() if step.selector is not None else _selector(rollout, rs)
    extra = step.metadata
    if extra is not None and extra.labels:
        metadata["labels"] = {**(metadata.get("labels") or {}), **extra.labels}
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), **extra.labels}
    if extra is not None and extra.annotations:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **extra.annotations}
    if metadata:
        pod_template["metadata"] = metadata
    template: Raw = {"name": step.name, "selector": selector, "template": pod_template}
    if step.replicas is not None:
        template["replicas"] = step.replicas
    if rollout.spec.min_ready_seconds:
        template["minReadySeconds"] = rollout.spec.min_ready_seconds
    if step.weight is not None or step.service is not None:
        service: Raw = {}
        if step.service is not None and step.service.name:
            service["name"] = step.service.name
        template["service"] = service
    return template


def _analysis_args(facts: CanaryFacts, args: Sequence[api.Argument] | None) -> list[Raw]:
    """Rollout-side args resolved as Argo's BuildArgumentsForRolloutAnalysisRun does:
    podTemplateHashValue and fieldRef become values; the rest (secrets, and the experiment's
    own `{{templates...}}` variables) is passed on."""
    stable = facts.stable_rs.pod_template_hash if facts.stable_rs is not None else ""
    resolved = resolve_args(args, stable_hash=stable, latest_hash=facts.pod_hash) or []
    rollout_raw = facts.rollout.to_raw()
    out: list[Raw] = []
    for arg in resolved:
        ref = arg.value_from.field_ref if arg.value_from is not None else None
        value = rollout_field(rollout_raw, ref.field_path) if ref is not None else None
        if value is not None:
            out.append({"name": arg.name, "value": value})
        else:
            out.append(arg.to_raw())
    return out


def experiment_object(
    facts: CanaryFacts, step: api.RolloutExperimentStep, *, name: str, step_index: int
) -> Raw | None:
    """The Experiment (raw, without owner) an experiment step asks for; None while a
    ReplicaSet it copies from does not exist yet."""
    stable, new = facts.stable_rs, facts.new_rs
    templates: list[Raw] = []
    for template in step.templates:
        source = stable if template.spec_ref == "stable" else new
        if source is None or (source is new and facts.creating):
            return None
        templates.append(_template(facts.rollout, template, source))
    spec: Raw = {"templates": templates}
    if step.duration:
        spec["duration"] = step.duration
    if facts.rollout.spec.progress_deadline_seconds is not None:
        spec["progressDeadlineSeconds"] = facts.rollout.spec.progress_deadline_seconds
    if step.scale_down_delay_seconds is not None:
        spec["scaleDownDelaySeconds"] = step.scale_down_delay_seconds
    if step.dry_run:
        spec["dryRun"] = [rule.to_raw() for rule in step.dry_run]
    if step.analysis_run_metadata is not None:
        spec["analysisRunMetadata"] = step.analysis_run_metadata.to_raw()
    analyses: list[Raw] = []
    for analysis in step.analyses or ():
        entry: Raw = {"name": analysis.name, "templateName": analysis.template_name}
        if analysis.cluster_scope:
            entry["clusterScope"] = True
        if analysis.args:
            entry["args"] = _analysis_args(facts, analysis.args)
        if analysis.required_for_completion:
            entry["requiredForCompletion"] = True
        analyses.append(entry)
    if analyses:
        spec["analyses"] = analyses
    labels = {**(facts.rollout.metadata.labels or {}), HASH_LABEL: facts.pod_hash}
    return {
        "apiVersion": api.API_VERSION,
        "kind": "Experiment",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {REVISION_ANNOTATION: str(facts.revision)},
        },
        "spec": spec,
    }


# --- the decision ---------------------------------------------------------------------------


@dataclass(slots=True)
class ExperimentsOutcome:
    actions: list[act.Action] = field(default_factory=list)
    current: Raw | None = None
    """`{"name", "phase"}` of the step's Experiment (phase "" until it is seen)."""
    pause: bool = False
    """The step's Experiment is Inconclusive: pause with `InconclusiveExperiment`."""
    abort_message: str | None = None
    """The step's Experiment Failed or Errored: abort with this message."""


def _terminate(experiment: ExperimentView, outcome: ExperimentsOutcome) -> None:
    if not experiment.completed and not experiment.terminate_requested:
        outcome.actions.append(act.TerminateExperiment(experiment.name))


def _free_name(base: str, taken: Iterable[str]) -> str:
    names = set(taken)
    if base not in names:
        return base
    n = 1
    while f"{base}-{n}" in names:
        n += 1
    return f"{base}-{n}"


def _adoptable(facts: CanaryFacts, base: str) -> ExperimentView | None:
    """An Experiment this step created in a decision whose status was lost: same revision, one
    of the step's names, still going."""
    pattern = re.compile(re.escape(base) + r"(-\d+)?")
    for experiment in facts.observed.experiments:
        if (
            pattern.fullmatch(experiment.name)
            and experiment.pod_template_hash == facts.pod_hash
            and not experiment.completed
            and not experiment.terminate_requested
        ):
            return experiment
    return None


def _judge(experiment: ExperimentView, outcome: ExperimentsOutcome) -> None:
    if experiment.phase == "Inconclusive":
        outcome.pause = True  # no longer current: a promote runs the step again
    elif experiment.phase in ("Failed", "Error"):
        outcome.abort_message = experiment.message
    else:
        outcome.current = {"name": experiment.name, "phase": experiment.phase}


def _history_limits(rollout: api.Rollout) -> tuple[int, int]:
    limits = rollout.spec.analysis
    successful = limits.successful_run_history_limit if limits else None
    unsuccessful = limits.unsuccessful_run_history_limit if limits else None
    return (
        DEFAULT_RUN_HISTORY_LIMIT if successful is None else successful,
        DEFAULT_RUN_HISTORY_LIMIT if unsuccessful is None else unsuccessful,
    )


def _prune(facts: CanaryFacts, outcome: ExperimentsOutcome, keep: set[str]) -> None:
    """Argo's FilterExperimentsToDelete: Experiments of revisions whose ReplicaSet is gone, and
    finished ones beyond the history limits (newest kept)."""
    hashes = {rs.pod_template_hash for rs in facts.observed.replica_sets} | {facts.pod_hash}
    limit_successful, limit_unsuccessful = _history_limits(facts.rollout)
    kept_successful = kept_unsuccessful = 0
    others = sorted(
        (e for e in facts.observed.experiments if e.name not in keep),
        key=lambda e: (e.created_at is not None, e.created_at, e.name),
        reverse=True,
    )
    for experiment in others:
        if experiment.pod_template_hash not in hashes:
            outcome.actions.append(act.DeleteExperiment(experiment.name))
        elif experiment.phase == "Successful":
            if kept_successful < limit_successful:
                kept_successful += 1
            else:
                outcome.actions.append(act.DeleteExperiment(experiment.name))
        elif experiment.completed:
            if kept_unsuccessful < limit_unsuccessful:
                kept_unsuccessful += 1
            else:
                outcome.actions.append(act.DeleteExperiment(experiment.name))


def reconcile_experiments(facts: CanaryFacts, progress: Progress) -> ExperimentsOutcome:
    """Experiments to create, terminate or delete, the current one, and whether to pause or
    abort."""
    outcome = ExperimentsOutcome()
    named = (progress.experiment or {}).get("name")
    current = _current(facts, progress)
    skip_all = (
        progress.aborted
        or progress.promote_full
        or not progress.stable_hash
        or facts.stable_rs is None
    )
    step = _current_step(facts, progress)
    if not skip_all and progress.pauses:
        # Paused (an inconclusive run or experiment): leave everything as it is.
        if current is not None:
            outcome.current = {"name": current.name, "phase": current.phase}
        elif named and step is not None:
            outcome.current = dict(progress.experiment or {})
        return outcome
    if not skip_all and step is not None and progress.index is not None:
        base = experiment_name(facts.rollout.name, facts.pod_hash, facts.revision, progress.index)
        if current is None and named and named.startswith(base):
            # Asked for in an earlier decision and not seen yet: ask again (idempotent).
            wanted = experiment_object(facts, step, name=named, step_index=progress.index)
            if wanted is not None:
                outcome.actions.append(act.CreateExperiment(named, wanted))
            outcome.current = {"name": named, "phase": ""}
        elif current is None:
            current = _adoptable(facts, base)
            if current is None:
                name = _free_name(base, (e.name for e in facts.observed.experiments))
                wanted = experiment_object(facts, step, name=name, step_index=progress.index)
                if wanted is not None:
                    outcome.actions.append(act.CreateExperiment(name, wanted))
                    outcome.actions.append(
                        act.EmitEvent("Normal", "ExperimentCreated", f"Created Experiment '{name}'")
                    )
                    outcome.current = {"name": name, "phase": ""}
        if current is not None:
            _judge(current, outcome)
    keep = {str(outcome.current["name"])} if outcome.current else set()
    for experiment in facts.observed.experiments:
        if experiment.name not in keep:
            _terminate(experiment, outcome)
    _prune(facts, outcome, keep)
    return outcome


def current_experiment_status(facts: CanaryFacts, progress: Progress) -> str | None:
    """What `status.canary.currentExperiment` says: the step's Experiment while the step runs
    (a Successful one stays named until the step completes, e.g. under a manual pause)."""
    current: Mapping[str, Any] = progress.experiment or {}
    name = current.get("name")
    if not name or _current_step(facts, progress) is None:
        return None
    if current.get("phase") in ("Failed", "Error", "Inconclusive"):
        return None
    return str(name)
