"""`rollwise lint`: load manifests, validate them, return every problem in file order.

Where this sits: the CLI's `lint -f FILE...` calls `lint_paths` and prints `problem.format()`
per line (exit 1 when `has_errors`); `apply` can run the same check before writing. Nothing
here prints or exits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rollwise.api.manifests import Problem, has_errors, load_files, load_text
from rollwise.api.validation import validate


def _ordered(problems: Sequence[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))  # two rules can find the same thing in one place
    return sorted(unique, key=lambda problem: (problem.file, problem.line, problem.column))


def lint_paths(
    paths: Sequence[str],
    *,
    known_templates: Collection[str] = (),
    known_cluster_templates: Collection[str] = (),
) -> list[Problem]:
    """Every problem in the files named (`-` is standard input), sorted by file, line, column.

    Errors and warnings both; `has_errors(problems)` says whether the manifests are invalid.
    """
    loaded, problems = load_files(paths)
    problems += validate(
        loaded, known_templates=known_templates, known_cluster_templates=known_cluster_templates
    )
    return _ordered(problems)


def lint_text(
    text: str,
    *,
    file: str = "<text>",
    known_templates: Collection[str] = (),
    known_cluster_templates: Collection[str] = (),
) -> list[Problem]:
    """Like `lint_paths` for manifests already in memory (dashboard, tests, stdin readers)."""
    loaded, problems = load_text(text, file=file)
    problems += validate(
        loaded, known_templates=known_templates, known_cluster_templates=known_cluster_templates
    )
    return _ordered(problems)


__all__ = ["has_errors", "lint_paths", "lint_text"]
