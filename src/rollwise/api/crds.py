"""CustomResourceDefinitions of the five Argo kinds, generated from the pydantic models.

Where this sits: pure `api/` code. `rollwise.platforms.kubernetes.install` puts these CRDs into
the install manifests (`rollwise install`, `deploy/crds.yaml`); tests check them against
Kubernetes' structural-schema rules and validate every example manifest against them.

Names, scope, subresources and printer columns are Argo's (reference 1.1,
`manifests/crds/*.yaml`), so these CRDs can replace Argo's on a cluster and Argo's controller
still works with them, and rollwise works with Argo's: same plural names, short names `ro`,
`at`, `cat`, `ar`, `exp`, no categories (Argo declares none), and a `status` subresource on
Rollout only. AnalysisRun and Experiment status is written with ordinary updates of the whole
object, as Argo's controller does; a status subresource there would make the API server drop
the status that Argo's controller writes (see `STATUS_SUBRESOURCE_KINDS`).

Theory of the schema conversion (`structural_schema`): pydantic's JSON schema of a model is
turned into the structural OpenAPI v3 subset Kubernetes accepts:
- `$ref`s are inlined (the models are not recursive; a cycle is an error).
- `X | None` becomes `X`: the server prunes a `null` for a non-nullable field that has no
  default, which is what "unset" means to the models (`to_raw()` never writes `null`).
- `int | str` becomes `x-kubernetes-int-or-string: true` (maxSurge, pause durations, counts).
- Unknown fields: Kubernetes prunes every field the schema does not name, unless the object
  says `x-kubernetes-preserve-unknown-fields: true`. The schema follows each model's own
  choice: pydantic writes `additionalProperties: true` for an `extra="allow"` model and for a
  raw dict, and those become preserving objects whose known fields are still typed. Every model
  in `rollwise.api.models` keeps unknown fields on purpose (a field we do not model yet, or one
  a newer Argo controller writes into status, must survive a round trip through the cluster;
  `rollwise lint` reports unknown fields instead of the server silently dropping them); raw
  dicts (pod templates, router and provider bodies, plugin config) are ours to pass through. A
  model switched to `extra="forbid"`/`"ignore"` gets a pruning object here with no other change.
  Exceptions: the root (nothing but apiVersion/kind/metadata/spec/status belongs there) and
  `metadata`, left to the server (`type: object` only, as Kubernetes requires).
- Titles, defaults and descriptions are dropped: defaults are applied by the readers (the
  core), never stored into the user's object; docstrings describe Python, not the resource.
- Anything else pydantic may emit (other unions, untyped `Any` fields, unknown keywords) raises
  `ValueError` here, so a model change that Kubernetes could not express fails the tests and
  `rollwise install`, not the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollwise.api.models import (
    GROUP,
    AnalysisRun,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    Experiment,
    Resource,
    Rollout,
)

VERSION = "v1alpha1"
RawObject = dict[str, Any]

INT_OR_STRING: RawObject = {
    "x-kubernetes-int-or-string": True,
    "anyOf": [{"type": "integer"}, {"type": "string"}],
}
PRESERVE = "x-kubernetes-preserve-unknown-fields"
AGE_COLUMN: RawObject = {
    "name": "Age",
    "type": "date",
    "description": "Time since resource was created",
    "jsonPath": ".metadata.creationTimestamp",
}


@dataclass(frozen=True)
class Scale:
    """The scale subresource: where HPA reads and writes replicas."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str


@dataclass(frozen=True)
class CustomKind:
    """One kind's CRD identity (Argo's), apart from its schema."""

    model: type[Resource]
    plural: str
    short_names: tuple[str, ...]
    namespaced: bool = True
    status_subresource: bool = False
    scale: Scale | None = None
    printer_columns: tuple[RawObject, ...] = (AGE_COLUMN,)

    @property
    def kind(self) -> str:
        kind = self.model.model_fields["kind"].default
        assert isinstance(kind, str)
        return kind

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


CUSTOM_KINDS: tuple[CustomKind, ...] = (
    CustomKind(
        model=Rollout,
        plural="rollouts",
        short_names=("ro",),
        status_subresource=True,
        # what makes HPA and VPA work on a Rollout (reference 1.1)
        scale=Scale(
            spec_replicas_path=".spec.replicas",
            status_replicas_path=".status.HPAReplicas",
            label_selector_path=".status.selector",
        ),
        printer_columns=(
            {
                "name": "Desired",
                "type": "integer",
                "description": "Number of desired pods",
                "jsonPath": ".spec.replicas",
            },
            {
                "name": "Current",
                "type": "integer",
                "description": "Total number of non-terminated pods targeted by this rollout",
                "jsonPath": ".status.replicas",
            },
            {
                "name": "Up-to-date",
                "type": "integer",
                "description": "Total number of non-terminated pods targeted by this rollout "
                "that have the desired template spec",
                "jsonPath": ".status.updatedReplicas",
            },
            {
                "name": "Available",
                "type": "integer",
                "description": "Total number of available pods (ready for at least "
                "minReadySeconds) targeted by this rollout",
                "jsonPath": ".status.availableReplicas",
            },
            AGE_COLUMN,
        ),
    ),
    CustomKind(model=AnalysisTemplate, plural="analysistemplates", short_names=("at",)),
    CustomKind(
        model=ClusterAnalysisTemplate,
        plural="clusteranalysistemplates",
        short_names=("cat",),
        namespaced=False,
    ),
    CustomKind(
        model=AnalysisRun,
        plural="analysisruns",
        short_names=("ar",),
        printer_columns=(
            {
                "name": "Status",
                "type": "string",
                "description": "AnalysisRun status",
                "jsonPath": ".status.phase",
            },
            AGE_COLUMN,
        ),
    ),
    CustomKind(
        model=Experiment,
        plural="experiments",
        short_names=("exp",),
        printer_columns=(
            {
                "name": "Status",
                "type": "string",
                "description": "Experiment status",
                "jsonPath": ".status.phase",
            },
            AGE_COLUMN,
        ),
    ),
)

