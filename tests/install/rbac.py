"""RBAC as the API server's authorizer reads it, for tests: does a set of rules allow a request?

`allows(rules, group=..., resource=..., verb=...)` evaluates PolicyRules (wildcards included) the
way kube-apiserver's RBAC authorizer does for resource requests; `request_attributes(method,
path, query)` turns an HTTP request to the API (as logged by the test API server `kube_api`)
into the (group, resource, verb) RBAC checks, following kube-apiserver's RequestInfo rules:
GET of a name is `get`, of a collection `list` (`watch` with `watch=true`), POST `create`, PUT
`update`, PATCH `patch`, DELETE of a name `delete`, of a collection `deletecollection`; a
subresource is checked as `resource/subresource`. A test of the controller can check every
request it made against `install.policy_rules()` with these two functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class Attributes:
    group: str
    resource: str
    verb: str


def allows(rules: Iterable[Mapping[str, Any]], *, group: str, resource: str, verb: str) -> bool:
    for rule in rules:
        groups = rule.get("apiGroups", [])
        resources = rule.get("resources", [])
        verbs = rule.get("verbs", [])
        base = resource.split("/", 1)[0]
        resource_ok = (
            "*" in resources
            or resource in resources
            or ("/" in resource and f"*/{resource.split('/', 1)[1]}" in resources)
            or ("/" in resource and f"{base}/*" in resources)
        )
        if (group in groups or "*" in groups) and resource_ok and (verb in verbs or "*" in verbs):
            return True
    return False


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    parts = [part for part in path.split("/") if part]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = parts[1], parts[3:]
    else:
        raise ValueError(f"not a resource request: {path}")
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in ("status", "finalize"):
        rest = rest[2:]  # /namespaces/<ns>/<resource>...; else the Namespace itself
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    method = method.upper()
    if method == "GET":
        if name is not None:
            verb = "get"
        else:
            verb = "watch" if query.get("watch") in ("true", "1") else "list"
    elif method == "DELETE":
        verb = "delete" if name is not None else "deletecollection"
    else:
        verb = _VERBS[method]
    return Attributes(group, resource, verb)
