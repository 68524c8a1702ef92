"""The local data plane: keeps Traefik's dynamic configuration equal to a snapshot, and checks
that Traefik serves it.

Where it sits: the local controller owns one `DataPlane` per home, next to its
`TraefikProcess`. It keeps the Service part current (`update_services`, from the Services and
ready Pods in its store, see `dataplane_config.service_backends`), and gives each traffic-routed
Rollout a `LocalRouter`, which changes that Rollout's split and routes. Both write through
`apply`, which renders the whole snapshot (`dataplane_config.render_dynamic_config`, pure).

Theory of operation:
- One file, `<home>/traefik/dynamic/rollwise.yml`, written to a temporary file outside the
  watched folder and renamed in: Traefik never reads half a file, and (measured) writing inside
  the watched folder caused 2 s stalls while a rename is live in ~0.1 s. A write that would not
  change the file is skipped.
- The snapshot is also kept in `<home>/traefik/dataplane.json`, so a restarted controller gets
  back the weights and managed routes it set (Argo's routers keep that state in the mesh's own
  objects; ours is this file) and only has to refresh the endpoints.
- "Verified" means Traefik's API reports the configuration we wrote: weights of the weighted
  service, servers of each load balancer, mirrors, routers. Nothing is assumed from the write.
- Mutations of the snapshot happen without an `await` between read and write, so concurrent
  reconciles in one event loop cannot lose each other's changes.
- aiohttp is imported inside the methods that use it: it costs ~0.3 s to import and the CLI must
  not pay for it on commands that never talk HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollwise.api.errors import TransientError
from rollwise.api.models import SetHeaderRoute, SetMirrorRoute, WeightDestination
from rollwise.platforms.local.dataplane_config import (
    DataPlaneSnapshot,
    RolloutTraffic,
    ServiceBackends,
    render_dynamic_config,
    service_key,
    weighted_key,
)
from rollwise.platforms.local.traefik import TraefikProcess
from rollwise.routers.base import SelectsByService

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "DataPlane",
    "DataPlaneSnapshot",
    "LocalRouter",
    "RolloutTraffic",
    "ServiceBackends",
    "config_mismatches",
    "render_dynamic_config",
]

CONFIG_FILE = "rollwise.yml"
HTTP_TIMEOUT_S = 2.0


class DataPlane:
    """The snapshot Traefik should serve, written where Traefik reads it, checked via its API."""

    def __init__(self, home: Path, traefik: TraefikProcess) -> None:
        self.home = home
        self.traefik = traefik
        self._snapshot = self._load_snapshot()
        self._written: str | None = self._read_config()
        self._session: aiohttp.ClientSession | None = None

    @property
    def config_path(self) -> Path:
        return self.traefik.dynamic_dir / CONFIG_FILE

    @property
    def snapshot_path(self) -> Path:
        return self.traefik.root / "dataplane.json"

    @property
    def snapshot(self) -> DataPlaneSnapshot:
        """What the data plane routes now (the last snapshot applied)."""
        return self._snapshot

    # --- writing ------------------------------------------------------------------------------

    async def apply(self, snapshot: DataPlaneSnapshot) -> bool:
        """Make Traefik route `snapshot`; True if the configuration file changed."""
        return self._apply(snapshot)

    async def update_services(self, services: Iterable[ServiceBackends]) -> bool:
        """Replace the Services and their endpoints, keeping every Rollout's traffic."""
        return self._apply(self._snapshot.with_services(services))

    async def set_rollout_traffic(self, traffic: RolloutTraffic) -> bool:
        """Replace (or add) one Rollout's split and managed routes."""
        return self._apply(self._snapshot.with_rollout(traffic))

    async def remove_rollout_traffic(self, namespace: str, name: str) -> bool:
        """Forget a Rollout's traffic (the Rollout was deleted or left traffic routing)."""
        return self._apply(self._snapshot.without_rollout(namespace, name))

    def _apply(self, snapshot: DataPlaneSnapshot) -> bool:
        # Compact JSON (which is YAML to Traefik): 4x faster to dump than indented, which counts
        # when thousands of rollouts share the file. `jq` makes it readable.
        text = json.dumps(render_dynamic_config(snapshot), separators=(",", ":"))
        changed = text != self._written
        if changed or snapshot != self._snapshot:
            self._write(self.snapshot_path, json.dumps(snapshot.to_raw(), separators=(",", ":")))
        if changed:
            self._write(self.config_path, text)
            self._written = text
        self._snapshot = snapshot
        return changed

    def _write(self, path: Path, text: str) -> None:
        # The temporary file lives in the parent of the watched folder: a file created inside
        # it would be seen (and parsed) by Traefik before it is complete.
        tmp = self.traefik.root / f".{path.name}.tmp"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text)
            os.replace(tmp, path)
        except OSError as error:  # a full disk, a read-only folder: nothing changed, retry
            raise TransientError(
                f"cannot write Traefik's configuration {path}: {error.strerror or error}"
            ) from error

    def _load_snapshot(self) -> DataPlaneSnapshot:
        try:
            return DataPlaneSnapshot.from_raw(json.loads(self.snapshot_path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return DataPlaneSnapshot()

    def _read_config(self) -> str | None:
        try:
            return self.config_path.read_text()
        except OSError:
            return None

    # --- reading Traefik ----------------------------------------------------------------------

    async def verify(self, snapshot: DataPlaneSnapshot | None = None) -> bool:
        """Whether Traefik serves `snapshot` (default: the current one) exactly; False also
        when Traefik cannot be reached."""
        return not await self.mismatches(snapshot)

    async def mismatches(self, snapshot: DataPlaneSnapshot | None = None) -> list[str]:
        """How what Traefik serves differs from `snapshot`, one message per difference."""
        expected = render_dynamic_config(snapshot or self._snapshot).get("http", {})
        try:
            services, routers = await asyncio.gather(self._list("services"), self._list("routers"))
        except TransientError as error:
            return [str(error)]
        return config_mismatches(expected, live_services=services, live_routers=routers)

    async def verify_rollout(
        self,
        namespace: str,
        name: str,
        *,
        canary_weight: int | None = None,
        additional: Sequence[WeightDestination] | None = None,
    ) -> bool:
        """Whether Traefik splits this Rollout's traffic as held (or with the weights given)
        and each of its Services' load balancers has the expected servers."""
        traffic = self._snapshot.rollout(namespace, name)
        if traffic is None:
            return False
        if canary_weight is not None:
            traffic = replace(traffic, canary_weight=canary_weight)
        if additional is not None:
            traffic = replace(traffic, additional=tuple(additional))
        expected = render_dynamic_config(self._snapshot.with_rollout(traffic))["http"]
        weighted = weighted_key(namespace, name)
        children = [c["name"] for c in expected["services"][weighted]["weighted"]["services"]]
        wanted = {key: expected["services"][key] for key in [weighted, *children]}
        try:
            found = await asyncio.gather(
                *(self._get(f"http/services/{key}@file") for key in wanted)
            )
        except TransientError:
            return False
        live = {key: raw for key, raw in zip(wanted, found, strict=True) if raw is not None}
        return not config_mismatches(
            {"services": wanted}, live_services=live, live_routers={}, check_routers=False
        )

    async def weights(self, namespace: str, name: str) -> dict[str, int] | None:
        """The split Traefik applies to a Rollout now: Kubernetes Service name -> weight.
        None when Traefik has no weighted service for it."""
        raw = await self._get(f"http/services/{weighted_key(namespace, name)}@file")
        if raw is None:
            return None
        prefix = service_key(namespace, "")
        return {
            child["name"].removeprefix(prefix): int(child.get("weight", 0))
            for child in raw.get("weighted", {}).get("services", [])
        }

    async def scrape_metrics(self) -> str:
        """Traefik's Prometheus exposition text (per-service requests, codes, durations);
        TransientError saying what went wrong when Traefik does not give it."""
        import aiohttp

        url = f"{self.traefik.api_url}/metrics"
        try:
            try:
                return await self._scrape(url)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                if isinstance(error, aiohttp.ClientConnectorError):
                    raise
                # A kept-alive connection to a Traefik that died (or restarted) since: one
                # more try on a new connection says how Traefik is now.
                return await self._scrape(url)
        except TimeoutError as error:
            raise TransientError(
                f"Traefik at {url} did not answer within {HTTP_TIMEOUT_S:g} s"
            ) from error
        except aiohttp.ClientOSError as error:
            # asyncio words a refused connection "Connect call failed"; the errno says it plainly
            os_error = error.os_error if isinstance(error, aiohttp.ClientConnectorError) else error
            errno = os_error.errno
            reason = os.strerror(errno) if errno and errno > 0 else str(os_error)
            raise TransientError(f"Traefik at {url} is unreachable: {reason.lower()}") from error
        except (aiohttp.ClientError, UnicodeDecodeError) as error:
            raise TransientError(f"Traefik at {url}: {error}") from error

    async def _scrape(self, url: str) -> str:
        session = await self._client()
        async with session.get(url) as response:
            text = await response.text()
            if response.status != 200:
                raise TransientError(
                    f"Traefik at {url} answered HTTP {response.status}: {_excerpt(text)}"
                )
            return text

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
            )
        return self._session

    async def _get(self, path: str) -> Any:
        """One object of Traefik's API (`/api/<path>`), or None if Traefik does not know it."""
        import aiohttp

        session = await self._client()
        try:
            async with session.get(f"{self.traefik.api_url}/api/{path}") as response:
                if response.status == 404:
                    return None
                response.raise_for_status()
                return await response.json()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TransientError(f"cannot read traefik's api /api/{path}: {error}") from error

    async def _list(self, kind: str) -> dict[str, Any]:
        """Every object of one kind from the file provider, by name without `@file`."""
        import aiohttp

        session = await self._client()
        found: dict[str, Any] = {}
        page = 1
        try:
            while True:
                url = f"{self.traefik.api_url}/api/http/{kind}"
                params = {"per_page": "1000", "page": str(page)}
                async with session.get(url, params=params) as response:
                    response.raise_for_status()
                    items = await response.json()
                    next_page = int(response.headers.get("X-Next-Page", "1"))
                for item in items:
                    if item.get("provider") == "file":
                        found[item["name"].removesuffix("@file")] = item
                if next_page <= page:  # Traefik answers 1 on the last page
                    return found
                page = next_page
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise TransientError(f"cannot list traefik's {kind}: {error}") from error


def _excerpt(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def config_mismatches(
    expected_http: Mapping[str, Any],
    *,
    live_services: Mapping[str, Any],
    live_routers: Mapping[str, Any],
    check_routers: bool = True,
) -> list[str]:
    """Differences between the `http` part of a rendered configuration and what Traefik's API
    reports (objects keyed by name without `@file`). Extra live objects are differences too."""
    problems: list[str] = []
    services = expected_http.get("services", {})
    for name, want in services.items():
        have = live_services.get(name)
        if have is None:
            problems.append(f"service {name}: missing")
            continue
        problems += [f"service {name}: {p}" for p in _service_mismatches(want, have)]
    if check_routers:
        routers = expected_http.get("routers", {})
        for name, want in routers.items():
            have = live_routers.get(name)
            if have is None:
                problems.append(f"router {name}: missing")
                continue
            for key in ("rule", "service", "priority"):
                if have.get(key) != want[key]:
                    problems.append(f"router {name}: {key} {have.get(key)!r} != {want[key]!r}")
            if have.get("status", "enabled") != "enabled":
                problems.append(f"router {name}: {have.get('status')}: {have.get('error')}")
        problems += [f"router {name}: not expected" for name in live_routers if name not in routers]
        problems += [
            f"service {name}: not expected" for name in live_services if name not in services
        ]
    return problems


def _service_mismatches(want: Mapping[str, Any], have: Mapping[str, Any]) -> list[str]:
    if "loadBalancer" in want:
        wanted = sorted(s["url"] for s in want["loadBalancer"]["servers"])
        live = sorted(s.get("url", "") for s in have.get("loadBalancer", {}).get("servers") or [])
        return [] if wanted == live else [f"servers {live} != {wanted}"]
    if "weighted" in want:
        wanted_w = sorted((c["name"], c["weight"]) for c in want["weighted"]["services"])
        live_w = sorted(
            (c.get("name", ""), int(c.get("weight", 1)))
            for c in have.get("weighted", {}).get("services") or []
        )
        return [] if wanted_w == live_w else [f"weights {live_w} != {wanted_w}"]
    if "mirroring" in want:
        mirroring = have.get("mirroring", {})
        wanted_m = (
            want["mirroring"]["service"],
            sorted((m["name"], m["percent"]) for m in want["mirroring"]["mirrors"]),
        )
        live_m = (
            mirroring.get("service"),
            sorted((m.get("name"), m.get("percent")) for m in mirroring.get("mirrors") or []),
        )
        return [] if wanted_m == live_m else [f"mirroring {live_m} != {wanted_m}"]
    return [f"unknown kind of service {sorted(want)}"]


class LocalRouter(SelectsByService):
    """The `Router` (`rollwise.routers.base`) of one Rollout on the local Traefik.

    Built by the controller for each reconcile of a traffic-routed Rollout with what the spec
    says now (services, maxTrafficWeight, managedRoutes); the split and routes it sets live in
    the DataPlane's snapshot, so they outlast this object and the controller.
    """

    def __init__(
        self,
        dataplane: DataPlane,
        *,
        namespace: str,
        rollout: str,
        stable_service: str,
        canary_service: str,
        max_weight: int = 100,
        managed_routes: Sequence[str] = (),
    ) -> None:
        self.dataplane = dataplane
        self.namespace = namespace
        self.rollout = rollout
        self._spec = RolloutTraffic(
            namespace=namespace,
            name=rollout,
            stable_service=stable_service,
            canary_service=canary_service,
            max_weight=max_weight,
            managed_routes=tuple(managed_routes),
        )

    def current(self) -> RolloutTraffic:
        """The Rollout's traffic as held, with the services and limits of the current spec."""
        held = self.dataplane.snapshot.rollout(self.namespace, self.rollout)
        if held is None:
            return self._spec
        return replace(
            held,
            stable_service=self._spec.stable_service,
            canary_service=self._spec.canary_service,
            max_weight=self._spec.max_weight,
            managed_routes=self._spec.managed_routes,
        )

    async def set_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> None:
        traffic = replace(
            self.current(), canary_weight=desired_weight, additional=tuple(additional)
        )
        await self.dataplane.set_rollout_traffic(traffic)

    async def set_header_route(self, route: SetHeaderRoute) -> None:
        traffic = self.current()
        others = tuple(r for r in traffic.header_routes if r.name != route.name)
        routes = others if route.match is None else (*others, route)
        await self.dataplane.set_rollout_traffic(replace(traffic, header_routes=routes))

    async def set_mirror_route(self, route: SetMirrorRoute) -> None:
        traffic = self.current()
        others = tuple(r for r in traffic.mirror_routes if r.name != route.name)
        routes = others if route.match is None else (*others, route)
        await self.dataplane.set_rollout_traffic(replace(traffic, mirror_routes=routes))

    async def verify_weight(
        self, desired_weight: int, additional: Sequence[WeightDestination] = ()
    ) -> bool | None:
        return await self.dataplane.verify_rollout(
            self.namespace, self.rollout, canary_weight=desired_weight, additional=additional
        )

    async def remove_managed_routes(self) -> None:
        traffic = replace(self.current(), header_routes=(), mirror_routes=())
        await self.dataplane.set_rollout_traffic(traffic)
