"""Loading manifests: values, positions of every field, and problems instead of exceptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollwise.api.manifests import (
    Problem,
    format_path,
    has_errors,
    load_documents,
    load_files,
    load_text,
    parse_resource,
)
from rollwise.api.models import Rollout, Service

TWO_DOCUMENTS = """\
# leading comment
---
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: shop
  creationTimestamp: 2026-11-26T01:50:00Z
spec:
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {duration: 2m}
      -   setWeight: 40
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: shop}
"""


def test_every_field_has_its_line_and_column() -> None:
    documents, problems = load_documents(TWO_DOCUMENTS, file="f.yaml")
    assert problems == []
    rollout, service = documents
    assert (rollout.index, service.index) == (1, 2)  # the empty document still counts
    assert rollout.start == (4, 1)
    assert rollout.position(("spec", "strategy", "canary", "steps", 0, "setWeight")) == (13, 9)
    assert rollout.position(("spec", "strategy", "canary", "steps", 1, "pause", "duration")) == (
        14,
        17,
    )
    assert rollout.position(("spec", "strategy", "canary", "steps", 2)) == (15, 11)
    assert rollout.position(("spec", "strategy", "canary", "steps", 2, "setWeight")) == (15, 11)
    assert service.position(("metadata", "name")) == (19, 12)


def test_a_missing_field_is_located_at_its_nearest_written_ancestor() -> None:
    documents, _ = load_documents(TWO_DOCUMENTS, file="f.yaml")
    rollout = documents[0]
    assert rollout.position(("spec", "selector", "matchLabels")) == (9, 1)
    assert rollout.position(("spec", "strategy", "canary", "steps", 7)) == (12, 7)
    assert rollout.position(("status",)) == rollout.start


def test_timestamps_stay_strings_as_in_kubernetes_json() -> None:
    documents, _ = load_documents(TWO_DOCUMENTS, file="f.yaml")
    assert documents[0].raw["metadata"]["creationTimestamp"] == "2026-11-26T01:50:00Z"


def test_a_duplicate_key_is_a_problem_where_it_is_written_again() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: {x: '1'}\n  name: b\n"
    documents, problems = load_documents(text, file="svc.yaml")
    assert [p.format() for p in problems] == [
        "svc.yaml:6:3: metadata.name: duplicate key 'name' (first written at line 4);"
        " YAML would silently keep only this last value"
    ]
    assert documents[0].raw["metadata"]["name"] == "b"


def test_merge_keys_are_not_duplicates() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
        "base: &base {x: 1, y: 2}\ndata:\n  <<: *base\n  x: 3\n"
    )
    documents, problems = load_documents(text, file="m.yaml")
    assert problems == []
    assert documents[0].raw["data"] == {"x": 3, "y": 2}
    assert documents[0].position(("data", "x")) == (7, 3)


def test_malformed_yaml_is_reported_where_the_parser_stopped() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\nkind: Rollout\n  spec: x\n"
    documents, problems = load_documents(text, file="bad.yaml")
    assert [document.kind for document in documents] == ["Service"]
    assert len(problems) == 1
    assert (problems[0].line, problems[0].column) == (6, 7)
    assert problems[0].message.startswith("invalid YAML: mapping values are not allowed")


def test_an_unclosed_flow_sequence_names_where_it_started() -> None:
    _, problems = load_documents("kind: Rollout\nitems: [a, b\n", file="bad.yaml")
    assert problems[0].message == (
        "invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 2)"
    )


def test_a_bad_tag_spoils_only_its_own_document() -> None:
    text = "apiVersion: v1\nkind: A\nx: !python/name:os.system\n---\napiVersion: v1\nkind: B\n"
    documents, problems = load_documents(text, file="t.yaml")
    assert [document.kind for document in documents] == ["B"]
    assert [(p.line, p.column) for p in problems] == [(3, 4)]
    assert "could not determine a constructor" in problems[0].message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- a\n- b\n",
            "f.yaml:1:1: document 1 is a list; expected a mapping with apiVersion and kind",
        ),
        ("just text\n", "f.yaml:1:1: document 1 is a string; expected a mapping"),
        (
            "kind: Rollout\nmetadata: {name: a}\n",
            "f.yaml:1:1: apiVersion: required field is missing; every document needs apiVersion"
            " and kind",
        ),
        (
            "apiVersion: v1\nmetadata: {name: a}\n",
            "f.yaml:1:1: kind: required field is missing",
        ),
        ("apiVersion: v1\nkind: [Service]\n", "f.yaml:2:1: kind: expected a string, got a list"),
    ],
)
def test_documents_that_are_not_objects_are_problems(text: str, expected: str) -> None:
    documents, problems = load_documents(text, file="f.yaml")
    assert documents == []
    assert len(problems) == 1
    assert problems[0].format().startswith(expected)


def test_known_kinds_become_models_and_other_kinds_stay_raw() -> None:
    documents, _ = load_documents(TWO_DOCUMENTS, file="f.yaml")
    rollout, rollout_problems = parse_resource(documents[0])
    service, service_problems = parse_resource(documents[1])
    assert isinstance(rollout, Rollout)
    assert rollout.spec.strategy.canary is not None
    assert service == {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "shop"},
    }
    assert rollout_problems == service_problems == []


def test_unknown_fields_are_kept() -> None:
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: a}\n"
        "spec:\n  futureField: {deep: [1, 2]}\n  strategy: {canary: {stepsV2: []}}\n"
    )
    documents, _ = load_documents(text, file="f.yaml")
    rollout, problems = parse_resource(documents[0])
    assert problems == []
    assert isinstance(rollout, Rollout)
    assert rollout.to_raw() == documents[0].raw


def test_a_field_of_the_wrong_type_says_what_was_expected_where() -> None:
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: a\n"
        "  labels: {version: 2}\nspec:\n  paused: maybe\n  strategy:\n    canary:\n"
        "      steps:\n      - setWeight: '20'\n"
    )
    documents, _ = load_documents(text, file="r.yaml")
    resource, problems = parse_resource(documents[0])
    assert resource is documents[0].raw  # nothing half-parsed escapes
    assert [p.format() for p in problems] == [
        "r.yaml:5:12: metadata.labels.version: expected a string, got the number 2",
        "r.yaml:7:3: spec.paused: expected true or false, got the string 'maybe'",
        "r.yaml:11:9: spec.strategy.canary.steps[0].setWeight: expected an integer,"
        " got the string '20'",
    ]


def test_load_keeps_a_model_without_the_bad_fields_for_validation() -> None:
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: a}\n"
        "spec:\n  replicas: many\n  strategy: {canary: {}}\n"
    )
    loaded, problems = load_text(text, file="r.yaml")
    assert [p.path for p in problems] == ["spec.replicas"]
    assert isinstance(loaded[0].resource, Rollout)
    assert loaded[0].pruned == (("spec", "replicas"),)
    assert loaded[0].resource.spec.replicas is None


@pytest.mark.parametrize(
    ("api_version", "kind", "model"),
    [
        ("v1", "Service", Service),
        ("serving.knative.dev/v1", "Service", None),
        ("example.com/v1", "Rollout", None),
    ],
)
def test_only_our_api_group_is_modelled(api_version: str, kind: str, model: type | None) -> None:
    text = f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: a}}\nspec: {{}}\n"
    documents, _ = load_documents(text, file="f.yaml")
    resource, problems = parse_resource(documents[0])
    assert problems == []
    assert isinstance(resource, model) if model else isinstance(resource, dict)


def test_an_unsupported_version_of_our_group_is_a_problem() -> None:
    text = "apiVersion: argoproj.io/v1beta1\nkind: Rollout\nmetadata: {name: a}\n"
    documents, _ = load_documents(text, file="f.yaml")
    _, problems = parse_resource(documents[0])
    assert [p.format() for p in problems] == [
        "f.yaml:1:1: apiVersion: unsupported apiVersion 'argoproj.io/v1beta1' for Rollout;"
        " expected argoproj.io/v1alpha1"
    ]


def test_files_missing_or_in_a_directory(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "b.yml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    missing = str(tmp_path / "nope.yaml")
    loaded, problems = load_files([str(tmp_path), missing, str(tmp_path / "a.yaml")])
    assert [item.document.name for item in loaded] == ["a", "b"]  # a.yaml is read once
    assert [p.format() for p in problems] == [f"{missing}:1:1: cannot read {missing}: no such file"]


def test_paths_print_as_written_in_yaml() -> None:
    assert format_path(("spec", "strategy", "canary", "steps", 2, "setWeight")) == (
        "spec.strategy.canary.steps[2].setWeight"
    )
    assert format_path(("metadata", "labels", "app.kubernetes.io/name")) == (
        'metadata.labels["app.kubernetes.io/name"]'
    )
    assert format_path(()) == ""


def test_warnings_are_marked_and_do_not_make_errors() -> None:
    warning = Problem("f.yaml", 3, 5, "spec.x", "spec.x: odd", severity="warning")
    error = Problem("f.yaml", 4, 1, "spec.y", "spec.y: wrong")
    assert warning.format() == "f.yaml:3:5: warning: spec.x: odd"
    assert error.format() == "f.yaml:4:1: spec.y: wrong"
    assert not has_errors([warning])
    assert has_errors([warning, error])
