"""Benchmark 1: CLI wall time (budget: ≤ 150 ms for `rollwise --help` and `rollwise get
rollout NAME`, local mode).

Each command runs as a fresh process - the venv's `rollwise` script, as a person would type
it - against a throwaway home where `rollwise apply -f examples/rollout.yaml` stored the seed
rollout (no controller runs: these are reads). The rounds interleave the commands so a slow
moment of the machine does not land on one command only. `python -c pass` is the floor: what
starting the interpreter alone costs here. One extra run under `-X importtime` names the
imports that cost the most.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import REPO, Budget, Row, Section, Summary

RUNS = 20
WARMUP = 2
BUDGET_MS = 150.0
TOP_IMPORTS = 8


def _rollwise() -> Path:
    script = Path(sys.executable).parent / "rollwise"
    if not script.exists():
        raise RuntimeError(f"no rollwise script next to {sys.executable}; run `uv sync` first")
    return script


def _run(command: list[str], env: dict[str, str]) -> float:
    """Milliseconds of one run; it must succeed and print something (bar the baseline)."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, check=False, timeout=60)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed ({result.returncode}): {result.stderr.decode()}")
    return elapsed


def _slowest_imports(command: list[str], env: dict[str, str]) -> list[tuple[str, float]]:
    """Packages (rollwise's subpackages) by the import time spent in their own modules (ms,
    self time summed over each package's modules), from one `-X importtime` run."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found: dict[str, float] = {}
    for line in result.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        dotted = parts[2].strip().split(".")
        # rollwise's own time is split by subpackage: that is where a fix would go.
        package = ".".join(dotted[:2] if dotted[0] == "rollwise" else dotted[:1])
        found[package] = found.get(package, 0.0) + int(parts[0]) / 1000
    return sorted(found.items(), key=lambda item: -item[1])[:TOP_IMPORTS]


def run() -> Section:
    rollwise = str(_rollwise())
    section = Section(
        name="cli",
        title="CLI wall time",
        what=(
            f"Each command as a fresh process ({RUNS} interleaved rounds after {WARMUP} warm-up "
            "rounds), output captured, against a throwaway home holding the seed rollout "
            "(`rollwise apply -f examples/rollout.yaml`, no controller); wall time in ms."
        ),
    )
    with tempfile.TemporaryDirectory(prefix="rollwise-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLWISE_")}
        env["ROLLWISE_HOME"] = str(Path(tmp) / "home")
        _run([rollwise, "apply", "-f", str(REPO / "examples" / "rollout.yaml")], env)
        commands: list[tuple[str, list[str], Budget | None]] = [
            ("`python -c pass` (baseline)", [sys.executable, "-c", "pass"], None),
            ("`rollwise --help`", [rollwise, "--help"], Budget(BUDGET_MS)),
            (
                "`rollwise get rollout myapp`",
                [rollwise, "get", "rollout", "myapp"],
                Budget(BUDGET_MS),
            ),
            ("`rollwise list rollouts`", [rollwise, "list", "rollouts"], Budget(BUDGET_MS)),
        ]
        timings: dict[str, list[float]] = {case: [] for case, _, _ in commands}
        for round_ in range(WARMUP + RUNS):
            for case, command, _ in commands:
                elapsed = _run(command, env)
                if round_ >= WARMUP:
                    timings[case].append(elapsed)
        for case, _, budget in commands:
            section.rows.append(Row(case, Summary.of(timings[case]), "ms", budget))
        for verb in (["get", "rollout", "myapp"], ["--help"]):
            slowest = _slowest_imports([rollwise, *verb], env)
            section.notes.append(
                f"Import time of `rollwise {' '.join(verb)}` by package (one `-X importtime` "
                "run, self time summed over the package's modules): "
                + ", ".join(f"{name} {ms:.0f} ms" for name, ms in slowest)
                + "."
            )
    section.notes.append(
        "The budget is judged on the median; `-X importtime` itself slows imports down, so "
        "its numbers are for ranking, not for adding up."
    )
    return section
