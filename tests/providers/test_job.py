"""The `job` provider: the Job's outcome as the measurement, through a JobRunner.

What is checked: `run` starts the pod template and returns Running with `resumeAt` and Argo's
metadata; `resume` polls (Argo's sqrt(2 x elapsed) gap), finishes Successful/Failed, retries a
failed pod as a Job does (backoffLimit, Kubernetes' back-off), honours activeDeadlineSeconds;
an image that cannot be started is Inconclusive; `terminate` stops the pod. Most tests drive an
in-memory runner with a manual clock (no sleeping); one runs real processes.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from rollwise.api.errors import UserError
from rollwise.api.models import Measurement, Metric
from rollwise.core.timestamps import ManualClock, format_time
from rollwise.providers import base
from rollwise.providers.base import JobPhase, ProviderContext, ProviderServices
from rollwise.providers.job import FAILURES_KEY, HANDLE_KEY, RETRY_AT_KEY, job_name

NOW = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
KNOWN_IMAGE = "rollwise/smoke-test:v1"


@dataclass
class Started:
    name: str
    namespace: str
    pod_template: dict[str, Any]


@dataclass
class FakeJobRunner:
    """An in-memory JobRunner: pods are entries whose phase the test sets."""

    known_images: set[str] = field(default_factory=lambda: {KNOWN_IMAGE})
    started: list[Started] = field(default_factory=list)
    phases: dict[str, JobPhase] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self, name: str, namespace: str, pod_template: dict[str, Any]) -> str:
        container = pod_template["spec"]["containers"][0]
        if container.get("image") not in self.known_images and not container.get("command"):
            raise UserError(f"image {container.get('image')!r} is not in the image table")
        self.started.append(Started(name, namespace, pod_template))
        handle = f"pod-{next(self._ids)}"
        self.phases[handle] = "Running"
        return handle

    async def status(self, handle: str) -> JobPhase:
        if handle not in self.phases:
            raise UserError(f"no pod {handle}")
        return self.phases[handle]

    async def stop(self, handle: str) -> None:
        self.stopped.append(handle)
        self.phases[handle] = "Failed"


def job_metric(*, image: str = KNOWN_IMAGE, **spec: Any) -> Metric:
    template = {
        "metadata": {"labels": {"app": "smoke"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "smoke", "image": image, "args": ["--target", "canary"]}],
        },
    }
    return Metric.model_validate(
        {
            "name": "smoke-test",
            "provider": {
                "job": {
                    "metadata": {"labels": {"team": "web"}},
                    "spec": {**spec, "template": template},
                }
            },
        }
    )


def context(clock: ManualClock, runner: Any) -> ProviderContext:
    return ProviderContext(
        clock=clock,
        namespace="shop",
        run_name="guestbook-6c5d9-2-1",
        services=ProviderServices(job_runner=runner),
    )


async def test_run_starts_the_pod_template_and_returns_running() -> None:
    runner, clock = FakeJobRunner(), ManualClock(NOW)
    metric = job_metric(backoffLimit=1)
    result = await base.measure(metric, context(clock, runner))
    assert result.phase == "Running"
    assert result.started_at == format_time(NOW)
    assert result.finished_at is None
    assert result.resume_at == format_time(NOW.replace(second=2))
    name = f"guestbook-6c5d9-2-1.smoke-test.{NOW_S}"
    assert result.metadata == {"job-name": name, "job-namespace": "shop", HANDLE_KEY: "pod-1"}
    (started,) = runner.started
    assert (started.name, started.namespace) == (name, "shop")
    assert started.pod_template["spec"]["containers"][0]["args"] == ["--target", "canary"]


async def test_resume_polls_then_succeeds() -> None:
    runner, clock = FakeJobRunner(), ManualClock(NOW)
    metric = job_metric()
    ctx = context(clock, runner)
    measurement = await base.measure(metric, ctx)

    clock.advance(50)
    still = await base.resume(metric, measurement, ctx)
    assert still.phase == "Running"
    # Argo's gap: sqrt(2 x 50 s elapsed) = 10 s.
    assert still.resume_at == format_time(NOW.replace(minute=1))

    runner.phases["pod-1"] = "Succeeded"
    clock.advance(10)
    done = await base.resume(metric, still, ctx)
    assert done.phase == "Successful"
    assert done.finished_at == format_time(NOW.replace(minute=1))
    assert done.resume_at is None
    assert (done.metadata or {})[HANDLE_KEY] == "pod-1"
    assert (done.metadata or {})["job-name"].startswith("guestbook-6c5d9-2-1.smoke-test.")


async def test_a_failed_pod_with_backoff_limit_zero_fails_the_measurement() -> None:
    runner, clock = FakeJobRunner(), ManualClock(NOW)
    metric = job_metric(backoffLimit=0)
    ctx = context(clock, runner)
    measurement = await base.measure(metric, ctx)
    runner.phases["pod-1"] = "Failed"
    clock.advance(3)
    result = await base.resume(metric, measurement, ctx)
    assert result.phase == "Failed"
    assert result.message is not None
    assert "backoffLimit is 0" in result.message
    assert len(runner.started) == 1


async def test_failed_pods_are_retried_with_backoff_until_the_default_limit() -> None:
    runner, clock = FakeJobRunner(), ManualClock(NOW)
    metric = job_metric()  # backoffLimit defaults to 6, as in Kubernetes
    ctx = context(clock, runner)
    measurement = await base.measure(metric, ctx)
    waits: list[float] = []
    for attempt in range(1, 8):
        runner.phases[f"pod-{attempt}"] = "Failed"
        measurement = await base.resume(metric, measurement, ctx)
        if attempt == 7:
            break
        assert measurement.phase == "Running"
        metadata = measurement.metadata or {}
        assert metadata[FAILURES_KEY] == str(attempt)
        assert HANDLE_KEY not in metadata
        retry_at = datetime.fromisoformat(metadata[RETRY_AT_KEY])
        assert measurement.resume_at == metadata[RETRY_AT_KEY]
        waits.append((retry_at - clock.now()).total_seconds())
        # Too early: nothing starts, the measurement waits for its retry time.
        early = await base.resume(metric, measurement, ctx)
        assert len(runner.started) == attempt
        assert early.resume_at == metadata[RETRY_AT_KEY]
        clock.advance(waits[-1])
        measurement = await base.resume(metric, measurement, ctx)
        assert measurement.phase == "Running"
        assert (measurement.metadata or {})[HANDLE_KEY] == f"pod-{attempt + 1}"
    assert waits == [10, 20, 40, 80, 160, 320]
    assert measurement.phase == "Failed"
    assert (measurement.metadata or {})[FAILURES_KEY] == "7"
    assert len(runner.started) == 7
    assert {s.name for s in runner.started} == {(measurement.metadata or {})["job-name"]}


async def test_active_deadline_fails_a_job_that_runs_too_long() -> None:
    runner, clock = FakeJobRunner(), ManualClock(NOW)
    metric = job_metric(activeDeadlineSeconds=120)
    ctx = context(clock, runner)
    measurement = await base.measure(metric, ctx)
    clock.advance(119)
    assert (await base.resume(metric, measurement, ctx)).phase == "Running"
    clock.advance(1)
    result = await base.resume(metric, measurement, ctx)
    assert result.phase == "Failed"
    assert "activeDeadlineSeconds (120 s)" in (result.message or "")
    assert runner.stopped == ["pod-1"]


async def test_an_image_that_cannot_start_is_inconclusive() -> None:
    runner, clock = FakeJobRunner(), ManualClock(NOW)
    result = await base.measure(job_metric(image="myorg/unknown:v9"), context(clock, runner))
    assert result.phase == "Inconclusive"
    assert result.finished_at == format_time(NOW)
    assert "'myorg/unknown:v9' is not in the image table" in (result.message or "")
    assert not runner.started


async def test_terminate_stops_the_pod() -> None:
    runner, clock = FakeJobRunner(), ManualClock(NOW)
    metric = job_metric()
    ctx = context(clock, runner)
    measurement = await base.measure(metric, ctx)
    clock.advance(5)
    result = await base.terminate(metric, measurement, ctx)
    assert runner.stopped == ["pod-1"]
    assert result.phase == "Successful"
    assert result.finished_at == format_time(NOW.replace(second=5))


async def test_without_a_runner_or_a_spec_it_is_an_error() -> None:
    clock = ManualClock(NOW)
    no_runner = await base.measure(job_metric(), ProviderContext(clock=clock))
    assert no_runner.phase == "Error"
    assert "needs a job runner" in (no_runner.message or "")

    empty = Metric.model_validate(
        {"name": "smoke-test", "provider": {"job": {"spec": {"template": {"spec": {}}}}}}
    )
    no_containers = await base.measure(empty, context(clock, FakeJobRunner()))
    assert (no_containers.phase, no_containers.message) == (
        "Error",
        "job.spec.template.spec.containers is empty",
    )
    bad_limit = await base.measure(job_metric(backoffLimit=-1), context(clock, FakeJobRunner()))
    assert bad_limit.phase == "Error"
    assert "backoffLimit must be a non-negative integer" in (bad_limit.message or "")


async def test_resume_without_the_job_reference_or_a_lost_pod_is_an_error() -> None:
    runner, clock = FakeJobRunner(), ManualClock(NOW)
    metric = job_metric()
    ctx = context(clock, runner)
    orphan = Measurement(phase="Running", started_at=format_time(NOW))
    result = await base.resume(metric, orphan, ctx)
    assert (result.phase, result.message) == ("Error", "job metadata reference missing")

    measurement = await base.measure(metric, ctx)
    runner.phases.clear()  # the runner lost the pod (e.g. restarted without adopting it)
    lost = await base.resume(metric, measurement, ctx)
    assert lost.phase == "Error"
    assert "cannot read the status of job" in (lost.message or "")
    assert lost.started_at == measurement.started_at


def test_job_names_fit_63_characters() -> None:
    assert job_name("run", "metric", 7) == "run.metric.7"
    long = job_name("guestbook-6c5d9-2-1", "a-very-long-metric-name-" * 4, NOW_S)
    assert len(long) == 63
    assert long.startswith("guestbook-6c5d9-2-1.a-very-long-metric-name-")
    assert long.endswith(f".{NOW_S}")
    assert len(job_name("r" * 80, "m", 1)) <= 63


# --- with real processes ----------------------------------------------------------------------


@dataclass
class ProcessJobRunner:
    """A minimal JobRunner over real processes: the first container's `command` + `args`."""

    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    async def start(self, name: str, namespace: str, pod_template: dict[str, Any]) -> str:
        container = pod_template["spec"]["containers"][0]
        argv = [*container.get("command", []), *container.get("args", [])]
        if not argv:
            raise UserError(f"image {container.get('image')!r} is not in the image table")
        process = await asyncio.create_subprocess_exec(*argv)
        handle = f"{name}/{process.pid}"
        self.processes[handle] = process
        return handle

    async def status(self, handle: str) -> JobPhase:
        code = self.processes[handle].returncode
        if code is None:
            return "Running"
        return "Succeeded" if code == 0 else "Failed"

    async def stop(self, handle: str) -> None:
        process = self.processes[handle]
        if process.returncode is None:
            process.kill()
        await process.wait()

    async def wait(self, measurement: Measurement) -> None:
        await self.processes[(measurement.metadata or {})[HANDLE_KEY]].wait()

    async def close(self) -> None:
        for handle in self.processes:
            await self.stop(handle)


