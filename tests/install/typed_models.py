"""Check a built-in Kubernetes object against kubernetes_asyncio's generated models, strictly.

`typed_errors(obj)` walks the object along the model classes generated from Kubernetes' OpenAPI
(`V1Deployment`, `V1ClusterRole`, `V1CustomResourceDefinition`...): a key no model attribute
maps to is an unknown field (which the API server would drop or refuse), a value of the wrong
JSON type is an error, and each level is built with the model's constructor, which refuses a
missing required field (and a value outside an enum where the model has one).
kubernetes_asyncio's own deserializer ignores unknown keys, hence this walk.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes_asyncio.client import Configuration, models

_CONFIGURATION = Configuration()
_CONFIGURATION.client_side_validation = True
# JSONSchemaProps keeps nested schemas as `object`; they are schemas all the same
_NESTED_SCHEMAS = {("V1JSONSchemaProps", "items"), ("V1JSONSchemaProps", "additional_properties")}


def model_class(api_version: str, kind: str) -> str:
    """`apps/v1`, `Deployment` -> `V1Deployment` (the client's naming)."""
    version = api_version.rsplit("/", 1)[-1]
    return f"{version[0].upper()}{version[1:]}{kind}"


def typed_errors(obj: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    _walk(obj, model_class(obj["apiVersion"], obj["kind"]), obj["kind"], problems)
    return problems


def _scalar_ok(value: Any, type_name: str) -> bool | None:
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name in ("datetime", "date"):
        return isinstance(value, str)
    if type_name == "object":
        return True
    return None


def _walk(value: Any, type_name: str, path: str, problems: list[str]) -> None:
    scalar = _scalar_ok(value, type_name)
    if scalar is not None:
        if not scalar:
            problems.append(f"{path}: {value!r} is not a {type_name}")
        return
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        for index, item in enumerate(value):
            _walk(item, match.group(1), f"{path}[{index}]", problems)
        return
    if match := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map")
            return
        for key, item in value.items():
            _walk(item, match.group(1), f"{path}.{key}", problems)
        return
    cls = getattr(models, type_name)
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({type_name})")
        return
    by_json_name = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    for key in value:
        if key not in by_json_name:
            problems.append(f"{path}.{key}: unknown field of {type_name}")
    present = {by_json_name[key]: item for key, item in value.items() if key in by_json_name}
    try:
        cls(local_vars_configuration=_CONFIGURATION, **present)
    except ValueError as error:
        problems.append(f"{path}: {error}")
    for attr, item in present.items():
        child = cls.openapi_types[attr]
        if (type_name, attr) in _NESTED_SCHEMAS and isinstance(item, dict):
            child = "V1JSONSchemaProps"
        _walk(item, child, f"{path}.{cls.attribute_map[attr]}", problems)
