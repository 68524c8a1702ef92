"""The vocabulary of the Experiment state machine and the working state of one decision.

Who uses it: the modules of the Experiment decision (`experiments`, `experiments_templates`,
`experiments_analyses`) and the Experiment reconciler. It holds the phase and template-status
tables (`EXPERIMENT_TRANSITIONS`, `TEMPLATE_TRANSITIONS`, read by `advance_phase` /
`advance_template`, which refuse a move the table does not list), what the reconciler observes
(`ExperimentObserved`), what a decision returns (`ExperimentDecision`), and `ExperimentContext`,
Argo's experimentContext: the status as it was, the statuses being written, the actions and
timers collected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rollwise.api import models as api
from rollwise.api.durations import parse_duration
from rollwise.api.errors import IllegalTransitionError
from rollwise.core import actions as act
from rollwise.core.observed import ReplicaSetView
from rollwise.core.timestamps import format_time, parse_time_or_none

EXPERIMENT_NAME_ANNOTATION = "experiment.argoproj.io/name"
TEMPLATE_NAME_ANNOTATION = "experiment.argoproj.io/template-name"

DEFAULT_TEMPLATE_REPLICAS = 1
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30

# Phases (the AnalysisPhase values Argo reuses for Experiments).
PENDING = "Pending"
RUNNING = "Running"
SUCCESSFUL = "Successful"
FAILED = "Failed"
ERROR = "Error"
INCONCLUSIVE = "Inconclusive"
COMPLETED_PHASES = frozenset({SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE})

# Template statuses.
PROGRESSING = "Progressing"
COMPLETED_TEMPLATE_STATUSES = frozenset({SUCCESSFUL, FAILED, ERROR})

EXPERIMENT_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "": frozenset({PENDING}),
    PENDING: frozenset({PENDING, RUNNING, *COMPLETED_PHASES}),
    # A template that loses pods after the Experiment became available is Progressing again.
    RUNNING: frozenset({PENDING, RUNNING, *COMPLETED_PHASES}),
    **{phase: frozenset({phase}) for phase in COMPLETED_PHASES},
}
"""Phase -> the phases one decision may move an Experiment to; a finished phase never changes."""

TEMPLATE_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "": frozenset({PROGRESSING, RUNNING, SUCCESSFUL, FAILED, ERROR}),
    PROGRESSING: frozenset({PROGRESSING, RUNNING, SUCCESSFUL, FAILED, ERROR}),
    RUNNING: frozenset({PROGRESSING, RUNNING, SUCCESSFUL, FAILED, ERROR}),
    **{status: frozenset({status}) for status in COMPLETED_TEMPLATE_STATUSES},
}
"""Template status -> the statuses it may move to; completed ones are final."""

Raw = dict[str, Any]


def advance_phase(current: str, new: str) -> str:
    """`new` if EXPERIMENT_TRANSITIONS allows it; IllegalTransitionError otherwise."""
    if new not in EXPERIMENT_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransitionError(f"no experiment transition from {current!r} to {new!r}")
    return new


def advance_template(current: str, new: str) -> str:
    """`new` if TEMPLATE_TRANSITIONS allows it; IllegalTransitionError otherwise."""
    if new not in TEMPLATE_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransitionError(f"no template transition from {current!r} to {new!r}")
    return new


def rank(order: Sequence[str], phase: str) -> int:
    """Position of `phase` in a best-to-worst `order`; like Argo's IsWorse, a phase not in the
    list (e.g. "") ranks with the best."""
    return order.index(phase) if phase in order else 0


# --- what is observed, what is decided ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExperimentRunView:
    """An AnalysisRun owned by the Experiment: only its phase and message matter here."""

    name: str
    phase: str
    message: str = ""
    terminate_requested: bool = False

    @property
    def completed(self) -> bool:
        return self.phase in COMPLETED_PHASES


@dataclass(frozen=True, slots=True)
class ExperimentObserved:
    """What the Experiment reconciler saw of the objects the Experiment owns."""

    replica_sets: Mapping[str, ReplicaSetView] = field(default_factory=dict)
    """Template name -> its ReplicaSet (annotation `experiment.argoproj.io/template-name`)."""
    services: Mapping[str, str] = field(default_factory=dict)
    """Template name -> the name of its Service."""
    analysis_runs: Mapping[str, ExperimentRunView] = field(default_factory=dict)
    """Run name -> the run."""
    missing_templates: frozenset[tuple[bool, str]] = frozenset()
    """(clusterScope, templateName) of analyses whose (Cluster)AnalysisTemplate does not exist."""


@dataclass(frozen=True, slots=True)
class ExperimentDecision:
    status: api.ExperimentStatus
    actions: tuple[act.Action, ...] = ()
    requeue_after: float | None = None
    """Seconds until a timer runs out (duration, progress deadline, scale-down delay)."""


# --- spec defaults -------------------------------------------------------------------------


def progress_deadline_seconds(experiment: api.Experiment) -> int:
    seconds = experiment.spec.progress_deadline_seconds
    return DEFAULT_PROGRESS_DEADLINE_SECONDS if seconds is None else seconds


def scale_down_delay_seconds(experiment: api.Experiment) -> int:
    seconds = experiment.spec.scale_down_delay_seconds
    return DEFAULT_SCALE_DOWN_DELAY_SECONDS if seconds is None else seconds


def duration_seconds(experiment: api.Experiment) -> float | None:
    """spec.duration in seconds, None when absent (raises ValueError when unparsable)."""
    duration = experiment.spec.duration
    if duration is None or duration == "":
        return None
    return parse_duration(duration)


# --- the working state of one decision --------------------------------------------------------


class ExperimentContext:
    """One decision's inputs, the statuses it writes (`templates`, `runs`), and its outbox."""

    def __init__(
        self, experiment: api.Experiment, observed: ExperimentObserved, now: datetime
    ) -> None:
        self.experiment = experiment
        self.observed = observed
        self.now = now
        self.now_text = format_time(now)
        self.prev: Mapping[str, Any] = (
            experiment.status.to_raw() if experiment.status is not None else {}
        )
        self.templates: dict[str, Raw] = {
            str(t.get("name")): dict(t) for t in self.prev_templates()
        }
        self.runs: dict[str, Raw] = {str(r.get("name")): dict(r) for r in self.prev_runs()}
        self.actions: list[act.Action] = []
        self.requeue: list[float] = []
        self.available_at = parse_time_or_none(self.prev.get("availableAt"))
        self.terminating = self._terminating()

    def prev_templates(self) -> list[Mapping[str, Any]]:
        return list(self.prev.get("templateStatuses") or ())

    def prev_runs(self) -> list[Mapping[str, Any]]:
        return list(self.prev.get("analysisRuns") or ())

    def required_successful(self, runs: Mapping[str, Mapping[str, Any]]) -> bool:
        """There are required analyses, and every one of them is Successful."""
        required = [a for a in self.experiment.spec.analyses or () if a.required_for_completion]
        return bool(required) and all(
            (runs.get(a.name) or {}).get("phase") == SUCCESSFUL for a in required
        )

    def _terminating(self) -> bool:
        """Argo's IsTerminating, read from the status as it was."""
        if self.experiment.spec.terminate or self.prev.get("phase") in COMPLETED_PHASES:
            return True
        if any(t.get("status") in (FAILED, ERROR) for t in self.prev_templates()):
            return True
        runs = self.prev_runs()
        if any(r.get("phase") in (FAILED, ERROR, INCONCLUSIVE) for r in runs):
            return True
        return self.required_successful({str(r.get("name")): r for r in runs})

    def passed_duration(self) -> bool:
        """`duration` has passed since the Experiment became available (as the status was)."""
        seconds = duration_seconds(self.experiment)
        if seconds is None or self.available_at is None:
            return False
        return self.now > self.available_at + timedelta(seconds=seconds)

    def desired_replicas(self, template: api.TemplateSpec, status: Mapping[str, Any]) -> int:
        if self.terminating or status.get("status") in COMPLETED_TEMPLATE_STATUSES:
            return 0
        return DEFAULT_TEMPLATE_REPLICAS if template.replicas is None else template.replicas

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.actions.append(
            act.EmitEvent(type="Warning" if warning else "Normal", reason=reason, message=message)
        )

    def requeue_at(self, moment: datetime) -> None:
        self.requeue.append(max(0.0, (moment - self.now).total_seconds()))
