"""What every benchmark shares: summary statistics of timings, the machine they ran on, and the
Markdown report (`docs/benchmarks.md`) built from their results.

Who uses it: each benchmark module returns a `Section` (one table plus notes); `bench.__main__`
collects them and writes the report. Numbers are judged against the budgets of DESIGN.md
("Performance budgets") here and only here: no test asserts a timing.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMAND = "`make bench` (runs `uv run python -m bench` from the repository root)"


@dataclass(frozen=True, slots=True)
class Summary:
    """Order statistics of one series of measurements, in the unit they were taken in."""

    runs: int
    minimum: float
    median: float
    p90: float
    p99: float
    maximum: float
    mean: float
    stdev: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no measurements to summarise")
        ordered = sorted(values)
        return cls(
            runs=len(ordered),
            minimum=ordered[0],
            median=statistics.median(ordered),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            maximum=ordered[-1],
            mean=statistics.fmean(ordered),
            stdev=statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
        )


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of sorted values."""
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- budgets and rows ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Budget:
    """A DESIGN.md budget: the statistic it is judged on and its limit (in the row's unit)."""

    limit: float
    on: str = "median"
    """Which statistic of the Summary is compared: "median", "p90", "p99" or "maximum"."""

    def met(self, summary: Summary) -> bool:
        return bool(getattr(summary, self.on) <= self.limit)

    def verdict(self, summary: Summary) -> str:
        return "within budget" if self.met(summary) else "**over budget**"


@dataclass(frozen=True, slots=True)
class Row:
    case: str
    summary: Summary
    unit: str
    """"ms", "µs", "s" or "KB": the unit of the summary's values, printed as is."""
    budget: Budget | None = None


@dataclass
class Section:
    """One benchmark's part of the report."""

    name: str
    title: str
    what: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    """How long the benchmark took to run."""

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", self.what, ""]
        if self.rows:
            lines += [
                "| case | runs | median | p90 | p99 | min – max | budget | verdict |",
                "|---|---:|---:|---:|---:|---:|---|---|",
            ]
            for row in self.rows:
                s, u = row.summary, row.unit
                budget = (
                    "—"
                    if row.budget is None
                    else f"≤ {_number(row.budget.limit)} {u} ({row.budget.on})"
                )
                verdict = "—" if row.budget is None else row.budget.verdict(s)
                lines.append(
                    f"| {row.case} | {s.runs} | {_number(s.median)} {u} | {_number(s.p90)} {u} "
                    f"| {_number(s.p99)} {u} | {_number(s.minimum)} – {_number(s.maximum)} {u} "
                    f"| {budget} | {verdict} |"
                )
            lines.append("")
        lines += [f"- {note}" for note in self.notes]
        lines += [
            f"- This benchmark ran in {self.seconds:.1f} s: `python -m bench {self.name}`.",
            "",
        ]
        return "\n".join(lines)


def _number(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


# --- the machine -----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _load() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    ).stdout.strip()
    return f"{commit} + uncommitted changes in src/" if dirty else commit


def machine() -> list[tuple[str, str]]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        ("CPUs (`nproc`)", str(cpus)),
        ("CPU model", _cpu_model()),
        ("memory", _memory()),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
        ("load average at start (1, 5, 15 min)", _load()),
        ("rollwise commit", git_commit()),
    ]


# --- the report ------------------------------------------------------------------------------


def render(
    sections: Sequence[Section], *, started: datetime, host: Sequence[tuple[str, str]]
) -> str:
    header = [
        "# Benchmarks",
        "",
        "Generated by `bench/` — do not edit by hand; run it again instead. Budgets are those of",
        '`DESIGN.md`, "Performance budgets". Timings are wall-clock (`time.perf_counter`); p90 and',
        "p99 interpolate between ranks, so with few runs they sit close to the maximum.",
        "",
        f"- Date: {started.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: {COMMAND}; one benchmark: `uv run python -m bench NAME` (`--update` "
        "replaces its section here; each section's last notes say when and at which commit it ran)",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in host),
        "",
        "| benchmark | verdict |",
        "|---|---|",
    ]
    header += [_index_row(section) for section in sections]
    header.append("")
    return "\n".join(header + [section.markdown() for section in sections])


def _index_row(section: Section) -> str:
    judged = [row for row in section.rows if row.budget is not None]
    over = [row.case for row in judged if row.budget and not row.budget.met(row.summary)]
    verdict = "no budget" if not judged else ("over: " + ", ".join(over) if over else "within")
    return f"| [{section.title}](#{_anchor(section.title)}) | {verdict} |"


def splice(report: str, sections: Sequence[Section]) -> str:
    """`report` (a rendered `docs/benchmarks.md`) with each section's part replaced by its new
    text, or appended (with a row in the index) when the report has none yet; the header, the
    machine table and the other sections stay as they were."""
    for section in sections:
        text = section.markdown()
        start = report.find(f"\n## {section.title}\n")
        if start < 0:
            lines = report.rstrip("\n").split("\n")
            last_row = max(i for i, line in enumerate(lines) if line.startswith("| ["))
            lines.insert(last_row + 1, _index_row(section))
            report = "\n".join(lines) + "\n\n" + text
            continue
        end = report.find("\n## ", start + 1)
        tail = "" if end < 0 else "\n" + report[end + 1 :]
        report = report[: start + 1] + text + tail
        row = f"| [{section.title}](#{_anchor(section.title)}) |"
        report = "\n".join(
            _index_row(section) if line.startswith(row) else line for line in report.split("\n")
        )
    return report


def _anchor(title: str) -> str:
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return kept.replace(" ", "-")


def print_section(section: Section) -> None:
    print(section.markdown(), flush=True)
