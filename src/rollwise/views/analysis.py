"""The text of `rollwise get analysisrun`, `rollwise list analysisruns` and `rollwise analyze`.

Who calls it: the CLI verbs `get analysisrun` (once, or redrawn under `-w`), `list
analysisruns`, and `rollwise analyze` (one line per measurement as it lands, then the whole run);
the tests compare its output with golden text built from objects. Pure: raw AnalysisRun dicts and
`now` in, a string out; like `render`, it imports neither pydantic nor the core, so `get
analysisrun` starts as fast as `get rollout`.

Argo has no `get analysisrun`; the look follows its `get rollout` (labels padded to 17
columns, tabwriter tables, the analysis icons ✔ ✖ ? ⚠ ◌ ◷ and their colours). Secret args are
shown by reference (`<secret NAME/KEY>`), never by value: the run object holds no value to show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rollwise.views import info
from rollwise.views.render import Painter, tabulate

Raw = Mapping[str, Any]

RESOLVED_QUERY = "ResolvedPrometheusQuery"
COMPLETED_PHASES = ("Successful", "Failed", "Error", "Inconclusive")
_LABEL_WIDTH = 17
MEASUREMENT_COUNTERS = ("successful", "failed", "inconclusive", "error")
"""A metric result's counters of finished measurements (`count` leaves errors out)."""


def _field(label: str, value: object, *, indent: str = "") -> str:
    return f"{indent}{label:<{_LABEL_WIDTH - len(indent)}}{value}".rstrip()


def _status_text(phase: str, paint: Painter) -> str:
    return f"{paint.word(info.analysis_icon(phase))} {phase}"


def _moment(text: object, now: datetime) -> str:
    """`2026-11-26T01:50:00Z (2m ago)`; the raw text when it is not a timestamp."""
    moment = info.parse_time_or_none(text)
    if moment is None:
        return str(text)
    return f"{text} ({info.human_duration((now - moment).total_seconds())} ago)"


def _arg_text(argument: Raw) -> str:
    name = str(argument.get("name", ""))
    if argument.get("value") is not None:
        return f"{name}={argument['value']}"
    source = argument.get("valueFrom") or {}
    secret = source.get("secretKeyRef")
    if isinstance(secret, Mapping):
        return f"{name}=<secret {secret.get('name', '')}/{secret.get('key', '')}>"
    field_ref = source.get("fieldRef")
    if isinstance(field_ref, Mapping):
        return f"{name}=<field {field_ref.get('fieldPath', '')}>"
    return f"{name}=<unset>"


def _dry_run_names(run: Raw) -> set[str]:
    """Metrics marked dry-run in the status (the core matched the spec's regexes)."""
    results = (run.get("status") or {}).get("metricResults") or []
    return {str(r.get("name")) for r in results if r.get("dryRun")}


def _metric_names(run: Raw) -> list[str]:
    """The spec's metrics in order, then any result the spec no longer names."""
    names = [str(m.get("name", "")) for m in (run.get("spec") or {}).get("metrics") or []]
    for result in (run.get("status") or {}).get("metricResults") or []:
        name = str(result.get("name", ""))
        if name not in names:
            names.append(name)
    return names


def measurement_time(measurement: Raw) -> str:
    return str(measurement.get("finishedAt") or measurement.get("startedAt") or "")


def _measurement_message(measurement: Raw) -> str:
    message = str(measurement.get("message") or "")
    if not message and measurement.get("phase") not in COMPLETED_PHASES:
        resume_at = measurement.get("resumeAt")
        if resume_at:
            return f"resumes at {resume_at}"
    return message


def render_analysis_run(run: Raw, *, now: datetime, color: bool) -> str:
    """The header (name, namespace, status, message, times, args), then each metric: its
    phase, message, counters, resolved query and measurements (oldest first)."""
    paint = Painter(color=color)
    status = run.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    lines = [
        _field("Name:", info.name_of(run)),
        _field("Namespace:", info.namespace_of(run)),
        _field("Status:", _status_text(phase, paint)),
    ]
    if status.get("message"):
        lines.append(_field("Message:", status["message"]))
    if status.get("startedAt"):
        lines.append(_field("Started:", _moment(status["startedAt"], now)))
    if status.get("completedAt"):
        lines.append(_field("Completed:", _moment(status["completedAt"], now)))
    args = (run.get("spec") or {}).get("args") or []
    if args:
        lines.append(_field("Args:", ", ".join(_arg_text(a) for a in args)))
    results = {str(r.get("name")): r for r in status.get("metricResults") or []}
    dry_run = _dry_run_names(run)
    for name in _metric_names(run):
        lines.append("")
        lines.extend(_metric_lines(name, results.get(name), dry=name in dry_run, paint=paint))
    return "\n".join(lines) + "\n"


def _metric_lines(name: str, result: Raw | None, *, dry: bool, paint: Painter) -> list[str]:
    title = f"{name} (dry run)" if dry else name
    if result is None:
        return [
            _field("Metric:", title),
            _field("Status:", _status_text("Pending", paint), indent="  "),
        ]
    phase = str(result.get("phase") or "Pending")
    lines = [
        _field("Metric:", title),
        _field("Status:", _status_text(phase, paint), indent="  "),
    ]
    if result.get("message"):
        lines.append(_field("Message:", result["message"], indent="  "))
    counters = ", ".join(f"{key} {int(result.get(key) or 0)}" for key in MEASUREMENT_COUNTERS)
    lines.append(
        _field("Counts:", f"{counters}; count {int(result.get('count') or 0)}", indent="  ")
    )
    query = (result.get("metadata") or {}).get(RESOLVED_QUERY)
    if query:
        lines.append(_field("Query:", " ".join(str(query).split()), indent="  "))
    measurements = result.get("measurements") or []
    if measurements:
        rows = [["TIME", "STATUS", "VALUE", "MESSAGE"]]
        for measurement in measurements:
            m_phase = str(measurement.get("phase") or "")
            rows.append(
                [
                    measurement_time(measurement),
                    _status_text(m_phase, paint),
                    str(measurement.get("value") or ""),
                    _measurement_message(measurement),
                ]
            )
        lines.extend("  " + row for row in tabulate(rows))
    return lines


def measurement_line(metric: str, measurement: Raw, *, color: bool) -> str:
    """One measurement as `rollwise analyze` prints it when it lands:
    `TIME  METRIC  ✔ Successful  VALUE  MESSAGE` (empty parts left out)."""
    paint = Painter(color=color)
    parts = [
        measurement_time(measurement),
        metric,
        _status_text(str(measurement.get("phase") or ""), paint),
        str(measurement.get("value") or ""),
        _measurement_message(measurement),
    ]
    return "  ".join(part for part in parts if part)


def render_analysis_run_list(runs: Sequence[Raw], *, now: datetime, all_namespaces: bool) -> str:
    """The `list analysisruns` table: NAME STATUS AGE (NAMESPACE first with `-A`)."""
    header = ["NAME", "STATUS", "AGE"]
    if all_namespaces:
        header = ["NAMESPACE", *header]
    rows: list[list[str]] = [header]
    for run in runs:
        phase = str((run.get("status") or {}).get("phase") or "Pending")
        row = [info.name_of(run), phase, info.age(run, now)]
        rows.append(([info.namespace_of(run)] if all_namespaces else []) + row)
    return "\n".join(tabulate(rows)) + "\n"
