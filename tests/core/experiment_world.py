"""A tiny fake cluster for the Experiment state machine: it applies a decision's actions at once
(ReplicaSets, Services, AnalysisRuns) and lets the test move time, bring pods up and move runs,
so `decide_experiment` can be driven through a whole Experiment without any I/O."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rollwise.api.models import Experiment
from rollwise.core import actions as act
from rollwise.core.experiments import ExperimentDecision, decide_experiment, observed_from_raw
from rollwise.core.experiments_state import TEMPLATE_NAME_ANNOTATION
from rollwise.core.observed import SCALE_DOWN_DEADLINE_ANNOTATION, replica_set_view_from_raw
from rollwise.core.timestamps import format_time

Raw = dict[str, Any]
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


@dataclass
class ExperimentWorld:
    experiment: Experiment
    now: datetime = T0
    pods_come_up: bool = True
    """False: template pods never become available (until `make_ready`)."""
    templates: set[tuple[bool, str]] = field(default_factory=set)
    """(clusterScope, name) of the (Cluster)AnalysisTemplates that exist."""
    replica_sets: dict[str, Raw] = field(default_factory=dict)
    services: dict[str, Raw] = field(default_factory=dict)
    runs: dict[str, Raw] = field(default_factory=dict)
    events: list[act.EmitEvent] = field(default_factory=list)
    log: list[act.Action] = field(default_factory=list)

    @property
    def status(self) -> Raw:
        status = self.experiment.status
        return status.to_raw() if status is not None else {}

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "")

    def decide(self) -> ExperimentDecision:
        observed = observed_from_raw(
            self.experiment,
            replica_sets=list(self.replica_sets.values()),
            services=list(self.services.values()),
            analysis_runs=list(self.runs.values()),
            template_exists=lambda cluster, name: (cluster, name) in self.templates,
            replica_set_view=replica_set_view_from_raw,
        )
        return decide_experiment(self.experiment, observed, self.now)

    def apply(self, action: act.Action) -> None:
        self.log.append(action)
        match action:
            case act.CreateExperimentReplicaSet():
                self.replica_sets[action.name] = {
                    "metadata": {
                        "name": action.name,
                        "labels": {"rollouts-pod-template-hash": action.pod_template_hash},
                        "annotations": {TEMPLATE_NAME_ANNOTATION: action.template_name},
                        "creationTimestamp": format_time(self.now),
                    },
                    "spec": {
                        "replicas": action.replicas,
                        "selector": copy.deepcopy(dict(action.selector)),
                        "template": copy.deepcopy(dict(action.template)),
                    },
                    "status": {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0},
                }
            case act.ScaleReplicaSet():
                raw = self.replica_sets[action.name]
                annotations = raw["metadata"]["annotations"]
                if action.scale_down_deadline is None:
                    annotations.pop(SCALE_DOWN_DEADLINE_ANNOTATION, None)
                else:
                    annotations[SCALE_DOWN_DEADLINE_ANNOTATION] = format_time(
                        action.scale_down_deadline
                    )
                raw["spec"]["replicas"] = action.replicas
                ready = action.replicas if self.pods_come_up else 0
                raw["status"] = {
                    "replicas": action.replicas,
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                }
            case act.CreateService():
                self.services[action.name] = {
                    "metadata": {"name": action.name, "annotations": dict(action.annotations)},
                    "spec": {"selector": dict(action.selector), "ports": list(action.ports)},
                }
            case act.DeleteService():
                del self.services[action.name]
            case act.CreateExperimentAnalysisRun():
                self.runs.setdefault(
                    action.name,
                    {
                        "metadata": {"name": action.name, "labels": dict(action.labels)},
                        "spec": {"args": [a.to_raw() for a in action.analysis.args or ()]},
                        "status": {},
                    },
                )
            case act.TerminateAnalysisRun():
                run = self.runs[action.name]
                run["spec"]["terminate"] = True
                # A terminated run ends Successful unless a limit was breached (reference 2.8).
                if run["status"].get("phase") in (None, "", "Pending", "Running"):
                    run["status"] = {"phase": "Successful", "message": "Run Terminated"}
            case act.EmitEvent():
                self.events.append(action)
            case _:
                raise AssertionError(f"not an Experiment controller's action: {action}")

    def reconcile(self) -> ExperimentDecision:
        decision = self.decide()
        for action in decision.actions:
            self.apply(action)
        self.experiment = self.experiment.model_copy(update={"status": decision.status})
        return decision

    def settle(self, rounds: int = 30) -> None:
        """Reconcile until a decision asks for nothing and changes nothing."""
        for _ in range(rounds):
            before = self.status
            decision = self.reconcile()
            if not decision.actions and self.status == before:
                return
        raise AssertionError(f"no steady state after {rounds} decisions: {self.status}")

    # --- what time, pods and runs do -------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def make_ready(self) -> None:
        for raw in self.replica_sets.values():
            replicas = raw["spec"]["replicas"]
            raw["status"] = {
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }

    def set_run(self, analysis: str, phase: str, message: str = "") -> None:
        name = f"{self.experiment.name}-{analysis}"
        self.runs[name]["status"] = {"phase": phase, **({"message": message} if message else {})}

    def edit(self, **spec: Any) -> None:
        raw = self.experiment.to_raw()
        raw["spec"].update(spec)
        self.experiment = Experiment.model_validate(raw)

    # --- reading ---------------------------------------------------------------------------

    def template_status(self, name: str) -> Raw:
        return next(t for t in self.status.get("templateStatuses") or () if t["name"] == name)

    def run_status(self, name: str) -> Raw:
        return next(r for r in self.status.get("analysisRuns") or () if r["name"] == name)

    def sizes(self) -> dict[str, int]:
        return {name: raw["spec"]["replicas"] for name, raw in self.replica_sets.items()}

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]


def experiment(
    *,
    templates: list[Raw] | None = None,
    analyses: list[Raw] | None = None,
    **spec: Any,
) -> Experiment:
    """Argo's `experiment-with-analysis` shape: two templates (purple, orange), 1 replica each."""
    if templates is None:
        templates = [template("purple"), template("orange")]
    raw: Raw = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"templates": templates, **spec},
    }
    if analyses is not None:
        raw["spec"]["analyses"] = analyses
    return Experiment.model_validate(raw)


def template(color: str, **extra: Any) -> Raw:
    return {
        "name": color,
        "selector": {"matchLabels": {"app": "demo", "color": color}},
        "template": {
            "metadata": {"labels": {"app": "demo", "color": color}},
            "spec": {
                "containers": [
                    {
                        "name": "demo",
                        "image": f"argoproj/rollouts-demo:{color}",
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    }
                ]
            },
        },
        **extra,
    }


def running(world: ExperimentWorld) -> ExperimentWorld:
    """Settle until the templates are available and the Experiment is Running."""
    world.settle()
    assert world.phase == "Running", world.status
    return world
