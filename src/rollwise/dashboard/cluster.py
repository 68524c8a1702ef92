"""The dashboard over a Kubernetes cluster: the same application, the API server as its store.

Who calls it: `rollwise dashboard` in the kubernetes context (`rollwise.cli.dashboard`). Each
store the application opens is a `KubeCliStore` (the CLI's synchronous view of the cluster:
reads, merge-patch writes with the resourceVersion read, watches that count changes for the
live streams); the server already calls stores from worker threads. `set image` is not checked
against an image table: images are the cluster's to pull.
"""

from __future__ import annotations

from aiohttp import web

from rollwise.core.timestamps import Clock, SystemClock
from rollwise.dashboard.server import DashboardStore, create_app
from rollwise.platforms.kubernetes.cli_store import KubeCliStore


def cluster_app(
    *,
    kubeconfig: str | None,
    context: str | None,
    token: str | None,
    read_only: bool,
    clock: Clock | None = None,
) -> web.Application:
    def open_store() -> DashboardStore:
        return KubeCliStore.open(kubeconfig=kubeconfig, context=context)

    return create_app(
        open_store,
        token=token,
        read_only=read_only,
        clock=clock or SystemClock(),
        check_template=lambda template: [],
    )
