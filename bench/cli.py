"""Benchmark 1: CLI wall time (budget: ≤ 150 ms for `rollwise --help` and `rollwise get
rollout NAME`, local mode).

Each command runs as a fresh process - the venv's `rollwise` script, as a person would type
it - against a throwaway home where `rollwise apply -f examples/rollout.yaml` stored the seed
rollout (no controller runs: these are reads), and in Kubernetes mode (`--context kubernetes
--kubeconfig ...`) against the tests' API mock (`bench.kube_mock`, its own process) holding the
seed rollout settled, with its ReplicaSet and 5 Pods. The rounds interleave the commands so a
slow moment of the machine does not land on one command only. `python -c pass` is the floor:
what starting the interpreter alone costs here. One extra run under `-X importtime` names the
imports that cost the most.

Bytecode: the commands run with Python's bytecode cache on, in a private directory
(`PYTHONPYCACHEPREFIX`; the warm-up rounds fill it), as an installed rollwise runs; one row
shows `get rollout` without it (`PYTHONDONTWRITEBYTECODE=1`, how this repository's sandbox
runs Python), where every module is compiled from source at each start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.kube_scale import Child
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


def _kube_mock(directory: str) -> tuple[Child, str]:
    """The API mock holding the settled seed rollout, and its kubeconfig."""
    mock = Child(
        [sys.executable, "-m", "bench.kube_mock", "--dir", directory, "--count", "1"],
        name="the API mock",
    )
    try:
        ready = mock.read(timeout=120)
    except BaseException:
        mock.close()
        raise
    return mock, str(ready["kubeconfig"])


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
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ROLLWISE_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env["ROLLWISE_HOME"] = str(Path(tmp) / "home")
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "bytecode")
        uncached = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
        uncached.pop("PYTHONPYCACHEPREFIX")
        _run([rollwise, "apply", "-f", str(REPO / "examples" / "rollout.yaml")], env)
        mock, kubeconfig = _kube_mock(tmp)
        cluster = [rollwise, "--context", "kubernetes", "--kubeconfig", kubeconfig]
        try:
            commands: list[tuple[str, list[str], Budget | None, dict[str, str]]] = [
                ("`python -c pass` (baseline)", [sys.executable, "-c", "pass"], None, env),
                ("`rollwise --help`", [rollwise, "--help"], Budget(BUDGET_MS), env),
                (
                    "`rollwise get rollout myapp`",
                    [rollwise, "get", "rollout", "myapp"],
                    Budget(BUDGET_MS),
                    env,
                ),
                (
                    "`rollwise list rollouts`",
                    [rollwise, "list", "rollouts"],
                    Budget(BUDGET_MS),
                    env,
                ),
                (
                    "`rollwise get rollout myapp`, no bytecode cache (for scale)",
                    [rollwise, "get", "rollout", "myapp"],
                    None,
                    uncached,
                ),
                (
                    "Kubernetes mode: `rollwise --context kubernetes get rollout myapp`",
                    [*cluster, "get", "rollout", "myapp"],
                    Budget(BUDGET_MS),
                    env,
                ),
                (
                    "Kubernetes mode: `rollwise --context kubernetes list rollouts`",
                    [*cluster, "list", "rollouts"],
                    Budget(BUDGET_MS),
                    env,
                ),
            ]
            timings: dict[str, list[float]] = {case: [] for case, _, _, _ in commands}
            for round_ in range(WARMUP + RUNS):
                for case, command, _, environment in commands:
                    elapsed = _run(command, environment)
                    if round_ >= WARMUP:
                        timings[case].append(elapsed)
            for case, _, budget, _ in commands:
                section.rows.append(Row(case, Summary.of(timings[case]), "ms", budget))
            for verb in (
                ["get", "rollout", "myapp"],
                ["--help"],
                [*cluster[1:], "get", "rollout", "myapp"],
            ):
                slowest = _slowest_imports([rollwise, *verb], env)
                shown = " ".join("..." if arg == kubeconfig else arg for arg in verb)
                section.notes.append(
                    f"Import time of `rollwise {shown}` by package (one `-X importtime` "
                    "run, self time summed over the package's modules): "
                    + ", ".join(f"{name} {ms:.0f} ms" for name, ms in slowest)
                    + "."
                )
        finally:
            mock.close()
    section.notes += [
        "The budget is judged on the median; `-X importtime` itself slows imports down, so "
        "its numbers are for ranking, not for adding up.",
        "DESIGN.md's 150 ms is a local-mode budget; Kubernetes mode is judged against it "
        "too, as the issue asks. It used to take ~515 ms here: the CLI talked through "
        "kubernetes_asyncio and aiohttp, whose imports alone cost about twice the budget. It "
        "now reads the kubeconfig and sends its requests with the standard library "
        "(`rollwise.platforms.kubernetes.blocking`, http.client and ssl), the same requests "
        "the controller's aiohttp client sends (`wire`). The mock serves plain HTTP: a TLS "
        "handshake to a real API server adds its round trips on top.",
    ]
    return section
