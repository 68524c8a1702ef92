"""The built-in catalog: Argo Rollouts' nine triggers and their templates, in Jinja2.

Where it sits: `rollwise.notify.config` starts every configuration from this catalog, then
applies the user's keys, so a `trigger.<name>` or `template.<name>` of the same name replaces
the built-in one (as when Argo's catalog ConfigMap is edited).

Each template says what Argo's catalog (`manifests/notifications/`) says: the same `message`,
the same `email.subject`, and a Slack attachment with the same title, colour and fields
(strategy, then one field per container image). Two differences, both because rollwise renders
the Rollout as it is *after* the reconcile that recorded the event (Argo renders the copy it read
before): the step-completed message counts `currentStepIndex` without Argo's `+ 1`, so the
number shown is the same; and the abort and analysis-failure messages also show the step, the
weights and the failing metric.
"""

from __future__ import annotations

from typing import Any

GREEN = "#18be52"
RED = "#E01E5A"
YELLOW = "#ECB22E"

NAME = "{{ rollout.metadata.name }}"

_STRATEGY = (
    '{"title": "Strategy", "value": "{% if rollout.spec.strategy.blueGreen %}BlueGreen'
    '{% endif %}{% if rollout.spec.strategy.canary %}Canary{% endif %}", "short": true}'
)
_CONTAINERS = (
    "{% for c in rollout.spec.template.spec.containers %},\n"
    '{"title": {{ c.name | default("") | tojson }}, '
    '"value": {{ c.image | default("") | tojson }}, "short": true}'
    "{% endfor %}"
)
_STEP_COMPLETED = (
    '{"title": "Step completed", "value": "{{ rollout.status.currentStepIndex }}/'
    '{{ step.count }}", "short": true}'
)
_SCALING = (
    '{"title": "Desired replica", "value": "{{ rollout.spec.replicas }}", "short": true},\n'
    '{"title": "Updated replicas", "value": "{{ rollout.status.updatedReplicas }}", '
    '"short": true}'
)
# What went wrong, for the abort and the failed/errored analysis: the step it stopped at, the
# weights now (after an abort, all traffic back on stable), the failing metrics, the message.
_WHAT_FAILED = (
    '{"title": "Step", "value": {% if step.current %}'
    '{{ ((step.index + 1) ~ "/" ~ step.count ~ " (" ~ step.label ~ ")") | tojson }}'
    '{% else %}{{ (step.index ~ "/" ~ step.count) | tojson }}{% endif %}, "short": true},\n'
    '{"title": "Weights", "value": {% if weights %}'
    '{{ ("canary " ~ weights.canary ~ "%, stable " ~ weights.stable ~ "%") | tojson }}'
    '{% else %}"-"{% endif %}, "short": true}'
    "{% for m in failedMetrics %},\n"
    '{"title": {{ ("Failed metric: " ~ m.name) | tojson }}, '
    '"value": {{ (m.phase ~ (", value " ~ m.value if m.value is not none else "")'
    ' ~ (": " ~ m.message if m.message else "")) | tojson }}, "short": false}'
    "{% endfor %}"
    "{% if rollout.status.message %},\n"
    '{"title": "Message", "value": {{ rollout.status.message | tojson }}, "short": false}'
    "{% endif %}"
)


def _attachments(color: str, *extra: str) -> str:
    fields = ",\n".join((_STRATEGY, *extra))
    return (
        "[{\n"
        f'"title": {{{{ rollout.metadata.name | tojson }}}},\n"color": "{color}",\n'
        f'"fields": [\n{fields}\n{_CONTAINERS}\n]\n'
        "}]"
    )


def _template(message: str, color: str, *extra: str) -> dict[str, Any]:
    return {
        "message": message,
        "email": {"subject": message},
        "slack": {"attachments": _attachments(color, *extra)},
    }


TEMPLATES: dict[str, dict[str, Any]] = {
    "rollout-completed": _template(f"Rollout {NAME} has been completed.", GREEN),
    "rollout-step-completed": _template(
        f"Rollout {NAME} step number {{{{ rollout.status.currentStepIndex }}}}/"
        "{{ step.count }} has been completed.",
        GREEN,
        _STEP_COMPLETED,
    ),
    "rollout-updated": _template(f"Rollout {NAME} has been updated.", GREEN),
    "scaling-replicaset": _template(
        f"Scaling Rollout {NAME}'s replicaset to {{{{ rollout.spec.replicas }}}}.", GREEN, _SCALING
    ),
    "rollout-paused": _template(f"Rollout {NAME} has been paused.", GREEN),
    "rollout-aborted": _template(f"Rollout {NAME} has been aborted.", RED, _WHAT_FAILED),
    "analysis-run-running": _template(f"Rollout {NAME}'s analysis run is running.", GREEN),
    "analysis-run-error": _template(
        f"Rollout {NAME}'s analysis run is in error state.", YELLOW, _WHAT_FAILED
    ),
    "analysis-run-failed": _template(f"Rollout {NAME}'s analysis run failed.", RED, _WHAT_FAILED),
}

TRIGGERS: dict[str, str] = {
    "on-rollout-completed": "rollout-completed",
    "on-rollout-step-completed": "rollout-step-completed",
    "on-rollout-updated": "rollout-updated",
    "on-scaling-replica-set": "scaling-replicaset",
    "on-rollout-paused": "rollout-paused",
    "on-rollout-aborted": "rollout-aborted",
    "on-analysis-run-running": "analysis-run-running",
    "on-analysis-run-error": "analysis-run-error",
    "on-analysis-run-failed": "analysis-run-failed",
}
"""Each built-in trigger sends its one template (Argo: `- send: [<template>]`, no `when`)."""