def process_metric(code: str, *, backoff_limit: int = 0) -> Metric:
    container = {"name": "check", "image": "python", "command": [sys.executable, "-c", code]}
    return Metric.model_validate(
        {
            "name": "smoke-test",
            "provider": {
                "job": {
                    "spec": {
                        "backoffLimit": backoff_limit,
                        "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
                    }
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("code", "phase"), [("raise SystemExit(0)", "Successful"), ("raise SystemExit(3)", "Failed")]
)
async def test_real_processes_exit_code_decides(code: str, phase: str) -> None:
    runner, clock = ProcessJobRunner(), ManualClock(NOW)
    ctx = context(clock, runner)
    metric = process_metric(code)
    try:
        measurement = await base.measure(metric, ctx)
        assert measurement.phase == "Running"
        await runner.wait(measurement)
        clock.advance(2)
        result = await base.resume(metric, measurement, ctx)
        assert result.phase == phase
    finally:
        await runner.close()


async def test_terminating_a_real_process_stops_it() -> None:
    runner, clock = ProcessJobRunner(), ManualClock(NOW)
    ctx = context(clock, runner)
    metric = process_metric("import time; time.sleep(60)")
    try:
        measurement = await base.measure(metric, ctx)
        result = await base.terminate(metric, measurement, ctx)
        assert result.phase == "Successful"
        (process,) = runner.processes.values()
        assert process.returncode is not None
    finally:
        await runner.close()
