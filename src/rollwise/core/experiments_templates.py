"""An Experiment's templates: their ReplicaSets, Services and statuses (Argo's reconcileTemplate).

Who calls it: `rollwise.core.experiments.decide_experiment`, once per template per decision.

A template's ReplicaSet `<experiment>-<template>` is created at 0 and scaled to `replicas`
(default 1) while the Experiment runs; once it is finished or terminating the ReplicaSet keeps
its pods for `scaleDownDelaySeconds` (a `scale-down-deadline` annotation) and then goes to 0. A
template with `service` gets a Service selecting its hash (named `service.name`, or after the
ReplicaSet); it goes when the pods are gone. The template's status: Progressing until every
replica is available, Running, Successful once the duration passed (or the Experiment ends),
Failed after `progressDeadlineSeconds` without progress; a completed status never changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from rollwise.api import models as api
from rollwise.core import actions as act
from rollwise.core.experiments_state import (
    COMPLETED_TEMPLATE_STATUSES,
    ERROR,
    EXPERIMENT_NAME_ANNOTATION,
    FAILED,
    PROGRESSING,
    RUNNING,
    SUCCESSFUL,
    TEMPLATE_NAME_ANNOTATION,
    ExperimentContext,
    Raw,
    advance_template,
    progress_deadline_seconds,
    scale_down_delay_seconds,
)
from rollwise.core.hashing import (
    HASH_LABEL,
    fnv32a,
    safe_encode,
    template_with_hash_label,
    template_without_hash_label,
)
from rollwise.core.observed import ReplicaSetView
from rollwise.core.timestamps import parse_time_or_none

COUNT_KEYS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")


def template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The pod-template hash of an experiment template.

    Not `rollwise.core.hashing.pod_template_hash`: Argo hashes experiment templates with
    another function than Rollout templates, so a `specRef: stable` template gets a hash of its
    own and its pods' metrics are not mixed with the stable ReplicaSet's (Argo's docs call this
    intentional).
    """
    canonical = json.dumps(
        {"experimentTemplate": template_without_hash_label(template)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    ).encode()
    if collision_count is not None:
        canonical += (collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(f"{fnv32a(canonical):010d}")


def replica_set_name(experiment: str, template: str) -> str:
    return f"{experiment}-{template}"


def _ports(template: Mapping[str, Any]) -> tuple[Raw, ...]:
    """ServicePorts for the containers' ports (Argo's createTemplateService)."""
    ports: list[Raw] = []
    for container in (template.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            number = port.get("containerPort")
            if number is None:
                continue
            service_port: Raw = {"port": number, "targetPort": number}
            if port.get("protocol"):
                service_port["protocol"] = port["protocol"]
            if port.get("name"):
                service_port["name"] = port["name"]
            ports.append(service_port)
    return tuple(ports)


def _counts(rs: ReplicaSetView | None) -> Raw:
    if rs is None:
        return dict.fromkeys(COUNT_KEYS, 0)
    return {
        "replicas": rs.current_pods,
        "updatedReplicas": rs.current_pods,
        "readyReplicas": rs.ready,
        "availableReplicas": rs.available,
    }


def reconcile_template(ctx: ExperimentContext, template: api.TemplateSpec) -> None:
    """Create or scale the template's ReplicaSet and Service; write its status."""
    previous = ctx.templates.get(template.name) or {"name": template.name}
    status = dict(previous)
    desired = ctx.desired_replicas(template, previous)
    rs = ctx.observed.replica_sets.get(template.name)
    if rs is None:
        _create_replica_set(ctx, template, previous)
        status["lastTransitionTime"] = ctx.now_text
    else:
        _reconcile_service(ctx, template, rs, status, desired)
        if rs.replicas != desired and _scale(ctx, rs, desired):
            status["lastTransitionTime"] = ctx.now_text
    status.update(_counts(rs))
    if any(previous.get(key, 0) != status[key] for key in COUNT_KEYS):
        status["lastTransitionTime"] = ctx.now_text

    old = str(previous.get("status") or "")
    if old not in COMPLETED_TEMPLATE_STATUSES:
        new, message = _template_status(ctx, template, status, desired)
        status["status"] = advance_template(old, new)
        if message:
            status["message"] = message
    if old != status.get("status"):
        text = f"Template '{template.name}' transitioned from {old} -> {status['status']}"
        if status.get("message"):
            text += f": {status['message']}"
        ctx.event(f"Template{status['status']}", text, warning=status["status"] in (FAILED, ERROR))
    ctx.templates[template.name] = status


def _template_status(
    ctx: ExperimentContext, template: api.TemplateSpec, status: Mapping[str, Any], desired: int
) -> tuple[str, str]:
    if desired == 0:
        # Terminating or finished: the template is done whatever its pods still do.
        return SUCCESSFUL, ""
    available = int(status.get("availableReplicas") or 0)
    if available == desired:
        return (SUCCESSFUL if ctx.passed_duration() else RUNNING), ""
    since = parse_time_or_none(status.get("lastTransitionTime")) or ctx.now
    seconds = progress_deadline_seconds(ctx.experiment)
    deadline = since + timedelta(seconds=seconds)
    if ctx.now > deadline:
        return (
            FAILED,
            f"Template '{template.name}' exceeded its progressDeadlineSeconds ({seconds})",
        )
    ctx.requeue_at(deadline + timedelta(seconds=1))
    return PROGRESSING, ""


def _create_replica_set(
    ctx: ExperimentContext, template: api.TemplateSpec, previous: Mapping[str, Any]
) -> None:
    pod_template = template.template or {}
    pod_hash = template_hash(pod_template, previous.get("collisionCount"))
    selector = template.selector.to_raw() if template.selector is not None else {}
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
    ctx.actions.append(
        act.CreateExperimentReplicaSet(
            name=replica_set_name(ctx.experiment.name, template.name),
            template_name=template.name,
            pod_template_hash=pod_hash,
            template=template_with_hash_label(template_without_hash_label(pod_template), pod_hash),
            selector=selector,
            replicas=0,
            min_ready_seconds=template.min_ready_seconds or 0,
        )
    )


def _scale(ctx: ExperimentContext, rs: ReplicaSetView, desired: int) -> bool:
    """Move the template's ReplicaSet towards `desired`; True if it was asked to change."""
    if desired == 0:
        delay = scale_down_delay_seconds(ctx.experiment)
        deadline = rs.scale_down_deadline
        if delay > 0:
            if deadline is None:
                deadline = ctx.now + timedelta(seconds=delay)
                ctx.actions.append(act.ScaleReplicaSet(rs.name, rs.replicas, deadline))
            if deadline > ctx.now:
                # Keep the pods up a little: routers and clients let go of them first.
                ctx.requeue_at(deadline)
                return False
    ctx.actions.append(act.ScaleReplicaSet(rs.name, desired, None))
    direction = "up" if desired > rs.replicas else "down"
    ctx.event(
        "ScalingReplicaSet",
        f"Scaled {direction} ReplicaSet {rs.name} from {rs.replicas} to {desired}",
    )
    return True


def _reconcile_service(
    ctx: ExperimentContext,
    template: api.TemplateSpec,
    rs: ReplicaSetView,
    status: Raw,
    desired: int,
) -> None:
    existing = ctx.observed.services.get(template.name)
    gone = desired == 0 and rs.replicas == 0 and rs.current_pods == 0
    if template.service is None or gone:
        if existing is not None:
            ctx.actions.append(act.DeleteService(existing))
        status.pop("serviceName", None)
        status.pop("podTemplateHash", None)
        return
    if desired == 0:
        return
    name = template.service.name or rs.name
    if existing is None:
        ctx.actions.append(
            act.CreateService(
                name=name,
                selector={HASH_LABEL: rs.pod_template_hash},
                ports=_ports(rs.template),
                annotations={
                    EXPERIMENT_NAME_ANNOTATION: ctx.experiment.name,
                    TEMPLATE_NAME_ANNOTATION: template.name,
                },
            )
        )
    status["serviceName"] = existing or name
    status["podTemplateHash"] = rs.pod_template_hash
