"""The detection benchmark's part of `docs/benchmarks.md`: tables of every policy × cell.

Who uses it: `bench.detection.run` builds a `DetectionSection` from the judged cells; the
shared report (`bench.report.render`) prints it like any other section.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.detection.outcomes import CellResult, Spread
from bench.detection.policies import POLICIES
from bench.detection.runner import Judged
from bench.detection.scenarios import RELEASES, Release, Traffic, traffics
from bench.report import Section


@dataclass
class DetectionSection(Section):
    """A `Section` whose body is free Markdown (several tables) instead of timing rows."""

    body: list[str] = field(default_factory=list)
    flags: str = ""
    """Options it ran with, for the closing line (" --live")."""

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", self.what, "", *self.body]
        lines += [f"- {note}" for note in self.notes]
        lines += [
            f"- This benchmark ran in {self.seconds:.1f} s: "
            f"`python -m bench {self.name}{self.flags}`.",
            "",
        ]
        return "\n".join(lines)


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def spread(values: Spread | None) -> str:
    if values is None:
        return "—"
    return f"{duration(values.median)} / {duration(values.p90)}"


def share(value: float) -> str:
    """0.004 -> "<1%", 0.996 -> ">99%": a whole percentage that never hides a rare case."""
    if 0 < value < 0.005:
        return "<1%"
    if 0.995 <= value < 1:
        return ">99%"
    return f"{value:.0%}"


def count(value: float) -> str:
    return f"{value:,.0f}"


class Results:
    """Judged cells indexed by (policy key, traffic, release name)."""

    def __init__(self, judged: Sequence[Judged]) -> None:
        self.by_key: dict[tuple[str, Traffic, str], CellResult] = {}
        self.runs: dict[str, int] = {}
        self.cpu: dict[str, float] = {}
        for item in judged:
            for key, result in item.results.items():
                self.by_key[(key, item.cell.traffic, item.cell.release.name)] = result
                self.cpu[key] = self.cpu.get(key, 0.0) + item.seconds[key]
            self.runs[item.cell.release.name] = item.cell.runs

    def get(self, policy: str, traffic: Traffic, release: Release) -> CellResult:
        return self.by_key[(policy, traffic, release.name)]


def _header(first: str) -> list[str]:
    columns = [t.label for t in traffics()]
    return [
        f"| {first} | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]


def healthy_tables(results: Results) -> list[str]:
    healthy = next(r for r in RELEASES if r.healthy)
    runs = results.runs[healthy.name]
    lines = [
        f"**Healthy canary** (canary and baseline 0.1% errors, same latency; {runs:,} runs per "
        "column). False rollbacks: share of runs rolled back within 30 min, with the 95% "
        "upper bound (Wilson):",
        "",
        *_header("policy"),
    ]
    for policy in POLICIES:
        cells = []
        for traffic in traffics():
            result = results.get(policy.key, traffic, healthy)
            cells.append(f"{result.rolled_back:.1%} (≤ {result.rolled_back_ci[1]:.1%})")
        lines.append(f"| {policy.name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Time to promote the healthy canary: share promoted within 30 min · median / p90 "
        "time of those promoted:",
        "",
        *_header("policy"),
    ]
    for policy in POLICIES:
        cells = []
        for traffic in traffics():
            result = results.get(policy.key, traffic, healthy)
            cells.append(f"{share(result.promoted)} · {spread(result.promote_seconds)}")
        lines.append(f"| {policy.name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def regression_tables(results: Results) -> list[str]:
    lines: list[str] = []
    for release in RELEASES:
        if release.healthy:
            continue
        runs = results.runs[release.name]
        if release.p99_increase:
            what = (
                f"canary p99 +{release.p99_increase:.0%} (median unchanged), errors as the "
                "baseline; exposure = canary requests served"
            )
        else:
            what = (
                f"canary {release.error_rate:.1%} errors vs baseline 0.1%; exposure = canary "
                "errors served"
            )
        lines += [
            f"**Bad canary: {release.name}** ({what}; {runs:,} runs per column). Caught "
            "within 30 min · median / p90 time to detect (of those caught) · median exposure "
            "before the decision (30 min when none):",
            "",
            *_header("policy"),
        ]
        for policy in POLICIES:
            cells = []
            for traffic in traffics():
                result = results.get(policy.key, traffic, release)
                escaped = f", {share(result.promoted)} promoted" if result.promoted else ""
                cells.append(
                    f"{share(result.rolled_back)}{escaped} · {spread(result.rollback_seconds)} · "
                    f"{count(result.exposure.median)}"
                )
            lines.append(f"| {policy.name} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def policy_table() -> list[str]:
    lines = ["| policy | what it checks | how it promotes |", "|---|---|---|"]
    lines += [f"| {p.name} | {p.checks} | {p.promotes} |" for p in POLICIES]
    return [*lines, ""]
