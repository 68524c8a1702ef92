"""The text of `rollwise get rollout` and `rollwise list rollouts`, as Argo's CLI draws them.

Who calls it: the CLI verbs `get rollout` (once, or redrawn under `-w`), `list rollouts`, and
the tests, which compare its output with the look in reference section 5.2. Pure: objects and
`now` in, a string out. Colours are ANSI SGR codes written directly (Argo's palette); rich is
not imported on this path because its import alone would use a third of the 150 ms budget.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rollwise.views import info
from rollwise.views.experiment_info import ExperimentInfo, experiment_infos
from rollwise.views.info import AnalysisRunInfo, ReplicaSetInfo
from rollwise.views.judge_info import judge_lines

ICON_ROLLOUT = "⟳"
ICON_REVISION = "#"
ICON_REPLICA_SET = "⧉"
ICON_POD = "□"
ICON_ANALYSIS = "α"
ICON_JOB = "⊞"
ICON_EXPERIMENT = "Σ"

RED, GREEN, YELLOW, HI_BLUE = 31, 32, 33, 94
_COLORS = {
    info.ICON_WAITING: YELLOW,
    info.ICON_PROGRESSING: HI_BLUE,
    info.ICON_WARNING: RED,
    info.ICON_UNKNOWN: YELLOW,
    info.ICON_OK: GREEN,
    info.ICON_BAD: RED,
    "canary": YELLOW,
    "stable": GREEN,
    "active": GREEN,
    "preview": HI_BLUE,
    "ping": HI_BLUE,
    "pong": HI_BLUE,
    "Pending": HI_BLUE,
    "Running": HI_BLUE,
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LABEL_WIDTH = 17  # values start at column 18, as Argo's "%-17s%v"
_PADDING = 2  # Argo's tabwriter padding


class Painter:
    """Colours well-known words (icons, role tags, run phases); a no-op when colour is off."""

    def __init__(self, *, color: bool) -> None:
        self.color = color

    def word(self, text: str) -> str:
        return self.as_status(text, text)

    def as_status(self, text: str, status: str) -> str:
        code = _COLORS.get(status)
        if not self.color or code is None or not text:
            return text
        return f"\x1b[{code}m{text}\x1b[0m"


def visible_width(text: str) -> int:
    return len(_ANSI.sub("", text))


def tabulate(rows: Sequence[Sequence[str]], *, min_widths: Sequence[int] = ()) -> list[str]:
    """Align cells like Go's tabwriter (padding 2): every column but the last is padded to its
    widest cell (or its minimum width) plus two spaces; trailing blanks are trimmed."""
    widths: list[int] = list(min_widths)
    for row in rows:
        for column, cell in enumerate(row[:-1]):
            width = visible_width(cell)
            if column == len(widths):
                widths.append(width)
            else:
                widths[column] = max(widths[column], width)
    lines = []
    for row in rows:
        parts = [
            cell + " " * (widths[column] + _PADDING - visible_width(cell))
            for column, cell in enumerate(row[:-1])
        ]
        parts.append(row[-1] if row else "")
        lines.append("".join(parts).rstrip())
    return lines


def _field(label: str, value: object) -> str:
    return f"{label:<{_LABEL_WIDTH}}{value}".rstrip()


def _prefixes(is_last: bool, sub_prefix: str) -> tuple[str, str]:
    if is_last:
        return sub_prefix + "└──", sub_prefix + "   "
    return sub_prefix + "├──", sub_prefix + "│  "


def render_rollout(
    rollout: Mapping[str, Any],
    replica_sets: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    analysis_runs: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    color: bool,
    experiments: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The header block and the revision tree of one rollout (reference 5.2).

    The lists may hold objects of other rollouts: only those the rollout owns are drawn, with
    its Experiments (`Σ`, and what they own) under their revision.
    """
    paint = Painter(color=color)
    rs_infos = info.replica_set_infos(rollout, replica_sets, pods, now=now)
    run_infos = info.analysis_run_infos(rollout, analysis_runs, rs_infos, replica_sets, now=now)
    exp_infos = experiment_infos(rollout, experiments, replica_sets, pods, analysis_runs, now=now)
    phase, message = info.rollout_phase(rollout)
    icon = info.rollout_icon(phase)
    status = rollout.get("status") or {}
    strategy = info.strategy_name(rollout)

    lines = [
        _field("Name:", info.name_of(rollout)),
        _field("Namespace:", info.namespace_of(rollout)),
        _field("Status:", f"{paint.word(icon)} {phase}"),
    ]
    if message:
        lines.append(_field("Message:", message))
    lines.append(_field("Strategy:", strategy))
    if strategy == "Canary":
        lines.append(_field("  Step:", info.step_text(rollout)))
        lines.append(_field("  SetWeight:", info.set_weight(rollout)))
        lines.append(_field("  ActualWeight:", info.actual_weight(rollout, rs_infos)))
    lines.extend(judge_lines(rollout, analysis_runs, now=now))
    for index, image in enumerate(_with_experiment_images(info.images(rs_infos), exp_infos)):
        text = image.image
        if image.tags:
            text += " (" + ", ".join(paint.word(tag) for tag in image.tags) + ")"
        lines.append(_field("Images:" if index == 0 else "", text))
    lines.append("Replicas:")
    lines.append(_field("  Desired:", info.desired_replicas(rollout)))
    lines.append(_field("  Current:", int(status.get("replicas") or 0)))
    lines.append(_field("  Updated:", int(status.get("updatedReplicas") or 0)))
    lines.append(_field("  Ready:", int(status.get("readyReplicas") or 0)))
    lines.append(_field("  Available:", int(status.get("availableReplicas") or 0)))
    lines.append("")
    lines.extend(
        tabulate(
            _tree_rows(rollout, phase, icon, rs_infos, run_infos, paint, now=now, exps=exp_infos)
        )
    )
    return "\n".join(lines) + "\n"


