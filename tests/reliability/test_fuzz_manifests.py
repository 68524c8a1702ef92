"""Malformed manifests of every kind, through what users run: lint_paths, `rollwise lint -f` and
`rollwise apply -f` on a temporary home.

For each kind (Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun, Experiment,
Service) hypothesis breaks seed documents in 240 ways (`fuzzing.malformed_manifests`:
wrong types, missing fields, out-of-range numbers, unknown keys, huge strings, deep nesting,
alias bombs, duplicate keys, tabs, unclosed quotes, bad indentation, truncation, non-UTF-8
bytes, multi-document mixes, empty files), derandomized so that CI sees the same inputs every
run. What must hold for every input:

- nothing but problems comes out of loading, validating and linting (no exception), and every
  problem names the file, a line inside it and a column;
- the CLI exits 0 or 1, never with a traceback; lint prints one located line per problem;
  apply prints the same problems and one `Error:` line, and writes nothing when it refuses
  (the store's revision is unchanged, and a home that had no state gets none);
- a manifest lint finds an error in is refused by apply, and one it accepts is applied.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fuzzing import KINDS, TRACEBACK, Case, Rollwise, location_of, malformed_manifests
from hypothesis import HealthCheck, given, settings

from rollwise.api.lint import lint_paths
from rollwise.api.manifests import has_errors
from rollwise.platforms.local.store import STATE_FILE, SqliteStore

EXAMPLES = 250  # per kind; at least 200 of them must be refused (asserted below)


def _revision(home: Path) -> int | None:
    if not (home / STATE_FILE).exists():
        return None
    with SqliteStore.open_home(home) as store:
        return store.revision()


def _lines_in(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") + 1


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_manifests_give_located_problems_and_change_nothing(
    kind: str, tmp_path: Path
) -> None:
    rollwise = Rollwise()
    homes = {"fresh": tmp_path / "fresh-home", "used": tmp_path / "used-home"}
    file = tmp_path / "manifest.yaml"
    outcomes: Counter[str] = Counter()
    revisions: dict[Path, int | None] = dict.fromkeys(homes.values())

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(malformed_manifests(kind))
    def check(case: Case) -> None:
        file.write_bytes(case.data)
        problems = lint_paths([str(file)])
        lines = _lines_in(case.data)
        for problem in problems:
            assert problem.file == str(file), problem
            assert 1 <= problem.line <= lines, (problem, case.how)
            assert problem.column >= 1, (problem, case.how)
            assert problem.message.strip(), problem
        refused = has_errors(problems)
        outcomes["refused" if refused else "accepted"] += 1

        linted = rollwise(["--home", str(homes["used"]), "lint", "-f", str(file)])
        assert linted.crash is None, (case.how, linted.crash)
        assert TRACEBACK not in linted.output
        assert linted.exit_code == (1 if refused else 0), (case.how, linted.output)
        for line in linted.stdout.splitlines():
            assert location_of(line, str(file)) is not None, line

        # Once into a home that has no state, once into one that has (what earlier examples
        # applied): a refused apply must leave both as they were.
        home = homes["fresh"] if outcomes.total() % 2 else homes["used"]
        before = revisions[home]
        applied = rollwise(["--home", str(home), "apply", "-f", str(file)])
        assert applied.crash is None, (case.how, applied.crash)
        assert TRACEBACK not in applied.output
        if refused:
            assert applied.exit_code == 1, (case.how, applied.output)
        else:
            # Valid manifests apply, unless they hold no object at all or images this machine
            # cannot run (local mode's own check, which lint leaves to apply).
            assert applied.exit_code in (0, 1), (case.how, applied.output)
            if applied.exit_code == 1:
                assert "image" in applied.stderr or "no objects found" in applied.stderr, (
                    applied.stderr
                )
        if applied.exit_code:
            *located, last = applied.stderr.splitlines()
            assert last.startswith("Error: "), applied.stderr
            for line in located:
                assert location_of(line, str(file)) is not None, line
            assert _revision(home) == before, case.how
        else:
            revisions[home] = _revision(home)
            assert revisions[home] is not None

    check()
    print(f"{kind}: {outcomes.total()} examples, {dict(outcomes)}")
    assert outcomes["refused"] >= 200, outcomes
