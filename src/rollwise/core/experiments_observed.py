"""What a Rollout sees of the Experiments it owns: a small view per Experiment.

Who builds it: the platforms' `observe()`, from the Experiments owned by the Rollout (the
`experiments` of `rollwise.core.observed.Observed`). Who reads it: the experiment step of the
canary engine (`rollwise.core.experiments_steps`), which cares only about an Experiment's phase,
message, which revision and step made it, and the Services and hashes of its templates (for
weighted experiment traffic). A leaf module: it imports nothing from the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

HASH_LABEL = "rollouts-pod-template-hash"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
COMPLETED_EXPERIMENT_PHASES = frozenset({"Successful", "Failed", "Error", "Inconclusive"})


@dataclass(frozen=True, slots=True)
class TemplateServiceView:
    """A template of a running Experiment and the Service in front of it."""

    name: str
    service_name: str
    pod_template_hash: str


@dataclass(frozen=True, slots=True)
class ExperimentView:
    """One Experiment owned by the Rollout."""

    name: str
    phase: str
    """status.phase: "" (not reconciled yet), Pending, Running, Successful, Failed, Error,
    Inconclusive."""
    message: str = ""
    pod_template_hash: str = ""
    """The `rollouts-pod-template-hash` label: the Rollout revision that created it."""
    revision: int | None = None
    created_at: datetime | None = None
    terminate_requested: bool = False
    templates: tuple[TemplateServiceView, ...] = ()

    @property
    def completed(self) -> bool:
        return self.phase in COMPLETED_EXPERIMENT_PHASES


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    value = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def experiment_view_from_raw(raw: Mapping[str, Any]) -> ExperimentView:
    """A view of a raw Experiment (as stored: camelCase, Kubernetes shape)."""
    metadata = raw.get("metadata") or {}
    status = raw.get("status") or {}
    revision_text = (metadata.get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        revision = None if revision_text is None else int(revision_text)
    except ValueError:
        revision = None
    return ExperimentView(
        name=str(metadata.get("name", "")),
        phase=str(status.get("phase") or ""),
        message=str(status.get("message") or ""),
        pod_template_hash=str((metadata.get("labels") or {}).get(HASH_LABEL, "")),
        revision=revision,
        created_at=_parse_time(metadata.get("creationTimestamp")),
        terminate_requested=bool((raw.get("spec") or {}).get("terminate")),
        templates=tuple(
            TemplateServiceView(
                name=str(template.get("name", "")),
                service_name=str(template.get("serviceName") or ""),
                pod_template_hash=str(template.get("podTemplateHash") or ""),
            )
            for template in status.get("templateStatuses") or ()
        ),
    )