def _tree_rows(
    rollout: Mapping[str, Any],
    phase: str,
    icon: str,
    rs_infos: Sequence[ReplicaSetInfo],
    run_infos: Sequence[AnalysisRunInfo],
    paint: Painter,
    *,
    now: datetime,
    exps: Sequence[ExperimentInfo] = (),
) -> list[list[str]]:
    rows = [
        ["NAME", "KIND", "STATUS", "AGE", "INFO"],
        [
            f"{ICON_ROLLOUT} {info.name_of(rollout)}",
            "Rollout",
            f"{paint.word(icon)} {phase}",
            info.age(rollout, now),
            "",
        ],
    ]
    revisions = sorted(
        {i.revision for i in rs_infos}
        | {r.revision for r in run_infos}
        | {e.revision for e in exps},
        reverse=True,
    )
    for position, revision in enumerate(revisions):
        prefix, sub_prefix = _prefixes(position == len(revisions) - 1, "")
        rows.append([f"{prefix}{ICON_REVISION} revision:{revision}", "", "", "", ""])
        children: list[ReplicaSetInfo | ExperimentInfo | AnalysisRunInfo] = [
            *(i for i in rs_infos if i.revision == revision),
            *(e for e in exps if e.revision == revision),
            *(r for r in run_infos if r.revision == revision),
        ]
        for index, child in enumerate(children):
            child_prefix, child_sub = _prefixes(index == len(children) - 1, sub_prefix)
            if isinstance(child, ReplicaSetInfo):
                rows.extend(_replica_set_rows(child, child_prefix, child_sub, paint))
            elif isinstance(child, ExperimentInfo):
                rows.extend(experiment_rows(child, child_prefix, child_sub, paint))
            else:
                rows.extend(_analysis_run_rows(child, child_prefix, child_sub, paint))
    return rows


def _replica_set_rows(
    rs: ReplicaSetInfo, prefix: str, sub_prefix: str, paint: Painter
) -> list[list[str]]:
    name = rs.name
    for tag in rs.tags:
        name = paint.as_status(rs.name, tag)
    info_cells = [paint.word(tag) for tag in rs.tags]
    if rs.scale_down_delay:
        info_cells.append(f"delay:{rs.scale_down_delay}")
    rows = [
        [
            f"{prefix}{ICON_REPLICA_SET} {name}",
            "ReplicaSet",
            f"{paint.word(rs.icon)} {rs.status}",
            rs.age,
            ",".join(info_cells),
        ]
    ]
    for index, pod in enumerate(rs.pods):
        pod_prefix, _ = _prefixes(index == len(rs.pods) - 1, sub_prefix)
        pod_info = f"ready:{pod.ready}"
        if pod.restarts > 0:
            pod_info += f",restarts:{pod.restarts}"
        rows.append(
            [
                f"{pod_prefix}{ICON_POD} {pod.name}",
                "Pod",
                f"{paint.word(pod.icon)} {pod.status}",
                pod.age,
                pod_info,
            ]
        )
    return rows


