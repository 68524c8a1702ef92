"""A tiny fake cluster for core tests: it applies a decision's actions at once and lets the
test move time, so `decide` can be driven through a whole rollout without any I/O."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rollwise.api.models import Rollout
from rollwise.core import actions as act
from rollwise.core.canary_metadata import (
    injected_annotation,
    metadata_patch,
    normalized,
    parse_injected,
)
from rollwise.core.decisions import Decision
from rollwise.core.experiments_observed import experiment_view_from_raw
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import (
    EPHEMERAL_METADATA_ANNOTATION,
    REVISION_ANNOTATION,
    ROLLOUT_TYPE_LABEL,
    SCALE_DOWN_DEADLINE_ANNOTATION,
    STEP_INDEX_LABEL,
    Observed,
    analysis_run_view_from_raw,
    replica_set_view_from_raw,
)
from rollwise.core.rollouts import decide
from rollwise.core.timestamps import format_time

Raw = dict[str, Any]


def rollout_from(raw: Raw) -> Rollout:
    return Rollout.model_validate(raw)


@dataclass
class World:
    rollout: Rollout
    now: datetime
    services: dict[str, str | None] = field(default_factory=dict)
    router_answer: bool | None = None
    """What VerifyWeight answers: True/False, or None for a router that cannot verify."""
    pods_come_up: bool = True
    """False: ReplicaSets get their pods but none becomes ready until `make_ready`."""
    replica_sets: dict[str, Raw] = field(default_factory=dict)
    runs: dict[str, Raw] = field(default_factory=dict)
    router_weight: int | None = None
    verified: bool | None = None
    routes: set[str] = field(default_factory=set)
    events: list[act.EmitEvent] = field(default_factory=list)
    log: list[act.Action] = field(default_factory=list)
    missing_templates: tuple[str, ...] = ()
    pods_born: dict[str, datetime] = field(default_factory=dict)
    """When each ReplicaSet's oldest pod was started (a restart replaces them all at once)."""
    workload: Raw | None = None
    """The object the Rollout's workloadRef names (a Deployment), if any."""
    experiments: dict[str, Raw] = field(default_factory=dict)
    """Experiments the Rollout created; tests move their phase with `set_experiment_phase`."""
    additional: tuple[Any, ...] = ()
    """The extra destinations (weighted experiment templates) of the last SetWeight."""

    # --- what the controller would observe -------------------------------------------------

    def observe(self) -> Observed:
        return Observed(
            replica_sets=tuple(
                replica_set_view_from_raw(r, self._pods(name))
                for name, r in self.replica_sets.items()
            ),
            analysis_runs=tuple(analysis_run_view_from_raw(r) for r in self.runs.values()),
            weight_verified=self.verified,
            current_router_weight=self.router_weight,
            service_selectors=dict(self.services),
            missing_templates=self.missing_templates,
            workload=copy.deepcopy(self.workload),
            experiments=tuple(experiment_view_from_raw(r) for r in self.experiments.values()),
        )

    def _pods(self, rs_name: str) -> list[Raw]:
        raw = self.replica_sets[rs_name]
        if not raw["spec"]["replicas"]:
            return []
        born = self.pods_born.setdefault(rs_name, self.now)
        return [{"metadata": {"creationTimestamp": format_time(born)}}]

    @property
    def status(self) -> Raw:
        return self.rollout.status.to_raw() if self.rollout.status is not None else {}

    def decide(self) -> Decision:
        return decide(self.rollout, self.observe(), self.now)

    # --- acting ----------------------------------------------------------------------------

    def _set_rs_size(self, raw: Raw, replicas: int) -> None:
        raw["spec"]["replicas"] = replicas
        if replicas == 0:
            self.pods_born.pop(raw["metadata"]["name"], None)
        # Pods that were ready stay ready; new ones are ready at once only if pods come up.
        was_ready = (raw.get("status") or {}).get("readyReplicas", 0)
        ready = replicas if self.pods_come_up else min(was_ready, replicas)
        raw["status"] = {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}

    def apply(self, action: act.Action) -> None:
        self.log.append(action)
        match action:
            case act.CreateReplicaSet():
                if action.name in self.replica_sets:
                    return
                raw: Raw = {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": action.name,
                        "labels": {HASH_LABEL: action.pod_template_hash},
                        "annotations": {REVISION_ANNOTATION: str(action.revision)},
                        "creationTimestamp": format_time(self.now),
                    },
                    "spec": {"replicas": 0, "template": copy.deepcopy(dict(action.template))},
                }
                self._set_rs_size(raw, action.replicas)
                self.replica_sets[action.name] = raw
            case act.ScaleReplicaSet():
                raw = self.replica_sets[action.name]
                annotations = raw["metadata"]["annotations"]
                if action.scale_down_deadline is None:
                    annotations.pop(SCALE_DOWN_DEADLINE_ANNOTATION, None)
                else:
                    annotations[SCALE_DOWN_DEADLINE_ANNOTATION] = format_time(
                        action.scale_down_deadline
                    )
                if raw["spec"]["replicas"] != action.replicas:
                    self._set_rs_size(raw, action.replicas)
            case act.SetReplicaSetRevision():
                annotations = self.replica_sets[action.name]["metadata"]["annotations"]
                annotations[REVISION_ANNOTATION] = str(action.revision)
            case act.DeleteReplicaSet():
                del self.replica_sets[action.name]
            case act.SetWeight():
                self.router_weight, self.verified = action.weight, None
                self.additional = action.additional
            case act.VerifyWeight():
                self.verified = self.router_answer
            case act.SetHeaderRoute():
                self._route(action.route.name or "", action.route.match)
            case act.SetMirrorRoute():
                self._route(action.route.name, action.route.match)
            case act.RemoveManagedRoutes():
                self.routes.clear()
            case act.SwitchServiceSelector():
                self.services[action.service] = action.pod_template_hash
            case act.CreateAnalysisRun():
                labels = dict(action.labels)
                assert labels[ROLLOUT_TYPE_LABEL] == action.kind
                if action.step_index is not None:
                    assert labels[STEP_INDEX_LABEL] == str(action.step_index)
                self.runs.setdefault(
                    action.name,
                    {
                        "metadata": {
                            "name": action.name,
                            "labels": labels,
                            "annotations": dict(action.annotations),
                            "creationTimestamp": format_time(self.now),
                        },
                        "spec": {},
                        "status": {"phase": "Running"},
                    },
                )
            case act.TerminateAnalysisRun():
                run = self.runs[action.name]
                run["spec"]["terminate"] = True
                if run["status"].get("phase") in ("", "Pending", "Running"):
                    run["status"]["phase"] = "Successful"
            case act.DeleteAnalysisRun():
                del self.runs[action.name]
            case act.EmitEvent():
                self.events.append(action)
            case act.RestartPods():
                for name in action.replica_sets:
                    self.pods_born[name] = self.now
            case act.SetEphemeralMetadata():
                raw = self.replica_sets[action.replica_set]
                annotations = raw["metadata"]["annotations"]
                desired = normalized(action.metadata)
                injected = parse_injected(annotations.get(EPHEMERAL_METADATA_ANNOTATION))
                template_metadata = raw["spec"]["template"].setdefault("metadata", {})
                for key, changes in metadata_patch(template_metadata, injected, desired).items():
                    values = template_metadata.setdefault(key, {})
                    for name, value in changes.items():
                        if value is None:
                            values.pop(name, None)
                        else:
                            values[name] = value
                recorded = injected_annotation(desired)
                if recorded is None:
                    annotations.pop(EPHEMERAL_METADATA_ANNOTATION, None)
                else:
                    annotations[EPHEMERAL_METADATA_ANNOTATION] = recorded
            case act.CreateExperiment():
                if action.name in self.experiments:
                    return
                experiment = copy.deepcopy(dict(action.experiment))
                experiment["metadata"]["creationTimestamp"] = format_time(self.now)
                self.experiments[action.name] = experiment
            case act.TerminateExperiment():
                self.experiments[action.name]["spec"]["terminate"] = True
            case act.DeleteExperiment():
                del self.experiments[action.name]
            case (
                act.CreateExperimentReplicaSet()
                | act.CreateService()
                | act.DeleteService()
                | act.CreateExperimentAnalysisRun()
            ):
                raise AssertionError(f"an Experiment controller's action from a Rollout: {action}")
            case act.ScaleWorkload():
                assert self.workload is not None
                assert (self.workload["kind"], self.workload["metadata"]["name"]) == (
                    action.kind,
                    action.name,
                )
                self.workload["spec"]["replicas"] = action.replicas

    def _route(self, name: str, match: object) -> None:
        if match:
            self.routes.add(name)
        else:
            self.routes.discard(name)

    def reconcile(self) -> Decision:
        decision = self.decide()
        for action in decision.actions:
            self.apply(action)
        self.rollout = self.rollout.model_copy(update={"status": decision.status})
        return decision

    def settle(self, rounds: int = 60) -> None:
        """Reconcile until a decision asks for nothing and changes nothing."""
        for _ in range(rounds):
            before = self.status
            decision = self.reconcile()
            if not decision.actions and self.status == before:
                return
        raise AssertionError(f"no steady state after {rounds} decisions: {self.status}")

    # --- what people and time do -----------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def edit(self, change: Any) -> None:
        """Change the Rollout's spec like `kubectl apply` would (generation goes up)."""
        raw = self.rollout.to_raw()
        change(raw)
        raw["metadata"]["generation"] = int(raw["metadata"].get("generation") or 1) + 1
        self.rollout = Rollout.model_validate(raw)

    def set_image(self, image: str) -> None:
        def change(raw: Raw) -> None:
            raw["spec"]["template"]["spec"]["containers"][0]["image"] = image

        self.edit(change)

    def patch_status(self, **fields: Any) -> None:
        """What the CLI writes (abort, retry, promote): a merge patch of the status."""
        raw = self.rollout.to_raw()
        status = raw.setdefault("status", {})
        for key, value in fields.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        self.rollout = Rollout.model_validate(raw)

    def make_ready(self) -> None:
        for raw in self.replica_sets.values():
            replicas = raw["spec"]["replicas"]
            raw["status"] = {
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }

    def set_run_phase(self, name: str, phase: str, message: str = "") -> None:
        self.runs[name]["status"] = {"phase": phase, "message": message}

    def set_experiment_phase(
        self, name: str, phase: str, message: str = "", *, services: dict[str, str] | None = None
    ) -> None:
        """What the Experiment controller would write: its phase, and for each template
        (`services`: template -> Service) the Service and a hash."""
        status: Raw = {"phase": phase}
        if message:
            status["message"] = message
        if services:
            status["templateStatuses"] = [
                {"name": template, "serviceName": service, "podTemplateHash": f"h-{template}"}
                for template, service in services.items()
            ]
        self.experiments[name]["status"] = status

    # --- reading ---------------------------------------------------------------------------

    def sizes(self) -> dict[str, int]:
        """Image -> pods, for the ReplicaSets that have any."""
        result: dict[str, int] = {}
        for raw in self.replica_sets.values():
            image = raw["spec"]["template"]["spec"]["containers"][0]["image"]
            if raw["spec"]["replicas"]:
                result[image.rsplit(":", 1)[-1]] = raw["spec"]["replicas"]
        return result

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]

    def messages(self, reason: str) -> list[str]:
        return [event.message for event in self.events if event.reason == reason]