# The kinds whose status is written through the `/status` subresource (Argo: Rollout only).
STATUS_SUBRESOURCE_KINDS: frozenset[str] = frozenset(
    custom.kind for custom in CUSTOM_KINDS if custom.status_subresource
)


def custom_resource_definitions() -> list[RawObject]:
    """The five CRDs (apiextensions.k8s.io/v1), in Argo's order of kinds."""
    return [custom_resource_definition(custom) for custom in CUSTOM_KINDS]


def custom_resource_definition(custom: CustomKind) -> RawObject:
    subresources: RawObject = {}
    if custom.status_subresource:
        subresources["status"] = {}
    if custom.scale is not None:
        subresources["scale"] = {
            "specReplicasPath": custom.scale.spec_replicas_path,
            "statusReplicasPath": custom.scale.status_replicas_path,
            "labelSelectorPath": custom.scale.label_selector_path,
        }
    version: RawObject = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": structural_schema(custom.model)},
        "additionalPrinterColumns": [dict(column) for column in custom.printer_columns],
    }
    if subresources:
        version["subresources"] = subresources
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": custom.name,
            "labels": {"app.kubernetes.io/part-of": "rollwise"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": custom.kind,
                "listKind": f"{custom.kind}List",
                "plural": custom.plural,
                "singular": custom.kind.lower(),
                "shortNames": list(custom.short_names),
            },
            "scope": "Namespaced" if custom.namespaced else "Cluster",
            # explicit, as Argo's: a CRD first created as v1beta1 keeps pruning off otherwise
            "preserveUnknownFields": False,
            "versions": [version],
        },
    }


def structural_schema(model: type[Resource]) -> RawObject:
    """The structural OpenAPI v3 schema of one resource model (see the module docstring)."""
    generated = model.model_json_schema(by_alias=True, mode="validation")
    definitions: dict[str, RawObject] = generated.get("$defs", {})
    properties: RawObject = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }
    for name, node in generated["properties"].items():
        if name in properties:
            continue
        properties[name] = _convert(node, definitions, path=f".{name}", expanding=())
    return {"type": "object", "properties": properties}


_DROPPED = frozenset({"title", "default", "description", "examples"})
_SCALARS = frozenset({"string", "integer", "number", "boolean"})


def _convert(
    node: RawObject, definitions: dict[str, RawObject], *, path: str, expanding: tuple[str, ...]
) -> RawObject:
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        if name in expanding:
            raise ValueError(f"{path}: recursive model {name} has no structural schema")
        return _convert(definitions[name], definitions, path=path, expanding=(*expanding, name))
    if "anyOf" in node:
        return _convert_union(node, definitions, path=path, expanding=expanding)
    unknown = set(node) - _DROPPED - {"type", "properties", "additionalProperties", "required"}
    unknown -= {"items", "enum", "const"}
    if unknown:
        raise ValueError(f"{path}: schema keywords {sorted(unknown)} are not supported")
    kind = node.get("type")
    if kind == "object":
        return _convert_object(node, definitions, path=path, expanding=expanding)
    if kind == "array":
        if "items" not in node:
            raise ValueError(f"{path}: a list of Any has no structural schema; type its items")
        items = _convert(node["items"], definitions, path=f"{path}[]", expanding=expanding)
        return {"type": "array", "items": items}
    if kind in _SCALARS:
        converted: RawObject = {"type": kind}
        if "const" in node:
            converted["enum"] = [node["const"]]
        elif "enum" in node:
            converted["enum"] = list(node["enum"])
        return converted
    raise ValueError(f"{path}: no structural schema for {node!r} (an untyped or Any field?)")


def _convert_union(
    node: RawObject, definitions: dict[str, RawObject], *, path: str, expanding: tuple[str, ...]
) -> RawObject:
    members = [member for member in node["anyOf"] if member != {"type": "null"}]
    if len(members) == 1:
        return _convert(members[0], definitions, path=path, expanding=expanding)
    if sorted(member.get("type", "") for member in members) == ["integer", "string"] and all(
        set(member) == {"type"} for member in members
    ):
        return {
            "x-kubernetes-int-or-string": True,
            "anyOf": [dict(member) for member in INT_OR_STRING["anyOf"]],
        }
    raise ValueError(f"{path}: the union {members!r} has no structural schema")


def _convert_object(
    node: RawObject, definitions: dict[str, RawObject], *, path: str, expanding: tuple[str, ...]
) -> RawObject:
    converted: RawObject = {"type": "object"}
    properties = node.get("properties")
    extra = node.get("additionalProperties")
    if properties:
        converted["properties"] = {
            name: _convert(child, definitions, path=f"{path}.{name}", expanding=expanding)
            for name, child in properties.items()
        }
        if node.get("required"):
            converted["required"] = list(node["required"])
    if extra is True or (extra == {} and not properties):
        # an `extra="allow"` model or a raw dict: see the module docstring
        converted[PRESERVE] = True
    elif isinstance(extra, dict) and extra:
        if properties:
            raise ValueError(f"{path}: typed extra fields next to properties are not structural")
        converted["additionalProperties"] = _convert(
            extra, definitions, path=f"{path}.*", expanding=expanding
        )
    elif not properties and extra is not False:
        # an object with nothing declared: pruning would empty it, so it must preserve
        converted[PRESERVE] = True
    return converted
