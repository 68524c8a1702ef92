"""The AnalysisRun reconciler, pure: what to measure now, and what measurements make of the run.

Where this sits: called by the analysis shell (the controller's run loop and `rollwise
analyze`), once per reconcile of one AnalysisRun. The shell does the I/O in between:

    planned = plan(run, now, secret_lookup=secrets_of(run.namespace))
    write planned.status if it changed
    results = {name: await measure(planned.metrics[name], ...) for name in planned.to_run}
            | {name: await resume(planned.metrics[name], <last measurement>, ...) for to_resume}
            | {name: await terminate(planned.metrics[name], <last measurement>, ...) ...}
    status = record(run with planned.status, results, now, secrets=planned.secrets)
    write status; plan again at once (a fail-fast can make terminations due now) until the
    plan is idle, then requeue after its `requeue_after` (None: nothing more will fall due).

Theory of operation (reference 2.3-2.8, Argo's `reconcileAnalysisRun`):

1. A completed run plans nothing and keeps its status (idempotent, like every step here).
2. The metrics are resolved (`{{args.x}}`), validated (2.3) and the dryRun /
   measurementRetention / no-data / on-terminate rules matched; any problem ends the run as
   Error with "Unable to resolve metric arguments: ..." or "Analysis spec invalid: ...".
3. Assessment (`phases.assess_metric` per metric, then the run): a metric that completed
   Failed/Error/Inconclusive (dry-run ones aside) makes the run *terminating*, as does
   `spec.terminate`. Terminating metrics with nothing in flight end Successful unless they
   broke a limit (or, under `rollwise.io/on-terminate: inconclusive`, had no Successful
   measurement: Inconclusive, measured or not; see `onterminate`); the run takes the worst
   phase (Successful < Running < Pending < Inconclusive < Error < Failed) with Argo's
   message. Fail-fast takes effect in the same reconcile (Argo needs one more, up to an
   interval later).
4. Scheduling (2.4) for each metric not completed: an in-flight measurement is resumed once
   its `resumeAt` has passed, or terminated when the run is terminating (at once, whatever its
   `resumeAt`: rollwise does not let a run complete with a measurement still running); no new
   measurement while terminating; the first one after `initialDelay` from `status.startedAt`;
   the next one `interval` after the previous one finished, or 10 s after an Error; none once
   `count` non-error measurements exist.
5. `record` folds the measurements in (counters of 2.4, masking, Terminate results become
   Inconclusive "Metric Terminated", 2.8), reassesses, and trims each metric's measurements to
   its retention limit (10 unless a measurementRetention rule says more).

Times are whole seconds (RFC3339); a measurement is due when `now >= due` (Argo waits for
`now > due`, which only matters with a clock that does not move).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rollwise.api.errors import IllegalTransitionError, UserError
from rollwise.api.models import (
    AnalysisRun,
    AnalysisRunStatus,
    DryRun,
    Measurement,
    MeasurementRetention,
    Metric,
    MetricResult,
    RunSummary,
)
from rollwise.core.analysis.args import SecretLookup, mask, resolve_args, substitute
from rollwise.core.analysis.nodata import no_data_policies, with_no_data_policy
from rollwise.core.analysis.onterminate import unproven_phases
from rollwise.core.analysis.phases import (
    BREACHED,
    ERROR,
    FAILED,
    INCONCLUSIVE,
    RUNNING,
    SUCCESSFUL,
    assess_metric,
    assessment_reason,
    completed,
    count_measurement,
    is_worse,
)
from rollwise.core.analysis.settings import (
    ERROR_RETRY_SECONDS,
    effective_count,
    initial_delay_seconds,
    interval_seconds,
    metrics_problem,
)
from rollwise.core.expressions import ExpressionError
from rollwise.core.expressions.regexes import search
from rollwise.core.timestamps import format_time, parse_time, parse_time_or_none

DEFAULT_MEASUREMENT_RETENTION = 10
TERMINATED_MESSAGE = "Metric Terminated"
RUN_TERMINATED_MESSAGE = "Run Terminated"
DEFAULT_RESUME_SECONDS = ERROR_RETRY_SECONDS
"""When a provider leaves a measurement in flight without `resumeAt`, look again this later."""


@dataclass(frozen=True)
class Plan:
    """What to do for one AnalysisRun now."""

    to_run: tuple[str, ...]
    """Metrics to take a new measurement of now."""
    to_resume: tuple[str, ...]
    """Metrics whose in-flight measurement (the last one) is due to be resumed."""
    to_terminate: tuple[str, ...]
    """Metrics whose in-flight measurement must be stopped (the run is terminating)."""
    status: AnalysisRunStatus
    """The run's status as of now, before any of the measurements above."""
    requeue_after: float | None
    """Seconds until something else falls due (None: nothing will, e.g. the run completed).
    Measurements to take now do not count: plan again after `record`."""
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    """Every metric resolved (args substituted, the no-data policy attached): hand these to the
    providers. Secret args hold real values only when `secret_lookup` was given."""
    secrets: frozenset[str] = frozenset()
    """Secret values in `metrics`: pass them to `record` (and mask them in any log)."""

    @property
    def idle(self) -> bool:
        return not (self.to_run or self.to_resume or self.to_terminate)


