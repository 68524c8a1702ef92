"""The example manifests the README tours are valid, and the analysis example is the very set of
objects `rollwise demo` runs (so the tour and the demo cannot drift apart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollwise.api.lint import lint_paths
from rollwise.demo.scenarios import BUILTIN_TEMPLATE, shop_manifests

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_lints_clean(path: Path) -> None:
    assert [p.format() for p in lint_paths([str(path)])] == []


def test_the_analysis_example_is_what_the_demo_runs() -> None:
    text = (EXAMPLES / "canary-with-analysis.yaml").read_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    assert body == shop_manifests(template=BUILTIN_TEMPLATE, service_arg="shop-canary")
