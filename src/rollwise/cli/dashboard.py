"""`rollwise dashboard`: serve the web dashboard of the local home, or of the cluster in the
kubernetes context, until Ctrl-C.

Who calls it: `rollwise.cli.main` registers `dashboard`. It makes a fresh token for the actions
and prints the address with the token in its fragment (the browser keeps it; it is never sent
in a URL to the server). aiohttp and the dashboard are imported inside the command, off the
start-up path of the other verbs.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from rollwise.cli.state import Settings

HOST = "127.0.0.1"


def dashboard(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port).")
    ] = 3100,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything; refuse every action.")
    ] = False,
) -> None:
    """Serve the web dashboard (Argo's, on port 3100): rollouts live, with their actions."""
    settings = ctx.obj
    assert isinstance(settings, Settings)
    from rollwise.dashboard.local import dashboard_url, local_app, run_until_stopped
    from rollwise.dashboard.server import new_token

    token = None if read_only else new_token()
    if settings.context == "kubernetes":
        from rollwise.dashboard.cluster import cluster_app

        app = cluster_app(
            kubeconfig=settings.kubeconfig,
            context=settings.kube_context,
            token=token,
            read_only=read_only,
        )
    else:
        settings.require_local("`rollwise dashboard`")
        app = local_app(settings.home, token=token, read_only=read_only)

    def announce(bound: int) -> None:
        typer.echo(f"rollwise dashboard at {dashboard_url(host=HOST, port=bound, token=token)}")
        if token:
            typer.echo(f"token for actions: {token}")
        else:
            typer.echo("read-only: actions are refused")

    with contextlib.suppress(KeyboardInterrupt):
        import asyncio  # here: asyncio alone costs ~15 ms of every command's start

        asyncio.run(run_until_stopped(app, host=HOST, port=port, announce=announce))
