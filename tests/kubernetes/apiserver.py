"""A Kubernetes API server for tests: real HTTP on 127.0.0.1, built on kmock, faithful where
rollwise depends on kube-apiserver's behaviour.

Where it sits: every test of Kubernetes mode (client, informer, executor, controller, CLI, install)
talks HTTP to this server exactly as it would to a cluster. kmock (by kopf's author) serves the HTTP
and the discovery scaffold; this module adds what kmock's emulator lacks: resourceVersions from one
global counter, 409 on stale writes, label and field selectors, status and scale subresources,
the four patch content types, watches that resume from a resourceVersion and answer 410 when it is
compacted away, owner-reference garbage collection, CRD registration, a request log, fault hooks,
and a stand-in for kube-controller-manager.

Fixture `kube_api` (function scope; from `tests.kubernetes.apiserver`, exposed to
tests/kubernetes by its conftest) yields a `KubeApi`:

    kube_api.url                  "http://127.0.0.1:<port>"
    kube_api.kubeconfig_path      Path of a kubeconfig: context "mock", namespace "default",
                                  bearer token `kube_api.token` (a wrong token gets 401; none
                                  passes as anonymous, since kubectl sends none over HTTP)
    kube_api.requests             list[LoggedRequest]: .method .path .query (dict) .content_type
                                  .body (parsed JSON/YAML, else text) .headers; oldest first
    kube_api.requests_to(method=None, path_prefix="")   the log filtered
    kube_api.clear_requests()
    # direct access without HTTP (no request is logged; watches see the changes):
    kube_api.create(obj) -> dict                       seed it: uid, resourceVersion... filled,
                                                       status kept
    kube_api.get(api_version, kind, name, namespace="default") -> dict | None    (a copy)
    kube_api.objects(kind, *, api_version=None, namespace=None, label_selector=None) -> list[dict]
    kube_api.replace(obj) -> dict                      whole object incl. status, rv checked if set
    kube_api.patch(api_version, kind, name, namespace, merge_patch) -> dict      incl. status
    kube_api.delete(api_version, kind, name, namespace="default")               with owner GC
    kube_api.resource_version -> int                   the global counter
    kube_api.compact()                                 forget the watch history: a watch from any
                                                       older resourceVersion gets 410 Expired
    kube_api.fail(method, path_prefix, *, status=500, times=1)   the next `times` matching
                                                       requests answer `status` (times=None: all)
    kube_api.delay(method, path_prefix, *, seconds, times=None)  delay matching requests
    kube_api.clear_faults()
    await kube_api.wait_for(predicate, timeout=10.0)   poll `predicate()` after each change until
                                                       truthy; returns its value; TimeoutError
    kube_api.handler                                   the kmock handler (its DSL works for
                                                       non-resource paths; faults for the rest)
    `running_kube_api(directory, *, history_size=1000, bookmark_interval=2.0)` is the async
    context manager behind the fixture, for tests that need other settings.

`KubeControllerManager(kube_api, *, unready=None, job_result=None)` plays kube-controller-manager
in a test (`async with KubeControllerManager(kube_api) as kcm:`): it keeps each ReplicaSet's Pods
(named `<rs>-<5 chars>`, template labels, ownerReference to the RS, Running and Ready) equal to
`spec.replicas` and writes its status (replicas, readyReplicas, availableReplicas,
fullyLabeledReplicas, observedGeneration); mirrors a Deployment's `spec.replicas` into its status;
runs each Job's pod to the end. `unready(rs) -> bool` (or `kcm.unready = ...`) names ReplicaSets
whose pods run but never become Ready; `job_result(job) -> "Succeeded" | "Failed" | None` decides
a Job (None: keeps running); by default the label or annotation `test.rollwise.io/job-result` on
the Job or its pod template decides, else the Job succeeds.

What the server emulates (see the functions below for the exact rules):
- discovery (/api, /apis, /api/v1, /apis/<group>[/<version>], /version), and Table output for
  `kubectl get`; the kinds of `BUILTIN_TYPES` and of every CRD created through it;
- create (201; uid, resourceVersion, generation 1, creationTimestamp; generateName; 409
  AlreadyExists; status dropped for kinds with a status subresource, as the real server does);
- get, list (items of built-in kinds come without apiVersion/kind, as the real server sends them;
  list metadata.resourceVersion), labelSelector (=, ==, !=, in, notin, exists, !key),
  fieldSelector (=, ==, != on any dotted path, e.g. metadata.name);
- PUT with 409 on a stale metadata.resourceVersion (and on a stale one inside a patch body);
  generation bumps only when something outside metadata and status changes; no-op writes keep
  the resourceVersion and emit no event; the status subresource is separate from the main
  resource (each write changes only its own part) for kinds that declare one;
- PATCH: application/merge-patch+json (RFC 7386), application/strategic-merge-patch+json (treated
  as a merge patch: no list merging by key, no $patch directives), application/json-patch+json
  (RFC 6902), application/apply-patch+yaml (server-side apply as create-or-merge: no field
  ownership, no removal of fields a manager stopped applying; fieldManager required); 415 else;
- the scale subresource (autoscaling/v1 Scale) of Deployment, ReplicaSet and Rollout;
- DELETE (with finalizers: deletionTimestamp until they are removed) and deletecollection;
  dependents whose every owner is gone are deleted (propagationPolicy Orphan strips the
  reference instead);
- watch=true: JSON lines ADDED/MODIFIED/DELETED from a resourceVersion (history of
  `history_size` changes; older: one ERROR event with a 410 Expired Status), label/field
  selectors (an object that stops matching arrives as DELETED, one that starts as ADDED),
  BOOKMARK events when allowWatchBookmarks=true, timeoutSeconds.
Not emulated: admission, defaulting and schema validation of objects (CRD schemas are checked
for being structural when the CRD is created), RBAC (use `fail(..., status=403)`), pagination
(`limit` is ignored: everything comes in one page), field ownership of server-side apply,
protobuf, dry runs of the scale subresource (`dryRun=All` is honoured elsewhere), namespace
existence.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
import random
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import pytest_asyncio
import yaml

Obj = dict[str, Any]
T = TypeVar("T")

# ------------------------------------------------------------------------------------------------
# Resource types


@dataclass(frozen=True)
class ScalePaths:
    """Where a kind keeps what its scale subresource shows (as a CRD's `subresources.scale`)."""

    spec_replicas: str = "spec.replicas"
    status_replicas: str = "status.replicas"
    selector: str = "spec.selector"  # a LabelSelector here; a string when selector_is_string
    selector_is_string: bool = False


@dataclass(frozen=True)
class ResourceType:
    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False  # has a status subresource
    scale: ScalePaths | None = None
    short_names: tuple[str, ...] = ()
    builtin: bool = True  # compiled into kube-apiserver (else served from a CRD)

    @property
    def resource(self) -> str:
        """How the real server names the resource in messages: `pods`, `replicasets.apps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str | None = None) -> str:
        version = version or self.versions[0]
        return f"{self.group}/{version}" if self.group else version


def _t(api_version: str, plural: str, kind: str, **kwargs: Any) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    versions = tuple(version.split(","))
    return ResourceType(group, versions, plural, kind, **kwargs)


_APPS_SCALE = ScalePaths()
_ROLLOUT_SCALE = ScalePaths("spec.replicas", "status.HPAReplicas", "status.selector", True)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _t("v1", "pods", "Pod", status=True, short_names=("po",)),
    _t("v1", "services", "Service", status=True, short_names=("svc",)),
    _t("v1", "secrets", "Secret"),
    _t("v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _t("v1", "events", "Event", short_names=("ev",)),
    _t("v1", "namespaces", "Namespace", namespaced=False, status=True, short_names=("ns",)),
    _t("v1", "endpoints", "Endpoints", short_names=("ep",)),
    _t("v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _t("apps/v1", "replicasets", "ReplicaSet", status=True, scale=_APPS_SCALE, short_names=("rs",)),
    _t(
        "apps/v1",
        "deployments",
        "Deployment",
        status=True,
        scale=_APPS_SCALE,
        short_names=("deploy",),
    ),
    _t("batch/v1", "jobs", "Job", status=True),
    _t("coordination.k8s.io/v1", "leases", "Lease"),
    _t(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        status=True,
        short_names=("hpa",),
    ),
    _t("networking.k8s.io/v1", "ingresses", "Ingress", status=True, short_names=("ing",)),
    _t("events.k8s.io/v1", "events", "Event", short_names=("ev",)),
    _t(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        status=True,
        short_names=("crd", "crds"),
    ),
    _t("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _t("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _t("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", namespaced=False),
    _t(
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    # Custom kinds, served as if their CRDs were installed (Argo's own CRDs: only Rollout has a
    # status subresource; AnalysisRun and Experiment declare `subresources: {}`).
    _t(
        "argoproj.io/v1alpha1",
        "rollouts",
        "Rollout",
        status=True,
        scale=_ROLLOUT_SCALE,
        short_names=("ro",),
        builtin=False,
    ),
    _t(
        "argoproj.io/v1alpha1",
        "analysistemplates",
        "AnalysisTemplate",
        short_names=("at",),
        builtin=False,
    ),
    _t(
        "argoproj.io/v1alpha1",
        "clusteranalysistemplates",
        "ClusterAnalysisTemplate",
        namespaced=False,
        short_names=("cat",),
        builtin=False,
    ),
    _t("argoproj.io/v1alpha1", "analysisruns", "AnalysisRun", short_names=("ar",), builtin=False),
    _t("argoproj.io/v1alpha1", "experiments", "Experiment", short_names=("exp",), builtin=False),
    _t(
        "networking.istio.io/v1beta1,v1alpha3",
        "virtualservices",
        "VirtualService",
        status=True,
        short_names=("vs",),
        builtin=False,
    ),
    _t(
        "networking.istio.io/v1beta1,v1alpha3",
        "destinationrules",
        "DestinationRule",
        status=True,
        short_names=("dr",),
        builtin=False,
    ),
    _t("traefik.io/v1alpha1", "traefikservices", "TraefikService", builtin=False),
    _t(
        "split.smi-spec.io/v1alpha3,v1alpha2,v1alpha1",
        "trafficsplits",
        "TrafficSplit",
        short_names=("ts",),
        builtin=False,
    ),
    _t("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute", status=True, builtin=False),
)


class ResourceTypes:
    """The kinds the server serves, by (group, version, plural) and by (group, kind)."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self._by_plural: dict[tuple[str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        for rtype in types:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        self._by_plural[(rtype.group, rtype.plural)] = rtype
        self._by_kind[(rtype.group, rtype.kind)] = rtype

    def remove(self, rtype: ResourceType) -> None:
        self._by_plural.pop((rtype.group, rtype.plural), None)
        self._by_kind.pop((rtype.group, rtype.kind), None)

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        rtype = self._by_plural.get((group, plural))
        return rtype if rtype is not None and version in rtype.versions else None

    def by_kind(self, api_version: str, kind: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        rtype = self._by_kind.get((group, kind))
        if rtype is None or version not in rtype.versions:
            raise KeyError(f"the server does not serve {kind} in {api_version}")
        return rtype

    def by_kind_any_version(self, group: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((group, kind))

    def __iter__(self) -> Any:
        return iter(list(self._by_plural.values()))

    def digest(self) -> str:
        """Changes when the served kinds change (kubectl caches OpenAPI documents by it)."""
        names = sorted(f"{t.group}/{','.join(t.versions)}/{t.plural}" for t in self)
        return uuid.uuid5(uuid.NAMESPACE_URL, "|".join(names)).hex[:16]


# ------------------------------------------------------------------------------------------------
# Errors as the real server words them


class ApiError(Exception):
    """A failure the server answers with a `Status` object."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }

    def response(self) -> aiohttp.web.Response:
        headers = {"Retry-After": "1"} if self.code in (429, 503) else None
        return aiohttp.web.json_response(self.status(), status=self.code, headers=headers)


def _not_found(rtype: ResourceType, name: str) -> ApiError:
    details = {"name": name, "group": rtype.group, "kind": rtype.plural}
    return ApiError(404, "NotFound", f'{rtype.resource} "{name}" not found', details)


def _conflict(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rtype.resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": rtype.group, "kind": rtype.plural},
    )


def _invalid(rtype: ResourceType, name: str, cause: str) -> ApiError:
    kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    details = {
        "name": name,
        "group": rtype.group,
        "kind": rtype.kind,
        "causes": [{"message": cause}],
    }
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {cause}', details)


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# ------------------------------------------------------------------------------------------------
# Selectors


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return value is not None and value in self.values
            case "!=" | "notin":
                return value is None or value not in self.values
            case "exists":
                return value is not None
            case _:
                return value is None


_SET_RE = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s*\(([^()]*)\)$")
_KEY_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$")


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return [term.strip() for term in terms if term.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Kubernetes' label selector syntax; ApiError 400 when it does not parse."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        if match := _SET_RE.match(term):
            values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
            requirement = Requirement(match.group(1), match.group(2), values)
        elif term.startswith("!"):
            requirement = Requirement(term[1:].strip(), "!")
        elif "!=" in term:
            key, value = term.split("!=", 1)
            requirement = Requirement(key.strip(), "!=", (value.strip(),))
        elif "==" in term or "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            requirement = Requirement(key.strip(), "=", (value.strip(),))
        else:
            requirement = Requirement(term, "exists")
        if not _KEY_RE.match(requirement.key):
            raise _bad_request(f'unable to parse requirement: invalid label key "{term}"')
        requirements.append(requirement)
    return requirements


def parse_field_selector(text: str | None) -> list[tuple[str, str, str]]:
    """(dotted path, "=" or "!=", value) terms; ApiError 400 when it does not parse."""
    terms: list[tuple[str, str, str]] = []
    for term in _split_terms(text or ""):
        for op in ("!=", "==", "="):
            if op in term:
                path, value = term.split(op, 1)
                terms.append((path.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            raise _bad_request(f'invalid selector: "{text}"; can\'t understand "{term}"')
    return terms


def _field(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class Selector:
    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, label_selector: str | None, field_selector: str | None) -> Selector:
        return cls(
            tuple(parse_label_selector(label_selector)),
            tuple(parse_field_selector(field_selector)),
        )

    def matches(self, obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        if not all(requirement.matches(labels) for requirement in self.labels):
            return False
        for path, op, expected in self.fields:
            actual = _field(obj, path)
            text = "" if actual is None else str(actual)
            if (text == expected) != (op == "="):
                return False
        return True


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector object as the string form the scale subresource shows."""
    if not selector:
        return ""
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin"}.get(expression["operator"])
        if op is not None:
            terms.append(f"{expression['key']} {op} ({','.join(expression.get('values', []))})")
        elif expression["operator"] == "Exists":
            terms.append(expression["key"])
        else:
            terms.append(f"!{expression['key']}")
    return ",".join(terms)


# ------------------------------------------------------------------------------------------------
# Patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (a new value; inputs unchanged)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(copy.deepcopy(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise IndexError(last)
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(last)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        return parent.pop(int(last))
    return parent.pop(last)


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (a new value); ValueError/KeyError/IndexError when it cannot apply."""
    if not isinstance(operations, list):
        raise ValueError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for operation in operations:
        op, parts = operation["op"], _pointer(operation["path"])
        if op == "add":
            doc = _add(doc, parts, copy.deepcopy(operation["value"]))
        elif op == "remove":
            _remove(doc, parts)
        elif op == "replace":
            _walk(doc, parts)  # must exist
            if parts:
                _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            source = _pointer(operation["from"])
            value = copy.deepcopy(_walk(doc, source))
            if op == "move":
                _remove(doc, source)
            doc = _add(doc, parts, value)
        elif op == "test":
            if _walk(doc, parts) != operation["value"]:
                raise ValueError(f"test operation failed at {operation['path']}")
        else:
            raise ValueError(f"unknown JSON patch operation {op!r}")
    return doc


PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


# ------------------------------------------------------------------------------------------------
# CRDs

_FORBIDDEN_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")


def _structural_errors(node: Any, path: str, *, in_junctor: bool = False) -> list[str]:
    """The rules that make a CRD schema structural (a subset: types, junctors, no $ref)."""
    if not isinstance(node, Mapping):
        return [f"{path}: must be an object"]
    errors: list[str] = []
    if "$ref" in node:
        errors.append(f"{path}.$ref: Forbidden: $ref is not allowed")
    if in_junctor:
        errors += [
            f"{path}.{key}: Forbidden: must be empty to be structural"
            for key in _FORBIDDEN_IN_JUNCTORS
            if key in node
        ]
    elif (
        not node.get("type")
        and not node.get("x-kubernetes-int-or-string")
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        errors.append(f"{path}.type: Required value: must not be empty for specified fields")
    if "properties" in node and "additionalProperties" in node:
        errors.append(
            f"{path}.additionalProperties: Forbidden: additionalProperties and "
            "properties are mutually exclusive"
        )
    for name, child in (node.get("properties") or {}).items():
        errors += _structural_errors(child, f"{path}.properties[{name}]", in_junctor=in_junctor)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), Mapping):
            errors += _structural_errors(node[key], f"{path}.{key}", in_junctor=in_junctor)
    int_or_string = bool(node.get("x-kubernetes-int-or-string"))
    for junctor in ("allOf", "anyOf", "oneOf"):
        for index, child in enumerate(node.get(junctor) or []):
            if int_or_string and isinstance(child, Mapping) and set(child) == {"type"}:
                continue  # the two allowed patterns of x-kubernetes-int-or-string
            errors += _structural_errors(child, f"{path}.{junctor}[{index}]", in_junctor=True)
    if isinstance(node.get("not"), Mapping):
        errors += _structural_errors(node["not"], f"{path}.not", in_junctor=True)
    return errors


def crd_resource_type(crd: Obj) -> ResourceType:
    """The kind a v1 CustomResourceDefinition declares; ApiError 422 when it is not valid."""
    crd_type = _t(
        "apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition"
    )
    name = crd.get("metadata", {}).get("name", "")
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        raise _invalid(crd_type, name, "spec: Required value")
    group, names = spec.get("group"), spec.get("names") or {}
    if not group:
        raise _invalid(crd_type, name, "spec.group: Required value")
    for key in ("plural", "kind"):
        if not names.get(key):
            raise _invalid(crd_type, name, f"spec.names.{key}: Required value")
    if name != f"{names['plural']}.{group}":
        raise _invalid(
            crd_type,
            name,
            f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        raise _invalid(
            crd_type, name, "spec.scope: Unsupported value: must be Namespaced or Cluster"
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        raise _invalid(
            crd_type,
            name,
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        )
    if sum(1 for version in versions if version.get("storage")) != 1:
        raise _invalid(
            crd_type,
            name,
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        )
    for index, version in enumerate(versions):
        where = f"spec.versions[{index}]"
        if not version.get("name") or not isinstance(version.get("served"), bool):
            raise _invalid(crd_type, name, f"{where}: name and served are required")
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, Mapping):
            raise _invalid(
                crd_type,
                name,
                f"{where}.schema.openAPIV3Schema: Required value: schemas are required",
            )
        errors = _structural_errors(schema, f"{where}.schema.openAPIV3Schema")
        if schema.get("type") != "object":
            errors.append(f"{where}.schema.openAPIV3Schema.type: Invalid value: must be object")
        if errors:
            raise _invalid(crd_type, name, "; ".join(errors))
    storage = next(version for version in versions if version.get("storage"))
    subresources = storage.get("subresources") or {}
    scale = subresources.get("scale")
    return ResourceType(
        group=group,
        versions=tuple(version["name"] for version in versions if version["served"]),
        plural=names["plural"],
        kind=names["kind"],
        namespaced=spec["scope"] == "Namespaced",
        status="status" in subresources,
        scale=None
        if scale is None
        else ScalePaths(
            scale["specReplicasPath"].lstrip("."),
            scale["statusReplicasPath"].lstrip("."),
            (scale.get("labelSelectorPath") or ".status.selector").lstrip("."),
            True,
        ),
        short_names=tuple(names.get("shortNames") or ()),
        builtin=False,
    )


# ------------------------------------------------------------------------------------------------
# The store


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_SUFFIX_ALPHABET) for _ in range(length))


Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name


@dataclass(frozen=True)
class Change:
    resource_version: int
    rtype: ResourceType
    old: Obj | None  # None: the object was created
    new: Obj | None  # None: the object was deleted (then `old` is its last state)


@dataclass(eq=False)
class _Watcher:
    rtype: ResourceType
    namespace: str | None
    selector: Selector
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)


class ObjectStore:
    """Objects, the global resourceVersion counter, the change history watches replay from."""

    def __init__(self, *, history_size: int = 1000, bookmark_interval: float = 2.0) -> None:
        self.types = ResourceTypes(BUILTIN_TYPES)
        self.bookmark_interval = bookmark_interval
        self._objects: dict[Key, Obj] = {}
        self._rv = 0
        self._history: deque[Change] = deque(maxlen=history_size)
        self._compacted = 0  # changes up to this resourceVersion may be gone from the history
        self._watchers: set[_Watcher] = set()
        self._changed = asyncio.Event()
        for name in ("default", "kube-system", "kube-public"):
            self.create(
                self.types.by_kind("v1", "Namespace"),
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name},
                    "status": {"phase": "Active"},
                },
            )

    # -- reading

    @property
    def resource_version(self) -> int:
        return self._rv

    @staticmethod
    def key(rtype: ResourceType, namespace: str | None, name: str) -> Key:
        return (rtype.group, rtype.plural, (namespace or "") if rtype.namespaced else "", name)

    def find(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        return self._objects.get(self.key(rtype, namespace, name))

    def select(self, rtype: ResourceType, namespace: str | None, selector: Selector) -> list[Obj]:
        found = [
            obj
            for (group, plural, ns, _), obj in self._objects.items()
            if (group, plural) == (rtype.group, rtype.plural)
            and (namespace is None or ns == namespace)
            and selector.matches(obj)
        ]
        return sorted(
            found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        )

    def by_uid(self, uid: str) -> Obj | None:
        return next((o for o in self._objects.values() if o["metadata"]["uid"] == uid), None)

    # -- changes

    def _commit(self, rtype: ResourceType, old: Obj | None, new: Obj | None) -> Obj:
        self._rv += 1
        current = new if new is not None else copy.deepcopy(old)
        assert current is not None
        current["metadata"]["resourceVersion"] = str(self._rv)
        metadata = current["metadata"]
        key = self.key(rtype, metadata.get("namespace"), metadata["name"])
        if new is None:
            self._objects.pop(key, None)
        else:
            self._objects[key] = new
        if new is None:
            change = Change(self._rv, rtype, copy.deepcopy(current), None)
        else:
            change = Change(self._rv, rtype, copy.deepcopy(old), copy.deepcopy(current))
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].resource_version
        self._history.append(change)
        for watcher in list(self._watchers):
            if (watcher.rtype.group, watcher.rtype.plural) == (rtype.group, rtype.plural):
                watcher.queue.put_nowait(change)
        self._changed.set()
        self._changed = asyncio.Event()
        return current

    def compact(self) -> None:
        """Forget the history: watches from any resourceVersion before now get 410."""
        self._history.clear()
        self._compacted = self._rv

    def watch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        selector: Selector,
        resource_version: str | None,
    ) -> tuple[_Watcher, list[Change]]:
        """A registered watcher and the changes to send first; ApiError 410 if rv is too old."""
        watcher = _Watcher(rtype, namespace, selector)
        if resource_version in (None, "", "0"):
            backlog = [
                Change(self._rv, rtype, None, copy.deepcopy(obj))
                for obj in self.select(rtype, namespace, selector)
            ]
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise _bad_request(f"invalid resource version {resource_version!r}") from None
            if since < self._compacted:
                raise ApiError(
                    410, "Expired", f"too old resource version: {since} ({self._compacted + 1})"
                )
            backlog = [
                change
                for change in self._history
                if change.resource_version > since
                and (change.rtype.group, change.rtype.plural) == (rtype.group, rtype.plural)
            ]
        self._watchers.add(watcher)
        return watcher, backlog

    def unwatch(self, watcher: _Watcher) -> None:
        self._watchers.discard(watcher)

    def close_watches(self) -> None:
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)

    async def changed(self) -> None:
        """Wait for the next change."""
        await self._changed.wait()

    # -- writes (`api`: as the HTTP API would; False: a direct write by a test or a controller)

    def create(
        self,
        rtype: ResourceType,
        obj: Obj,
        *,
        namespace: str | None = None,
        api: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise _bad_request("metadata must be an object")
        if rtype.namespaced:
            namespace = namespace or metadata.get("namespace") or "default"
            if metadata.get("namespace") not in (None, "", namespace):
                raise _bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                raise _invalid(
                    rtype, "", "metadata.name: Required value: name or generateName is required"
                )
            while True:
                metadata["name"] = metadata["generateName"] + random_suffix()
                if self.find(rtype, namespace, metadata["name"]) is None:
                    break
        name = metadata["name"]
        if self.find(rtype, namespace, name) is not None:
            details = {"name": name, "group": rtype.group, "kind": rtype.plural}
            raise ApiError(
                409, "AlreadyExists", f'{rtype.resource} "{name}" already exists', details
            )
        if rtype.kind == "CustomResourceDefinition" and rtype.group == "apiextensions.k8s.io":
            crd_type = crd_resource_type(obj)
        metadata.pop("resourceVersion", None)
        metadata.pop("deletionTimestamp", None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        metadata["generation"] = 1
        obj["apiVersion"] = rtype.api_version(obj.get("apiVersion", "").rpartition("/")[2] or None)
        obj["kind"] = rtype.kind
        if api and rtype.status:
            obj.pop("status", None)
            if rtype.kind == "Pod" and not rtype.group:
                obj["status"] = {"phase": "Pending"}
            if rtype.kind == "Namespace" and not rtype.group:
                obj["status"] = {"phase": "Active"}
        if dry_run:
            return obj
        created = self._commit(rtype, None, obj)
        if rtype.kind == "CustomResourceDefinition" and rtype.group == "apiextensions.k8s.io":
            self.types.add(crd_type)
            accepted = merge_patch(
                created,
                {
                    "status": {
                        "conditions": [
                            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                            {
                                "type": "Established",
                                "status": "True",
                                "reason": "InitialNamesAccepted",
                            },
                        ],
                        "acceptedNames": created["spec"]["names"],
                        "storedVersions": [
                            v["name"] for v in created["spec"]["versions"] if v["storage"]
                        ],
                    }
                },
            )
            created = self.update(rtype, accepted)
        return copy.deepcopy(created)

    def update(
        self,
        rtype: ResourceType,
        obj: Obj,
        *,
        api: bool = False,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Write `obj` over the stored object of its name (409 on a stale resourceVersion)."""
        metadata = obj.get("metadata") or {}
        name = metadata.get("name", "")
        current = self.find(rtype, metadata.get("namespace"), name)
        if current is None:
            raise _not_found(rtype, name)
        if metadata.get("resourceVersion") not in (
            None,
            "",
            current["metadata"]["resourceVersion"],
        ):
            raise _conflict(rtype, name)
        new = copy.deepcopy(obj)
        if api and rtype.status:
            if subresource == "status":
                new = copy.deepcopy(current)
                new.pop("status", None)
                if obj.get("status") is not None:
                    new["status"] = copy.deepcopy(obj["status"])
            else:
                new.pop("status", None)
                if current.get("status") is not None:
                    new["status"] = copy.deepcopy(current["status"])
        new_metadata = new.setdefault("metadata", {})
        for key in (
            "uid",
            "creationTimestamp",
            "name",
            "namespace",
            "deletionTimestamp",
            "generation",
        ):
            new_metadata.pop(key, None)
            if key in current["metadata"]:
                new_metadata[key] = current["metadata"][key]
        new_metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]

        def spec_part(o: Obj) -> Obj:
            return {
                k: v for k, v in o.items() if k not in ("metadata", "status", "apiVersion", "kind")
            }

        if spec_part(new) != spec_part(current):
            new_metadata["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if new == current:
            return copy.deepcopy(current)  # a no-op write: no new resourceVersion, no event
        if dry_run:
            return new
        if rtype.kind == "CustomResourceDefinition" and rtype.group == "apiextensions.k8s.io":
            self.types.add(crd_resource_type(new))
        updated = self._commit(rtype, current, new)
        if new_metadata.get("deletionTimestamp") and not new_metadata.get("finalizers"):
            # The last finalizer is gone: the deletion asked for earlier happens now.
            return self._delete_now(rtype, updated, propagation="Background")
        return copy.deepcopy(updated)

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
        dry_run: bool = False,
    ) -> Obj:
        current = self.find(rtype, namespace, name)
        if current is None:
            raise _not_found(rtype, name)
        if dry_run:
            return copy.deepcopy(current)
        if current["metadata"].get("finalizers"):
            if current["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(current)
            marked = copy.deepcopy(current)
            marked["metadata"]["deletionTimestamp"] = now_rfc3339()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            return copy.deepcopy(self._commit(rtype, current, marked))
        return self._delete_now(rtype, current, propagation=propagation)

    def _delete_now(self, rtype: ResourceType, current: Obj, *, propagation: str) -> Obj:
        deleted = self._commit(rtype, current, None)
        uid = current["metadata"]["uid"]
        if rtype.kind == "CustomResourceDefinition" and rtype.group == "apiextensions.k8s.io":
            served = crd_resource_type(current)
            if not any(t == served for t in BUILTIN_TYPES):
                self.types.remove(served)
                for key in [k for k in self._objects if k[:2] == (served.group, served.plural)]:
                    self._commit(served, self._objects[key], None)
        for key, dependent in list(self._objects.items()):
            references = dependent["metadata"].get("ownerReferences") or []
            if key not in self._objects or not any(r.get("uid") == uid for r in references):
                continue
            dependent_type = self._type_of(dependent)
            if propagation == "Orphan":
                orphan = copy.deepcopy(dependent)
                orphan["metadata"]["ownerReferences"] = [
                    r for r in references if r.get("uid") != uid
                ]
                self._commit(dependent_type, dependent, orphan)
            elif all(self.by_uid(r.get("uid", "")) is None for r in references):
                with contextlib.suppress(ApiError):
                    self.delete(
                        dependent_type,
                        dependent["metadata"].get("namespace"),
                        dependent["metadata"]["name"],
                        propagation=propagation,
                    )
        return deleted

    def _type_of(self, obj: Obj) -> ResourceType:
        group = obj["apiVersion"].rpartition("/")[0]
        rtype = self.types.by_kind_any_version(group, obj["kind"])
        assert rtype is not None
        return rtype


# ------------------------------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True)
class ApiPath:
    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    subresource: str | None


def parse_api_path(path: str) -> ApiPath | None:
    """The resource a request path names; None for discovery and unknown paths."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    # /api/v1/namespaces/<ns>[/status|/finalize] is the Namespace itself, not a scope.
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    return ApiPath(
        group,
        version,
        namespace,
        rest[0],
        rest[1] if len(rest) > 1 else None,
        rest[2] if len(rest) > 2 else None,
    )


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any
    headers: dict[str, str]


@dataclass
class Fault:
    method: str | None
    path_prefix: str
    status: int | None
    delay: float
    remaining: int | None  # None: forever

    def matches(self, request: LoggedRequest) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and (self.method is None or self.method.upper() == request.method)
            and request.path.startswith(self.path_prefix)
        )


def _dry_run(query: Mapping[str, str]) -> bool:
    return query.get("dryRun") == "All"


def _parse_body(content_type: str | None, text: str) -> Any:
    if not text:
        return None
    with contextlib.suppress(ValueError, yaml.YAMLError):
        if content_type and "yaml" in content_type:
            return yaml.safe_load(text)
        return json.loads(text)
    return text


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )
    seconds = int((datetime.datetime.now(datetime.UTC) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _table(objects: list[Obj], resource_version: int) -> Obj:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": [
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "priority": 0,
                "description": "Name must be unique within a namespace.",
            },
            {
                "name": "Age",
                "type": "string",
                "format": "",
                "priority": 0,
                "description": "CreationTimestamp is the time the object was created.",
            },
        ],
        "rows": [
            {
                "cells": [obj["metadata"]["name"], _age(obj["metadata"].get("creationTimestamp"))],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
            }
            for obj in objects
        ],
    }


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesScaffold):
    """kmock's Kubernetes scaffold (HTTP, discovery, Status errors) serving an ObjectStore."""

    store: ObjectStore
    token: str | None = None
    log: list[LoggedRequest] = attrs.field(factory=list)
    faults: list[Fault] = attrs.field(factory=list)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        content_type = raw.headers.get("Content-Type")
        logged = LoggedRequest(
            method=raw.method.upper(),
            path=raw.path,
            query=dict(raw.query),
            content_type=content_type,
            body=_parse_body(content_type, request.text),
            headers=dict(raw.headers),
        )
        self.log.append(logged)
        try:
            # kubectl sends no credentials over plain HTTP, so anonymous requests pass (as with
            # --anonymous-auth and an allow-all authorizer); a wrong token is refused.
            authorization = raw.headers.get("Authorization")
            if authorization is not None and authorization != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            for fault in self.faults:
                if fault.matches(logged):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    if fault.delay:
                        await asyncio.sleep(fault.delay)
                    if fault.status is not None:
                        reason = {
                            429: "TooManyRequests",
                            403: "Forbidden",
                            401: "Unauthorized",
                            503: "ServiceUnavailable",
                        }.get(fault.status, "InternalError")
                        raise ApiError(fault.status, reason, f"injected fault: {fault.status}")
                    break
            if raw.path.startswith("/openapi/v3"):
                return aiohttp.web.json_response(self._openapi_v3(raw.path))
            api_path = parse_api_path(raw.path)
            if api_path is not None:
                return await self._serve_resource(raw, logged, api_path)
        except ApiError as error:
            return error.response()
        return await super()._handle(request)

    # -- discovery (overrides of kmock's scaffold, from our resource table)

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for rtype in self.store.types:
            versions = groups.setdefault(rtype.group, [])
            versions += [v for v in rtype.versions if v not in versions]
        return groups

    async def _serve_root(self, request: kmock.Request) -> Obj:
        paths = {"/api", "/api/v1", "/apis", "/version"}
        for group, versions in self._groups().items():
            if group:
                paths |= {f"/apis/{group}"} | {f"/apis/{group}/{v}" for v in versions}
        return {"paths": sorted(paths)}

    async def _serve_server_version(self, request: kmock.Request) -> Obj:
        return {
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0",
            "gitCommit": "rollwise-mock",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.23.4",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    async def _serve_api(self, request: kmock.Request) -> Obj:
        raw = request._raw_request
        host = raw.host if raw is not None else "127.0.0.1"
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }

    def _group_entry(self, group: str, versions: list[str]) -> Obj:
        return {
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
        }

    async def _serve_apis(self, request: kmock.Request) -> Obj:
        groups = [self._group_entry(g, vs) for g, vs in sorted(self._groups().items()) if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    async def _serve_group(self, request: kmock.Request) -> Obj:
        assert request.resource is not None
        versions = self._groups().get(request.resource.group or "")
        if not request.resource.group or not versions:
            raise kmock.KubernetesNotFoundError(
                message="the server could not find the requested resource"
            )
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            **self._group_entry(request.resource.group, versions),
        }

    async def _serve_version(self, request: kmock.Request) -> Obj:
        assert request.resource is not None
        group, version = request.resource.group or "", request.resource.version or ""
        rtypes = [t for t in self.store.types if t.group == group and version in t.versions]
        if not rtypes:
            raise kmock.KubernetesNotFoundError(
                message="the server could not find the requested resource"
            )
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        resources: list[Obj] = []
        for rtype in sorted(rtypes, key=lambda t: t.plural):
            resources.append(
                {
                    "name": rtype.plural,
                    "singularName": rtype.kind.lower(),
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": verbs,
                    "shortNames": list(rtype.short_names),
                }
            )
            if rtype.status:
                resources.append(
                    {
                        "name": f"{rtype.plural}/status",
                        "singularName": "",
                        "namespaced": rtype.namespaced,
                        "kind": rtype.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if rtype.scale is not None:
                resources.append(
                    {
                        "name": f"{rtype.plural}/scale",
                        "singularName": "",
                        "namespaced": rtype.namespaced,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def _openapi_v3(self, path: str) -> Obj:
        """OpenAPI v3 documents with no schemas, only each kind's PATCH operation.

        That is what kubectl looks for to learn that the server validates fields itself (the
        `fieldValidation` parameter), so it sends `fieldValidation=Strict` and skips its own
        schema validation; it then patches custom kinds with merge patches and built-in ones
        with strategic merge patches from its compiled-in types.
        """
        groups = self._groups()
        if path.rstrip("/") == "/openapi/v3":
            return {
                "paths": {
                    (f"apis/{group}/{version}" if group else f"api/{version}"): {
                        "serverRelativeURL": f"/openapi/v3/{'apis/' + group if group else 'api'}/"
                        f"{version}?hash={self.store.types.digest()}"
                    }
                    for group, versions in groups.items()
                    for version in versions
                }
            }
        parts = path.strip("/").split("/")[2:]
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        paths: Obj = {}
        for rtype in self.store.types:
            if rtype.group != group or version not in rtype.versions:
                continue
            prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
            scope = "/namespaces/{namespace}" if rtype.namespaced else ""
            paths[f"{prefix}{scope}/{rtype.plural}/{{name}}"] = {
                "patch": {
                    "x-kubernetes-group-version-kind": {
                        "group": group,
                        "version": version,
                        "kind": rtype.kind,
                    },
                    "parameters": [
                        {"name": name, "in": "query", "schema": {"type": "string"}}
                        for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                    ],
                    "responses": {"200": {"description": "OK"}},
                }
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths,
            "components": {"schemas": {}},
        }

    # -- resources

    async def _serve_resource(
        self, raw: aiohttp.web.BaseRequest, logged: LoggedRequest, path: ApiPath
    ) -> aiohttp.web.StreamResponse:
        store = self.store
        rtype = store.types.by_path(path.group, path.version, path.plural)
        if rtype is None or (path.namespace is not None and not rtype.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        method, query = logged.method, logged.query
        if path.name is None and path.subresource is None:
            selector = Selector.parse(query.get("labelSelector"), query.get("fieldSelector"))
            if method == "GET" and query.get("watch") in ("true", "1"):
                return await self._serve_watch(raw, rtype, path, selector, query)
            if method == "GET":
                items = [
                    self._out(obj, rtype, path.version, listed=True)
                    for obj in store.select(rtype, path.namespace, selector)
                ]
                if "as=Table" in raw.headers.get("Accept", ""):
                    return aiohttp.web.json_response(_table(items, store.resource_version))
                return aiohttp.web.json_response(
                    {
                        "kind": f"{rtype.kind}List",
                        "apiVersion": rtype.api_version(path.version),
                        "metadata": {"resourceVersion": str(store.resource_version)},
                        "items": items,
                    }
                )
            if method == "POST":
                if rtype.namespaced and path.namespace is None:
                    raise ApiError(
                        405,
                        "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                    )
                body = self._body_object(logged, rtype, path)
                created = store.create(
                    rtype,
                    body,
                    namespace=path.namespace,
                    api=True,
                    dry_run=_dry_run(query),
                )
                return self._json(created, rtype, path.version, status=201)
            if method == "DELETE":
                doomed = store.select(rtype, path.namespace, selector)
                for obj in doomed:
                    with contextlib.suppress(ApiError):
                        store.delete(
                            rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"]
                        )
                return aiohttp.web.json_response(
                    {
                        "kind": f"{rtype.kind}List",
                        "apiVersion": rtype.api_version(path.version),
                        "metadata": {"resourceVersion": str(store.resource_version)},
                        "items": [self._out(obj, rtype, path.version) for obj in doomed],
                    }
                )
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if path.name is None or (rtype.namespaced and path.namespace is None):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if (
            path.subresource not in (None, "status", "scale")
            or (path.subresource == "status" and not rtype.status)
            or (path.subresource == "scale" and rtype.scale is None)
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name, namespace = path.name, path.namespace
        if method == "GET":
            current = store.find(rtype, namespace, name)
            if current is None:
                raise _not_found(rtype, name)
            if path.subresource == "scale":
                return aiohttp.web.json_response(self._scale(rtype, current))
            if "as=Table" in raw.headers.get("Accept", ""):
                out = self._out(current, rtype, path.version)
                return aiohttp.web.json_response(_table([out], store.resource_version))
            return self._json(current, rtype, path.version)
        if method == "DELETE":
            body = logged.body if isinstance(logged.body, Mapping) else {}
            propagation = (
                query.get("propagationPolicy")
                or body.get("propagationPolicy")
                or ("Orphan" if body.get("orphanDependents") else "Background")
            )
            deleted = store.delete(
                rtype, namespace, name, propagation=propagation, dry_run=_dry_run(query)
            )
            return self._json(deleted, rtype, path.version)
        if method == "PUT":
            if path.subresource == "scale":
                return self._write_scale(rtype, namespace, name, logged.body, patch_type=None)
            body = self._body_object(logged, rtype, path)
            if (body["metadata"].get("name") or name) != name:
                raise _bad_request(
                    f"the name of the object ({body['metadata']['name']}) does "
                    f"not match the name on the URL ({name})"
                )
            body["metadata"]["name"] = name
            if rtype.namespaced:
                body["metadata"]["namespace"] = namespace
            updated = store.update(
                rtype, body, api=True, subresource=path.subresource, dry_run=_dry_run(query)
            )
            return self._json(updated, rtype, path.version)
        if method == "PATCH":
            patch_type = (logged.content_type or "").split(";")[0].strip().lower()
            if patch_type not in PATCH_TYPES:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an "
                    "unknown format - accepted media types include: " + ", ".join(PATCH_TYPES),
                )
            if path.subresource == "scale":
                return self._write_scale(rtype, namespace, name, logged.body, patch_type=patch_type)
            return self._patch(rtype, path, logged, patch_type)
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    def _patch(
        self, rtype: ResourceType, path: ApiPath, logged: LoggedRequest, patch_type: str
    ) -> aiohttp.web.StreamResponse:
        store, name, namespace = self.store, path.name or "", path.namespace
        body = logged.body
        current = store.find(rtype, namespace, name)
        if patch_type == "application/apply-patch+yaml":
            if not logged.query.get("fieldManager"):
                raise _invalid(
                    rtype, name, "fieldManager: Required value: is required for apply patch"
                )
            if not isinstance(body, Mapping):
                raise _bad_request("error decoding YAML: the apply configuration is not an object")
            if current is None:
                if path.subresource is not None:
                    raise _not_found(rtype, name)
                applied = copy.deepcopy(dict(body))
                applied.setdefault("metadata", {})["name"] = name
                created = store.create(
                    rtype, applied, namespace=namespace, api=True, dry_run=_dry_run(logged.query)
                )
                return self._json(created, rtype, path.version, status=201)
        if current is None:
            raise _not_found(rtype, name)
        try:
            if patch_type == "application/json-patch+json":
                patched = json_patch(current, body)
            else:
                if not isinstance(body, Mapping):
                    raise ValueError("a merge patch is a JSON object")
                patched = merge_patch(current, body)
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise _invalid(rtype, name, f"the patch could not be applied: {error}") from None
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise _invalid(rtype, name, "metadata: Required value")
        patched["metadata"]["name"] = name
        if rtype.namespaced:
            patched["metadata"]["namespace"] = namespace
        updated = store.update(
            rtype,
            patched,
            api=True,
            subresource=path.subresource,
            dry_run=_dry_run(logged.query),
        )
        return self._json(updated, rtype, path.version)

    def _scale(self, rtype: ResourceType, obj: Obj) -> Obj:
        assert rtype.scale is not None
        selector = _field(obj, rtype.scale.selector)
        metadata = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                key: metadata[key]
                for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if key in metadata
            },
            "spec": {"replicas": _field(obj, rtype.scale.spec_replicas) or 0},
            "status": {
                "replicas": _field(obj, rtype.scale.status_replicas) or 0,
                "selector": (selector or "")
                if rtype.scale.selector_is_string
                else format_label_selector(selector),
            },
        }

    def _write_scale(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        patch_type: str | None,
    ) -> aiohttp.web.StreamResponse:
        assert rtype.scale is not None
        current = self.store.find(rtype, namespace, name)
        if current is None:
            raise _not_found(rtype, name)
        scale = self._scale(rtype, current)
        try:
            if patch_type == "application/json-patch+json":
                scale = json_patch(scale, body)
            elif patch_type is not None:
                scale = merge_patch(scale, body)
            elif isinstance(body, Mapping):
                scale = copy.deepcopy(dict(body))
            replicas = int(scale["spec"]["replicas"])
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise _invalid(rtype, name, f"spec.replicas: {error}") from None
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv not in (None, "", current["metadata"]["resourceVersion"]):
            raise _conflict(rtype, name)
        updated = copy.deepcopy(current)
        holder = updated
        *parents, last = rtype.scale.spec_replicas.split(".")
        for part in parents:
            holder = holder.setdefault(part, {})
        holder[last] = replicas
        updated = self.store.update(rtype, updated)
        return aiohttp.web.json_response(self._scale(rtype, updated))

    def _body_object(self, logged: LoggedRequest, rtype: ResourceType, path: ApiPath) -> Obj:
        body = logged.body
        if not isinstance(body, dict):
            raise _bad_request("the body of the request is not a JSON object")
        body = copy.deepcopy(body)
        expected = rtype.api_version(path.version)
        if body.get("apiVersion") not in (None, expected) or body.get("kind") not in (
            None,
            rtype.kind,
        ):
            raise _bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not "
                f"match the expected API version ({expected})"
            )
        if not isinstance(body.setdefault("metadata", {}), dict):
            raise _bad_request("metadata must be an object")
        return body

    @staticmethod
    def _out(obj: Obj, rtype: ResourceType, version: str, *, listed: bool = False) -> Obj:
        out = copy.deepcopy(obj)
        out["apiVersion"] = rtype.api_version(version)
        if listed and rtype.builtin:
            # The real server leaves apiVersion and kind out of a built-in list's items.
            out.pop("apiVersion", None)
            out.pop("kind", None)
        return out

    def _json(
        self, obj: Obj, rtype: ResourceType, version: str, *, status: int = 200
    ) -> aiohttp.web.Response:
        return aiohttp.web.json_response(self._out(obj, rtype, version), status=status)

    async def _serve_watch(
        self,
        raw: aiohttp.web.BaseRequest,
        rtype: ResourceType,
        path: ApiPath,
        selector: Selector,
        query: dict[str, str],
    ) -> aiohttp.web.StreamResponse:
        store = self.store
        response = aiohttp.web.StreamResponse(
            status=200, headers={"Content-Type": "application/json"}
        )
        try:
            watcher, backlog = store.watch(
                rtype, path.namespace, selector, query.get("resourceVersion")
            )
        except ApiError as error:
            if error.code != 410:
                raise
            await response.prepare(raw)
            await response.write(
                json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n"
            )
            await response.write_eof()
            return response
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        loop = asyncio.get_running_loop()
        timeout = query.get("timeoutSeconds")
        deadline = loop.time() + float(timeout) if timeout else None

        async def send(event_type: str, obj: Obj) -> None:
            line = {"type": event_type, "object": obj}
            await response.write(json.dumps(line).encode() + b"\n")

        async def bookmark() -> None:
            await send(
                "BOOKMARK",
                {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version(path.version),
                    "metadata": {"resourceVersion": str(store.resource_version)},
                },
            )

        try:
            await response.prepare(raw)
            for change in backlog:
                await self._send_change(send, change, watcher, path.version)
            last_bookmark = loop.time()
            while True:
                now = loop.time()
                if deadline is not None and now >= deadline:
                    if bookmarks:
                        await bookmark()
                    break
                if raw.transport is None or raw.transport.is_closing():
                    break
                if bookmarks and now - last_bookmark >= store.bookmark_interval:
                    await bookmark()
                    last_bookmark = now
                wait = 0.5 if deadline is None else min(0.5, deadline - now)
                try:
                    change = await asyncio.wait_for(watcher.queue.get(), timeout=max(wait, 0))
                except TimeoutError:
                    continue
                if change is None:  # the server is shutting down
                    break
                await self._send_change(send, change, watcher, path.version)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            store.unwatch(watcher)
        return response

    async def _send_change(
        self, send: Callable[[str, Obj], Any], change: Change, watcher: _Watcher, version: str
    ) -> None:
        def visible(obj: Obj | None) -> bool:
            if obj is None:
                return False
            namespace = obj["metadata"].get("namespace")
            if watcher.namespace is not None and namespace != watcher.namespace:
                return False
            return watcher.selector.matches(obj)

        before, after = visible(change.old), visible(change.new)
        if change.new is None:
            event, obj = ("DELETED", change.old) if before else (None, None)
        elif before and after:
            event, obj = "MODIFIED", change.new
        elif after:
            event, obj = "ADDED", change.new
        elif before:
            event, obj = "DELETED", change.new  # stopped matching the selector
        else:
            event, obj = None, None
        if event is not None and obj is not None:
            await send(event, self._out(obj, watcher.rtype, version))


# ------------------------------------------------------------------------------------------------
# The fixture's face


class KubeApi:
    """What the `kube_api` fixture yields; see the module docstring."""

    def __init__(self, handler: ApiServer, server: kmock.Server, directory: Path) -> None:
        self.handler = handler
        self.store = handler.store
        self.url = str(server.url).rstrip("/")
        self.token = handler.token or ""
        self.kubeconfig_path = directory / "kubeconfig"
        self.kubeconfig_path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "mock", "cluster": {"server": self.url}}],
                    "users": [{"name": "mock", "user": {"token": self.token}}],
                    "contexts": [
                        {
                            "name": "mock",
                            "context": {"cluster": "mock", "user": "mock", "namespace": "default"},
                        }
                    ],
                    "current-context": "mock",
                    "preferences": {},
                }
            )
        )

    # -- request log

    @property
    def requests(self) -> list[LoggedRequest]:
        return self.handler.log

    def requests_to(self, method: str | None = None, path_prefix: str = "") -> list[LoggedRequest]:
        return [
            r
            for r in self.handler.log
            if (method is None or r.method == method.upper()) and r.path.startswith(path_prefix)
        ]

    def clear_requests(self) -> None:
        self.handler.log.clear()

    # -- faults

    def fail(
        self, method: str | None, path_prefix: str, *, status: int = 500, times: int | None = 1
    ) -> None:
        self.handler.faults.append(Fault(method, path_prefix, status, 0.0, times))

    def delay(
        self, method: str | None, path_prefix: str, *, seconds: float, times: int | None = None
    ) -> None:
        self.handler.faults.append(Fault(method, path_prefix, None, seconds, times))

    def clear_faults(self) -> None:
        self.handler.faults.clear()

    # -- objects without HTTP

    def _type(self, api_version: str, kind: str) -> ResourceType:
        return self.store.types.by_kind(api_version, kind)

    def create(self, obj: Obj) -> Obj:
        rtype = self._type(obj["apiVersion"], obj["kind"])
        return self.store.create(rtype, obj, namespace=obj.get("metadata", {}).get("namespace"))

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = "default"
    ) -> Obj | None:
        rtype = self._type(api_version, kind)
        found = self.store.find(rtype, namespace, name)
        return None if found is None else ApiServer._out(found, rtype, api_version.split("/")[-1])

    def objects(
        self,
        kind: str,
        *,
        api_version: str | None = None,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Obj]:
        """Objects of `kind` (any group unless `api_version`), all namespaces unless `namespace`."""
        selector = Selector.parse(label_selector, None)
        found: list[Obj] = []
        for rtype in self.store.types:
            if rtype.kind != kind or (
                api_version is not None and rtype.group != api_version.rpartition("/")[0]
            ):
                continue
            found += [copy.deepcopy(o) for o in self.store.select(rtype, namespace, selector)]
        return found

    def replace(self, obj: Obj) -> Obj:
        return self.store.update(self._type(obj["apiVersion"], obj["kind"]), obj)

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
    ) -> Obj:
        rtype = self._type(api_version, kind)
        current = self.store.find(rtype, namespace, name)
        if current is None:
            raise _not_found(rtype, name)
        patched = merge_patch(current, patch)
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.store.update(rtype, patched)

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = "default",
    ) -> None:
        with contextlib.suppress(ApiError):
            self.store.delete(self._type(api_version, kind), namespace, name)

    @property
    def resource_version(self) -> int:
        return self.store.resource_version

    def compact(self) -> None:
        self.store.compact()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:  # noqa: ASYNC109
        async def poll() -> T:
            while True:
                changed = asyncio.ensure_future(self.store.changed())
                try:
                    value = predicate()
                    if value:
                        return value
                    await asyncio.wait_for(asyncio.shield(changed), timeout=0.2)
                except TimeoutError:
                    pass
                finally:
                    changed.cancel()

        return await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def running_kube_api(
    directory: Path, *, history_size: int = 1000, bookmark_interval: float = 2.0
) -> AsyncIterator[KubeApi]:
    """Start the server on 127.0.0.1 (free port) with a kubeconfig in `directory`."""
    store = ObjectStore(history_size=history_size, bookmark_interval=bookmark_interval)
    handler = ApiServer(store=store, token=f"rollwise-test-{uuid.uuid4().hex[:12]}")
    async with handler, kmock.Server(handler) as server:
        try:
            yield KubeApi(handler, server, directory)
        finally:
            store.close_watches()
            await asyncio.sleep(0)


