"""What the CLI shows about a rollout, derived from the raw objects (Argo's `info` package).

Who calls it: `render` (the `get rollout` view, the `list rollouts` table) and the `status`
verb. Pure functions of raw Kubernetes-shaped dicts and a `now` passed in; no store, no clock,
and deliberately no pydantic, so `rollwise get rollout` starts fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Raw = Mapping[str, Any]

HASH_LABEL = "rollouts-pod-template-hash"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
SCALE_DOWN_DEADLINE_ANNOTATION = "scale-down-deadline"

ICON_WAITING = "◷"
ICON_PROGRESSING = "◌"
ICON_WARNING = "⚠"
ICON_UNKNOWN = "?"
ICON_OK = "✔"
ICON_BAD = "✖"
ICON_PAUSED = "॥"
ICON_NEUTRAL = "•"

_ROLLOUT_ICONS = {
    "Progressing": ICON_PROGRESSING,
    "Error": ICON_WARNING,
    "InvalidSpec": ICON_WARNING,
    "Paused": ICON_PAUSED,
    "Healthy": ICON_OK,
    "Degraded": ICON_BAD,
    "Unknown": ICON_UNKNOWN,
    "ScaledDown": ICON_NEUTRAL,
}
_REPLICA_SET_ICONS = {
    "Progressing": ICON_PROGRESSING,
    "Healthy": ICON_OK,
    "ReplicaFailure": ICON_BAD,
    "ScaledDown": ICON_NEUTRAL,
}
_ANALYSIS_ICONS = {
    "Successful": ICON_OK,
    "Inconclusive": ICON_UNKNOWN,
    "Failed": ICON_BAD,
    "Error": ICON_WARNING,
    "Running": ICON_PROGRESSING,
    "Pending": ICON_WAITING,
}


def _meta(obj: Raw) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Raw) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Raw) -> Mapping[str, Any]:
    return obj.get("status") or {}


def parse_time_or_none(text: object) -> datetime | None:
    """An RFC3339 timestamp, or None. (Not `rollwise.core.timestamps`: importing the core
    package loads the models, which would cost `get rollout` a fifth of a second.)"""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def name_of(obj: Raw) -> str:
    return str(_meta(obj).get("name", ""))


def namespace_of(obj: Raw) -> str:
    return str(_meta(obj).get("namespace") or "default")


def human_duration(seconds: float) -> str:
    """kubectl's age format (apimachinery `duration.HumanDuration`): `30s`, `5m`, `2d`, `12h`."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def age(obj: Raw, now: datetime) -> str:
    created = parse_time_or_none(_meta(obj).get("creationTimestamp"))
    if created is None:
        return "<unknown>"
    return human_duration((now - created).total_seconds())


# --- the rollout itself -------------------------------------------------------------------------


def strategy_name(rollout: Raw) -> str:
    strategy = _spec(rollout).get("strategy") or {}
    if strategy.get("canary") is not None:
        return "Canary"
    if strategy.get("blueGreen") is not None:
        return "BlueGreen"
    return "unknown"


def canary_steps(rollout: Raw) -> list[Mapping[str, Any]]:
    canary = (_spec(rollout).get("strategy") or {}).get("canary") or {}
    return list(canary.get("steps") or [])


def desired_replicas(rollout: Raw) -> int:
    replicas = _spec(rollout).get("replicas")
    return 1 if replicas is None else int(replicas)


def _generation_observed(rollout: Raw) -> bool:
    observed = _status(rollout).get("observedGeneration")
    generation = _meta(rollout).get("generation")
    try:
        observed_number = int(str(observed))
    except ValueError:
        # a hash-style or missing observedGeneration cannot be compared, as in Argo
        return True
    if generation is None:
        return True
    return observed_number >= int(generation)


def _unpausing(rollout: Raw) -> bool:
    status = _status(rollout)
    return (
        not _spec(rollout).get("paused")
        and not status.get("pauseConditions")
        and bool(status.get("controllerPause"))
    )


