"""Kubernetes' rules for CRD schemas, checked offline: `structural_violations(schema)`.

The rules are those of "Specifying a structural schema" and of the apiextensions.k8s.io/v1
validation of `openAPIV3Schema`
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema):

1. every node has a non-empty `type`, except a node with `x-kubernetes-int-or-string: true` or
   `x-kubernetes-preserve-unknown-fields: true`;
2. a field or item named inside `allOf`/`anyOf`/`oneOf`/`not` is also named outside;
3. no `description`, `type`, `default`, `additionalProperties` or `nullable` inside those
   junctors, except the int-or-string pattern `anyOf: [{type: integer}, {type: string}]`;
4. `metadata` at the root restricts at most `name` and `generateName`;
plus v1 validation: `properties` and `additionalProperties` are mutually exclusive,
`additionalProperties: false`, `uniqueItems: true`, `$ref`, `definitions`, `id`, `$schema`,
`patternProperties`, `dependencies` and `additionalItems` are forbidden,
`x-kubernetes-preserve-unknown-fields` may only be true, an int-or-string node has no `type`,
the root is an object. Stricter than Kubernetes, to keep the generator honest: only keywords of
the subset rollwise emits are allowed, `required` names declared properties, `enum` values have
the node's type, a preserving node is an object or untyped, and value junctors appear only in
the int-or-string pattern (so rules 2 and 3 hold by construction).
"""

from __future__ import annotations

from typing import Any

TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
FORBIDDEN = frozenset(
    {
        "$ref",
        "definitions",
        "$defs",
        "id",
        "$schema",
        "patternProperties",
        "dependencies",
        "additionalItems",
        "const",
    }
)
ALLOWED = frozenset(
    {
        "type",
        "format",
        "description",
        "properties",
        "additionalProperties",
        "items",
        "required",
        "enum",
        "anyOf",
        "nullable",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
    }
)
INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def structural_violations(schema: dict[str, Any]) -> list[str]:
    """Every rule broken by `schema` (a CRD version's openAPIV3Schema), as `path: problem`."""
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append("<root>: the root must be `type: object`")
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append("<root>: must not preserve unknown fields (Kubernetes fields only)")
    metadata = schema.get("properties", {}).get("metadata")
    if metadata is not None:
        extra = set(metadata) - {"type", "properties"}
        named = set(metadata.get("properties", {})) - {"name", "generateName"}
        if metadata.get("type") != "object" or extra or named:
            problems.append(".metadata: only `type: object` (and name/generateName) is allowed")
    _check(schema, ".", problems, root=True)
    return problems


def _check(node: Any, path: str, problems: list[str], *, root: bool = False) -> None:
    if not isinstance(node, dict):
        problems.append(f"{path}: a schema must be an object, not {node!r}")
        return
    for key in sorted(set(node) & FORBIDDEN):
        problems.append(f"{path}: `{key}` is forbidden in a CRD schema")
    for key in sorted(set(node) - ALLOWED - FORBIDDEN - set(JUNCTORS)):
        problems.append(f"{path}: `{key}` is outside the subset rollwise emits")
    kind = node.get("type")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        problems.append(f"{path}: x-kubernetes-preserve-unknown-fields may only be true")
    if int_or_string:
        if kind is not None:
            problems.append(f"{path}: an int-or-string node must not have a type")
        if node.get("anyOf", INT_OR_STRING_ANY_OF) != INT_OR_STRING_ANY_OF:
            problems.append(f"{path}: int-or-string allows only anyOf [integer, string]")
        if set(node) - {"x-kubernetes-int-or-string", "anyOf", "description"}:
            problems.append(f"{path}: an int-or-string node has nothing else")
    elif "anyOf" in node or any(junctor in node for junctor in JUNCTORS):
        problems.append(f"{path}: value junctors are only used for int-or-string")
    if kind is None and not int_or_string and not preserve:
        problems.append(f"{path}: every node needs a type")
    if kind is not None and kind not in TYPES:
        problems.append(f"{path}: unknown type {kind!r}")
    if preserve and kind not in (None, "object"):
        problems.append(f"{path}: only objects preserve unknown fields")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties are mutually exclusive")
    if node.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties: false is forbidden (pruning does it)")
    if node.get("additionalProperties") is True:
        problems.append(f"{path}: additionalProperties: true; use preserve-unknown-fields")
    if node.get("uniqueItems") is True:
        problems.append(f"{path}: uniqueItems: true is forbidden")
    if ("properties" in node or "additionalProperties" in node) and kind != "object":
        problems.append(f"{path}: properties on a node that is not `type: object`")
    if "items" in node and kind != "array":
        problems.append(f"{path}: items on a node that is not `type: array`")
    if kind == "array" and not isinstance(node.get("items"), dict):
        problems.append(f"{path}: an array needs one `items` schema")
    for name in node.get("required", []):
        if name not in node.get("properties", {}):
            problems.append(f"{path}: required field {name!r} is not a property")
    if "enum" in node:
        accepted = PYTHON_TYPES.get(kind or "", ())
        for value in node["enum"]:
            wrong_bool = isinstance(value, bool) and kind != "boolean"
            if not isinstance(value, accepted) or wrong_bool:
                problems.append(f"{path}: enum value {value!r} is not a {kind}")
    for name, child in node.get("properties", {}).items():
        if root and name == "metadata":
            continue
        _check(child, f"{path.rstrip('.')}.{name}", problems)
    if isinstance(node.get("additionalProperties"), dict):
        _check(node["additionalProperties"], f"{path.rstrip('.')}.*", problems)
    if isinstance(node.get("items"), dict):
        _check(node["items"], f"{path.rstrip('.')}[]", problems)
