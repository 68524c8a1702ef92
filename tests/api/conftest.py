"""Shared by the rule tests: find the one problem a bad manifest should produce.

A case marks the line that should be reported with `# <-`; the expected column is where the
field's key starts on that line (after `- ` for a list item).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rollwise.api.lint import lint_text
from rollwise.api.manifests import Problem


def marked(text: str) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines(), start=1):
        if "# <-" in line:
            body = line.lstrip(" ")
            column = len(line) - len(body) + 1
            return number, column + 2 if body.startswith("- ") else column
    raise AssertionError("no `# <-` marker in the case")


def the_problem(
    text: str,
    path: str,
    fragment: str,
    *,
    severity: str = "error",
    known_templates: tuple[str, ...] = (),
) -> Problem:
    """The problem at `path` whose message holds `fragment`, at the marked line and column,
    asserting that nothing else in the text is an error."""
    problems = lint_text(text, file="manifest.yaml", known_templates=known_templates)
    matches = [p for p in problems if p.path == path and fragment in p.message]
    assert matches, "\n".join(p.format() for p in problems) or "no problems"
    found = matches[0]
    others = [p for p in problems if p is not found and p.is_error]
    assert others == [], "\n".join(p.format() for p in others)
    assert found.severity == severity
    assert (found.line, found.column) == marked(text), found.format()
    assert found.message.startswith(f"{path}: ")
    return found


@pytest.fixture
def expect_problem() -> Callable[..., Problem]:
    return the_problem
