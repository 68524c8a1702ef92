"""Run rollwise's benchmarks: `make bench` (= `uv run python -m bench`, from the repository root).

With no names every benchmark runs and `docs/benchmarks.md` is written from the results; with
names (`python -m bench cli traffic`) only those run and their tables are printed (add
`--output PATH` to write a report of just those, or `--update` to replace just their sections
in `docs/benchmarks.md` and keep the others). `--live` adds the detection benchmark's live
check (a real local controller; minutes). The budgets come from DESIGN.md, "Performance
budgets"; nothing here fails on a budget: the report says within or over.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    analysis,
    cli,
    core,
    dataplane,
    detection,
    kube_scale,
    local_scale,
    memory,
    reconcile,
    traffic,
)
from bench.report import (
    COMMAND,
    REPO,
    Section,
    git_commit,
    machine,
    print_section,
    render,
    splice,
)

BENCHMARKS: dict[str, Callable[[], Section]] = {
    "cli": cli.run,
    "core": core.run,
    "reconcile": reconcile.run,
    "traffic": traffic.run,
    "memory": memory.run,
    "local-scale": local_scale.run,
    "kube-scale": kube_scale.run,
    "analysis": analysis.run,
    "dataplane": dataplane.run,
    "detection": detection.run,
}
REPORT = REPO / "docs" / "benchmarks.md"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--output", type=Path, help="where to write the Markdown report")
    parser.add_argument(
        "--update",
        action="store_true",
        help=f"replace these benchmarks' sections in {REPORT.relative_to(REPO)}, keep the rest",
    )
    parser.add_argument(
        "--live", action="store_true", help="detection: also run the live check (minutes)"
    )
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names: list[str] = args.names or list(BENCHMARKS)
    output: Path | None = args.output or (None if args.names else REPORT)

    started = datetime.now(UTC)
    host = machine()  # before the benchmarks load the machine
    reproduce = f"`uv run python -m bench {' '.join(names)}`" if args.names else COMMAND
    print(f"reproduce with: {reproduce}", flush=True)
    sections: list[Section] = []
    for name in names:
        print(f"--- {name} ...", flush=True)
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        start = time.perf_counter()
        if name == "detection" and args.live:
            section = detection.run(live=True)
        else:
            section = BENCHMARKS[name]()
        section.seconds = time.perf_counter() - start
        # The machine is shared (other work may run beside a benchmark): say how busy it was.
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        section.notes.append(
            f"Started {when} at commit {git_commit()}; load average (1, 5, 15 min) then: {load}."
        )
        print_section(section)
        sections.append(section)
    if output is not None:
        output.write_text(render(sections, started=started, host=host))
        print(f"wrote {output}")
    elif args.update:
        REPORT.write_text(splice(REPORT.read_text(), sections))
        print(f"updated {', '.join(s.name for s in sections)} in {REPORT}")
    print(f"total {(datetime.now(UTC) - started).total_seconds():.1f} s")


if __name__ == "__main__":
    main()
