"""What each Kubernetes API call sends and how its answer is read, for both transports.

Where it sits: `KubeClient` (aiohttp, the controller) and `BlockingTransport` (http.client, the
CLI) move bytes; everything else about a call is here, on the standard library: the path from
`resources`, the query, the JSON body and its content type (merge patches are always
`application/merge-patch+json`, applies `application/apply-patch+yaml`, never JSON Patch), and
the reading of the answer, where failures become rollwise's exception tree, keeping the cause:

    404 -> NotFoundError (get answers None, delete ignores it)   409 -> ConflictError
    410 -> GoneError (watch from a compacted resourceVersion: relist)
    400, 422 -> UserError with the server's message             401, 403 -> UserError (RBAC)
    429, 5xx, connection failures, timeouts -> TransientError (the transports raise those)
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from rollwise.api.errors import (
    ClusterAccessError,
    ConflictError,
    NotFoundError,
    RollwiseError,
    TransientError,
    UserError,
)
from rollwise.platforms.kubernetes.resources import Resource, resource_for

RawObject = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON = "application/json"
USER_AGENT = "rollwise"


class GoneError(TransientError):
    """The resourceVersion a watch started from is no longer kept: list again, then watch."""


class ApiStatusError(Exception):
    """The API server's answer, kept as the `__cause__` of the rollwise error raised for it."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ObjectList:
    items: list[RawObject]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: RawObject


class Answer(enum.Enum):
    OBJECT = "object"  # an object of the request's resource (apiVersion and kind added)
    RAW = "raw"  # a subresource (scale, status of a kind without one): as sent
    LIST = "list"  # an ObjectList
    NOTHING = "nothing"  # delete: no value


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below the server's URL
    verb: str  # for messages: "cannot {verb} {what}"
    what: str
    resource: Resource
    answer: Answer = Answer.OBJECT
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None
    content_type: str = JSON
    missing_ok: bool = False  # a 404 answers None

    @property
    def target(self) -> str:
        """Path and query string."""
        return f"{self.path}?{urlencode(self.query)}" if self.query else self.path

    def payload(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body).encode()

    def headers(self) -> dict[str, str]:
        return {"Accept": JSON, "Content-Type": self.content_type, "User-Agent": USER_AGENT}


def status_error(status: int, text: str) -> ApiStatusError:
    reason, message = "", text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, Mapping) and body.get("kind") == "Status":
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or message)
    return ApiStatusError(status, reason, message or f"HTTP {status}")


def error_for(cause: ApiStatusError, *, verb: str, what: str) -> RollwiseError:
    """The rollwise error for an API failure of `verb` on `what` (raise it `from cause`)."""
    status, message = cause.status, cause.message
    if status == 404:
        return NotFoundError(f"{what} not found")
    if status == 409:
        return ConflictError(f"cannot {verb} {what}: {message}")
    if status == 410:
        return GoneError(f"cannot {verb} {what}: {message}")
    if status in (401, 403):
        return ClusterAccessError(
            f"not allowed to {verb} {what}: {message} (check the credentials and the RBAC "
            "rules of the account rollwise runs as)"
        )
    if status == 429 or status >= 500:
        return TransientError(f"the Kubernetes API could not {verb} {what} now: {message}")
    return UserError(f"the Kubernetes API refused to {verb} {what}: {message}")


def _with_type(obj: RawObject, resource: Resource) -> RawObject:
    # List items of built-in kinds come without apiVersion and kind; everything we hand out
    # carries them, so that callers can route an object by its own fields.
    obj.setdefault("apiVersion", resource.api_version)
    obj.setdefault("kind", resource.kind)
    return obj


def read_answer(request: Request, status: int, text: str) -> Any:
    """The value of a finished request (see `Answer`), or the rollwise error for its failure."""
    if status >= 400:
        cause = status_error(status, text)
        error = error_for(cause, verb=request.verb, what=request.what)
        if request.missing_ok and isinstance(error, NotFoundError):
            return None
        raise error from cause
    if request.answer is Answer.NOTHING:
        return None
    try:
        body = json.loads(text)
    except ValueError as error:
        raise TransientError(
            f"the Kubernetes API answered no JSON to {request.verb} {request.what}"
        ) from error
    if request.answer is Answer.OBJECT:
        return _with_type(body, request.resource)
    if request.answer is Answer.LIST:
        items = [_with_type(item, request.resource) for item in body.get("items") or []]
        return ObjectList(items, str((body.get("metadata") or {}).get("resourceVersion", "")))
    return body