def _analysis_run_rows(
    run: AnalysisRunInfo, prefix: str, sub_prefix: str, paint: Painter
) -> list[list[str]]:
    counts = [
        (info.ICON_OK, run.successful),
        (info.ICON_BAD, run.failed),
        (info.ICON_UNKNOWN, run.inconclusive),
        (info.ICON_WARNING, run.error),
    ]
    rows = [
        [
            f"{prefix}{ICON_ANALYSIS} {paint.as_status(run.name, run.status)}",
            "AnalysisRun",
            f"{paint.word(run.icon)} {run.status}",
            run.age,
            ",".join(f"{paint.word(icon)} {n}" for icon, n in counts if n > 0),
        ]
    ]
    for index, (job, job_phase, job_age) in enumerate(run.jobs):
        job_prefix, _ = _prefixes(index == len(run.jobs) - 1, sub_prefix)
        job_icon = info.analysis_icon(job_phase)
        rows.append(
            [
                f"{job_prefix}{ICON_JOB} {paint.as_status(job, job_phase)}",
                "Job",
                f"{paint.word(job_icon)} {job_phase}",
                job_age,
                "",
            ]
        )
    return rows


def experiment_rows(
    experiment: ExperimentInfo, prefix: str, sub_prefix: str, paint: Painter
) -> list[list[str]]:
    """The `Σ` row of an Experiment, its ReplicaSets (with pods) and AnalysisRuns below."""
    rows = [
        [
            f"{prefix}{ICON_EXPERIMENT} {paint.as_status(experiment.name, experiment.status)}",
            "Experiment",
            f"{paint.word(experiment.icon)} {experiment.status}",
            experiment.age,
            "",
        ]
    ]
    children: list[ReplicaSetInfo | AnalysisRunInfo] = [
        *experiment.replica_sets,
        *experiment.analysis_runs,
    ]
    for index, child in enumerate(children):
        child_prefix, child_sub = _prefixes(index == len(children) - 1, sub_prefix)
        if isinstance(child, ReplicaSetInfo):
            rows.extend(_replica_set_rows(child, child_prefix, child_sub, paint))
        else:
            rows.extend(_analysis_run_rows(child, child_prefix, child_sub, paint))
    return rows


def _with_experiment_images(
    images: list[info.ImageInfo], experiments: Sequence[ExperimentInfo]
) -> list[info.ImageInfo]:
    """The rollout's images plus its experiments', each tagged with its template names."""
    found = {image.image: image.tags for image in images}
    for experiment in experiments:
        for image in experiment.images:
            found[image.image] = tuple(dict.fromkeys((*found.get(image.image, ()), *image.tags)))
    return [info.ImageInfo(image, tags) for image, tags in sorted(found.items())]


def render_rollout_list(rollouts: Sequence[Mapping[str, Any]], *, all_namespaces: bool) -> str:
    """The `list rollouts` table; `-` for the step and weight of a blue-green rollout."""
    header = ["NAME", "STRATEGY", "STATUS", "STEP", "SET-WEIGHT", "READY", "DESIRED"]
    header += ["UP-TO-DATE", "AVAILABLE"]
    # Argo pads values to about the width of their headers ("%-10s\t%-9s\t%-12s..."), so
    # short tables line up with longer ones
    min_widths = [10, 9, 12, 4, 10, 5, 7, 10]
    if all_namespaces:
        header = ["NAMESPACE", *header]
        min_widths = [9, *min_widths]
    rows: list[list[str]] = [header]
    for rollout in rollouts:
        status = rollout.get("status") or {}
        strategy = info.strategy_name(rollout)
        step, weight = "-", "-"
        if strategy == "Canary":
            step = info.step_text(rollout) or "-"
            weight = str(info.set_weight(rollout))
        phase, _ = info.rollout_phase(rollout)
        row = [
            info.name_of(rollout),
            strategy,
            phase,
            step,
            weight,
            f"{int(status.get('readyReplicas') or 0)}/{int(status.get('replicas') or 0)}",
            str(info.desired_replicas(rollout)),
            str(int(status.get("updatedReplicas") or 0)),
            str(int(status.get("availableReplicas") or 0)),
        ]
        rows.append(([info.namespace_of(rollout)] if all_namespaces else []) + row)
    return "\n".join(tabulate(rows, min_widths=min_widths)) + "\n"


def status_line(rollout: Mapping[str, Any]) -> str:
    """One line of `rollwise status`: the phase, and the message when there is one."""
    phase, message = info.rollout_phase(rollout)
    return f"{phase} - {message}" if message else phase


field_line = _field
"""`Label:` and its value at column 18 (shared with `rollwise.views.experiment_render`)."""