# --- rollouts used across the tests -------------------------------------------------------------

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def seed_rollout(image: str = "argoproj/rollouts-demo:blue") -> Raw:
    """The Rollout of the seed's Part 3 lab: basic canary, 5 replicas, 20/40/60/80 with pauses."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "myapp", "namespace": "default", "generation": 1},
        "spec": {
            "replicas": 5,
            "strategy": {
                "canary": {
                    "steps": [
                        {"setWeight": 20},
                        {"pause": {"duration": "2m"}},
                        {"setWeight": 40},
                        {"pause": {"duration": "2m"}},
                        {"setWeight": 60},
                        {"pause": {"duration": "2m"}},
                        {"setWeight": 80},
                        {"pause": {"duration": "2m"}},
                    ]
                }
            },
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": "myapp"}},
            "template": {
                "metadata": {"labels": {"app": "myapp"}},
                "spec": {
                    "containers": [
                        {
                            "name": "myapp",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "resources": {"requests": {"memory": "32Mi", "cpu": "5m"}},
                        }
                    ]
                },
            },
        },
    }


def routed_rollout(steps: list[Raw], *, replicas: int = 5, **canary: Any) -> Raw:
    """A traffic-routed canary with canary/stable Services (Traefik, like local mode)."""
    raw = seed_rollout()
    raw["spec"]["replicas"] = replicas
    raw["spec"]["strategy"]["canary"] = {
        "canaryService": "myapp-canary",
        "stableService": "myapp-stable",
        "trafficRouting": {"traefik": {"weightedTraefikServiceName": "myapp"}},
        "steps": steps,
        **canary,
    }
    return raw


def basic_rollout(steps: list[Raw], *, replicas: int = 5, **canary: Any) -> Raw:
    raw = seed_rollout()
    raw["spec"]["replicas"] = replicas
    raw["spec"]["strategy"]["canary"] = {"steps": steps, **canary}
    return raw


def deployed(raw: Raw, **world: Any) -> World:
    """A world where revision 1 (blue) of `raw` is deployed and Healthy."""
    services = world.pop("services", None)
    canary = raw["spec"]["strategy"].get("canary") or {}
    if services is None:
        services = {
            name: None
            for name in (canary.get("canaryService"), canary.get("stableService"))
            if name
        }
    w = World(rollout_from(raw), now=T0, services=services, **world)
    w.settle()
    w.events.clear()
    w.log.clear()
    return w