# --- the spec as this reconcile reads it -------------------------------------------------------


class _InvalidRun(Exception):
    """The run cannot be measured; the message is the run's Error message."""


@dataclass(frozen=True)
class _Spec:
    metrics: tuple[Metric, ...]
    dry_run: frozenset[str]
    retention: Mapping[str, int]
    terminate: bool
    secrets: frozenset[str]
    unproven: Mapping[str, str] = field(default_factory=dict)
    """Metric -> its phase when terminated without a Successful measurement, where that is not
    Argo's Successful (`rollwise.io/on-terminate`; never a dry-run metric)."""

    def unproven_phase(self, name: str) -> str:
        return self.unproven.get(name, SUCCESSFUL)

    def metric(self, name: str) -> Metric | None:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        return None


def _matching(
    rules: Sequence[DryRun | MeasurementRetention], metrics: Sequence[Metric], what: str
) -> dict[str, DryRun | MeasurementRetention]:
    """Metric name -> the (last) rule whose unanchored regex matches it; every rule must match
    something. An invalid regex (`*`) matches nothing, as Go's ignored compile error does."""
    matched: dict[str, DryRun | MeasurementRetention] = {}
    for index, rule in enumerate(rules):
        hits = [m.name for m in metrics if _metric_matches(rule.metric_name, m.name, what, index)]
        if not hits:
            raise _InvalidRun(
                f"Analysis spec invalid: {what}[{index}]: Rule didn't match any metric name(s)"
            )
        for name in hits:
            matched[name] = rule
    return matched


def _metric_matches(pattern: str, name: str, what: str, index: int) -> bool:
    """Go's regexp runs in linear time; Python's may backtrack for ever (`(a+)+$` against a
    long metric name), so the pattern runs under the condition language's guards."""
    try:
        return search(pattern, name)
    except ExpressionError as error:
        if error.detail.startswith("error parsing regexp"):
            return False
        raise _InvalidRun(
            f"Analysis spec invalid: {what}[{index}]: metricName {pattern!r}: {error.detail}"
        ) from None


def _read_spec(run: AnalysisRun, secret_lookup: SecretLookup | None) -> _Spec:
    try:
        args = resolve_args(run.spec.args, secret_lookup=secret_lookup)
        metrics = [substitute(metric, args.values) for metric in run.spec.metrics]
    except UserError as error:
        raise _InvalidRun(f"Unable to resolve metric arguments: {error}") from error
    problem = metrics_problem(metrics)
    if problem is not None:
        raise _InvalidRun(f"Analysis spec invalid: {problem}")
    dry_run = _matching(run.spec.dry_run or (), metrics, "dryRun")
    retention: dict[str, int] = {}
    for name, rule in _matching(
        run.spec.measurement_retention or (), metrics, "measurementRetention"
    ).items():
        assert isinstance(rule, MeasurementRetention)
        if rule.limit > 0:
            retention[name] = rule.limit
    try:
        names = [m.name for m in metrics]
        policies = no_data_policies(run.metadata.annotations, names)
        unproven = unproven_phases(run.metadata.annotations, names)
    except UserError as error:
        raise _InvalidRun(f"Analysis spec invalid: {error}") from error
    return _Spec(
        metrics=tuple(with_no_data_policy(m, policies.get(m.name)) for m in metrics),
        dry_run=frozenset(dry_run),
        retention=retention,
        terminate=bool(run.spec.terminate),
        secrets=args.secrets,
        unproven={name: phase for name, phase in unproven.items() if name not in dry_run},
    )


# --- status helpers ----------------------------------------------------------------------------