def rollout_phase(rollout: Raw) -> tuple[str, str]:
    """Phase and message as clients show them (Argo's `GetRolloutPhase`).

    The controller writes `status.phase`/`status.message` (reference 1.12); the client adds two
    states the controller has not seen yet: a spec change not yet observed, and a user resume.
    """
    status = _status(rollout)
    if not _generation_observed(rollout):
        return "Progressing", "waiting for rollout spec update to be observed"
    if _unpausing(rollout):
        return "Progressing", "waiting for rollout to unpause"
    if status.get("phase"):
        return str(status["phase"]), str(status.get("message") or "")
    if not status:
        return "Progressing", "waiting for rollout spec update to be observed"
    return "Progressing", str(status.get("message") or "")


def rollout_icon(phase: str) -> str:
    return _ROLLOUT_ICONS.get(phase, " ")


def step_text(rollout: Raw) -> str:
    """`i/N` while a canary has steps and an index; blank otherwise (Argo prints nothing)."""
    steps = canary_steps(rollout)
    index = _status(rollout).get("currentStepIndex")
    if index is None or not steps:
        return ""
    return f"{index}/{len(steps)}"


def _current_step(rollout: Raw) -> tuple[Mapping[str, Any] | None, int | None]:
    steps = canary_steps(rollout)
    if strategy_name(rollout) != "Canary" or not steps:
        return None, None
    index = int(_status(rollout).get("currentStepIndex") or 0)
    if index >= len(steps):
        return None, index
    return steps[index], index


def set_weight(rollout: Raw) -> int:
    """Desired canary weight: of the current or last setWeight step; 100 past the last step."""
    if _status(rollout).get("abort"):
        return 0
    step, index = _current_step(rollout)
    if step is None or index is None:
        return 100
    steps = canary_steps(rollout)
    for earlier in range(index, -1, -1):
        weight = steps[earlier].get("setWeight")
        if weight is not None:
            return int(weight)
    return 0


# --- owned objects ------------------------------------------------------------------------------


def owned_by(obj: Raw, owner: Raw, *, kind: str) -> bool:
    """Whether `obj` names `owner` in its ownerReferences (by uid when both have one)."""
    owner_meta = _meta(owner)
    owner_uid = owner_meta.get("uid")
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("kind") != kind:
            continue
        if owner_uid and ref.get("uid"):
            if ref["uid"] == owner_uid:
                return True
        elif ref.get("name") == owner_meta.get("name"):
            return True
    return False


def revision_of(obj: Raw) -> int:
    annotations = _meta(obj).get("annotations") or {}
    try:
        return int(annotations.get(REVISION_ANNOTATION, ""))
    except ValueError:
        return 0


def pod_template_hash(obj: Raw) -> str:
    labels = _meta(obj).get("labels") or {}
    return str(labels.get(HASH_LABEL, ""))


@dataclass(frozen=True)
class PodInfo:
    name: str
    status: str
    icon: str
    ready: str
    restarts: int
    age: str
    created: str


@dataclass(frozen=True)
class ReplicaSetInfo:
    name: str
    revision: int
    status: str
    icon: str
    age: str
    replicas: int
    available: int
    images: tuple[str, ...]
    tags: tuple[str, ...]
    scale_down_delay: str
    pods: tuple[PodInfo, ...] = field(default_factory=tuple)

    @property
    def canary(self) -> bool:
        return "canary" in self.tags

    @property
    def stable(self) -> bool:
        return "stable" in self.tags


@dataclass(frozen=True)
class AnalysisRunInfo:
    name: str
    revision: int
    status: str
    icon: str
    age: str
    created: str
    successful: int
    failed: int
    inconclusive: int
    error: int
    jobs: tuple[tuple[str, str, str], ...]  # (name, phase, age)


def replica_set_health(replica_set: Raw) -> str:
    """Argo's `getReplicaSetHealth`."""
    meta, spec, status = _meta(replica_set), _spec(replica_set), _status(replica_set)
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and int(generation) > int(observed):
        return "Progressing"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return "ReplicaFailure"
    desired = spec.get("replicas")
    if desired is not None and int(status.get("availableReplicas") or 0) < int(desired):
        return "Progressing"
    if desired is not None and int(desired) == 0:
        return "ScaledDown"
    return "Healthy"


