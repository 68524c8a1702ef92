"""Helpers for the analysis tables: runs built from dicts, measurements by phase, and a driver
that plays the shell's part (plan, take the due measurements from a fake source, record) with
time passed in, so whole AnalysisRuns can be simulated without I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rollwise.api.models import AnalysisRun, Measurement, Metric
from rollwise.core.analysis.runs import Plan, plan, record
from rollwise.core.timestamps import format_time

T0 = datetime(2026, 11, 26, 1, 0, 0, tzinfo=UTC)
Raw = dict[str, Any]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ts(seconds: float) -> str:
    return format_time(at(seconds))


def metric(name: str = "m", **fields: Any) -> Raw:
    """A metric in YAML spelling with a provider (a Web one; nothing is called)."""
    raw: Raw = {"name": name, "provider": {"web": {"url": "http://example.invalid/"}}}
    raw.update(fields)
    return raw


def make_run(
    *metrics: Raw,
    args: list[Raw] | None = None,
    dry_run: list[str] | None = None,
    retention: list[tuple[str, int]] | None = None,
    terminate: bool | None = None,
    annotations: Mapping[str, str] | None = None,
    status: Raw | None = None,
) -> AnalysisRun:
    spec: Raw = {"metrics": list(metrics)}
    if args is not None:
        spec["args"] = args
    if dry_run is not None:
        spec["dryRun"] = [{"metricName": name} for name in dry_run]
    if retention is not None:
        spec["measurementRetention"] = [{"metricName": n, "limit": lim} for n, lim in retention]
    if terminate is not None:
        spec["terminate"] = terminate
    raw: Raw = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "run", "namespace": "default"},
        "spec": spec,
    }
    if annotations:
        raw["metadata"]["annotations"] = dict(annotations)
    if status is not None:
        raw["status"] = status
    return AnalysisRun.model_validate(raw)


def with_status(run: AnalysisRun, status: Any) -> AnalysisRun:
    return run.model_copy(update={"status": status}, deep=True)


def terminated(run: AnalysisRun) -> AnalysisRun:
    spec = run.spec.model_copy(update={"terminate": True}, deep=True)
    return run.model_copy(update={"spec": spec}, deep=True)


def measurement(
    phase: str,
    started: float,
    finished: float | None = None,
    *,
    message: str | None = None,
    resume_at: float | None = None,
    value: str | None = None,
) -> Measurement:
    raw: Raw = {"phase": phase, "startedAt": ts(started)}
    if phase != "Running":
        raw["finishedAt"] = ts(started if finished is None else finished)
    if message is not None:
        raw["message"] = message
    if resume_at is not None:
        raw["resumeAt"] = ts(resume_at)
    if value is not None:
        raw["value"] = value
    return Measurement.model_validate(raw)


Taker = Callable[[Metric, datetime], Measurement]
"""Takes one measurement of a metric at a time (a fake provider)."""


@dataclass
class Driver:
    """Plays the analysis shell: plan, measure what is due, record, sleep until requeue."""

    run: AnalysisRun
    now: datetime
    take: Taker
    resume: Callable[[Metric, Measurement, datetime], Measurement] | None = None
    stop: Callable[[Metric, Measurement, datetime], Measurement] | None = None
    log: list[tuple[float, str, str]] = field(default_factory=list)
    """(seconds since T0, action, metric) for every provider call."""

    @property
    def phase(self) -> str | None:
        return self.run.status.phase if self.run.status else None

    def last_measurement(self, name: str) -> Measurement:
        assert self.run.status is not None
        for result in self.run.status.metric_results or ():
            if result.name == name and result.measurements:
                return result.measurements[-1]
        raise AssertionError(f"no measurement of {name}")

    def reconcile(self) -> Plan:
        """One reconcile at `now`: plan, call the fake providers, record, and plan again until
        nothing more is due now (a fail-fast can make terminations due at once). Returns the
        last plan, whose `requeue_after` says when to come back."""
        for _ in range(3):
            planned = plan(self.run, self.now)
            self.run = with_status(self.run, planned.status)
            if planned.idle:
                return planned
            results: dict[str, Measurement] = {}
            elapsed = (self.now - T0).total_seconds()
            for name in planned.to_run:
                self.log.append((elapsed, "run", name))
                results[name] = self.take(planned.metrics[name], self.now)
            for name in planned.to_resume:
                assert self.resume is not None
                self.log.append((elapsed, "resume", name))
                last = self.last_measurement(name)
                results[name] = self.resume(planned.metrics[name], last, self.now)
            for name in planned.to_terminate:
                assert self.stop is not None
                self.log.append((elapsed, "terminate", name))
                last = self.last_measurement(name)
                results[name] = self.stop(planned.metrics[name], last, self.now)
            self.run = with_status(self.run, record(self.run, results, self.now))
        raise AssertionError("still busy after three rounds at the same time")

    def run_to_completion(self, *, max_reconciles: int = 200) -> None:
        for _ in range(max_reconciles):
            after = self.reconcile()
            if self.phase in ("Successful", "Failed", "Error", "Inconclusive"):
                assert after.idle
                assert after.requeue_after is None
                return
            assert after.requeue_after is not None, "a running run must say when to come back"
            self.now += timedelta(seconds=after.requeue_after)
        raise AssertionError("the run did not complete")

    def times(self, action: str = "run", name: str | None = None) -> list[float]:
        return [t for t, a, n in self.log if a == action and (name is None or n == name)]


def scripted(outcomes: Mapping[str, list[str]]) -> Taker:
    """A provider that answers each metric with the next phase of its script (no conditions
    involved): 'Successful', 'Failed', 'Inconclusive', 'Error' or 'Running' (in flight,
    resumable 30 s later)."""
    queues = {name: list(phases) for name, phases in outcomes.items()}

    def take(metric: Metric, now: datetime) -> Measurement:
        phase = queues[metric.name].pop(0)
        elapsed = (now - T0).total_seconds()
        if phase == "Running":
            return measurement("Running", elapsed, resume_at=elapsed + 30)
        message = "boom" if phase == "Error" else None
        return measurement(phase, elapsed, message=message)

    return take
