"""The dashboard over a local home, and a small runner that serves an aiohttp application.

Who calls it: `rollwise dashboard` (`rollwise.cli.dashboard`) and `rollwise controller`, which
hands `local_app` to the local controller to serve beside its loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from rollwise.api.errors import UserError
from rollwise.core.timestamps import Clock, SystemClock
from rollwise.dashboard.server import DashboardStore, create_app
from rollwise.platforms.local.images import ImageTable
from rollwise.platforms.local.store import SqliteStore

DEFAULT_PORT = 3100


def local_app(
    home: Path, *, token: str | None, read_only: bool, clock: Clock | None = None
) -> web.Application:
    """The dashboard of a local home: its own store connection, and the image table's refusals
    for `set image`, as `rollwise set image` applies them."""
    home = Path(home)

    def open_store() -> DashboardStore:
        return SqliteStore.open_home(home)

    def check_template(template: dict[str, object]) -> list[str]:
        return ImageTable.load(home).check_template(template)

    return create_app(
        open_store,
        token=token,
        read_only=read_only,
        clock=clock or SystemClock(),
        check_template=check_template,
    )


def dashboard_url(*, host: str, port: int, token: str | None) -> str:
    """The address to open; the token rides in the fragment, which browsers never send."""
    return f"http://{host}:{port}/" + (f"#token={token}" if token else "")


async def serve(app: web.Application, *, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app` on `host:port` (0: any free port); the runner to clean up and the port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        raise UserError(
            f"cannot serve the dashboard on {host}:{port} ({error}); choose another port"
        ) from error
    for address in runner.addresses:
        if isinstance(address, tuple):
            port = int(address[1])
            break
    return runner, port


async def run_until_stopped(
    app: web.Application, *, host: str, port: int, announce: Callable[[int], None]
) -> None:
    """Serve until SIGINT/SIGTERM; `announce(port)` once listening."""
    import signal

    runner, bound = await serve(app, host=host, port=port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        announce(bound)
        await stopping.wait()
    finally:
        await runner.cleanup()
