"""The CRDs: Argo's names and columns, structural schemas generated from the models.

Argo's values (reference 1.1, `manifests/crds/*.yaml` of argo-rollouts) are written out here on
purpose: they are what kubectl, HPA, Argo CD and Argo's own controller rely on.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from schema_validation import schema_errors
from structural import structural_violations

from rollwise.api import crds
from rollwise.api.models import Model, Resource, Rollout

CRDS = {crd["spec"]["names"]["kind"]: crd for crd in crds.custom_resource_definitions()}


def schema_of(kind: str) -> dict[str, Any]:
    version = CRDS[kind]["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def node_at(schema: dict[str, Any], json_path: str) -> dict[str, Any]:
    """The schema node a printer-column or scale path names (`.spec.replicas`)."""
    node = schema
    for name in json_path.strip(".").split("."):
        node = node["properties"][name]
    return node


def test_argo_names_scopes_and_short_names() -> None:
    assert {
        kind: (
            crd["metadata"]["name"],
            crd["spec"]["group"],
            crd["spec"]["scope"],
            crd["spec"]["names"]["plural"],
            crd["spec"]["names"]["singular"],
            crd["spec"]["names"]["listKind"],
            crd["spec"]["names"]["shortNames"],
            crd["spec"]["names"].get("categories"),
        )
        for kind, crd in CRDS.items()
    } == {
        "Rollout": (
            "rollouts.argoproj.io",
            "argoproj.io",
            "Namespaced",
            "rollouts",
            "rollout",
            "RolloutList",
            ["ro"],
            None,
        ),
        "AnalysisTemplate": (
            "analysistemplates.argoproj.io",
            "argoproj.io",
            "Namespaced",
            "analysistemplates",
            "analysistemplate",
            "AnalysisTemplateList",
            ["at"],
            None,
        ),
        "ClusterAnalysisTemplate": (
            "clusteranalysistemplates.argoproj.io",
            "argoproj.io",
            "Cluster",
            "clusteranalysistemplates",
            "clusteranalysistemplate",
            "ClusterAnalysisTemplateList",
            ["cat"],
            None,
        ),
        "AnalysisRun": (
            "analysisruns.argoproj.io",
            "argoproj.io",
            "Namespaced",
            "analysisruns",
            "analysisrun",
            "AnalysisRunList",
            ["ar"],
            None,
        ),
        "Experiment": (
            "experiments.argoproj.io",
            "argoproj.io",
            "Namespaced",
            "experiments",
            "experiment",
            "ExperimentList",
            ["exp"],
            None,
        ),
    }


def test_one_served_storage_version_v1alpha1() -> None:
    for crd in CRDS.values():
        assert [(v["name"], v["served"], v["storage"]) for v in crd["spec"]["versions"]] == [
            ("v1alpha1", True, True)
        ]


def test_subresources_status_on_rollout_only_and_scale_for_hpa() -> None:
    """As Argo: AnalysisRun and Experiment status is written with the object (reference 1.1)."""
    subresources = {
        kind: crd["spec"]["versions"][0].get("subresources") for kind, crd in CRDS.items()
    }
    assert subresources == {
        "Rollout": {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.HPAReplicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        "AnalysisTemplate": None,
        "ClusterAnalysisTemplate": None,
        "AnalysisRun": None,
        "Experiment": None,
    }
    assert frozenset({"Rollout"}) == crds.STATUS_SUBRESOURCE_KINDS


def test_scale_paths_name_fields_of_the_right_types() -> None:
    scale = CRDS["Rollout"]["spec"]["versions"][0]["subresources"]["scale"]
    schema = schema_of("Rollout")
    assert node_at(schema, scale["specReplicasPath"])["type"] == "integer"
    assert node_at(schema, scale["statusReplicasPath"])["type"] == "integer"
    assert node_at(schema, scale["labelSelectorPath"])["type"] == "string"


def test_printer_columns_are_argos() -> None:
    columns = {
        kind: [
            (c["name"], c["type"], c["jsonPath"])
            for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
        ]
        for kind, crd in CRDS.items()
    }
    age = ("Age", "date", ".metadata.creationTimestamp")
    assert columns == {
        "Rollout": [
            ("Desired", "integer", ".spec.replicas"),
            ("Current", "integer", ".status.replicas"),
            ("Up-to-date", "integer", ".status.updatedReplicas"),
            ("Available", "integer", ".status.availableReplicas"),
            age,
        ],
        "AnalysisTemplate": [age],
        "ClusterAnalysisTemplate": [age],
        "AnalysisRun": [("Status", "string", ".status.phase"), age],
        "Experiment": [("Status", "string", ".status.phase"), age],
    }


@pytest.mark.parametrize("kind", list(CRDS))
def test_printer_columns_read_fields_the_schema_declares(kind: str) -> None:
    for column in CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]:
        if column["jsonPath"].startswith(".metadata."):
            continue  # the server's
        assert node_at(schema_of(kind), column["jsonPath"])["type"] == column["type"]


@pytest.mark.parametrize("kind", list(CRDS))
def test_generated_schemas_are_structural(kind: str) -> None:
    assert structural_violations(schema_of(kind)) == []


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"properties": {}}, "root must be `type: object`"),
        ({"type": "object", "properties": {"spec": {"properties": {}}}}, "needs a type"),
        ({"type": "object", "properties": {"spec": {"$ref": "#/$defs/Spec"}}}, "`$ref`"),
        (
            {
                "type": "object",
                "properties": {"a": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
            },
            "junctors",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "a": {
                        "type": "string",
                        "x-kubernetes-int-or-string": True,
                        "anyOf": [{"type": "integer"}, {"type": "string"}],
                    }
                },
            },
            "must not have a type",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
                },
            },
            "name/generateName",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "a": {
                        "type": "object",
                        "properties": {"b": {"type": "string"}},
                        "additionalProperties": {"type": "string"},
                    }
                },
            },
            "mutually exclusive",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "object", "additionalProperties": True}},
            },
            "additionalProperties: true",
        ),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "one `items`"),
        ({"type": "object", "properties": {"a": {"type": "string", "const": "x"}}}, "`const`"),
        ({"type": "object", "properties": {"a": {"type": "string", "title": "A"}}}, "`title`"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "enum": [1]}}},
            "not a string",
        ),
        (
            {"type": "object", "required": ["b"], "properties": {"a": {"type": "string"}}},
            "'b' is not a property",
        ),
    ],
)
def test_the_structural_checker_catches_each_rule(schema: dict[str, Any], fragment: str) -> None:
    problems = structural_violations(schema)
    assert any(fragment in problem for problem in problems), problems


def test_pydantics_own_schema_is_not_structural() -> None:
    """What the generator fixes: $defs/$ref, anyOf with null, titles, additionalProperties."""
    problems = structural_violations(Rollout.model_json_schema(by_alias=True))
    assert len(problems) > 10


def test_int_or_string_fields_take_both() -> None:
    schema = schema_of("Rollout")
    canary = node_at(schema, ".spec.strategy.canary")
    assert canary["properties"]["maxSurge"] == crds.INT_OR_STRING
    step = canary["properties"]["steps"]["items"]
    assert step["properties"]["pause"]["properties"]["duration"] == crds.INT_OR_STRING
    for surge in (1, "25%"):
        rollout = {"spec": {"strategy": {"canary": {"maxSurge": surge}}}}
        assert schema_errors(rollout, schema) == []
    assert schema_errors({"spec": {"strategy": {"canary": {"maxSurge": True}}}}, schema) != []


def test_typed_fields_are_checked() -> None:
    schema = schema_of("Rollout")
    bad = {"spec": {"replicas": "3", "strategy": {"canary": {"steps": [{"setWeight": "20"}]}}}}
    assert schema_errors(bad, schema) == [
        ".spec.replicas: '3' is not of type integer",
        ".spec.strategy.canary.steps[0].setWeight: '20' is not of type integer",
    ]
    missing = {"spec": {"strategy": {"blueGreen": {"previewService": "preview"}}}}
    assert schema_errors(missing, schema) == [
        ".spec.strategy.blueGreen: required field 'activeService' is missing"
    ]


def test_pod_templates_and_unmodelled_fields_are_kept_not_pruned() -> None:
    """The models keep unknown fields, so the schema tells the server to keep them too."""
    schema = schema_of("Rollout")
    template = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "x", "image": "x:1", "resources": {"limits": {}}}]},
    }
    rollout = {
        "spec": {
            "template": template,
            "strategy": {"canary": {"futureOption": {"a": 1}, "trafficRouting": {"alb": {}}}},
        },
        "status": {"alb": {"loadBalancer": {"name": "lb"}}},
    }
    assert schema_errors(rollout, schema) == []
    assert node_at(schema, ".spec.template") == {
        "type": "object",
        crds.PRESERVE: True,
    }


def test_string_maps_stay_typed() -> None:
    schema = schema_of("Rollout")
    selector = {"spec": {"selector": {"matchLabels": {"app": 1}}}}
    assert schema_errors(selector, schema) == [
        ".spec.selector.matchLabels.app: 1 is not of type string"
    ]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int


class _Loose(Model):
    size: int | None = None


class _Spec(Model):
    strict: _Strict | None = None
    loose: _Loose | None = None


class _Widget(Resource):
    spec: _Spec | None = None


def test_the_schema_follows_each_models_extra_fields_choice() -> None:
    schema = crds.structural_schema(_Widget)
    spec = schema["properties"]["spec"]
    assert spec["properties"]["strict"] == {
        "type": "object",
        "properties": {"size": {"type": "integer"}},
        "required": ["size"],
    }
    assert spec["properties"]["loose"][crds.PRESERVE] is True
    widget = {"spec": {"strict": {"size": 1, "colour": "red"}, "loose": {"colour": "red"}}}
    assert schema_errors(widget, schema) == [
        ".spec.strict.colour: unknown field; the API server would prune it"
    ]


class _Union(Resource):
    spec: dict[str, int | bool] | None = None


class _Untyped(Resource):
    spec: list[Any] | None = None


@pytest.mark.parametrize("model", [_Union, _Untyped])
def test_a_model_kubernetes_cannot_express_fails_generation(model: type[Resource]) -> None:
    with pytest.raises(ValueError, match=r"^\.spec"):
        crds.structural_schema(model)
