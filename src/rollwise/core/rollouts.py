"""The entry point of the core: `decide(rollout, observed, now) -> Decision`.

Who calls it: the controller, once per reconcile of a Rollout, with an immutable snapshot of
what it observed and the current time. Pure: it never mutates its inputs, reads no clock and
does no I/O; called again with the same inputs it returns the same status and no new actions.

Before an engine runs (`canary` or `bluegreen`, by `spec.strategy`), the spec is checked for
what the engine depends on (full validation with line numbers is `rollwise.api`'s job, at apply
time). A spec the engine cannot run - or a feature that is not built yet - gives Argo's answer
to an invalid spec: an `InvalidSpec` condition, phase Degraded with the reason, and no actions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from rollwise.api import models as api
from rollwise.core import conditions as cond
from rollwise.core.actions import EmitEvent
from rollwise.core.bluegreen import decide_blue_green
from rollwise.core.bluegreen_spec import blue_green_problem
from rollwise.core.canary import decide_canary
from rollwise.core.canary_spec import canary_option_problem
from rollwise.core.decisions import Decision
from rollwise.core.experiments_steps import experiment_step_problem
from rollwise.core.observed import Observed
from rollwise.core.steps import KNOWN_STEP_KINDS, pause_seconds, step_kind
from rollwise.core.timestamps import format_time
from rollwise.core.workloads import (
    TEMPLATE_AND_REF,
    resolve_workload,
    workload_outcome,
    workload_problem,
)

NOT_YET = "not supported by rollwise yet"


def _analyses(canary: api.CanaryStrategy) -> Iterator[tuple[str, api.RolloutAnalysis]]:
    for i, step in enumerate(canary.steps or ()):
        if step.analysis is not None:
            yield f"spec.strategy.canary.steps[{i}].analysis", step.analysis
    if canary.analysis is not None:
        yield "spec.strategy.canary.analysis", canary.analysis


def _canary_problem(canary: api.CanaryStrategy, observed: Observed) -> str | None:
    option_problem = canary_option_problem(canary, observed)
    if option_problem is not None:
        return option_problem
    for i, step in enumerate(canary.steps or ()):
        where = f"spec.strategy.canary.steps[{i}]"
        kind = step_kind(step)
        if kind == "plugin":
            return f"{where}.plugin: step plugins are {NOT_YET}"
        if kind not in KNOWN_STEP_KINDS:
            return f"{where}: a step needs one of {', '.join(KNOWN_STEP_KINDS)}"
        routing = canary.traffic_routing
        limit = (routing.max_traffic_weight if routing else None) or 100
        if step.set_weight is not None and not 0 <= step.set_weight <= limit:
            return f"{where}.setWeight: {step.set_weight} is not within 0..{limit}"
        if step.pause is not None:
            try:
                seconds = pause_seconds(step.pause)
            except ValueError as error:
                return f"{where}.pause.duration: {error}"
            if seconds is not None and seconds < 0:
                return f"{where}.pause.duration: must not be negative"
    for service in (canary.canary_service, canary.stable_service):
        if service and service not in observed.service_selectors:
            field = "canaryService" if service == canary.canary_service else "stableService"
            return f'spec.strategy.canary.{field}: service "{service}" not found'
    experiment_problem = experiment_step_problem(canary, observed.missing_templates)
    if experiment_problem is not None:
        return experiment_problem
    missing = set(observed.missing_templates)
    for where, analysis in _analyses(canary):
        for ref in analysis.templates or ():
            if ref.template_name in missing:
                kind = "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate"
                return f'{where}.templates: {kind} "{ref.template_name}" not found'
    return None


def spec_problem(rollout: api.Rollout, observed: Observed) -> str | None:
    """Why the core cannot run this Rollout, or None if it can."""
    spec = rollout.spec
    if spec.workload_ref is not None:
        # Only reached with a template of its own: `decide` resolves the others first.
        return f"spec.template: {TEMPLATE_AND_REF}"
    if spec.selector is None:
        return "Rollout has missing field '.spec.selector'"
    if not (spec.selector.match_labels or spec.selector.match_expressions):
        return "This rollout is selecting all pods. A non-empty selector is required."
    if not spec.template:
        return "Rollout has missing field '.spec.template'"
    strategy = spec.strategy
    if strategy.blue_green is not None:
        if strategy.canary is not None:
            return "spec.strategy: Multiple Strategies can not be listed"
        if spec.replicas is not None and spec.replicas < 0:
            return "spec.replicas: must not be negative"
        return blue_green_problem(strategy.blue_green, observed)
    if strategy.canary is None:
        return "Rollout has missing field '.spec.strategy.canary'"
    if spec.replicas is not None and spec.replicas < 0:
        return "spec.replicas: must not be negative"
    return _canary_problem(strategy.canary, observed)


def _invalid_spec(rollout: api.Rollout, message: str, now: datetime) -> Decision:
    prev = rollout.status.to_raw() if rollout.status is not None else {}
    status = dict(prev)
    conditions = [dict(c) for c in prev.get("conditions") or ()]
    existing = cond.find_condition(conditions, cond.INVALID_SPEC)
    changed = existing is None or existing.get("message") != message
    if changed:
        stamp = format_time(now)
        cond.remove_condition(conditions, cond.INVALID_SPEC)
        conditions.append(
            {
                "type": cond.INVALID_SPEC,
                "status": "True",
                "reason": cond.INVALID_SPEC,
                "message": message,
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            }
        )
    status["conditions"] = conditions
    status["phase"] = "Degraded"
    status["message"] = f"{cond.INVALID_SPEC}: {message}"
    if rollout.metadata.generation is not None:
        status["observedGeneration"] = str(rollout.metadata.generation)
    actions = (EmitEvent("Warning", cond.INVALID_SPEC, message),) if changed else ()
    if status == prev and rollout.status is not None:
        return Decision(status=rollout.status)
    return Decision(status=api.RolloutStatus.model_validate(status), actions=actions)


def decide(rollout: api.Rollout, observed: Observed, now: datetime) -> Decision:
    """The new status of `rollout` and the actions that bring the world towards its spec."""
    if now.tzinfo is None:
        raise ValueError("decide() needs a timezone-aware `now`")
    ref = rollout.spec.workload_ref
    if ref is not None and not rollout.spec.template:
        problem = workload_problem(ref, observed.workload)
        if problem is not None or observed.workload is None:
            return _invalid_spec(rollout, problem or "", now)
        resolved = decide(resolve_workload(rollout, observed.workload), observed, now)
        return workload_outcome(rollout, observed.workload, observed, resolved)
    problem = spec_problem(rollout, observed)
    if problem is not None:
        return _invalid_spec(rollout, problem, now)
    if rollout.spec.strategy.blue_green is not None:
        return decide_blue_green(rollout, observed, now)
    return decide_canary(rollout, observed, now)
