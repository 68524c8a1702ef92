"""The series each object contributes to `/metrics`: pure functions of raw store objects.

Who calls it: `rollwise.controller.metrics.ControllerMetrics` at every scrape, once per Rollout,
AnalysisRun, (Cluster)AnalysisTemplate and Experiment in the store. Names, labels, help texts
and values are Argo Rollouts' (`controller/metrics/` of argo-rollouts, reference section 5.5),
computed the way Argo computes them (e.g. `rollout_info`'s phase comes from the Progressing
condition's reason, not from `status.phase`); the `rollwise_*` families are what Argo lacks: the
canary's weight, the step, the stable and canary versions, the last value of each metric.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from rollwise.core import conditions

RawObject = dict[str, Any]
ObjectKey = tuple[str, str, str]
"""(kind, namespace, name) of an object the series describe."""
Sample = tuple[str, tuple[str, ...], float]
"""(family name, label values in the family's order, value)."""

HASH_LABEL = "rollouts-pod-template-hash"
ANALYSIS_PHASES = ("Pending", "Error", "Failed", "Successful", "Running", "Inconclusive")
EXPERIMENT_PHASES = ("Pending", "Error", "Successful", "Running", "Inconclusive")
ROLLOUT_PHASES = ("Completed", "Progressing", "Paused", "Timeout", "Error", "Abort")

# Argo's `metricproviders.Type`: the first provider key present, in Argo's order.
PROVIDER_TYPES = (
    ("prometheus", "Prometheus"),
    ("job", "Job"),
    ("kayenta", "Kayenta"),
    ("web", "Web"),
    ("datadog", "Datadog"),
    ("wavefront", "Wavefront"),
    ("newRelic", "NewRelic"),
    ("cloudWatch", "CloudWatch"),
    ("graphite", "Graphite"),
    ("influxdb", "Influxdb"),
    ("skywalking", "SkyWalking"),
    ("plugin", "RPCPlugin"),
)
# Argo's `getStrategyAndTrafficRouter`: a later key wins; other routers are reported as "".
TRAFFIC_ROUTERS = (
    ("alb", "ALB"),
    ("ambassador", "Ambassador"),
    ("istio", "Istio"),
    ("nginx", "Nginx"),
    ("smi", "SMI"),
    ("appMesh", "AppMesh"),
)
NS_NAME = ("namespace", "name")


@dataclass(frozen=True)
class Family:
    """One metric family: its type, help text and label names (Argo's where Argo has it)."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = NS_NAME


_FAMILIES = (
    Family(
        "rollout_info",
        "gauge",
        "Information about rollout.",
        (*NS_NAME, "strategy", "traffic_router", "phase"),
    ),
    Family(
        "rollout_info_replicas_available", "gauge", "The number of available replicas per rollout."
    ),
    Family(
        "rollout_info_replicas_unavailable",
        "gauge",
        "The number of unavailable replicas per rollout.",
    ),
    Family("rollout_info_replicas_desired", "gauge", "The number of desired replicas per rollout."),
    Family("rollout_info_replicas_updated", "gauge", "The number of updated replicas per rollout."),
    Family(
        "rollout_phase",
        "gauge",
        "Information on the state of the rollout (DEPRECATED - use rollout_info)",
        (*NS_NAME, "strategy", "phase"),
    ),
    Family(
        "rollwise_rollout_canary_weight",
        "gauge",
        "Share of traffic (of maxTrafficWeight) the canary gets now: the router's weight, or "
        "without traffic routing its share of available pods. 0 once the rollout is complete.",
    ),
    Family(
        "rollwise_rollout_set_weight",
        "gauge",
        "Canary weight the current step asks for (the SetWeight of `rollwise get rollout`).",
    ),
    Family("rollwise_rollout_step", "gauge", "Index of the rollout's current canary step."),
    Family("rollwise_rollout_steps", "gauge", "Number of canary steps of the rollout."),
    Family(
        "rollwise_rollout_version_info",
        "gauge",
        "Pod template hash (the `version` label of rollwise's demo app) of the rollout's stable "
        "and canary (newest) revisions.",
        (*NS_NAME, "role", "version"),
    ),
    Family("analysis_run_info", "gauge", "Information about analysis run.", (*NS_NAME, "phase")),
    Family(
        "analysis_run_phase",
        "gauge",
        "Information on the state of the Analysis Run (DEPRECATED - use analysis_run_info)",
        (*NS_NAME, "phase"),
    ),
    Family(
        "analysis_run_metric_type",
        "gauge",
        "Information on the type of a specific metric in the Analysis Runs",
        (*NS_NAME, "metric", "type"),
    ),
    Family(
        "analysis_run_metric_phase",
        "gauge",
        "Information on the duration of a specific metric in the Analysis Run",
        (*NS_NAME, "metric", "type", "dry_run", "phase"),
    ),
    Family(
        "rollwise_analysis_metric_value",
        "gauge",
        "Value of the last measurement of an analysis run's metric that has a numeric value.",
        (*NS_NAME, "metric", "type", "rollout"),
    ),
    Family("analysis_template_info", "gauge", "Information about analysis templates."),
    Family(
        "analysis_template_metric_info",
        "gauge",
        "Information on metrics in analysis templates.",
        (*NS_NAME, "type", "metric"),
    ),
    Family("experiment_info", "gauge", "Information about Experiment.", (*NS_NAME, "phase")),
    Family(
        "experiment_phase",
        "gauge",
        "Information on the state of the experiment (DEPRECATED - use experiment_info)",
        (*NS_NAME, "phase"),
    ),
)
FAMILIES = {family.name: family for family in _FAMILIES}


class ReplicaSetLister(Protocol):
    """The one store read a rollout's series may need (its ReplicaSets, mid-update)."""

    def list(
        self, kind: str, namespace: str | None = "default", *, owner: str | None = None
    ) -> builtins.list[RawObject]: ...


def object_key(kind: str, obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    namespace = "" if kind == "ClusterAnalysisTemplate" else metadata.get("namespace") or "default"
    return (kind, str(namespace), str(metadata.get("name") or ""))


def flag(value: bool) -> float:
    return 1.0 if value else 0.0


# --- rollouts -------------------------------------------------------------------------------------


def strategy_and_router(rollout: Mapping[str, Any]) -> tuple[str, str]:
    """Argo's `strategy` (`canary`, `blueGreen`, `none`) and `traffic_router` labels."""
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    if strategy.get("blueGreen") is not None:
        return "blueGreen", ""
    canary = strategy.get("canary")
    if canary is None:
        return "none", ""
    router = ""
    routing = canary.get("trafficRouting") or {}
    for key, label in TRAFFIC_ROUTERS:
        if routing.get(key) is not None:
            router = label
    return "canary", router


def rollout_phase(rollout: Mapping[str, Any]) -> str:
    """Argo's metrics phase (`calculatePhase`): from the Progressing condition's reason and the
    InvalidSpec condition, not `status.phase`."""
    status = rollout.get("status") or {}
    found = {c.get("type"): c for c in status.get("conditions") or ()}
    phase = "Progressing"
    reason = (found.get(conditions.PROGRESSING) or {}).get("reason")
    if reason == conditions.NEW_REPLICA_SET_AVAILABLE:
        phase = "Completed"
    elif reason == conditions.ROLLOUT_PAUSED:
        phase = "Paused"
    elif reason in ("ServiceNotFound", "ReplicaSetCreateError"):
        phase = "Error"
    elif reason == conditions.PROGRESS_DEADLINE_EXCEEDED:
        phase = "Timeout"
    elif reason == conditions.ROLLOUT_ABORTED:
        phase = "Abort"
    if conditions.INVALID_SPEC in found:
        phase = "InvalidSpec"
    return phase


def canary_steps(rollout: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    canary = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    return list(canary.get("steps") or ())


def set_weight(rollout: Mapping[str, Any]) -> int:
    """The weight the current step asks for: that of the last setWeight at or before it; 100
    past the last step; 0 when aborted."""
    status = rollout.get("status") or {}
    if status.get("abort"):
        return 0
    steps = canary_steps(rollout)
    index = status.get("currentStepIndex")
    if index is None or int(index) >= len(steps):
        return 100
    for step in reversed(steps[: int(index) + 1]):
        if step.get("setWeight") is not None:
            return int(step["setWeight"])
    return 0


def canary_weight(rollout: Mapping[str, Any], store: ReplicaSetLister) -> int:
    """The canary's share of traffic now: the router's weight (status.canary.weights), or
    without traffic routing the canary's share of the available pods."""
    status = rollout.get("status") or {}
    canary = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    if canary.get("trafficRouting") is not None:
        weights = (status.get("canary") or {}).get("weights") or {}
        return int((weights.get("canary") or {}).get("weight") or 0)
    current, stable = status.get("currentPodHash"), status.get("stableRS")
    available = int(status.get("availableReplicas") or 0)
    if not current or current == stable or available <= 0:
        return 0
    metadata = rollout.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    # Read only while an update is under way: a steady rollout costs no ReplicaSet query.
    for replica_set in store.list("ReplicaSet", namespace, owner=metadata.get("name")):
        labels = (replica_set.get("metadata") or {}).get("labels") or {}
        if labels.get(HASH_LABEL) == current:
            canary_available = int((replica_set.get("status") or {}).get("availableReplicas") or 0)
            return min(100, canary_available * 100 // available)
    return 0


def rollout_samples(rollout: Mapping[str, Any], store: ReplicaSetLister) -> list[Sample]:
    """The series of one Rollout, as Argo's `collectRollouts` writes them, plus rollwise's."""
    _, namespace, name = object_key("Rollout", rollout)
    status = rollout.get("status") or {}
    spec = rollout.get("spec") or {}
    strategy, router = strategy_and_router(rollout)
    phase = rollout_phase(rollout)
    ids = (namespace, name)
    replicas = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    desired = spec.get("replicas")
    samples: list[Sample] = [
        ("rollout_info", (*ids, strategy, router, phase), 1.0),
        ("rollout_info_replicas_available", ids, float(available)),
        ("rollout_info_replicas_unavailable", ids, float(replicas - available)),
        ("rollout_info_replicas_desired", ids, float(1 if desired is None else int(desired))),
        ("rollout_info_replicas_updated", ids, float(int(status.get("updatedReplicas") or 0))),
    ]
    samples += [
        ("rollout_phase", (*ids, strategy, each), flag(each == phase)) for each in ROLLOUT_PHASES
    ]
    if strategy == "canary":
        steps = canary_steps(rollout)
        samples += [
            ("rollwise_rollout_canary_weight", ids, float(canary_weight(rollout, store))),
            ("rollwise_rollout_set_weight", ids, float(set_weight(rollout))),
            ("rollwise_rollout_steps", ids, float(len(steps))),
        ]
        if status.get("currentStepIndex") is not None:
            samples.append(("rollwise_rollout_step", ids, float(status["currentStepIndex"])))
    for role, version in (
        ("stable", status.get("stableRS")),
        ("canary", status.get("currentPodHash")),
    ):
        if version:
            samples.append(("rollwise_rollout_version_info", (*ids, role, str(version)), 1.0))
    return samples


# --- analysis runs, templates, experiments --------------------------------------------------------


def provider_type(metric: Mapping[str, Any]) -> str:
    """Argo's provider type of a metric (`Prometheus`, `Web`, `Job`...)."""
    provider = metric.get("provider") or {}
    for key, label in PROVIDER_TYPES:
        if provider.get(key) is not None:
            return label
    return "Unknown Provider"


def dry_run_metrics(spec: Mapping[str, Any], names: Iterable[str]) -> set[str]:
    """Metrics a run's `dryRun` rules name (unanchored regexes, as Argo matches them)."""
    matched: set[str] = set()
    names = list(names)
    for rule in spec.get("dryRun") or ():
        try:
            pattern = re.compile(str(rule.get("metricName") or ""))
        except re.error:
            continue  # Go ignores the compile error: the rule matches nothing
        matched.update(name for name in names if pattern.search(name))
    return matched


def measurement_number(value: object) -> float | None:
    """A measurement's value as a number: `0.97`, `[0.97]` (one-element vector), `NaN`; None
    for text, empty vectors and several values."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]
    if isinstance(parsed, bool) or not isinstance(parsed, int | float):
        return None
    return float(parsed)


def owning_rollout(obj: Mapping[str, Any]) -> str:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return next((str(ref.get("name")) for ref in refs if ref.get("kind") == "Rollout"), "")


def analysis_run_samples(run: Mapping[str, Any]) -> list[Sample]:
    """The series of one AnalysisRun, as Argo's `collectAnalysisRuns` writes them, plus the
    last numeric value of each metric."""
    _, namespace, name = object_key("AnalysisRun", run)
    ids = (namespace, name)
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    phase = str(status.get("phase") or "")
    samples: list[Sample] = [("analysis_run_info", (*ids, phase), 1.0)]
    samples += [
        ("analysis_run_phase", (*ids, each), flag(_same_phase(phase, each)))
        for each in ANALYSIS_PHASES
    ]
    metrics = [m for m in spec.get("metrics") or () if isinstance(m, Mapping)]
    results = {r.get("name"): r for r in status.get("metricResults") or ()}
    dry = dry_run_metrics(spec, (str(m.get("name")) for m in metrics))
    rollout = owning_rollout(run)
    for metric in metrics:
        metric_name = str(metric.get("name"))
        kind = provider_type(metric)
        result = results.get(metric_name) or {}
        metric_phase = str(result.get("phase") or "")
        dry_run = "true" if metric_name in dry else "false"
        samples.append(("analysis_run_metric_type", (*ids, metric_name, kind), 1.0))
        samples += [
            (
                "analysis_run_metric_phase",
                (*ids, metric_name, kind, dry_run, each),
                flag(_same_phase(metric_phase, each)),
            )
            for each in ANALYSIS_PHASES
        ]
        values = [measurement_number(m.get("value")) for m in result.get("measurements") or ()]
        numbers = [v for v in values if v is not None]
        if numbers:
            samples.append(
                ("rollwise_analysis_metric_value", (*ids, metric_name, kind, rollout), numbers[-1])
            )
    return samples


def _same_phase(phase: str, each: str) -> bool:
    # Argo counts a run or metric without a phase yet as Pending.
    return phase == each or (each == "Pending" and phase == "")


def analysis_template_samples(template: Mapping[str, Any]) -> list[Sample]:
    kind = str(template.get("kind") or "AnalysisTemplate")
    _, namespace, name = object_key(kind, template)
    samples: list[Sample] = [("analysis_template_info", (namespace, name), 1.0)]
    for metric in (template.get("spec") or {}).get("metrics") or ():
        values = (namespace, name, provider_type(metric), str(metric.get("name")))
        samples.append(("analysis_template_metric_info", values, 1.0))
    return samples


def experiment_samples(experiment: Mapping[str, Any]) -> list[Sample]:
    _, namespace, name = object_key("Experiment", experiment)
    phase = str((experiment.get("status") or {}).get("phase") or "")
    samples: list[Sample] = [("experiment_info", (namespace, name, phase), 1.0)]
    samples += [
        ("experiment_phase", (namespace, name, each), flag(_same_phase(phase, each)))
        for each in EXPERIMENT_PHASES
    ]
    return samples
