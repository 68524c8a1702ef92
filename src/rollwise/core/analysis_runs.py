"""Which AnalysisRuns a rollout needs, and what their phases mean for it (reference 2.11).

Who calls it: the canary and blue-green engines, once per decision. The rollout and the
analysis engine talk only through AnalysisRun objects: this module asks for runs to be created
or terminated and reads back `status.phase`; measuring is the analysis controller's business.

A run is *current* when the Rollout's status names it (`status.canary.current*AnalysisRunStatus`,
`status.blueGreen.{pre,post}PromotionAnalysisRunStatus`); every other run that is still going is
terminated. Successful lets an analysis step complete (or a blue-green revision be switched to,
or marked stable), Inconclusive pauses the rollout (`InconclusiveAnalysisRun`), Failed or Error
aborts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rollwise.api import models as api
from rollwise.core.actions import (
    Action,
    CreateAnalysisRun,
    DeleteAnalysisRun,
    EmitEvent,
    TerminateAnalysisRun,
)
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import (
    REVISION_ANNOTATION,
    ROLLOUT_TYPE_LABEL,
    STEP_INDEX_LABEL,
    AnalysisKind,
    AnalysisRunView,
)

INCONCLUSIVE_PAUSE = "InconclusiveAnalysisRun"
DEFAULT_RUN_HISTORY_LIMIT = 5
RawRunStatus = dict[str, Any]
# Argo names blue-green runs `<rollout>-<hash>-<revision>-pre` / `-post`.
_NAME_SUFFIXES: Mapping[AnalysisKind, str] = {"PrePromotion": "pre", "PostPromotion": "post"}


@dataclass(frozen=True, slots=True)
class RunsContext:
    """What the run bookkeeping needs to know about the rollout at this decision."""

    rollout_name: str
    pod_hash: str
    stable_hash: str
    revision: int
    step_index: int | None
    step_analysis: api.RolloutAnalysis | None
    """The analysis of the current step, None when the current step is not an analysis."""
    background: api.RolloutAnalysisBackground | None
    selector_labels: Mapping[str, str]
    skip_all: bool
    """Aborted, promoting fully, initial deploy, or rolling back into a scale-down delay."""
    fully_promoted: bool
    paused: bool
    """Pause conditions present: step runs are left as they are."""
    inconclusive_paused: bool
    controller_pause: bool
    """status.controllerPause as it was read (a resumed inconclusive run gets a fresh run)."""
    was_aborted: bool
    """status.abortedAt was set when read: a retry needs fresh runs."""
    runs: Sequence[AnalysisRunView]
    step_run_status: Mapping[str, Any] | None
    background_run_status: Mapping[str, Any] | None
    successful_history_limit: int = DEFAULT_RUN_HISTORY_LIMIT
    unsuccessful_history_limit: int = DEFAULT_RUN_HISTORY_LIMIT


@dataclass(frozen=True, slots=True)
class PromotionRuns:
    """A blue-green rollout's runs: the pre-promotion run gates the active switch, the
    post-promotion run the stable mark. `skip_*`: not due now (the preview is not saturated, the
    switch is done, the revision is stable) - no run is created, a current one is left alone."""

    pre_promotion: api.RolloutAnalysis | None
    post_promotion: api.RolloutAnalysis | None
    pre_run_status: Mapping[str, Any] | None
    post_run_status: Mapping[str, Any] | None
    skip_pre: bool
    skip_post: bool


NO_PROMOTION_RUNS = PromotionRuns(None, None, None, None, skip_pre=True, skip_post=True)


@dataclass(slots=True)
class RunsOutcome:
    actions: list[Action] = field(default_factory=list)
    step_run_status: RawRunStatus | None = None
    background_run_status: RawRunStatus | None = None
    pre_run_status: RawRunStatus | None = None
    post_run_status: RawRunStatus | None = None
    pause: bool = False
    abort_message: str | None = None


def _by_name(runs: Sequence[AnalysisRunView], name: str | None) -> AnalysisRunView | None:
    if not name:
        return None
    for run in runs:
        if run.name == name:
            return run
    return None


def run_status(run: AnalysisRunView) -> RawRunStatus:
    """The `{name, status, message}` the Rollout mirrors for a current run."""
    raw: RawRunStatus = {"name": run.name, "status": run.phase}
    if run.message:
        raw["message"] = run.message
    return raw


def _current(
    ctx: RunsContext, kind: AnalysisKind, status: Mapping[str, Any] | None
) -> tuple[AnalysisRunView | None, str | None]:
    """The run the status names (and that name), or else an unclaimed run of this revision,
    kind and step that is still going: one a decision created before its status write was lost
    (the controller died between the two). It is adopted rather than made a second time, as
    Argo's collision counter reuses an existing run that has not completed; a completed one
    (the run an abort was about, before a retry) is history, and a new run is made beside it."""
    named = (status or {}).get("name")
    if named:
        return _by_name(ctx.runs, named), named
    if ctx.was_aborted:
        return None, None
    step_index = ctx.step_index if kind == "Step" else None
    for run in ctx.runs:
        if (
            run.kind == kind
            and run.step_index == step_index
            and run.pod_template_hash == ctx.pod_hash
            and run.revision == ctx.revision
            and not (run.completed or run.terminate_requested)
        ):
            return run, None
    return None, None


def _terminate(run: AnalysisRunView | None, outcome: RunsOutcome) -> None:
    if run is not None and not run.completed and not run.terminate_requested:
        outcome.actions.append(TerminateAnalysisRun(run.name))


def free_run_name(base: str, runs: Sequence[AnalysisRunView]) -> str:
    """`base`, or `base.N` for the first N not taken (Argo's collision counter)."""
    taken = {run.name for run in runs}
    if base not in taken:
        return base
    n = 1
    while f"{base}.{n}" in taken:
        n += 1
    return f"{base}.{n}"


def resolve_args(
    args: Sequence[api.Argument] | None, *, stable_hash: str, latest_hash: str
) -> list[api.Argument] | None:
    """Args with `valueFrom.podTemplateHashValue` replaced by the hash it names."""
    if args is None:
        return None
    resolved: list[api.Argument] = []
    for arg in args:
        source = arg.value_from.pod_template_hash_value if arg.value_from else None
        if source == "Stable":
            resolved.append(api.Argument(name=arg.name, value=stable_hash))
        elif source == "Latest":
            resolved.append(api.Argument(name=arg.name, value=latest_hash))
        else:
            resolved.append(arg)
    return resolved


def _create(
    ctx: RunsContext,
    analysis: api.RolloutAnalysis,
    *,
    kind: AnalysisKind,
    name: str | None = None,
) -> CreateAnalysisRun:
    step_index = ctx.step_index if kind == "Step" else None
    base = f"{ctx.rollout_name}-{ctx.pod_hash}-{ctx.revision}"
    if step_index is not None:
        base = f"{base}-{step_index}"
    elif kind in _NAME_SUFFIXES:
        base = f"{base}-{_NAME_SUFFIXES[kind]}"
    labels: dict[str, str] = {ROLLOUT_TYPE_LABEL: kind, HASH_LABEL: ctx.pod_hash}
    if step_index is not None:
        labels[STEP_INDEX_LABEL] = str(step_index)
    annotations = {REVISION_ANNOTATION: str(ctx.revision)}
    metadata = analysis.analysis_run_metadata
    if metadata is not None:
        labels.update(metadata.labels or {})
        annotations.update(metadata.annotations or {})
    labels.update(ctx.selector_labels)
    args = resolve_args(analysis.args, stable_hash=ctx.stable_hash, latest_hash=ctx.pod_hash)
    if args is not None and args != analysis.args:
        analysis = analysis.copy_with(args=args)
    return CreateAnalysisRun(
        name=name or free_run_name(base, ctx.runs),
        kind=kind,
        step_index=step_index,
        analysis=analysis,
        pod_template_hash=ctx.pod_hash,
        revision=ctx.revision,
        labels=labels,
        annotations=annotations,
    )


def _needs_new_run(ctx: RunsContext, current: AnalysisRunView | None) -> bool:
    if current is None:
        return True
    if ctx.controller_pause:
        # Resumed after an Inconclusive pause: measure again rather than reuse the verdict.
        # Still paused (a pause step): the verdict is new and pauses it (Argo #3850).
        return current.phase == "Inconclusive" and not ctx.paused
    return ctx.was_aborted


def _judge(run: AnalysisRunView, outcome: RunsOutcome) -> None:
    if run.phase == "Inconclusive":
        outcome.pause = True
    elif run.phase in ("Failed", "Error") and outcome.abort_message is None:
        outcome.abort_message = run.message


def _status_event(
    kind: str, previous: Mapping[str, Any] | None, run: AnalysisRunView | None
) -> EmitEvent | None:
    """Argo's `AnalysisRun<Phase>` event when a current run changes phase (notifications)."""
    if run is None or not run.phase:
        return None
    if previous is not None and (
        previous.get("name") != run.name or previous.get("status") == run.phase
    ):
        return None
    before = "NoPreviousStatus" if previous is None else str(previous.get("status", ""))
    warning = run.phase in ("Failed", "Error")
    return EmitEvent(
        type="Warning" if warning else "Normal",
        reason=f"AnalysisRun{run.phase}",
        message=f"{kind} Analysis Run '{run.name}' Status New: '{run.phase}' Previous: '{before}'",
    )


def _reconcile_step_run(
    ctx: RunsContext, outcome: RunsOutcome
) -> tuple[AnalysisRunView | None, str | None]:
    """The current step run (or the name of one being created)."""
    current, named = _current(ctx, "Step", ctx.step_run_status)
    if ctx.paused:
        return current, None if current else named
    if ctx.step_analysis is None:
        _terminate(current, outcome)
        return None, None
    if current is None and named:
        # Asked for in an earlier decision, not seen yet: ask again (creating is idempotent).
        outcome.actions.append(_create(ctx, ctx.step_analysis, kind="Step", name=named))
        return None, named
    if _needs_new_run(ctx, current):
        create = _create(ctx, ctx.step_analysis, kind="Step")
        outcome.actions.append(create)
        return None, create.name
    assert current is not None
    _judge(current, outcome)
    return current, None


def _reconcile_background_run(
    ctx: RunsContext, outcome: RunsOutcome
) -> tuple[AnalysisRunView | None, str | None]:
    current, named = _current(ctx, "Background", ctx.background_run_status)
    background = ctx.background
    if background is None:
        _terminate(current, outcome)
        return None, None
    starting = background.starting_step
    before_start = starting is not None and ctx.step_index is not None and ctx.step_index < starting
    if ctx.fully_promoted or not ctx.stable_hash or before_start:
        return None, None
    if ctx.inconclusive_paused:
        return current, None if current else named
    if current is None and named:
        outcome.actions.append(_create(ctx, background, kind="Background", name=named))
        return None, named
    if _needs_new_run(ctx, current):
        create = _create(ctx, background, kind="Background")
        outcome.actions.append(create)
        return None, create.name
    assert current is not None
    _judge(current, outcome)
    return current, None


def _reconcile_promotion_run(
    ctx: RunsContext,
    outcome: RunsOutcome,
    *,
    kind: AnalysisKind,
    analysis: api.RolloutAnalysis | None,
    status: Mapping[str, Any] | None,
    skip: bool,
) -> tuple[AnalysisRunView | None, str | None]:
    """A blue-green pre- or post-promotion run (Argo's reconcile{Pre,Post}PromotionAnalysisRun)."""
    current, named = _current(ctx, kind, status)
    if analysis is None:
        _terminate(current, outcome)
        return None, None
    if skip or ctx.inconclusive_paused:
        if current is not None:
            _judge(current, outcome)
        return current, None if current else named
    if current is None and named:
        outcome.actions.append(_create(ctx, analysis, kind=kind, name=named))
        return None, named
    if _needs_new_run(ctx, current):
        create = _create(ctx, analysis, kind=kind)
        outcome.actions.append(create)
        return None, create.name
    assert current is not None
    _judge(current, outcome)
    return current, None


def _prune_history(ctx: RunsContext, outcome: RunsOutcome, current: set[str]) -> None:
    """Delete completed runs beyond the history limits, oldest first; never a current one."""
    done = sorted(
        (run for run in ctx.runs if run.completed and run.name not in current),
        key=lambda run: (run.created_at is not None, run.created_at, run.name),
        reverse=True,
    )
    successful = [run for run in done if run.phase == "Successful"]
    unsuccessful = [run for run in done if run.phase != "Successful"]
    for run in (
        successful[max(ctx.successful_history_limit, 0) :]
        + unsuccessful[max(ctx.unsuccessful_history_limit, 0) :]
    ):
        outcome.actions.append(DeleteAnalysisRun(run.name))


def reconcile_runs(ctx: RunsContext, promotion: PromotionRuns = NO_PROMOTION_RUNS) -> RunsOutcome:
    """Runs to create or terminate, the statuses to mirror, and whether to pause or abort."""
    outcome = RunsOutcome()
    if ctx.skip_all:
        step_run = _by_name(ctx.runs, (ctx.step_run_status or {}).get("name"))
        background_run = _by_name(ctx.runs, (ctx.background_run_status or {}).get("name"))
        pre_run = _by_name(ctx.runs, (promotion.pre_run_status or {}).get("name"))
        post_run = _by_name(ctx.runs, (promotion.post_run_status or {}).get("name"))
        for run in ctx.runs:
            _terminate(run, outcome)
        outcome.step_run_status = run_status(step_run) if step_run else None
        outcome.background_run_status = run_status(background_run) if background_run else None
        outcome.pre_run_status = run_status(pre_run) if pre_run else None
        outcome.post_run_status = run_status(post_run) if post_run else None
        kept = (step_run, background_run, pre_run, post_run)
        _prune_history(ctx, outcome, {run.name for run in kept if run is not None})
        return outcome

    step_run, step_pending = _reconcile_step_run(ctx, outcome)
    background_run, background_pending = _reconcile_background_run(ctx, outcome)
    pre_run, pre_pending = _reconcile_promotion_run(
        ctx,
        outcome,
        kind="PrePromotion",
        analysis=promotion.pre_promotion,
        status=promotion.pre_run_status,
        skip=promotion.skip_pre,
    )
    post_run, post_pending = _reconcile_promotion_run(
        ctx,
        outcome,
        kind="PostPromotion",
        analysis=promotion.post_promotion,
        status=promotion.post_run_status,
        skip=promotion.skip_post,
    )

    current_names = {
        name
        for name in (
            step_run.name if step_run else step_pending,
            background_run.name if background_run else background_pending,
            pre_run.name if pre_run else pre_pending,
            post_run.name if post_run else post_pending,
        )
        if name
    }
    for run in ctx.runs:
        if run.name not in current_names:
            _terminate(run, outcome)
    _prune_history(ctx, outcome, current_names)

    for kind, previous, current in (
        ("PostPromotion", promotion.post_run_status, post_run),
        ("PrePromotion", promotion.pre_run_status, pre_run),
        ("Step", ctx.step_run_status, step_run),
        ("Background", ctx.background_run_status, background_run),
    ):
        event = _status_event(kind, previous, current)
        if event is not None:
            outcome.actions.append(event)

    if step_run is not None:
        outcome.step_run_status = run_status(step_run)
    elif step_pending:
        outcome.step_run_status = {"name": step_pending, "status": ""}
    if background_run is not None:
        outcome.background_run_status = run_status(background_run)
    elif background_pending:
        outcome.background_run_status = {"name": background_pending, "status": ""}
    if pre_run is not None:
        outcome.pre_run_status = run_status(pre_run)
    elif pre_pending:
        outcome.pre_run_status = {"name": pre_pending, "status": ""}
    if post_run is not None:
        outcome.post_run_status = run_status(post_run)
    elif post_pending:
        outcome.post_run_status = {"name": post_pending, "status": ""}
    return outcome
