"""Every condition of the seed, the reference study and Argo's docs decides as Argo decides.

The corpus (fixtures/expressions_corpus.yaml) pairs each condition with metric results and Argo's
verdict: true, false, or an Error measurement with a part of its message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rollwise.core.expressions import ExpressionError, evaluate_condition

HERE = Path(__file__).parent
CORPUS: list[dict[str, Any]] = yaml.safe_load(
    (HERE / "fixtures" / "expressions_corpus.yaml").read_text(encoding="utf-8")
)
CONDITIONS = {entry["condition"] for entry in CORPUS}

# The seed's conditions, as written in its Parts 4 and 5 (the web one is only a snippet there).
SEED_CONDITIONS = [
    "result[0] >= 0.95",
    "result[0] <= 500",
    "result[0] <= 1.25",
    "result[0] <= 1.2",
    "result[0] >= 0.02",
    'result == "healthy"',
]
# The conditions the reference study spells out (sections 2.10, 3.1 and 8.2).
REFERENCE_CONDITIONS = [
    "default(result, 0) < 0.05",
    "default(result[0], 0) < 0.05",
    "isNaN(result) || result >= 0.95",
    "result >= 0.95",
    "len(result) > 0 && result[0] >= 0.95",
    "result.major == '1'",
    "isNil(result)",
    "isInf(result)",
    "asInt(result) == 200",
    "asFloat(result) >= 0.95",
]


def _cases() -> list[Any]:
    return [
        pytest.param(entry["condition"], case, id=f"{entry['condition']} <- {case['result']!r}")
        for entry in CORPUS
        for case in entry["cases"]
    ]


@pytest.mark.parametrize(("condition", "case"), _cases())
def test_condition_decides_like_argo(condition: str, case: dict[str, Any]) -> None:
    if case["expect"] == "error":
        with pytest.raises(ExpressionError) as caught:
            evaluate_condition(condition, case["result"])
        assert case["message"] in str(caught.value)
        assert condition in str(caught.value)
    else:
        assert evaluate_condition(condition, case["result"]) is case["expect"]


def test_corpus_holds_every_seed_and_reference_condition() -> None:
    missing = [c for c in SEED_CONDITIONS + REFERENCE_CONDITIONS if c not in CONDITIONS]
    assert missing == []


def _conditions_in(document: object) -> list[str]:
    found: list[str] = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("successCondition", "failureCondition") and isinstance(value, str):
                    found.append(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def test_corpus_holds_every_condition_of_the_seed_manifests() -> None:
    seed = HERE.parent / "api" / "fixtures" / "seed"
    found = [
        condition
        for path in sorted(seed.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        for condition in _conditions_in(document)
    ]
    assert found, "the seed manifests hold conditions"
    assert sorted(set(found) - CONDITIONS) == []


def test_every_corpus_condition_has_a_passing_or_failing_case() -> None:
    # A condition tested only on errors would not show that it can decide at all.
    undecided = [
        entry["condition"]
        for entry in CORPUS
        if all(case["expect"] == "error" for case in entry["cases"])
        and "error" not in entry["source"]
        and "refuses" not in entry["source"]
        and "environment" not in entry["source"]
    ]
    assert undecided == []