def read_watch_line(request: Request, line: bytes) -> WatchEvent | None:
    """One line of a watch stream as an event (None for a blank line); errors as rollwise's."""
    if not line.strip():
        return None
    try:
        event = json.loads(line)
    except ValueError as error:
        raise TransientError(f"the watch of {request.what} sent no JSON: {error}") from error
    event_type, obj = event.get("type"), event.get("object") or {}
    if event_type == "ERROR":
        cause = ApiStatusError(
            int(obj.get("code") or 500),
            str(obj.get("reason") or ""),
            str(obj.get("message") or "watch error"),
        )
        raise error_for(cause, verb="watch", what=request.what) from cause
    return WatchEvent(str(event_type), _with_type(obj, request.resource))


class Requests:
    """Builds each call's `Request`; a namespaced kind without a namespace gets `namespace`."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _namespace(self, resource: Resource, namespace: str | None) -> str | None:
        if not resource.namespaced:
            return None
        return namespace or self.namespace

    @staticmethod
    def _what(resource: Resource, name: str | None, namespace: str | None) -> str:
        if name is None:
            where = f" in {namespace}" if namespace else ""
            return f"{resource.display}{where}"
        return f"{resource.display} {namespace + '/' if namespace else ''}{name}"

    def get(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        subresource: str | None = None,
    ) -> Request:
        resource = resource_for(api_version, kind)
        namespace = self._namespace(resource, namespace)
        return Request(
            "GET",
            resource.object_path(name, namespace, subresource),
            "get",
            self._what(resource, name, namespace),
            resource,
            Answer.RAW if subresource else Answer.OBJECT,
            missing_ok=True,
        )

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Request:
        """All namespaces when `namespace` is None."""
        resource = resource_for(api_version, kind)
        return Request(
            "GET",
            resource.collection_path(namespace),
            "list",
            self._what(resource, None, namespace),
            resource,
            Answer.LIST,
            query=_selectors(label_selector, field_selector),
        )

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
    ) -> Request:
        resource = resource_for(api_version, kind)
        query = [("watch", "1"), ("allowWatchBookmarks", "true")]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        query.extend(_selectors(label_selector, field_selector))
        if timeout_seconds is not None:
            query.append(("timeoutSeconds", str(timeout_seconds)))
        return Request(
            "GET",
            resource.collection_path(namespace),
            "watch",
            self._what(resource, None, namespace),
            resource,
            query=tuple(query),
        )

    def _on_object(
        self,
        method: str,
        obj: RawObject,
        verb: str,
        *,
        subresource: str | None = None,
        collection: bool = False,
        query: tuple[tuple[str, str], ...] = (),
        content_type: str = JSON,
    ) -> Request:
        resource = resource_for(obj["apiVersion"], obj["kind"])
        metadata = obj.get("metadata") or {}
        namespace = self._namespace(resource, metadata.get("namespace"))
        name = metadata.get("name") or f"{metadata.get('generateName', '')}*"
        path = (
            resource.collection_path(namespace)
            if collection
            else resource.object_path(name, namespace, subresource)
        )
        return Request(
            method,
            path,
            verb,
            self._what(resource, name, namespace),
            resource,
            query=query,
            body=obj,
            content_type=content_type,
        )

    def create(self, obj: RawObject) -> Request:
        return self._on_object("POST", obj, "create", collection=True)

    def replace(self, obj: RawObject, *, subresource: str | None = None) -> Request:
        verb = "replace" if subresource is None else f"replace the {subresource} of"
        return self._on_object("PUT", obj, verb, subresource=subresource)

    def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> Request:
        resource = resource_for(api_version, kind)
        namespace = self._namespace(resource, namespace)
        return Request(
            "PATCH",
            resource.object_path(name, namespace, subresource),
            "patch" if subresource is None else f"patch the {subresource} of",
            self._what(resource, name, namespace),
            resource,
            Answer.RAW if subresource == "scale" else Answer.OBJECT,
            body=dict(patch),
            content_type=MERGE_PATCH,
        )

    def apply(self, obj: RawObject, *, field_manager: str, force: bool) -> Request:
        query = (("fieldManager", field_manager),) + ((("force", "true"),) if force else ())
        # JSON is YAML: the body goes out as JSON under the apply content type
        return self._on_object("PATCH", obj, "apply", query=query, content_type=APPLY_PATCH)

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None, *, propagation: str
    ) -> Request:
        resource = resource_for(api_version, kind)
        namespace = self._namespace(resource, namespace)
        return Request(
            "DELETE",
            resource.object_path(name, namespace),
            "delete",
            self._what(resource, name, namespace),
            resource,
            Answer.NOTHING,
            body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation},
            missing_ok=True,
        )


def _selectors(label: str | None, field: str | None) -> tuple[tuple[str, str], ...]:
    query = [("labelSelector", label)] if label else []
    if field:
        query.append(("fieldSelector", field))
    return tuple(query)