def _set(model: Any, name: str, value: object) -> None:
    """Assign a field; None unsets it so `to_raw()` leaves it out instead of writing null."""
    setattr(model, name, value)
    if value is None:
        model.model_fields_set.discard(name)


def _start(run: AnalysisRun, now: datetime) -> AnalysisRunStatus:
    # copy_with (dump and validate) copies a status with its measurements about three times
    # faster than model_copy(deep=True): it runs several times per measurement
    status = run.status.copy_with() if run.status else AnalysisRunStatus()
    if not status.started_at:
        status.started_at = format_time(now)
    if status.metric_results is None:
        status.metric_results = []
    return status


def _error_status(run: AnalysisRun, now: datetime, message: str) -> AnalysisRunStatus:
    status = _start(run, now)
    status.phase = ERROR
    status.message = message
    status.completed_at = format_time(now)
    return status


def _results(status: AnalysisRunStatus) -> dict[str, MetricResult]:
    return {result.name: result for result in status.metric_results or ()}


def _in_flight(measurement: Measurement) -> bool:
    return not completed(measurement.phase) or not measurement.finished_at


def _last(result: MetricResult | None) -> Measurement | None:
    if result is None or not result.measurements:
        return None
    return result.measurements[-1]


def _terminating(spec: _Spec, results: Mapping[str, MetricResult]) -> bool:
    """Argo's `IsTerminating`: asked to, or a non-dry-run metric broke a limit."""
    if spec.terminate:
        return True
    return any(
        result.phase in BREACHED for name, result in results.items() if name not in spec.dry_run
    )


# --- assessment (2.6, 2.7) ---------------------------------------------------------------------


def _new_result(name: str, *, dry_run: bool) -> MetricResult:
    result = MetricResult(
        name=name,
        phase=RUNNING,
        count=0,
        successful=0,
        failed=0,
        inconclusive=0,
        error=0,
        consecutive_error=0,
        consecutive_success=0,
    )
    if dry_run:
        result.dry_run = True
    return result


def _add_unmeasured(
    spec: _Spec, status: AnalysisRunStatus, results: dict[str, MetricResult]
) -> None:
    """A terminating run's metrics that were never measured get a result where their
    on-terminate phase is not Argo's Successful (Argo leaves them out and passes the run)."""
    missing = [m.name for m in spec.metrics if m.name in spec.unproven and m.name not in results]
    if not missing:
        return
    for name in missing:
        results[name] = _new_result(name, dry_run=False)
    order = {metric.name: index for index, metric in enumerate(spec.metrics)}
    status.metric_results = sorted(results.values(), key=lambda r: order.get(r.name, len(order)))


def _assess_metrics(
    spec: _Spec, status: AnalysisRunStatus, results: dict[str, MetricResult], terminating: bool
) -> None:
    if terminating:
        _add_unmeasured(spec, status, results)
    for metric in spec.metrics:
        result = results.get(metric.name)
        if result is None:
            continue
        phase = assess_metric(
            metric, result, terminating=terminating, unproven=spec.unproven_phase(metric.name)
        )
        if phase != result.phase:
            last = _last(result)
            _set(result, "message", last.message if last else None)
            result.phase = phase
            if metric.name in spec.dry_run and completed(phase) and phase != SUCCESSFUL:
                reason = assessment_reason(metric, result)
                if reason:
                    result.message = f"Metric assessed {phase} due to {reason}"


def _summary() -> dict[str, int]:
    return {"count": 0, SUCCESSFUL: 0, FAILED: 0, INCONCLUSIVE: 0, ERROR: 0}


def _run_summary(counts: Mapping[str, int]) -> RunSummary:
    return RunSummary(
        count=counts["count"],
        successful=counts[SUCCESSFUL],
        failed=counts[FAILED],
        inconclusive=counts[INCONCLUSIVE],
        error=counts[ERROR],
    )