def _replica_set_tags(rollout: Raw, replica_set: Raw) -> tuple[str, ...]:
    status = _status(rollout)
    pod_hash = pod_template_hash(replica_set)
    tags: list[str] = []
    if not pod_hash:
        return ()
    strategy = _spec(rollout).get("strategy") or {}
    if strategy.get("canary") is not None:
        ping_pong = strategy["canary"].get("pingPong")
        stable_is_ping = (status.get("canary") or {}).get("stablePingPong") == "ping"
        if status.get("stableRS") == pod_hash:
            tags.append("stable")
            if ping_pong:
                tags.append("ping" if stable_is_ping else "pong")
        elif status.get("currentPodHash") == pod_hash:
            tags.append("canary")
            if ping_pong:
                tags.append("pong" if stable_is_ping else "ping")
    if strategy.get("blueGreen") is not None:
        blue_green = status.get("blueGreen") or {}
        if status.get("stableRS") == pod_hash:
            tags.append("stable")
        if blue_green.get("activeSelector") == pod_hash:
            tags.append("active")
        elif blue_green.get("previewSelector") == pod_hash:
            tags.append("preview")
    return tuple(tags)


def _scale_down_delay(replica_set: Raw, now: datetime) -> str:
    annotations = _meta(replica_set).get("annotations") or {}
    deadline = parse_time_or_none(annotations.get(SCALE_DOWN_DEADLINE_ANNOTATION))
    if deadline is None:
        return ""
    if deadline < now:
        return "passed"
    return human_duration((deadline - now).total_seconds())


def pod_status(pod: Raw) -> tuple[str, str, int]:
    """(kubectl-style reason, ready `x/y`, restarts) of a pod, like Argo's `newPodInfo`."""
    status = _status(pod)
    reason = str(status.get("reason") or status.get("phase") or "Unknown")
    statuses = list(status.get("containerStatuses") or [])
    containers = _spec(pod).get("containers")
    total = len(containers) if containers else len(statuses)
    ready = restarts = 0
    has_running = False
    for container in reversed(statuses):
        restarts += int(container.get("restartCount") or 0)
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = str(waiting["reason"])
        elif terminated and terminated.get("reason"):
            reason = str(terminated["reason"])
        elif terminated:
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif container.get("ready") and ("running" in state or not state):
            # local pods carry no `state`; their `ready` flag is the readiness probe's verdict
            has_running = True
            ready += 1
    if reason == "Completed" and has_running:
        reason = "Running"
    if _meta(pod).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason, f"{ready}/{total}", restarts


def pod_icon(status: str) -> str:
    if status.startswith("Init:"):
        return ICON_PROGRESSING
    if status.startswith(("Signal:", "ExitCode:")):
        return ICON_BAD
    if status.endswith("Error") or status.startswith("Err"):
        return ICON_WARNING
    return {
        "Pending": ICON_PROGRESSING,
        "Terminating": ICON_PROGRESSING,
        "ContainerCreating": ICON_PROGRESSING,
        "Running": ICON_OK,
        "Completed": ICON_OK,
        "Failed": ICON_BAD,
        "InvalidImageName": ICON_BAD,
        "CrashLoopBackOff": ICON_BAD,
        "ImagePullBackOff": ICON_WARNING,
        "RegistryUnavailable": ICON_WARNING,
        "Unknown": ICON_UNKNOWN,
    }.get(status, " ")


def analysis_icon(phase: str) -> str:
    return _ANALYSIS_ICONS.get(phase, " ")


def replica_set_infos(
    rollout: Raw, replica_sets: Sequence[Raw], pods: Sequence[Raw], *, now: datetime
) -> list[ReplicaSetInfo]:
    """The rollout's ReplicaSets with their pods, newest revision first (Argo's order)."""
    owned = [rs for rs in replica_sets if owned_by(rs, rollout, kind="Rollout")]
    owned.sort(key=lambda rs: (-revision_of(rs), name_of(rs)))
    infos = []
    for replica_set in owned:
        children = [p for p in pods if owned_by(p, replica_set, kind="ReplicaSet")]
        children.sort(key=lambda p: (str(_meta(p).get("creationTimestamp") or ""), name_of(p)))
        pod_infos = []
        for pod in children:
            reason, ready, restarts = pod_status(pod)
            pod_infos.append(
                PodInfo(
                    name=name_of(pod),
                    status=reason,
                    icon=pod_icon(reason),
                    ready=ready,
                    restarts=restarts,
                    age=age(pod, now),
                    created=str(_meta(pod).get("creationTimestamp") or ""),
                )
            )
        health = replica_set_health(replica_set)
        template_spec = (_spec(replica_set).get("template") or {}).get("spec") or {}
        infos.append(
            ReplicaSetInfo(
                name=name_of(replica_set),
                revision=revision_of(replica_set),
                status=health,
                icon=_REPLICA_SET_ICONS.get(health, " "),
                age=age(replica_set, now),
                replicas=int(_status(replica_set).get("replicas") or 0),
                available=int(_status(replica_set).get("availableReplicas") or 0),
                images=tuple(
                    str(c.get("image", "")) for c in template_spec.get("containers") or []
                ),
                tags=_replica_set_tags(rollout, replica_set),
                scale_down_delay=_scale_down_delay(replica_set, now),
                pods=tuple(pod_infos),
            )
        )
    return infos


