"""The dashboard's web application: Argo's dashboard API, live updates and the page.

Where it sits: a face, like the CLI. `rollwise dashboard` serves it alone; `rollwise controller`
serves it beside the loop (the CLI builds it and hands it to the controller, which may not
import this layer). It reads and writes the store the CLI uses and writes exactly the patches
of `rollwise.core.commands`, so a button does what the matching `rollwise` verb does.

Paths mirror Argo's (reference 5.3): `GET /api/v1/rollouts/{ns}/info` (+ `/info/watch`),
`GET /api/v1/rollouts/{ns}/{name}/info` (+ `/watch`), `GET /api/v1/namespace`,
`GET /api/v1/version`, `GET /api/v1/settings` (whether actions are on, so the page can
disable its buttons), and `PUT .../{name}/promote|abort|retry|restart`,
`.../{name}/undo/{revision}`, `.../{name}/set/{container}/{image}`. Watches are server-sent
events: the handler polls the store's change counters and sends the new payload when they move.

Cross-site safety, since a browser on the same machine visits other sites too:
- actions need a token in a header (`Authorization: Bearer` or `X-Rollwise-Token`), never a
  cookie, so a page elsewhere cannot borrow the browser's credentials; `read_only` refuses them;
- the Host header must name a loopback host (DNS rebinding), and a request that states an
  Origin must come from this very origin; no CORS headers are ever sent;
- the page's inline script and style are allowed by their hashes, nothing else
  (`default-src 'self'`), and it may not be framed.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import hashlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import timedelta
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from rollwise import __version__
from rollwise.api.errors import ConflictError, NotFoundError, UserError
from rollwise.core.timestamps import Clock
from rollwise.dashboard.payloads import Json, rollout_detail, rollout_summary
from rollwise.views.info import owned_by

Raw = dict[str, Any]
POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
TOKEN_HEADER = "X-Rollwise-Token"


class DashboardStore(Protocol):
    """What the dashboard needs of a store (`SqliteStore` has it)."""

    def get(self, kind: str, name: str, namespace: str = ...) -> Raw | None: ...

    def list(self, kind: str, namespace: str | None = ...) -> list[Raw]: ...

    def revision(self) -> int: ...

    def event_counter(self) -> int: ...

    def events(
        self, *, kind: str | None = ..., name: str | None = ..., namespace: str | None = ...
    ) -> builtins.list[Raw]: ...

    def patch(
        self, kind: str, name: str, namespace: str, *, merge: Any, status: bool = ...
    ) -> Raw: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...

    def close(self) -> None: ...


StoreFactory = Callable[[], DashboardStore]
TemplateCheck = Callable[[Raw], list[str]]

_STORE = web.AppKey("store", DashboardStore)
_CLOSING = web.AppKey("closing", asyncio.Event)
_PAGE = web.AppKey("page", tuple)


def new_token() -> str:
    """A random token for the actions (printed when the dashboard starts)."""
    return secrets.token_urlsafe(24)


def _inline_hashes(page: str, tag: str) -> list[str]:
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
        for b in blocks
    ]


def _load_page() -> tuple[bytes, str]:
    page = resources.files("rollwise.dashboard").joinpath("static/index.html").read_text("utf-8")
    policy = (
        "default-src 'self'; "
        f"script-src 'self' {' '.join(_inline_hashes(page, 'script'))}; "
        f"style-src 'self' {' '.join(_inline_hashes(page, 'style'))}; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    )
    return page.encode(), policy


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def create_app(
    store_factory: StoreFactory,
    *,
    token: str | None,
    read_only: bool,
    clock: Clock,
    allowed_hosts: Collection[str] = LOOPBACK_HOSTS,
    check_template: TemplateCheck | None = None,
) -> web.Application:
    """The dashboard as an aiohttp application.

    `token`: what actions must present (None or empty: actions are refused, as with
    `read_only`).
    `check_template`: refusals of a pod template this platform cannot run (local mode's image
    table), applied to `set image` as the CLI does.
    """
    page, policy = _load_page()

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if _host_name(request.host) not in allowed_hosts:
            raise web.HTTPMisdirectedRequest(text="unknown host\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="cross-origin request refused\n")
        if request.method not in ("GET", "HEAD"):
            if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
                raise web.HTTPForbidden(text="cross-site request refused\n")
            if read_only or not token:  # an empty token would match an absent header
                raise web.HTTPForbidden(text="the dashboard is read-only\n")
            given = request.headers.get(TOKEN_HEADER) or ""
            bearer = request.headers.get("Authorization", "")
            if bearer.startswith("Bearer "):
                given = given or bearer[len("Bearer ") :]
            if not secrets.compare_digest(given.encode(), token.encode()):
                raise web.HTTPUnauthorized(text="a valid token is required\n")
        try:
            response = await handler(request)
        except NotFoundError as error:
            raise web.HTTPNotFound(
                text=json.dumps({"error": str(error)}), content_type="application/json"
            ) from error
        except ConflictError as error:
            raise web.HTTPConflict(
                text=json.dumps({"error": str(error)}), content_type="application/json"
            ) from error
        except UserError as error:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": str(error)}), content_type="application/json"
            ) from error
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    app = web.Application(middlewares=[guard])
    app[_CLOSING] = asyncio.Event()
    app[_PAGE] = (page,)

    async def open_store(app: web.Application) -> None:
        app[_STORE] = await asyncio.to_thread(store_factory)

    async def close_streams(app: web.Application) -> None:
        app[_CLOSING].set()

    async def close_store(app: web.Application) -> None:
        if _STORE in app:
            app[_STORE].close()

    app.on_startup.append(open_store)
    app.on_shutdown.append(close_streams)
    app.on_cleanup.append(close_store)
    handlers = _Handlers(app, clock=clock, check_template=check_template)
    actions_off = read_only or not token

    async def settings(request: web.Request) -> web.Response:
        return web.json_response({"readOnly": actions_off})

    prefix = "/api/v1/rollouts/{ns}"
    app.router.add_get("/", handlers.index)
    app.router.add_get("/rollouts", handlers.index)
    app.router.add_get("/api/v1/version", handlers.version)
    app.router.add_get("/api/v1/namespace", handlers.namespaces)
    app.router.add_get("/api/v1/settings", settings)
    app.router.add_get(prefix + "/info", handlers.list_info)
    app.router.add_get(prefix + "/info/watch", handlers.watch_list)
    app.router.add_get(prefix + "/{name}/info", handlers.rollout_info)
    app.router.add_get(prefix + "/{name}/info/watch", handlers.watch_rollout)
    for action in ("promote", "abort", "retry", "restart"):
        app.router.add_put(prefix + "/{name}/" + action, handlers.action)
        app.router.add_post(prefix + "/{name}/" + action, handlers.action)
    app.router.add_put(prefix + "/{name}/undo/{revision}", handlers.undo)
    app.router.add_put(prefix + "/{name}/set/{container}/{image:.+}", handlers.set_image)
    return app


class _Handlers:
    def __init__(
        self, app: web.Application, *, clock: Clock, check_template: TemplateCheck | None
    ) -> None:
        self.app = app
        self.clock = clock
        self.check_template = check_template

    @property
    def store(self) -> DashboardStore:
        return self.app[_STORE]

    # --- reading -----------------------------------------------------------------------------

    def _list(self, namespace: str) -> Json:
        store, now = self.store, self.clock.now()
        rollouts = store.list("Rollout", namespace)
        replica_sets = store.list("ReplicaSet", namespace)
        pods = store.list("Pod", namespace)
        return {
            "namespace": namespace,
            "rollouts": [
                rollout_summary(rollout, replica_sets, pods, now=now) for rollout in rollouts
            ],
        }

    def _detail(self, namespace: str, name: str) -> Json:
        store = self.store
        rollout = store.get("Rollout", name, namespace)
        if rollout is None:
            raise NotFoundError(f"rollout '{name}' not found in namespace '{namespace}'")
        return rollout_detail(
            rollout,
            store.list("ReplicaSet", namespace),
            store.list("Pod", namespace),
            store.list("AnalysisRun", namespace),
            store.events(kind="Rollout", name=name, namespace=namespace),
            now=self.clock.now(),
        )

    async def index(self, request: web.Request) -> web.Response:
        (page,) = self.app[_PAGE]
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"rolloutsVersion": f"rollwise {__version__}"})

    async def namespaces(self, request: web.Request) -> web.Response:
        rollouts = await asyncio.to_thread(self.store.list, "Rollout", None)
        found = {str((r.get("metadata") or {}).get("namespace") or "default") for r in rollouts}
        return web.json_response(
            {"namespace": "default", "availableNamespaces": sorted(found | {"default"})}
        )

    async def list_info(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(self._list, request.match_info["ns"]))

    async def rollout_info(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        return web.json_response(await asyncio.to_thread(self._detail, ns, name))

    async def watch_list(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info["ns"]
        return await self._stream(request, lambda: self._list(ns))

    async def watch_rollout(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["ns"], request.match_info["name"]
        return await self._stream(request, lambda: self._detail(ns, name))

    def _counters(self) -> tuple[int, int]:
        return self.store.revision(), self.store.event_counter()

    async def _stream(self, request: web.Request, read: Callable[[], Json]) -> web.StreamResponse:
        """Server-sent events: the payload now, then again whenever the store changed."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        closing = self.app[_CLOSING]
        seen: tuple[int, int] | None = None
        idle = 0.0
        await response.prepare(request)
        try:
            while not closing.is_set():
                counters = await asyncio.to_thread(self._counters)
                if counters != seen:
                    seen = counters
                    try:
                        payload = await asyncio.to_thread(read)
                    except NotFoundError as error:
                        payload = {"error": str(error)}
                    await response.write(f"data: {json.dumps(payload)}\n\n".encode())
                    idle = 0.0
                elif idle >= KEEPALIVE_SECONDS:
                    await response.write(b": keep-alive\n\n")
                    idle = 0.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closing.wait(), POLL_SECONDS)
                idle += POLL_SECONDS
        except (ConnectionResetError, asyncio.CancelledError):
            # the browser went away, or the server is stopping: nothing left to say
            return response
        return response

    # --- writing -----------------------------------------------------------------------------

    @contextmanager
    def _rollout(self, request: web.Request) -> Iterator[tuple[DashboardStore, Raw, str]]:
        store = self.store
        ns = request.match_info["ns"]
        with store.transaction():
            rollout = store.get("Rollout", request.match_info["name"], ns)
            if rollout is None:
                raise NotFoundError(
                    f"rollout '{request.match_info['name']}' not found in namespace '{ns}'"
                )
            yield store, rollout, ns

    def _write_rollout(self, store: DashboardStore, rollout: Raw, ns: str, patches: Any) -> None:
        # Argo patches the status subresource first, then the object (as `rollwise` does).
        name = rollout["metadata"]["name"]
        if patches.status_patch:
            store.patch("Rollout", name, ns, merge=patches.status_patch, status=True)
        if patches.object_patch:
            store.patch("Rollout", name, ns, merge=patches.object_patch)

    def _workload(self, store: DashboardStore, rollout: Raw, ns: str) -> Raw | None:
        ref = (rollout.get("spec") or {}).get("workloadRef")
        if not ref:
            return None
        kind, name = str(ref.get("kind") or "Deployment"), str(ref.get("name") or "")
        workload = store.get(kind, name, ns)
        if workload is None:
            raise UserError(
                f"rollout '{rollout['metadata']['name']}' takes its pod template from {kind} "
                f"'{name}' (spec.workloadRef), which is not in namespace '{ns}'"
            )
        return workload

    async def _run(self, write: Callable[[], str]) -> web.Response:
        message = await asyncio.to_thread(write)
        return web.json_response({"message": message})

    async def action(self, request: web.Request) -> web.Response:
        from rollwise.core.commands import abort_patch, promote_patch, restart_patch, retry_patch

        verb = request.path.rsplit("/", 1)[1]
        body: Any = {}
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                body = await request.json()
        full = bool(body.get("full")) if isinstance(body, dict) else False
        now = self.clock.now()

        def write() -> str:
            with self._rollout(request) as (store, rollout, ns):
                if verb == "promote":
                    patches = promote_patch(rollout, full=full)
                elif verb == "abort":
                    patches = abort_patch(rollout)
                elif verb == "retry":
                    patches = retry_patch(rollout)
                else:
                    patches = restart_patch(rollout, now, delay=timedelta(0))
                self._write_rollout(store, rollout, ns, patches)
            name = request.match_info["name"]
            done = {"promote": "fully promoted" if full else "promoted", "abort": "aborted"}
            return patches.note or f"rollout '{name}' {done.get(verb, verb + 'ed')}"

        return await self._run(write)

    async def undo(self, request: web.Request) -> web.Response:
        from rollwise.core.commands import undo_patch

        try:
            revision = int(request.match_info["revision"])
        except ValueError as error:
            raise UserError(f"not a revision: '{request.match_info['revision']}'") from error

        def write() -> str:
            with self._rollout(request) as (store, rollout, ns):
                replica_sets = [
                    rs
                    for rs in store.list("ReplicaSet", ns)
                    if owned_by(rs, rollout, kind="Rollout")
                ]
                workload = self._workload(store, rollout, ns)
                if workload is None:
                    patches = undo_patch(rollout, replica_sets, revision or None)
                    self._write_rollout(store, rollout, ns, patches)
                else:
                    template = (workload.get("spec") or {}).get("template") or {}
                    current = {**rollout, "spec": {**rollout["spec"], "template": template}}
                    patches = undo_patch(current, replica_sets, revision or None)
                    self._write_workload(store, workload, patches)
            return patches.note or f"rollout '{request.match_info['name']}' undo"

        return await self._run(write)

    def _write_workload(self, store: DashboardStore, workload: Raw, patches: Any) -> None:
        metadata = workload["metadata"]
        store.patch(
            str(workload["kind"]),
            metadata["name"],
            metadata.get("namespace") or "default",
            merge=patches.object_patch,
        )

    async def set_image(self, request: web.Request) -> web.Response:
        from rollwise.core.commands import set_image_patch

        container, image = request.match_info["container"], request.match_info["image"]

        def write() -> str:
            with self._rollout(request) as (store, rollout, ns):
                workload = self._workload(store, rollout, ns)
                patches = set_image_patch(workload or rollout, container, image)
                if self.check_template is not None:
                    template = (rollout.get("spec") or {}).get("template") or {}
                    changed = (
                        patches.object_patch.get("spec", {}).get("template", {}).get("spec", {})
                    )
                    new = {**template, "spec": {**(template.get("spec") or {}), **changed}}
                    refusals = [m for m in self.check_template(new) if "ignored" not in m]
                    if refusals:
                        raise UserError(f"rollout '{rollout['metadata']['name']}': {refusals[0]}")
                if workload is not None:
                    self._write_workload(store, workload, patches)
                else:
                    self._write_rollout(store, rollout, ns, patches)
            return patches.note or f"rollout '{request.match_info['name']}' image updated"

        return await self._run(write)
