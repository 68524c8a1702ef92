"""What the CLI shows about an Experiment (Argo's `info/experiment_info.go`).

Who calls it: `rollwise.views.render` (the `Σ` nodes under a revision of `get rollout`) and
`rollwise.views.experiment_render` (`get experiment`, `list experiments`). Pure functions of raw
Kubernetes-shaped dicts and a `now` passed in, like `rollwise.views.info`; no pydantic, no core,
so the CLI stays within its start-up budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from rollwise.api.durations import parse_duration
from rollwise.views import info
from rollwise.views.info import AnalysisRunInfo, ImageInfo, PodInfo, Raw, ReplicaSetInfo

TEMPLATE_NAME_ANNOTATION = "experiment.argoproj.io/template-name"
COMPLETED_PHASES = ("Successful", "Failed", "Error", "Inconclusive")
_REPLICA_SET_ICONS = {
    "Progressing": info.ICON_PROGRESSING,
    "Healthy": info.ICON_OK,
    "ReplicaFailure": info.ICON_BAD,
    "ScaledDown": info.ICON_NEUTRAL,
}


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    namespace: str
    status: str
    icon: str
    message: str
    age: str
    created: str
    revision: int
    replica_sets: tuple[ReplicaSetInfo, ...]
    analysis_runs: tuple[AnalysisRunInfo, ...]
    images: tuple[ImageInfo, ...]


def _meta(obj: Raw) -> Mapping[str, object]:
    return obj.get("metadata") or {}


def experiment_phase(experiment: Raw) -> str:
    """The phase shown: `status.phase`, Pending until the controller wrote one."""
    return str((experiment.get("status") or {}).get("phase") or "Pending")


def _scale_down_delay(replica_set: Raw, now: datetime) -> str:
    annotations = _meta(replica_set).get("annotations") or {}
    assert isinstance(annotations, Mapping)
    deadline = info.parse_time_or_none(annotations.get(info.SCALE_DOWN_DEADLINE_ANNOTATION))
    if deadline is None:
        return ""
    if deadline < now:
        return "passed"
    return info.human_duration((deadline - now).total_seconds())


def _pods(replica_set: Raw, pods: Sequence[Raw], now: datetime) -> tuple[PodInfo, ...]:
    children = [p for p in pods if info.owned_by(p, replica_set, kind="ReplicaSet")]
    children.sort(key=lambda p: (str(_meta(p).get("creationTimestamp") or ""), info.name_of(p)))
    infos = []
    for pod in children:
        reason, ready, restarts = info.pod_status(pod)
        infos.append(
            PodInfo(
                name=info.name_of(pod),
                status=reason,
                icon=info.pod_icon(reason),
                ready=ready,
                restarts=restarts,
                age=info.age(pod, now),
                created=str(_meta(pod).get("creationTimestamp") or ""),
            )
        )
    return tuple(infos)


def _template_of(replica_set: Raw) -> str:
    annotations = _meta(replica_set).get("annotations") or {}
    assert isinstance(annotations, Mapping)
    return str(annotations.get(TEMPLATE_NAME_ANNOTATION) or "")


def _replica_set_infos(
    experiment: Raw, replica_sets: Sequence[Raw], pods: Sequence[Raw], now: datetime
) -> list[tuple[ReplicaSetInfo, str]]:
    """The Experiment's ReplicaSets (with the template each runs), in template order."""
    order = {
        str(t.get("name")): i
        for i, t in enumerate((experiment.get("spec") or {}).get("templates") or ())
    }
    owned = [rs for rs in replica_sets if info.owned_by(rs, experiment, kind="Experiment")]
    owned.sort(key=lambda rs: (order.get(_template_of(rs), len(order)), info.name_of(rs)))
    result = []
    for replica_set in owned:
        health = info.replica_set_health(replica_set)
        status = replica_set.get("status") or {}
        spec = (replica_set.get("spec") or {}).get("template") or {}
        containers = (spec.get("spec") or {}).get("containers") or []
        rs_info = ReplicaSetInfo(
            name=info.name_of(replica_set),
            revision=info.revision_of(experiment),
            status=health,
            icon=_REPLICA_SET_ICONS.get(health, " "),
            age=info.age(replica_set, now),
            replicas=int(status.get("replicas") or 0),
            available=int(status.get("availableReplicas") or 0),
            images=tuple(str(c.get("image", "")) for c in containers),
            tags=(),
            scale_down_delay=_scale_down_delay(replica_set, now),
            pods=_pods(replica_set, pods, now),
        )
        result.append((rs_info, _template_of(replica_set)))
    return result


