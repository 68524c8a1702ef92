"""The page in Debian's headless Chromium: the list and a rollout's page load, the page's
script runs under the dashboard's CSP and opens the live stream of what it shows.

Chromium is skipped when missing, except under CI (env `CI`), where `make system-deps`
installs it and a missing browser is a failure. Screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from tests.cli.cli_objects import NOW
from tests.dashboard.conftest import TOKEN

from rollwise.core.timestamps import ManualClock
from rollwise.dashboard.server import create_app
from rollwise.platforms.local.store import SqliteStore

BROWSER = shutil.which("chromium")


@pytest.fixture
def chromium() -> str:
    if BROWSER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required under CI (make system-deps installs it)")
        pytest.skip("chromium is not installed")
    return BROWSER


async def screenshot(browser: str, url: str, out: Path, profile: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--screenshot={out}",
        "--window-size=1280,1000",
        # --virtual-time-budget would wait for the open event stream forever
        "--timeout=3000",
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_list_and_rollout_pages_render_and_go_live(
    chromium: str, home: Path, store: SqliteStore, tmp_path: Path
) -> None:
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    app = create_app(
        lambda: SqliteStore.open_home(home), token=TOKEN, read_only=False, clock=ManualClock(NOW)
    )
    app.middlewares.insert(0, record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        base = f"http://127.0.0.1:{server.port}/"
        shots = tmp_path / "screenshots"
        shots.mkdir()
        # Headless Chromium shoots when the page has loaded; on a loaded machine the script
        # may not have drawn yet (a blank page): take the shots again, a bounded number of times.
        for attempt in range(3):
            await screenshot(chromium, base + "#/", shots / "list.png", tmp_path / f"p1-{attempt}")
            await screenshot(
                chromium,
                base + "#/rollout/default/shop",
                shots / "rollout.png",
                tmp_path / f"p2-{attempt}",
            )
            if (shots / "list.png").read_bytes() != (shots / "rollout.png").read_bytes():
                break
    finally:
        await server.close()
    # the script ran (the CSP let it) and followed each page live
    assert "/api/v1/rollouts/default/info/watch" in seen
    assert "/api/v1/rollouts/default/shop/info/watch" in seen
    list_png, rollout_png = (shots / "list.png").read_bytes(), (shots / "rollout.png").read_bytes()
    assert list_png.startswith(b"\x89PNG")
    assert rollout_png.startswith(b"\x89PNG")
    assert list_png != rollout_png