@pytest_asyncio.fixture
async def kube_api(tmp_path: Path) -> AsyncIterator[KubeApi]:
    """A Kubernetes API server over HTTP for one test; see the module docstring."""
    async with running_kube_api(tmp_path) as api:
        yield api


# ------------------------------------------------------------------------------------------------
# kube-controller-manager, as far as tests need it

JOB_RESULT_KEY = "test.rollwise.io/job-result"


def _default_job_result(job: Obj) -> str | None:
    for metadata in (job.get("metadata") or {}, _field(job, "spec.template.metadata") or {}):
        for place in ("labels", "annotations"):
            value = (metadata.get(place) or {}).get(JOB_RESULT_KEY)
            if value is not None:
                return None if value == "Running" else str(value)
    return "Succeeded"


def _without_zeros(status: Obj) -> Obj:
    """Drop zero counters, as the real API's `omitempty` does (readers must default to 0)."""
    return {key: value for key, value in status.items() if value != 0 or key == "replicas"}


class KubeControllerManager:
    """Plays the ReplicaSet, Deployment and Job controllers with direct store writes.

    Writes go straight to the store (as the real controllers' writes are not the client's), so
    they do not appear in the request log but do reach every watch.
    """

    def __init__(
        self,
        kube_api: KubeApi,
        *,
        unready: Callable[[Obj], bool] | None = None,
        job_result: Callable[[Obj], str | None] | None = None,
    ) -> None:
        self.kube_api = kube_api
        self.store = kube_api.store
        self.unready: Callable[[Obj], bool] = unready or (lambda rs: False)
        self.job_result: Callable[[Obj], str | None] = job_result or _default_job_result
        self._task: asyncio.Task[None] | None = None
        self._pod_ips = 0

    async def __aenter__(self) -> KubeControllerManager:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kube-controller-manager")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self.reconcile()
            # A tick too, so that changing `unready` or `job_result` takes effect by itself.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.store.changed(), timeout=0.2)

    def _type(self, api_version: str, kind: str) -> ResourceType:
        return self.store.types.by_kind(api_version, kind)

    def reconcile(self) -> None:
        """One pass over every ReplicaSet, Deployment and Job (no write when nothing changed)."""
        everything = Selector()
        pods_type = self._type("v1", "Pod")
        pods_by_owner: dict[str, list[Obj]] = {}
        for pod in self.store.select(pods_type, None, everything):
            for reference in pod["metadata"].get("ownerReferences") or []:
                pods_by_owner.setdefault(reference.get("uid", ""), []).append(pod)
        rs_type = self._type("apps/v1", "ReplicaSet")
        for rs in self.store.select(rs_type, None, everything):
            self._reconcile_replica_set(rs_type, rs, pods_by_owner.get(rs["metadata"]["uid"], []))
        deployments = self._type("apps/v1", "Deployment")
        for deployment in self.store.select(deployments, None, everything):
            replicas = _field(deployment, "spec.replicas")
            replicas = 1 if replicas is None else int(replicas)
            status = _without_zeros(
                {
                    "observedGeneration": deployment["metadata"].get("generation", 1),
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                }
            )
            status["conditions"] = [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
            ]
            self._write_status(deployments, deployment, status)
        jobs = self._type("batch/v1", "Job")
        for job in self.store.select(jobs, None, everything):
            self._reconcile_job(jobs, job, pods_by_owner.get(job["metadata"]["uid"], []))

    def _write_status(self, rtype: ResourceType, obj: Obj, status: Obj) -> None:
        if obj.get("status") != status and not obj["metadata"].get("deletionTimestamp"):
            updated = copy.deepcopy(obj)
            updated["status"] = status
            with contextlib.suppress(ApiError):
                self.store.update(rtype, updated)

    def _pod_status(self, *, phase: str, ready: bool, containers: list[Obj]) -> Obj:
        now = now_rfc3339()
        self._pod_ips += 1
        flag = "True" if ready else "False"
        return {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": flag},
                {"type": "ContainersReady", "status": flag},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [
                {
                    "name": container.get("name", "main"),
                    "image": container.get("image", ""),
                    "ready": ready,
                    "restartCount": 0,
                    "started": phase == "Running",
                    "state": {"running": {"startedAt": now}}
                    if phase == "Running"
                    else {
                        "terminated": {
                            "exitCode": 0 if phase == "Succeeded" else 1,
                            "reason": "Completed" if phase == "Succeeded" else "Error",
                        }
                    },
                }
                for container in containers
            ],
            "startTime": now,
            "hostIP": "192.168.0.2",
            "podIP": f"10.0.{self._pod_ips // 250}.{self._pod_ips % 250 + 2}",
        }

    def _new_pod(self, owner: Obj, template: Obj, status: Obj) -> Obj:
        metadata = template.get("metadata") or {}
        owner_metadata = owner["metadata"]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{owner_metadata['name']}-",
                "namespace": owner_metadata["namespace"],
                "labels": dict(metadata.get("labels") or {}),
                "annotations": dict(metadata.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": owner["apiVersion"],
                        "kind": owner["kind"],
                        "name": owner_metadata["name"],
                        "uid": owner_metadata["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": "mock-node"},
            "status": status,
        }

    def _reconcile_replica_set(self, rtype: ResourceType, rs: Obj, pods: list[Obj]) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            return
        pods_type = self._type("v1", "Pod")
        template = _field(rs, "spec.template") or {}
        containers = _field(template, "spec.containers") or [{"name": "main"}]
        replicas = _field(rs, "spec.replicas")
        desired = 1 if replicas is None else int(replicas)
        ready = not self.unready(rs)
        pods = sorted(
            pods, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"])
        )
        for pod in pods[desired:][::-1]:  # the newest go first, as the real controller prefers
            with contextlib.suppress(ApiError):
                self.store.delete(pods_type, pod["metadata"]["namespace"], pod["metadata"]["name"])
        pods = pods[:desired]
        for _ in range(desired - len(pods)):
            status = self._pod_status(phase="Running", ready=ready, containers=containers)
            pods.append(self.store.create(pods_type, self._new_pod(rs, template, status)))
        for index, pod in enumerate(pods):
            conditions = _field(pod, "status.conditions") or []
            is_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
            )
            if is_ready != ready:
                updated = copy.deepcopy(pod)
                updated["status"] = self._pod_status(
                    phase="Running", ready=ready, containers=containers
                )
                pods[index] = self.store.update(pods_type, updated)
        count = len(pods)
        status = _without_zeros(
            {
                "replicas": count,
                "fullyLabeledReplicas": count,
                "readyReplicas": count if ready else 0,
                "availableReplicas": count if ready else 0,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }
        )
        self._write_status(rtype, rs, status)

    def _reconcile_job(self, rtype: ResourceType, job: Obj, pods: list[Obj]) -> None:
        conditions = _field(job, "status.conditions") or []
        if any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in conditions
        ) or job["metadata"].get("deletionTimestamp"):
            return
        pods_type = self._type("v1", "Pod")
        template = copy.deepcopy(_field(job, "spec.template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {}).update(
            {
                "job-name": job["metadata"]["name"],
                "batch.kubernetes.io/job-name": job["metadata"]["name"],
                "controller-uid": job["metadata"]["uid"],
            }
        )
        containers = _field(template, "spec.containers") or [{"name": "main"}]
        result = self.job_result(job)
        phase = {"Succeeded": "Succeeded", "Failed": "Failed"}.get(result or "", "Running")
        if not pods:
            status = self._pod_status(phase=phase, ready=phase == "Running", containers=containers)
            pods = [self.store.create(pods_type, self._new_pod(job, template, status))]
        else:
            for pod in pods:
                if _field(pod, "status.phase") != phase:
                    updated = copy.deepcopy(pod)
                    updated["status"] = self._pod_status(
                        phase=phase, ready=phase == "Running", containers=containers
                    )
                    self.store.update(pods_type, updated)
        status: Obj = {"startTime": _field(job, "status.startTime") or now_rfc3339()}
        now = now_rfc3339()
        if phase == "Running":
            status["active"] = 1
        elif phase == "Succeeded":
            status.update(
                succeeded=1,
                completionTime=now,
                conditions=[{"type": "Complete", "status": "True", "lastTransitionTime": now}],
            )
        else:
            status.update(
                failed=1,
                conditions=[
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                        "lastTransitionTime": now,
                    }
                ],
            )
        self._write_status(rtype, job, status)
