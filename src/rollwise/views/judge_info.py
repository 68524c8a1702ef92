"""The judge's latest evidence for `rollwise get rollout`: what it says and when it will decide.

Who calls it: `rollwise.views.render.render_rollout`, which adds these lines to the header of a
rollout whose current revision is being judged by the `rollwise/judge` metric plugin. Pure:
objects and `now` in, lines out. The figures come from the measurement's metadata, where the
provider writes them at every look (`rollwise.providers.judge`); the time to a decision is
the estimated canary requests still needed over the canary's request rate, less the time since
that look.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollwise.views.info import human_duration, owned_by, parse_time_or_none, pod_template_hash

STATE_KEY = "rollwise.io/judge-state"  # what marks a measurement as the judge's
LOOKED_AT_KEY = "rollwise.io/judge-looked-at"
_LABEL_WIDTH = 17


@dataclass(frozen=True)
class JudgeEvidence:
    run: str
    metric: str
    phase: str
    decision: str
    reason: str
    seconds_to_decision: float | None
    """Estimated seconds until the judge decides (None: decided, or no estimate)."""
    requests_needed: int | None
    canary_rate: str | None
    expected: str | None


def _number(text: object) -> float | None:
    try:
        return float(str(text).replace(",", "").removesuffix("/s"))
    except ValueError:
        return None


def judge_evidence(
    rollout: Mapping[str, Any], analysis_runs: Sequence[Mapping[str, Any]], *, now: datetime
) -> list[JudgeEvidence]:
    """The judge measurements of the rollout's newest analysis run of its current revision."""
    current = str((rollout.get("status") or {}).get("currentPodHash") or "")
    runs = [
        run
        for run in analysis_runs
        if owned_by(run, rollout, kind="Rollout")
        and (not current or pod_template_hash(run) == current)
    ]
    if not runs:
        return []
    run = max(runs, key=lambda r: str((r.get("metadata") or {}).get("creationTimestamp") or ""))
    found = []
    for result in (run.get("status") or {}).get("metricResults") or []:
        measurements = result.get("measurements") or []
        if not measurements:
            continue
        last = measurements[-1]
        metadata = last.get("metadata") or {}
        if STATE_KEY not in metadata:
            continue
        phase = str(last.get("phase") or "")
        needed = _number(metadata.get("requestsNeeded"))
        rate = _number(metadata.get("canaryRequestRate"))
        seconds = None
        if phase == "Running" and needed is not None and rate:
            seconds = needed / rate
            looked = parse_time_or_none(metadata.get(LOOKED_AT_KEY))
            if looked is not None:
                seconds = max(0.0, seconds - (now - looked).total_seconds())
        found.append(
            JudgeEvidence(
                run=str((run.get("metadata") or {}).get("name") or ""),
                metric=str(result.get("name") or ""),
                phase=phase,
                decision=str(metadata.get("decision") or last.get("value") or ""),
                reason=str(metadata.get("reason") or last.get("message") or ""),
                seconds_to_decision=seconds,
                requests_needed=None if needed is None else int(needed),
                canary_rate=metadata.get("canaryRequestRate"),
                expected=metadata.get("expected"),
            )
        )
    return found


def _field(label: str, value: object) -> str:
    return f"{label:<{_LABEL_WIDTH}}{value}".rstrip()


def judge_lines(
    rollout: Mapping[str, Any], analysis_runs: Sequence[Mapping[str, Any]], *, now: datetime
) -> list[str]:
    """`Judge:` lines for the header: the decision and its reason, and while it runs the
    estimated time to a decision at the current traffic."""
    lines = []
    for evidence in judge_evidence(rollout, analysis_runs, now=now):
        lines.append(_field("Judge:", f"{evidence.metric}: {evidence.decision}"))
        lines.append(_field("  Evidence:", evidence.reason))
        if evidence.phase != "Running":
            continue
        if evidence.seconds_to_decision is None:
            lines.append(_field("  Decision:", "none in sight at the current rates"))
            continue
        when = (
            "any moment"
            if evidence.seconds_to_decision < 1
            else f"~{human_duration(evidence.seconds_to_decision)}"
        )
        detail = f"{evidence.expected or 'a decision'} expected in {when}"
        if evidence.requests_needed is not None and evidence.canary_rate:
            detail += f" (~{evidence.requests_needed:,} canary requests at {evidence.canary_rate})"
        lines.append(_field("  Decision:", detail))
    return lines
