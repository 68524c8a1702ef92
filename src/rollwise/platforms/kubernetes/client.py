"""The one module that talks to the Kubernetes API: raw dicts in, raw dicts out.

Where it sits: everything in Kubernetes mode (the informers, the executor, the leader election,
the CLI's cluster store, the cluster routers through `rollwise.routers.objects.ObjectClient`)
reads and writes through `KubeClient`. It is a thin adapter over kubernetes_asyncio: the
library loads the kubeconfig, holds TLS and credentials and moves the bytes
(`ApiClient.call_api` with `_preload_content=False`); this module builds the paths from
`resources`, sets every content type itself (a dict body given to the library's generated
patch methods goes out as a JSON Patch; here merge patches are always
`application/merge-patch+json` and applies `application/apply-patch+yaml`), passes each request
through the rate limiter, and converts failures into rollwise's exception tree where they enter,
keeping the cause:

    404 -> NotFoundError (get returns None, delete ignores it)   409 -> ConflictError
    410 -> GoneError (watch from a compacted resourceVersion: relist)
    400, 422 -> UserError with the server's message             401, 403 -> UserError (RBAC)
    429, 5xx, connection failures, timeouts -> TransientError
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from rollwise.api.errors import (
    ConflictError,
    NotFoundError,
    RollwiseError,
    TransientError,
    UserError,
)
from rollwise.platforms.kubernetes.ratelimit import DEFAULT_BURST, DEFAULT_QPS, RateLimiter
from rollwise.platforms.kubernetes.resources import Resource, resource_for

if TYPE_CHECKING:
    from rollwise.routers.objects import ObjectClient

RawObject = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON = "application/json"


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


def _status_error(status: int, text: str) -> ApiStatusError:
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
        return UserError(
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


def _look_up_the_environment_once(api_client: Any) -> None:
    """Give kubernetes_asyncio's connection pool to a session that does not consult the
    environment before every request.

    The library's session is made with `trust_env=True`, so aiohttp reads `~/.netrc` and the
    proxy variables in a worker thread before *each* request: two hand-offs to a thread per
    request, which cost the controller about a third of its CPU in a wave of 3,000 rollout
    updates (`python -m bench kube-scale`). The proxy (`HTTPS_PROXY`, `NO_PROXY`...) is looked
    up here once instead, when the kubeconfig names none; `.netrc` is not consulted (the
    kubeconfig's credentials are the ones that count, and aiohttp refuses a netrc login beside
    the bearer token's Authorization header anyway).
    """
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    rest = api_client.rest_client
    if not rest.proxy:
        try:
            proxy, proxy_auth = get_env_proxy_for_url(URL(api_client.configuration.host))
        except LookupError:
            pass
        else:
            rest.proxy = str(proxy)
            if proxy_auth is not None:
                rest.proxy_headers = {
                    **(rest.proxy_headers or {}),
                    "Proxy-Authorization": proxy_auth.encode(),
                }
    trusting = rest.pool_manager
    rest.pool_manager = aiohttp.ClientSession(
        connector=trusting.connector,
        trust_env=False,
        read_bufsize=2**21,  # as the library's: a watch event can be as large as an object
    )
    trusting.detach()


class KubeClient:
    """A Kubernetes API client on raw dicts; implements `rollwise.routers.objects.ObjectClient`."""

    def __init__(self, api_client: Any, *, namespace: str, limiter: RateLimiter) -> None:
        self._api = api_client
        self.namespace = namespace
        self._limiter = limiter

    @classmethod
    async def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        qps: float = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
    ) -> KubeClient:
        """Connect through `kubeconfig`, else $KUBECONFIG, ~/.kube/config, else in-cluster."""
        from kubernetes_asyncio import client

        from rollwise.platforms.kubernetes.config import load_configuration

        cluster = await load_configuration(kubeconfig=kubeconfig, context=context)
        api_client = client.ApiClient(cluster.configuration)
        api_client.user_agent = "rollwise"
        _look_up_the_environment_once(api_client)
        return cls(api_client, namespace=cluster.namespace, limiter=RateLimiter(qps, burst))

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the one place requests are made

    def _namespace(self, resource: Resource, namespace: str | None) -> str | None:
        if not resource.namespaced:
            return None
        return namespace or self.namespace

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = JSON,
        read_timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        await self._limiter.acquire()
        headers = {"Accept": JSON, "Content-Type": content_type}
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=read_timeout,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            host = self._api.configuration.host
            raise TransientError(f"cannot reach the Kubernetes API at {host}: {error}") from error
        return response

    async def _call(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        what: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = JSON,
    ) -> RawObject:
        response = await self._send(method, path, query=query, body=body, content_type=content_type)
        try:
            async with response:
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise TransientError(f"the Kubernetes API broke off: {error}") from error
        if response.status >= 400:
            cause = _status_error(response.status, text)
            raise error_for(cause, verb=verb, what=what) from cause
        try:
            result: RawObject = json.loads(text)
        except ValueError as error:
            raise TransientError(f"the Kubernetes API answered no JSON to {verb} {what}") from error
        return result

    @staticmethod
    def _what(resource: Resource, name: str | None, namespace: str | None) -> str:
        if name is None:
            where = f" in {namespace}" if namespace else ""
            return f"{resource.display}{where}"
        return f"{resource.display} {namespace + '/' if namespace else ''}{name}"

    # -- ObjectClient and more

    async def get(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        *,
        subresource: str | None = None,
    ) -> RawObject | None:
        """The object (or its `subresource`, e.g. "scale"), or None when it does not exist."""
        resource = resource_for(api_version, kind)
        namespace = self._namespace(resource, namespace)
        try:
            obj = await self._call(
                "GET",
                resource.object_path(name, namespace, subresource),
                verb="get",
                what=self._what(resource, name, namespace),
            )
        except NotFoundError:
            return None
        return obj if subresource else _with_type(obj, resource)

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        """Objects of `kind` in `namespace` (None: all namespaces), the list's resourceVersion."""
        resource = resource_for(api_version, kind)
        query = [("labelSelector", label_selector)] if label_selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        body = await self._call(
            "GET",
            resource.collection_path(namespace),
            verb="list",
            what=self._what(resource, None, namespace),
            query=query,
        )
        items = [_with_type(item, resource) for item in body.get("items") or []]
        return ObjectList(items, str((body.get("metadata") or {}).get("resourceVersion", "")))

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        """Changes after `resource_version` until the server ends the watch; GoneError on 410.

        Yields BOOKMARK events too (their object carries only the resourceVersion). Close the
        iterator (`contextlib.aclosing`) when leaving early, so that the connection is released.
        """
        resource = resource_for(api_version, kind)
        what = self._what(resource, None, namespace)
        query = [("watch", "1"), ("allowWatchBookmarks", "true")]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if timeout_seconds is not None:
            query.append(("timeoutSeconds", str(timeout_seconds)))
        # No total timeout: the server ends the watch (timeoutSeconds); a silent connection is
        # given up after the server's timeout and a margin.
        read_timeout = None if timeout_seconds is None else timeout_seconds + 30
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
        response = await self._send(
            "GET", resource.collection_path(namespace), query=query, read_timeout=timeout
        )
        async with response:
            if response.status >= 400:
                cause = _status_error(response.status, await response.text())
                raise error_for(cause, verb="watch", what=what) from cause
            try:
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    event_type, obj = event.get("type"), event.get("object") or {}
                    if event_type == "ERROR":
                        cause = ApiStatusError(
                            int(obj.get("code") or 500),
                            str(obj.get("reason") or ""),
                            str(obj.get("message") or "watch error"),
                        )
                        raise error_for(cause, verb="watch", what=what) from cause
                    yield WatchEvent(str(event_type), _with_type(obj, resource))
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                raise TransientError(f"the watch of {what} broke off: {error}") from error
            except ValueError as error:
                raise TransientError(f"the watch of {what} sent no JSON: {error}") from error

    async def create(self, obj: RawObject) -> RawObject:
        """Create `obj`; ConflictError if it exists already."""
        resource = resource_for(obj["apiVersion"], obj["kind"])
        metadata = obj.get("metadata") or {}
        namespace = self._namespace(resource, metadata.get("namespace"))
        name = metadata.get("name") or f"{metadata.get('generateName', '')}*"
        created = await self._call(
            "POST",
            resource.collection_path(namespace),
            verb="create",
            what=self._what(resource, name, namespace),
            body=obj,
        )
        return _with_type(created, resource)

    async def _put(self, obj: RawObject, *, subresource: str | None) -> RawObject:
        resource = resource_for(obj["apiVersion"], obj["kind"])
        metadata = obj.get("metadata") or {}
        namespace = self._namespace(resource, metadata.get("namespace"))
        name = metadata["name"]
        replaced = await self._call(
            "PUT",
            resource.object_path(name, namespace, subresource),
            verb="replace" if subresource is None else f"replace the {subresource} of",
            what=self._what(resource, name, namespace),
            body=obj,
        )
        return _with_type(replaced, resource)

    async def replace(self, obj: RawObject) -> RawObject:
        """PUT `obj` whole; ConflictError if its metadata.resourceVersion is stale."""
        return await self._put(obj, subresource=None)

    async def replace_status(self, obj: RawObject) -> RawObject:
        """PUT `obj` to its status subresource (only status changes); ConflictError if stale."""
        return await self._put(obj, subresource="status")

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> RawObject:
        """RFC 7386 merge patch (None deletes a key, lists are replaced); NotFoundError."""
        resource = resource_for(api_version, kind)
        namespace = self._namespace(resource, namespace)
        patched = await self._call(
            "PATCH",
            resource.object_path(name, namespace, subresource),
            verb="patch" if subresource is None else f"patch the {subresource} of",
            what=self._what(resource, name, namespace),
            body=dict(patch),
            content_type=MERGE_PATCH,
        )
        return patched if subresource == "scale" else _with_type(patched, resource)

    async def apply(
        self, obj: RawObject, *, field_manager: str = "rollwise", force: bool = True
    ) -> RawObject:
        """Server-side apply of `obj` (creates it when missing)."""
        resource = resource_for(obj["apiVersion"], obj["kind"])
        metadata = obj.get("metadata") or {}
        namespace = self._namespace(resource, metadata.get("namespace"))
        name = metadata["name"]
        query = [("fieldManager", field_manager)] + ([("force", "true")] if force else [])
        applied = await self._call(
            "PATCH",
            resource.object_path(name, namespace),
            verb="apply",
            what=self._what(resource, name, namespace),
            query=query,
            body=obj,  # JSON is YAML: the library serialises it as JSON
            content_type=APPLY_PATCH,
        )
        return _with_type(applied, resource)

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        *,
        propagation: str = "Background",
    ) -> None:
        """Delete the object (dependents per `propagation`); a missing one is not an error."""
        resource = resource_for(api_version, kind)
        namespace = self._namespace(resource, namespace)
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            await self._call(
                "DELETE",
                resource.object_path(name, namespace),
                verb="delete",
                what=self._what(resource, name, namespace),
                body=options,
            )
        except NotFoundError:
            return


if TYPE_CHECKING:  # mypy checks that KubeClient is what the cluster routers patch through

    def _as_object_client(client: KubeClient) -> ObjectClient:
        return client
