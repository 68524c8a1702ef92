"""The controller's transport to the Kubernetes API: raw dicts in, raw dicts out, over aiohttp.

Where it sits: everything in Kubernetes mode (the informers, the executor, the leader election,
the cluster routers through `rollwise.routers.objects.ObjectClient`, `rollwise install`) reads
and writes through `KubeClient`. What a call sends and how its answer reads is `wire` (shared
with the CLI's `BlockingTransport`); where the server is and how to authenticate is `config`.
This module moves the bytes: one aiohttp session (TLS from the kubeconfig, the proxy decided once
by `config` — aiohttp's own environment lookup would read `~/.netrc` and the proxy variables in
a worker thread before every request, a third of the controller's CPU in a wave of updates),
each request through the rate limiter, and connection failures and timeouts as TransientError.
Credentials that are due for renewal (an exec plugin, a token file) are renewed in a worker
thread, so a plugin's second does not stop the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from rollwise.api.errors import ClusterAccessError, TransientError, UserError
from rollwise.platforms.kubernetes.config import ClusterConfig, load_configuration
from rollwise.platforms.kubernetes.ratelimit import DEFAULT_BURST, DEFAULT_QPS, RateLimiter
from rollwise.platforms.kubernetes.wire import (
    ApiStatusError,
    GoneError,
    ObjectList,
    Request,
    Requests,
    WatchEvent,
    read_answer,
    read_watch_line,
)

if TYPE_CHECKING:
    from rollwise.routers.objects import ObjectClient

__all__ = ["ApiStatusError", "GoneError", "KubeClient", "ObjectList", "WatchEvent"]

RawObject = dict[str, Any]

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=30)
CONNECTIONS = 100  # to the API server at once (watches hold one each), kubernetes-client's default


class KubeClient:
    """A Kubernetes API client on raw dicts; implements `rollwise.routers.objects.ObjectClient`."""

    def __init__(self, cluster: ClusterConfig, *, limiter: RateLimiter) -> None:
        self._cluster = cluster
        self._endpoint = cluster.endpoint
        self._requests = Requests(cluster.namespace)
        self.namespace = cluster.namespace
        self._limiter = limiter
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=CONNECTIONS, ssl=cluster.endpoint.ssl_context or False
            ),
            trust_env=False,
            read_bufsize=2**21,  # a watch event can be as large as an object (etcd: 1.5 MiB)
        )

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
        cluster = load_configuration(kubeconfig=kubeconfig, context=context)
        return cls(cluster, limiter=RateLimiter(qps, burst))

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the one place requests are made

    async def _send(
        self, request: Request, limits: aiohttp.ClientTimeout = REQUEST_TIMEOUT
    ) -> aiohttp.ClientResponse:
        await self._limiter.acquire()
        endpoint = self._endpoint
        credentials = self._cluster.credentials
        try:
            if credentials.due():
                # an exec plugin (`aws eks get-token`: about a second) or the token file, off
                # the loop; not every request: a hand-off to a thread each cost a third of the CPU
                authentication = await asyncio.to_thread(credentials.headers)
            else:
                authentication = credentials.headers()
        except UserError as error:  # the plugin failed, the token file went away
            raise ClusterAccessError(str(error)) from error
        try:
            return await self._session.request(
                request.method,
                endpoint.url + request.target,
                data=request.payload(),
                headers=[*request.headers().items(), *authentication],
                proxy=endpoint.proxy,
                server_hostname=endpoint.server_hostname,
                timeout=limits,
            )
        except aiohttp.ClientConnectorCertificateError as error:
            raise ClusterAccessError(
                f"the Kubernetes API at {endpoint.url} is not trusted: {error.certificate_error} "
                f"(check certificate-authority in {self._cluster.source})"
            ) from error
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise TransientError(
                f"cannot reach the Kubernetes API at {endpoint.url}: {error}"
            ) from error

    async def _call(self, request: Request) -> Any:
        response = await self._send(request)
        try:
            async with response:
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise TransientError(f"the Kubernetes API broke off: {error}") from error
        return read_answer(request, response.status, text)

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
        result: RawObject | None = await self._call(
            self._requests.get(api_version, kind, name, namespace, subresource)
        )
        return result

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
        result: ObjectList = await self._call(
            self._requests.list(
                api_version,
                kind,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
            )
        )
        return result

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
        request = self._requests.watch(
            api_version,
            kind,
            namespace,
            resource_version=resource_version,
            label_selector=label_selector,
            field_selector=field_selector,
            timeout_seconds=timeout_seconds,
        )
        # No total timeout: the server ends the watch (timeoutSeconds); a silent connection is
        # given up after the server's timeout and a margin.
        read_timeout = None if timeout_seconds is None else timeout_seconds + 30
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
        response = await self._send(request, timeout)
        async with response:
            if response.status >= 400:
                read_answer(request, response.status, await response.text())
            try:
                async for line in response.content:
                    event = read_watch_line(request, line)
                    if event is not None:
                        yield event
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                raise TransientError(f"the watch of {request.what} broke off: {error}") from error

    async def create(self, obj: RawObject) -> RawObject:
        """Create `obj`; ConflictError if it exists already."""
        result: RawObject = await self._call(self._requests.create(obj))
        return result

    async def replace(self, obj: RawObject) -> RawObject:
        """PUT `obj` whole; ConflictError if its metadata.resourceVersion is stale."""
        result: RawObject = await self._call(self._requests.replace(obj))
        return result

    async def replace_status(self, obj: RawObject) -> RawObject:
        """PUT `obj` to its status subresource (only status changes); ConflictError if stale."""
        result: RawObject = await self._call(self._requests.replace(obj, subresource="status"))
        return result

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
        result: RawObject = await self._call(
            self._requests.merge_patch(
                api_version, kind, name, namespace, patch, subresource=subresource
            )
        )
        return result

    async def apply(
        self, obj: RawObject, *, field_manager: str = "rollwise", force: bool = True
    ) -> RawObject:
        """Server-side apply of `obj` (creates it when missing)."""
        result: RawObject = await self._call(
            self._requests.apply(obj, field_manager=field_manager, force=force)
        )
        return result

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
        await self._call(
            self._requests.delete(api_version, kind, name, namespace, propagation=propagation)
        )


if TYPE_CHECKING:  # mypy checks that KubeClient is what the cluster routers patch through

    def _as_object_client(client: KubeClient) -> ObjectClient:
        return client
