"""Whatever the YAML, lint returns problems located inside the text and never raises."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollwise.api.lint import lint_text
from rollwise.api.manifests import format_path, load_documents, parse_path

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "seed").glob("*.yaml"))
SEED_DOCUMENTS = [
    [document for document in yaml.safe_load_all(path.read_text()) if document] for path in FIXTURES
]
ODD_VALUES = [None, 0, -1, "x", [], {}, True, "{{args.x}}", 10**6, [1], {"a": 1}, "1h", "50%"]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


@st.composite
def mutated_manifests(draw: st.DrawFn) -> str:
    """A seed block with a few fields replaced by values of the wrong shape, or removed."""
    documents = copy.deepcopy(draw(st.sampled_from(SEED_DOCUMENTS)))
    for _ in range(draw(st.integers(1, 3))):
        document = draw(st.sampled_from(documents))
        path = draw(st.sampled_from(_paths(document)))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
    return yaml.safe_dump_all(documents, sort_keys=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_manifests())
def test_mutated_manifests_give_located_problems(text: str) -> None:
    lines = len(text.splitlines())
    for problem in lint_text(text, file="m.yaml"):
        assert 1 <= problem.line <= lines + 1
        assert problem.column >= 1
        assert problem.message.startswith(f"{problem.path}: ") or not problem.path


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}\n #&*!'\"|>")), max_size=80))
def test_arbitrary_text_never_raises(text: str) -> None:
    documents, problems = load_documents(text, file="t.yaml")
    for problem in problems:
        assert problem.line >= 1
        assert problem.column >= 1
    for document in documents:
        assert isinstance(document.raw, dict)


keys = st.one_of(st.integers(0, 50), st.text(min_size=0, max_size=12))


@given(st.lists(keys, max_size=6))
def test_paths_survive_formatting(path: list[str | int]) -> None:
    assert parse_path(format_path(path)) == tuple(path)