def _assess(spec: _Spec, status: AnalysisRunStatus, now: datetime) -> None:
    """Metric phases, run phase, message, summaries, completedAt and retention, in place."""
    results = _results(status)
    terminating = _terminating(spec, results)
    _assess_metrics(spec, status, results, terminating)
    if not terminating and _terminating(spec, results):
        terminating = True  # fail-fast in this same reconcile
        _assess_metrics(spec, status, results, terminating)

    worst: str | None = None
    message: str | None = RUN_TERMINATED_MESSAGE if spec.terminate else None
    everything_completed = True
    in_flight = False
    run_counts, dry_counts = _summary(), _summary()
    for metric in spec.metrics:
        dry = metric.name in spec.dry_run
        counts = dry_counts if dry else run_counts
        counts["count"] += 1
        result = results.get(metric.name)
        if result is None:
            everything_completed = False
            continue
        phase = result.phase
        if not completed(phase):
            everything_completed = False
            last = _last(result)
            in_flight = in_flight or (last is not None and _in_flight(last))
            continue
        counts[phase] += 1
        if dry:
            worst = worst or SUCCESSFUL  # dry-run metrics never make a run worse
            continue
        if worst is None or is_worse(worst, phase):
            worst = phase
            reason = (
                assessment_reason(metric, result, unproven=spec.unproven_phase(metric.name))
                if phase != SUCCESSFUL
                else None
            )
            if reason:
                message = f'Metric "{metric.name}" assessed {phase} due to {reason}'
                if result.message:
                    message += f': "Error Message: {result.message}"'

    if terminating and not in_flight:
        phase, text = worst or SUCCESSFUL, message
    elif not everything_completed or worst is None:
        phase, text = RUNNING, None
    else:
        phase, text = worst, message

    was_completed = completed(status.phase)
    status.phase = phase
    _set(status, "message", text)
    status.run_summary = _run_summary(run_counts)
    status.dry_run_summary = _run_summary(dry_counts)
    if completed(phase) and not was_completed:
        status.completed_at = format_time(now)
    for result in status.metric_results or ():
        limit = spec.retention.get(result.name, DEFAULT_MEASUREMENT_RETENTION)
        if result.measurements and len(result.measurements) > limit:
            result.measurements = result.measurements[-limit:]


# --- scheduling (2.4) --------------------------------------------------------------------------


@dataclass
class _Tasks:
    run: list[str] = field(default_factory=list)
    resume: list[str] = field(default_factory=list)
    terminate: list[str] = field(default_factory=list)
    wake: list[datetime] = field(default_factory=list)

    def due(self, name: str, at: datetime, now: datetime) -> None:
        if now >= at:
            self.run.append(name)
        else:
            self.wake.append(at)


def _schedule(spec: _Spec, status: AnalysisRunStatus, now: datetime) -> _Tasks:
    tasks = _Tasks()
    if completed(status.phase):
        return tasks
    results = _results(status)
    terminating = _terminating(spec, results)
    started = parse_time(status.started_at or format_time(now))
    for metric in spec.metrics:
        result = results.get(metric.name)
        if result is not None and completed(result.phase):
            continue
        last = _last(result)
        if last is not None and _in_flight(last):
            resume_at = parse_time_or_none(last.resume_at)
            if terminating:
                tasks.terminate.append(metric.name)
            elif resume_at is None or now >= resume_at:
                tasks.resume.append(metric.name)
            else:
                tasks.wake.append(resume_at)
            continue
        if terminating:
            continue
        if last is None:
            delay = initial_delay_seconds(metric)
            tasks.due(metric.name, started + timedelta(seconds=delay or 0.0), now)
            continue
        count = effective_count(metric)
        if count is not None and result is not None and (result.count or 0) >= count:
            continue
        if last.phase == ERROR:
            gap = ERROR_RETRY_SECONDS
        else:
            interval = interval_seconds(metric)
            if interval is None and metric.interval:
                continue  # unparseable; validation has already failed the run
            gap = ERROR_RETRY_SECONDS if interval is None else interval
        finished = parse_time_or_none(last.finished_at) or now
        tasks.due(metric.name, finished + timedelta(seconds=gap), now)
    return tasks


# --- the two entry points ----------------------------------------------------------------------


def plan(run: AnalysisRun, now: datetime, *, secret_lookup: SecretLookup | None = None) -> Plan:
    """What to measure, resume or terminate now, and the run's status as of now.

    `secret_lookup` (name, key) -> value reads the run's secret args; without it they read as a
    placeholder (enough to schedule, not to measure). It is only called when something is due.
    """
    if run.status is not None and completed(run.status.phase):
        return Plan((), (), (), run.status.copy_with(), None)
    try:
        spec = _read_spec(run, None)
    except _InvalidRun as error:
        return Plan((), (), (), _error_status(run, now, str(error)), None)
    status = _start(run, now)
    _assess(spec, status, now)
    tasks = _schedule(spec, status, now)
    busy = tasks.run or tasks.resume or tasks.terminate
    if busy and secret_lookup is not None and run.spec.args:
        try:
            spec = _read_spec(run, secret_lookup)
        except _InvalidRun as error:
            return Plan((), (), (), _error_status(run, now, str(error)), None)
    wake = min(tasks.wake, default=None)
    return Plan(
        to_run=tuple(tasks.run),
        to_resume=tuple(tasks.resume),
        to_terminate=tuple(tasks.terminate),
        status=status,
        requeue_after=None if wake is None else max(0.0, (wake - now).total_seconds()),
        metrics={metric.name: metric for metric in spec.metrics},
        secrets=spec.secrets,
    )


