"""Validate an object against a CRD's structural schema the way the API server treats it.

`schema_errors(obj, schema)` returns every problem, as `path: problem`, for the subset of
OpenAPI v3 that `rollwise.api.crds` emits: `type`, `properties`, `additionalProperties`,
`items`, `required`, `enum`, `x-kubernetes-int-or-string` and
`x-kubernetes-preserve-unknown-fields`. It also reports the fields the server would *prune*
(unknown fields of an object that does not preserve them), because a pruned field is a field
silently lost. As on the server, `metadata` is left to the server, a `null` in a non-nullable
field is pruned rather than refused, and integers must be JSON integers (no "5" for 5).
"""

from __future__ import annotations

from typing import Any

PRESERVE = "x-kubernetes-preserve-unknown-fields"


def schema_errors(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    body = {key: value for key, value in obj.items() if key != "metadata"}
    _validate(body, schema, "", problems)
    return problems


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    raise AssertionError(f"unknown type {kind!r}")


def _validate(value: Any, node: dict[str, Any], path: str, problems: list[str]) -> None:
    where = path or "<root>"
    if value is None:
        return  # pruned by the server for a non-nullable field
    if node.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, int | str) and not isinstance(value, bool)):
            problems.append(f"{where}: {value!r} is neither an integer nor a string")
        return
    kind = node.get("type")
    if kind is not None and not _type_ok(value, kind):
        problems.append(f"{where}: {value!r} is not of type {kind}")
        return
    if "enum" in node and value not in node["enum"]:
        problems.append(f"{where}: {value!r} is not one of {node['enum']}")
    if isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            _validate(item, node["items"], f"{path}[{index}]", problems)
    if not isinstance(value, dict):
        return
    properties: dict[str, Any] = node.get("properties", {})
    for name in node.get("required", []):
        if value.get(name) is None:
            problems.append(f"{where}: required field {name!r} is missing")
    extra = node.get("additionalProperties")
    for name, child in value.items():
        child_path = f"{path}.{name}"
        if name in properties:
            _validate(child, properties[name], child_path, problems)
        elif isinstance(extra, dict):
            _validate(child, extra, child_path, problems)
        elif not node.get(PRESERVE):
            problems.append(f"{child_path}: unknown field; the API server would prune it")
