"""The seed module's YAML lints as its authors meant: the examples clean, the starter not.

The seed (`shared/seed/progressive-delivery-module.md`, next to the repository) is the YAML
rollwise must accept unchanged. Its blocks are also copied under `fixtures/seed/` so these
tests run where `shared/` is absent; a test checks the copies still match the seed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rollwise.api.lint import lint_paths
from rollwise.api.manifests import Problem, has_errors

SEED = Path(__file__).parents[2].parent / "shared" / "seed" / "progressive-delivery-module.md"
FIXTURES = Path(__file__).parent / "fixtures" / "seed"
TEMPLATE_FIXTURES = [
    FIXTURES / "part4-analysis-template.yaml",
    FIXTURES / "part5-compare-baseline.yaml",
    FIXTURES / "part5-business-metrics.yaml",
]
STARTER_MARK = "ecommerce-app"

needs_seed = pytest.mark.skipif(
    not SEED.exists(), reason=f"the seed module is not at {SEED} (shared/ beside the repo)"
)


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", markdown, re.DOTALL | re.MULTILINE)


def is_manifest(block: str) -> bool:
    """Every document has apiVersion and kind (the seed also shows bare `metrics:` excerpts)."""
    documents = [doc for doc in yaml.safe_load_all(block) if doc is not None]
    return bool(documents) and all(
        isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc for doc in documents
    )


def is_template_block(block: str) -> bool:
    documents = [doc for doc in yaml.safe_load_all(block) if doc is not None]
    return all(doc.get("kind") == "AnalysisTemplate" for doc in documents)


def errors(problems: list[Problem]) -> list[str]:
    return [p.format() for p in problems if p.is_error]


def lint_block(block: str, templates: list[str], directory: Path) -> list[Problem]:
    """Lint one block together with the seed's AnalysisTemplate blocks, as files."""
    paths = []
    for index, text in enumerate([block, *[t for t in templates if t != block]]):
        path = directory / f"block{index}.yaml"
        path.write_text(text)
        paths.append(str(path))
    return lint_paths(paths)


# --- against the seed itself -------------------------------------------------------------------


@needs_seed
def test_every_seed_example_lints_clean(tmp_path: Path) -> None:
    blocks = [block for block in yaml_blocks(SEED.read_text()) if is_manifest(block)]
    templates = [block for block in blocks if is_template_block(block)]
    examples = [block for block in blocks if STARTER_MARK not in block]
    assert len(examples) >= 6  # Parts 3, 4 (template, rollout), 5 (two templates), 6
    for index, block in enumerate(examples):
        directory = tmp_path / f"example{index}"
        directory.mkdir()
        assert errors(lint_block(block, templates, directory)) == [], block


@needs_seed
def test_the_seed_starter_fails_at_what_is_missing(tmp_path: Path) -> None:
    blocks = [block for block in yaml_blocks(SEED.read_text()) if is_manifest(block)]
    templates = [block for block in blocks if is_template_block(block)]
    [starter] = [block for block in blocks if STARTER_MARK in block]
    problems = lint_block(starter, templates, tmp_path)
    assert_starter_problems([p for p in problems if p.file.endswith("block0.yaml")])
    assert [p for p in problems if not p.file.endswith("block0.yaml")] == []


@needs_seed
def test_the_fixtures_are_copies_of_the_seed() -> None:
    blocks = yaml_blocks(SEED.read_text())
    for fixture in sorted(FIXTURES.glob("*.yaml")):
        assert fixture.read_text() in blocks, f"{fixture.name} no longer matches the seed"


# --- against the copies --------------------------------------------------------------------------


def lint_fixture(name: str) -> list[Problem]:
    path = FIXTURES / name
    return lint_paths([str(path), *[str(t) for t in TEMPLATE_FIXTURES if t != path]])


@pytest.mark.parametrize(
    "name",
    [
        "part3-rollout.yaml",
        "part4-analysis-template.yaml",
        "part4-rollout.yaml",
        "part5-compare-baseline.yaml",
        "part5-business-metrics.yaml",
        "part6-istio.yaml",
    ],
)
def test_seed_examples_are_valid(name: str) -> None:
    problems = lint_fixture(name)
    assert not has_errors(problems), "\n".join(errors(problems))


def test_seed_examples_without_step_analysis_have_no_warnings() -> None:
    for name in ("part3-rollout.yaml", "part6-istio.yaml"):
        assert lint_fixture(name) == []


def test_the_part4_step_analyses_are_flagged_as_never_completing() -> None:
    # success-rate's metrics have `interval: 1m` and no count: in Argo Rollouts each of these
    # step analyses runs until a metric fails, and never lets the rollout move on by itself.
    problems = lint_fixture("part4-rollout.yaml")
    assert {(p.severity, p.path) for p in problems} == {
        ("warning", f"spec.strategy.canary.steps[{step}].analysis") for step in (2, 5, 8, 11)
    }
    assert len(problems) == 8  # two metrics in each of the four analyses
    assert all(
        "has an interval and no count, so this step analysis never completes" in p.message
        for p in problems
    )


def assert_starter_problems(problems: list[Problem]) -> None:
    located = [(p.line, p.column, p.message) for p in problems]
    expected_providers = "expected one of prometheus, web, job"
    assert located[:2] == [
        (6, 1, "spec.selector: selector is required (e.g. matchLabels: {app: myapp})"),
        (6, 1, "spec.template: template is required: the pod template of the revisions to run"),
    ]
    assert [(line, column) for line, column, _ in located[2:]] == [(28, 5), (30, 5), (32, 5)]
    for (_, _, message), metric in zip(
        located[2:], ["error-rate", "latency-p95", "conversion-rate"], strict=True
    ):
        assert message.startswith(f"spec.metrics[{metric_index(metric)}].provider: metric")
        assert f"metric {metric!r} has no provider; {expected_providers}" in message
    assert all(p.is_error for p in problems)
    # ecommerce-health is in the same file: no "not found" problem.
    assert not any("not found" in p.message for p in problems)


def metric_index(name: str) -> int:
    return ["error-rate", "latency-p95", "conversion-rate"].index(name)


def test_the_starter_fails_at_what_is_missing() -> None:
    problems = lint_paths([str(FIXTURES / "part8-starter.yaml")])
    assert_starter_problems(problems)