def _finish(measurement: Measurement, now: datetime, secrets: Collection[str]) -> Measurement:
    changes: dict[str, object] = {}
    if secrets:
        if measurement.message:
            changes["message"] = mask(measurement.message, secrets)
        if measurement.value:
            changes["value"] = mask(measurement.value, secrets)
        if measurement.metadata:
            changes["metadata"] = {k: mask(v, secrets) for k, v in measurement.metadata.items()}
    if completed(measurement.phase):
        if not measurement.finished_at:
            changes["finished_at"] = format_time(now)
    elif not measurement.resume_at:
        changes["resume_at"] = format_time(now + timedelta(seconds=DEFAULT_RESUME_SECONDS))
    finished = measurement.model_copy(update=changes, deep=True) if changes else measurement
    if not completed(finished.phase) and finished.finished_at:
        finished = finished.model_copy(deep=True)
        _set(finished, "finished_at", None)
    return finished


def _terminated(measurement: Measurement, now: datetime) -> Measurement:
    """What a Terminate call leaves (reference 2.8): Inconclusive "Metric Terminated", unless
    the provider could not even stop it (Error)."""
    if measurement.phase == ERROR and measurement.finished_at:
        return measurement
    return measurement.model_copy(
        update={
            "phase": INCONCLUSIVE,
            "message": TERMINATED_MESSAGE,
            "finished_at": measurement.finished_at or format_time(now),
        },
        deep=True,
    )


def record(
    run: AnalysisRun,
    results: Mapping[str, Measurement],
    now: datetime,
    *,
    secrets: Collection[str] = (),
    metric_metadata: Mapping[str, Mapping[str, str]] | None = None,
) -> AnalysisRunStatus:
    """The run's status with `results` (metric name -> the measurement a provider returned for
    a planned run/resume/terminate) folded in and everything reassessed.

    Pass the run as planned (with `plan.status`) or as it was: the same assessment is redone.
    `secrets` are masked in messages, values and metadata; `metric_metadata` sets a metric
    result's `metadata` (e.g. Prometheus' `ResolvedPrometheusQuery`). A result for a metric the
    run does not have, or one already completed, raises IllegalTransitionError.
    """
    if run.status is not None and completed(run.status.phase):
        return run.status.copy_with()
    try:
        spec = _read_spec(run, None)
    except _InvalidRun as error:
        return _error_status(run, now, str(error))
    status = _start(run, now)
    _assess(spec, status, now)
    if completed(status.phase):
        return status
    by_name = _results(status)
    terminating = _terminating(spec, by_name)
    for name, incoming in results.items():
        if spec.metric(name) is None:
            raise IllegalTransitionError(f"run {run.name!r} has no metric {name!r}")
        result = by_name.get(name)
        if result is None:
            result = _new_result(name, dry_run=name in spec.dry_run)
            by_name[name] = result
        elif completed(result.phase):
            raise IllegalTransitionError(f"metric {name!r} of run {run.name!r} has completed")
        measurement = _finish(incoming, now, [*secrets, *spec.secrets])
        last = _last(result)
        replacing = last is not None and _in_flight(last)
        if replacing and terminating:
            measurement = _terminated(measurement, now)
        if completed(measurement.phase):
            count_measurement(result, measurement.phase)
        measurements = list(result.measurements or ())
        if replacing:
            measurements[-1] = measurement
        else:
            measurements.append(measurement)
        result.measurements = measurements
        if metric_metadata and name in metric_metadata:
            result.metadata = dict(metric_metadata[name])
    order = {metric.name: index for index, metric in enumerate(spec.metrics)}
    status.metric_results = sorted(by_name.values(), key=lambda r: order.get(r.name, len(order)))
    _assess(spec, status, now)
    return status