def _analysis_run_infos(
    experiment: Raw, analysis_runs: Sequence[Raw], now: datetime
) -> list[AnalysisRunInfo]:
    infos = []
    for run in analysis_runs:
        if not info.owned_by(run, experiment, kind="Experiment"):
            continue
        counts = {"successful": 0, "failed": 0, "inconclusive": 0, "error": 0}
        for result in (run.get("status") or {}).get("metricResults") or []:
            for key in counts:
                counts[key] += int(result.get(key) or 0)
        phase = str((run.get("status") or {}).get("phase") or "Pending")
        infos.append(
            AnalysisRunInfo(
                name=info.name_of(run),
                revision=info.revision_of(experiment),
                status=phase,
                icon=info.analysis_icon(phase),
                age=info.age(run, now),
                created=str(_meta(run).get("creationTimestamp") or ""),
                jobs=(),
                **counts,
            )
        )
    infos.sort(key=lambda i: (i.created, i.name))
    return infos


def experiment_info(
    experiment: Raw,
    replica_sets: Sequence[Raw],
    pods: Sequence[Raw],
    analysis_runs: Sequence[Raw],
    *,
    now: datetime,
) -> ExperimentInfo:
    """An Experiment with its ReplicaSets, pods and AnalysisRuns (the lists may hold others')."""
    phase = experiment_phase(experiment)
    rs_infos = _replica_set_infos(experiment, replica_sets, pods, now)
    images: dict[str, tuple[str, ...]] = {}
    for rs_info, template in rs_infos:
        if rs_info.replicas <= 0:
            continue
        for image in rs_info.images:
            tags = set(images.get(image, ()))
            if template:
                tags.add(template)
            images[image] = tuple(sorted(tags))
    return ExperimentInfo(
        name=info.name_of(experiment),
        namespace=info.namespace_of(experiment),
        status=phase,
        icon=info.analysis_icon(phase),
        message=str((experiment.get("status") or {}).get("message") or _invalid(experiment)),
        age=info.age(experiment, now),
        created=str(_meta(experiment).get("creationTimestamp") or ""),
        revision=info.revision_of(experiment),
        replica_sets=tuple(rs for rs, _ in rs_infos),
        analysis_runs=tuple(_analysis_run_infos(experiment, analysis_runs, now)),
        images=tuple(ImageInfo(image, tags) for image, tags in sorted(images.items())),
    )


def _invalid(experiment: Raw) -> str:
    for condition in (experiment.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "InvalidSpec":
            return f"InvalidSpec: {condition.get('message', '')}"
    return ""


def experiment_infos(
    rollout: Raw,
    experiments: Sequence[Raw],
    replica_sets: Sequence[Raw],
    pods: Sequence[Raw],
    analysis_runs: Sequence[Raw],
    *,
    now: datetime,
) -> list[ExperimentInfo]:
    """The Rollout's Experiments (experiment steps), oldest first within a revision."""
    infos = [
        experiment_info(e, replica_sets, pods, analysis_runs, now=now)
        for e in experiments
        if info.owned_by(e, rollout, kind="Rollout")
    ]
    infos.sort(key=lambda i: (-i.revision, i.created, i.name))
    return infos


def remaining(experiment: Raw, now: datetime) -> tuple[str, str]:
    """(DURATION, REMAINING) of `list experiments`: `-` when unknown or done."""
    spec = experiment.get("spec") or {}
    status = experiment.get("status") or {}
    seconds = _duration_seconds(spec.get("duration"))
    if seconds is None:
        return "-", "-"
    duration = info.human_duration(seconds)
    available = info.parse_time_or_none(status.get("availableAt"))
    if status.get("phase") in COMPLETED_PHASES or available is None:
        return duration, "-"
    left = seconds - (now - available).total_seconds()
    return duration, info.human_duration(left) if left > 0 else "-"


def _duration_seconds(value: object) -> float | None:
    """A Go duration (`30s`, `1h30m`, or bare seconds) in seconds; None when it is not one."""
    if not isinstance(value, int | float | str) or isinstance(value, bool) or value == "":
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None