def analysis_run_infos(
    rollout: Raw,
    analysis_runs: Sequence[Raw],
    replica_sets: Sequence[ReplicaSetInfo],
    raw_replica_sets: Sequence[Raw],
    *,
    now: datetime,
) -> list[AnalysisRunInfo]:
    """The rollout's AnalysisRuns with measurement counts, newest revision first."""
    revision_by_hash = {
        pod_template_hash(rs): revision_of(rs) for rs in raw_replica_sets if pod_template_hash(rs)
    }
    infos = []
    for run in analysis_runs:
        if not owned_by(run, rollout, kind="Rollout"):
            continue
        revision = revision_of(run) or revision_by_hash.get(pod_template_hash(run), 0)
        counts = {"successful": 0, "failed": 0, "inconclusive": 0, "error": 0}
        jobs: list[tuple[str, str, str]] = []
        for result in _status(run).get("metricResults") or []:
            for key in counts:
                counts[key] += int(result.get(key) or 0)
            for measurement in result.get("measurements") or []:
                job_name = (measurement.get("metadata") or {}).get("job-name")
                if job_name:
                    started = parse_time_or_none(measurement.get("startedAt"))
                    job_age = (
                        human_duration((now - started).total_seconds()) if started else "<unknown>"
                    )
                    jobs.append((str(job_name), str(measurement.get("phase") or ""), job_age))
        phase = str(_status(run).get("phase") or "Pending")
        infos.append(
            AnalysisRunInfo(
                name=name_of(run),
                revision=revision,
                status=phase,
                icon=analysis_icon(phase),
                age=age(run, now),
                created=str(_meta(run).get("creationTimestamp") or ""),
                jobs=tuple(jobs),
                **counts,
            )
        )
    # newest revision first; within one, oldest first (Argo sorts names descending on a tie)
    infos.sort(key=lambda info: info.name, reverse=True)
    infos.sort(key=lambda info: (-info.revision, info.created))
    return infos


def actual_weight(rollout: Raw, replica_sets: Sequence[ReplicaSetInfo]) -> int:
    """Traffic the canary gets now: the router's weight, or its share of available pods."""
    step, _ = _current_step(rollout)
    if step is None:
        return 100
    status = _status(rollout)
    available = int(status.get("availableReplicas") or 0)
    if available <= 0:
        return 0
    canary = (_spec(rollout).get("strategy") or {}).get("canary") or {}
    if canary.get("trafficRouting") is None:
        weight = 0
        for info in replica_sets:
            if info.canary:
                weight = info.available * 100 // available
        return weight
    weights = (status.get("canary") or {}).get("weights") or {}
    routed = (weights.get("canary") or {}).get("weight")
    return int(routed) if routed is not None else set_weight(rollout)


@dataclass(frozen=True)
class ImageInfo:
    image: str
    tags: tuple[str, ...]


def images(replica_sets: Sequence[ReplicaSetInfo]) -> list[ImageInfo]:
    """Images of scaled-up ReplicaSets with their role tags, sorted by image (as Argo does)."""
    found: dict[str, tuple[str, ...]] = {}
    for info in replica_sets:
        if info.replicas <= 0:
            continue
        tags = tuple(t for t in ("canary", "stable", "active", "preview") if t in info.tags)
        for image in info.images:
            if image in found:
                found[image] = tuple(sorted(set(found[image]) | set(tags)))
            else:
                found[image] = tags
    return [ImageInfo(image, tags) for image, tags in sorted(found.items())]
