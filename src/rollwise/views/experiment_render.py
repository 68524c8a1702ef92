"""The text of `rollwise get experiment` and `rollwise list experiments`, as Argo's CLI draws them
(reference 5.1, 5.2; `get_experiment.go`, `list_experiments.go`); the `Σ` rows themselves are
`rollwise.views.render.experiment_rows`, shared with the `get rollout` tree.

Who calls it: the experiment verbs of the CLI (`rollwise.cli.experiments`) and the tests.
Pure: objects and `now` in, a string out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rollwise.views import info
from rollwise.views.experiment_info import experiment_info, remaining
from rollwise.views.render import Painter, experiment_rows, field_line, tabulate


def render_experiment(
    experiment: Mapping[str, Any],
    replica_sets: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    analysis_runs: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    color: bool,
) -> str:
    """`get experiment`: the header block, then the Experiment's tree."""
    paint = Painter(color=color)
    exp = experiment_info(experiment, replica_sets, pods, analysis_runs, now=now)
    lines = [
        field_line("Name:", exp.name),
        field_line("Namespace:", exp.namespace),
        field_line("Status:", f"{paint.word(exp.icon)} {exp.status}"),
    ]
    if exp.message:
        lines.append(field_line("Message:", exp.message))
    for index, image in enumerate(exp.images):
        text = image.image
        if image.tags:
            text += " (" + ", ".join(image.tags) + ")"
        lines.append(field_line("Images:" if index == 0 else "", text))
    lines.append("")
    rows = [["NAME", "KIND", "STATUS", "AGE", "INFO"], *experiment_rows(exp, "", "", paint)]
    lines.extend(tabulate(rows))
    return "\n".join(lines) + "\n"


def render_experiment_list(
    experiments: Sequence[Mapping[str, Any]], *, all_namespaces: bool, now: datetime
) -> str:
    """`list experiments`: NAME STATUS DURATION REMAINING AGE (NAMESPACE first with -A)."""
    header = ["NAME", "STATUS", "DURATION", "REMAINING", "AGE"]
    min_widths = [10, 6, 8, 9]  # Argo's "%-10s\t%-6s\t%-8s\t%-9s\t%-3s"
    if all_namespaces:
        header = ["NAMESPACE", *header]
        min_widths = [9, *min_widths]
    rows: list[list[str]] = [header]
    for experiment in experiments:
        duration, left = remaining(experiment, now)
        row = [
            info.name_of(experiment),
            str((experiment.get("status") or {}).get("phase") or ""),
            duration,
            left,
            info.age(experiment, now),
        ]
        rows.append(([info.namespace_of(experiment)] if all_namespaces else []) + row)
    return "\n".join(tabulate(rows, min_widths=min_widths)) + "\n"
