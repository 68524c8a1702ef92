"""The `job` metric provider: a Kubernetes Job's outcome as the measurement, run by a JobRunner.

Who calls it: the analysis shell through `rollwise.providers.base.provider_for("job")`. Argo
(reference 3.3) creates a `batch/v1` Job from `provider.job.spec` and lets the Job decide: the
conditions of the metric are ignored. This provider keeps Argo's contract and the Job's own
semantics, and leaves running the pod to `context.services.job_runner` (a `JobRunner`: local
processes in local mode, a Kubernetes Job later), which only starts, polls and stops one pod:

- `run` starts the Job's pod template (`spec.template`) as `<run>.<metric>.<n>` (Argo's
  `<run uid>.<metric>.<n>` counts the metric's measurements; a provider here keeps no state, so
  `n` is the start time in Unix seconds; the metric part is cut so the name fits 63
  characters) and returns a `Running` measurement whose `resumeAt` is a few seconds
  away, with metadata `job-name` and `job-namespace` (Argo's, read by the CLI tree) and
  `rollwise.io/job-handle` (the runner's handle, so a restarted controller can resume).
- `resume` asks the runner: still running -> poll again after `sqrt(2 x elapsed seconds)` (at
  least 2 s), as Argo does; succeeded -> Successful; failed -> the pod is retried, as a Job does,
  until `spec.backoffLimit` (default 6) retries have failed, with Kubernetes' back-off between
  attempts (10 s, doubling, at most 6 min; `rollwise.io/job-failures`, `rollwise.io/job-retry-at`
  record where it stands), then Failed. `spec.activeDeadlineSeconds`, when set, fails the Job
  once it has been active that long. Set `backoffLimit: 0` for a Job that reports its first
  failure.
- A pod that cannot start because its image is unknown (the runner's `start` raises `UserError`:
  locally, an image missing from the image table without `command`) is Inconclusive, as Argo
  makes a Job whose pod is stuck in `ErrImagePull`/`ImagePullBackOff`/`InvalidImageName`
  (it pauses the rollout instead of failing it). Any other failure of the runner is an Error.
- `terminate` stops the pod and returns the measurement Successful with `finishedAt` now, as
  Argo's `Terminate` (which deletes the Job) does; the core decides what a terminated measurement
  counts as (reference 2.8).

`provider.job.metadata` (labels, annotations) and `spec.completions`/`parallelism` matter only for
a real Kubernetes Job; the local runner runs one pod at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from rollwise.api.errors import UserError
from rollwise.api.models import Measurement, Metric
from rollwise.core.timestamps import format_time, parse_time_or_none
from rollwise.providers.base import JobRunner, ProviderContext, error_at, provider_config, register

JOB_NAME_KEY = "job-name"
JOB_NAMESPACE_KEY = "job-namespace"
HANDLE_KEY = "rollwise.io/job-handle"
FAILURES_KEY = "rollwise.io/job-failures"
RETRY_AT_KEY = "rollwise.io/job-retry-at"

DEFAULT_BACKOFF_LIMIT = 6  # Kubernetes' default for spec.backoffLimit
FIRST_RETRY_S = 10.0  # Kubernetes' pod failure back-off: 10 s, doubling ...
MAX_RETRY_S = 360.0  # ... capped at 6 minutes
MIN_POLL_S = 2.0
MAX_NAME = 63


class JobFailure(Exception):
    """Internal: a reason to end this measurement as Error (never leaves the module)."""


def job_name(run_name: str, metric_name: str, number: int) -> str:
    """`<run>.<metric>.<n>`, the metric (then the run) part cut to fit MAX_NAME characters."""
    run = run_name or "run"
    suffix = str(number)
    room = MAX_NAME - len(run) - len(suffix) - 2
    if room < 1:
        run = run[: MAX_NAME - len(suffix) - 3]
        room = 1
    return f"{run}.{metric_name[:room]}.{suffix}"


def poll_delay(elapsed_s: float) -> float:
    """Argo's polling gap for a Job still running: sqrt(2 x elapsed), at least MIN_POLL_S."""
    return max(MIN_POLL_S, math.sqrt(2.0 * max(0.0, elapsed_s)))


def retry_delay(failures: int) -> float:
    """Kubernetes' back-off before the next pod after `failures` failed ones."""
    return min(MAX_RETRY_S, FIRST_RETRY_S * 2.0 ** max(0, failures - 1))


class JobSpec:
    """The parts of `provider.job.spec` this provider acts on, checked."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        spec = config.get("spec")
        if not isinstance(spec, Mapping):
            raise JobFailure("job.spec is required (a batch/v1 JobSpec)")
        template = spec.get("template")
        template = template if isinstance(template, Mapping) else {}
        pod_spec = template.get("spec")
        containers = pod_spec.get("containers") if isinstance(pod_spec, Mapping) else None
        if not isinstance(containers, list) or not containers:
            raise JobFailure("job.spec.template.spec.containers is empty")
        self.pod_template: dict[str, Any] = dict(template)
        self.backoff_limit = _whole(spec.get("backoffLimit"), "backoffLimit", DEFAULT_BACKOFF_LIMIT)
        deadline = spec.get("activeDeadlineSeconds")
        self.active_deadline_s = (
            None if deadline is None else _whole(deadline, "activeDeadlineSeconds", 0)
        )
        if self.active_deadline_s is not None and self.active_deadline_s <= 0:
            raise JobFailure("job.spec.activeDeadlineSeconds must be positive")


def _whole(raw: object, name: str, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise JobFailure(f"job.spec.{name} must be a non-negative integer, not {raw!r}")
    return raw


@register("job")
class JobProvider:
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        started = context.now()
        name = job_name(context.run_name, metric.name, int(started.timestamp()))
        metadata = {JOB_NAME_KEY: name, JOB_NAMESPACE_KEY: context.namespace}
        try:
            runner = _runner(context)
            spec = JobSpec(provider_config(metric, "job"))
        except JobFailure as failure:
            return error_at(
                str(failure), started_at=started, finished_at=context.now(), metadata=metadata
            )
        running = Measurement(phase="Running", started_at=format_time(started), metadata=metadata)
        return await _start(running, runner, spec, context, now=started)

    async def resume(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        now = context.now()
        metadata = measurement.metadata or {}
        name = metadata.get(JOB_NAME_KEY)
        try:
            if not name:
                raise JobFailure("job metadata reference missing")
            runner = _runner(context)
            spec = JobSpec(provider_config(metric, "job"))
        except JobFailure as failure:
            return _ended_as_error(measurement, str(failure), now)
        started = parse_time_or_none(measurement.started_at) or now
        elapsed_s = (now - started).total_seconds()
        handle = metadata.get(HANDLE_KEY)

        if spec.active_deadline_s is not None and elapsed_s >= spec.active_deadline_s:
            if handle:
                try:
                    await runner.stop(handle)
                except Exception as exc:
                    return _ended_as_error(measurement, f"cannot stop job {name}: {exc}", now)
            return _ended(
                measurement,
                "Failed",
                now,
                message=f"job {name} was active longer than activeDeadlineSeconds "
                f"({spec.active_deadline_s} s)",
            )

        if not handle:  # between two attempts: start the next one when its time has come
            retry_at = parse_time_or_none(metadata.get(RETRY_AT_KEY)) or now
            if now < retry_at:
                return measurement.copy_with(resume_at=format_time(retry_at))
            return await _start(measurement, runner, spec, context, now=now)

        try:
            phase = await runner.status(handle)
        except Exception as exc:
            return _ended_as_error(measurement, f"cannot read the status of job {name}: {exc}", now)
        if phase == "Succeeded":
            return _ended(measurement, "Successful", now)
        if phase == "Running":
            return measurement.copy_with(
                resume_at=format_time(now + timedelta(seconds=poll_delay(elapsed_s)))
            )
        failures = int(metadata.get(FAILURES_KEY, "0") or 0) + 1
        if failures > spec.backoff_limit:
            return _ended(
                measurement,
                "Failed",
                now,
                message=f"job {name} failed: its pod failed {failures} time(s), backoffLimit "
                f"is {spec.backoff_limit}",
                extra={FAILURES_KEY: str(failures)},
            )
        retry_at = now + timedelta(seconds=retry_delay(failures))
        waiting = {k: v for k, v in metadata.items() if k != HANDLE_KEY}
        waiting.update({FAILURES_KEY: str(failures), RETRY_AT_KEY: format_time(retry_at)})
        return measurement.copy_with(metadata=waiting, resume_at=format_time(retry_at))

    async def terminate(
        self, metric: Metric, measurement: Measurement, context: ProviderContext
    ) -> Measurement:
        now = context.now()
        metadata = measurement.metadata or {}
        name = metadata.get(JOB_NAME_KEY)
        if not name:
            return _ended_as_error(measurement, "job metadata reference missing", now)
        handle = metadata.get(HANDLE_KEY)
        if handle:
            try:
                await _runner(context).stop(handle)
            except JobFailure as failure:
                return _ended_as_error(measurement, str(failure), now)
            except Exception as exc:
                return _ended_as_error(measurement, f"cannot stop job {name}: {exc}", now)
        return _ended(measurement, "Successful", now)


def _runner(context: ProviderContext) -> JobRunner:
    runner = context.services.job_runner
    if runner is None:
        raise JobFailure(
            "the job provider needs a job runner (local processes or Kubernetes Jobs) and this "
            "analysis was started without one"
        )
    return runner


async def _start(
    measurement: Measurement,
    runner: JobRunner,
    spec: JobSpec,
    context: ProviderContext,
    *,
    now: datetime,
) -> Measurement:
    """Start one pod of the Job; Running with its handle, or Inconclusive/Error if it cannot."""
    metadata = dict(measurement.metadata or {})
    name = metadata[JOB_NAME_KEY]
    metadata.pop(RETRY_AT_KEY, None)
    try:
        handle = await runner.start(name, context.namespace, spec.pod_template)
    except UserError as exc:
        return _ended(
            measurement.copy_with(metadata=metadata),
            "Inconclusive",
            now,
            message=f"job {name} cannot start its pod: {exc}",
        )
    except Exception as exc:
        return _ended_as_error(
            measurement.copy_with(metadata=metadata),
            f"job {name} could not be started: {type(exc).__name__}: {exc}",
            now,
        )
    metadata[HANDLE_KEY] = handle
    return measurement.copy_with(
        phase="Running",
        metadata=metadata,
        resume_at=format_time(now + timedelta(seconds=MIN_POLL_S)),
    )


def _ended(
    measurement: Measurement,
    phase: str,
    now: datetime,
    *,
    message: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> Measurement:
    # The handle stays: the runner may need it to find the pod's logs or to clean up.
    metadata = {k: v for k, v in (measurement.metadata or {}).items() if k != RETRY_AT_KEY}
    metadata.update(extra or {})
    return _rebuilt(
        measurement,
        phase=phase,
        message=message,
        finished_at=format_time(now),
        resume_at=None,
        metadata=metadata or None,
    )


def _rebuilt(measurement: Measurement, **changes: Any) -> Measurement:
    """A copy with `changes`; a change to None removes the field (so it is not written as
    null, as `copy_with` would)."""
    data = measurement.model_dump(by_alias=False, exclude_none=True)
    data.update(changes)
    return Measurement.model_validate({k: v for k, v in data.items() if v is not None})


def _ended_as_error(measurement: Measurement, message: str, now: datetime) -> Measurement:
    return _ended(measurement, "Error", now, message=message)
