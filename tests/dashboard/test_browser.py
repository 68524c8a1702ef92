"""The page in Debian's headless Chromium, driven as a person would over the DevTools protocol
(`tests/dashboard/cdp.py`): the list and a rollout's page render under the dashboard's CSP, follow
the store live without a reload, and promote and abort with the printed token, are refused
without it and offer no working buttons with `--read-only`.

The dashboard serves a real local store (`conftest.seed`: `shop`, a canary paused at step 1/3);
the test writes to that store as the controller would. Chromium is skipped when missing, except
under CI (env `CI`), where `make system-deps` installs it and a missing browser is a failure.
Screenshots are kept in each test's tmp dir (`screenshots/`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from tests.cli.cli_objects import NOW, ago, rollout
from tests.dashboard.cdp import Chromium, Connection, Page, connect, launch_chromium, open_page
from tests.dashboard.conftest import QUERY, STEPS, TOKEN

from rollwise.core.timestamps import ManualClock
from rollwise.dashboard.local import dashboard_url
from rollwise.dashboard.server import create_app
from rollwise.platforms.local.store import SqliteStore

BROWSER = shutil.which("chromium")
SHOP = "#/rollout/default/shop"
WATCH = "/api/v1/rollouts/default"


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    if BROWSER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required under CI (make system-deps installs it)")
        pytest.skip("chromium is not installed")
    with launch_chromium(BROWSER, tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


@pytest.fixture
async def browser(chromium: Chromium) -> AsyncIterator[Connection]:
    async with connect(chromium) as connection:
        yield connection


@dataclass
class Dashboard:
    port: int
    opened: list[tuple[str, str]] = field(default_factory=list)
    """(method, path) of every request the page made, as it arrived (streams included)."""
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of every request answered."""

    def url(self, fragment: str = "#/", *, token: str | None = None) -> str:
        return f"http://127.0.0.1:{self.port}/{fragment}" + (f"&token={token}" if token else "")

    def printed(self) -> str:
        """The address `rollwise dashboard` prints: the token rides in the fragment."""
        return dashboard_url(host="127.0.0.1", port=self.port, token=TOKEN)

    def actions(self) -> list[tuple[str, int]]:
        return [(path, status) for method, path, status in self.requests if method == "PUT"]


async def start(home: Path, *, read_only: bool = False) -> tuple[TestServer, Dashboard]:
    dashboard = Dashboard(port=0)

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        dashboard.opened.append((request.method, request.path))
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as refused:
            dashboard.requests.append((request.method, request.path, refused.status))
            raise
        dashboard.requests.append((request.method, request.path, response.status))
        return response

    app = create_app(
        lambda: SqliteStore.open_home(home),
        token=TOKEN,
        read_only=read_only,
        clock=ManualClock(NOW),
    )
    app.middlewares.insert(0, record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    dashboard.port = int(server.port or 0)
    return server, dashboard


@pytest.fixture
async def dashboard(home: Path, store: SqliteStore) -> AsyncIterator[Dashboard]:
    server, served = await start(home)
    try:
        yield served
    finally:
        await server.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


def text_of(selector: str) -> str:
    """JavaScript: the text of the element `selector` names, or '' while it is missing."""
    return f"((document.querySelector({json.dumps(selector)}) || {{}}).textContent || '')"


async def toast_after(page: Page, selector: str) -> tuple[str, bool]:
    """Click `selector` and return the message the page then shows, and whether it is an error."""
    await page.evaluate("document.getElementById('toast').className = ''")
    await page.click(selector)
    await page.wait_for("document.getElementById('toast').className.includes('show')")
    shown = await page.evaluate(
        "[document.getElementById('toast').textContent,"
        " document.getElementById('toast').classList.contains('err')]"
    )
    return str(shown[0]), bool(shown[1])


async def test_list_and_rollout_pages_render_and_go_live(
    browser: Connection, dashboard: Dashboard, store: SqliteStore, shots: Path
) -> None:
    async with open_page(browser) as page:
        await page.navigate(dashboard.url("#/"))
        row = "#rollouts tr.row[data-name=shop]"
        await page.wait_for(f"{text_of(row)}.includes('Paused')")
        cells = await page.evaluate(
            f"[...document.querySelectorAll('{row} td')].map((td) => td.textContent)"
        )
        assert cells[:5] == ["shop", "PausedCanaryPauseStep", "Canary", "1/3", "20 / 33"]
        # the pause icon is drawn, not left to a font that may lack the glyph
        assert await page.evaluate(f"!!document.querySelector('{row} svg.icon[data-icon=\"॥\"]')")
        await page.wait_for("document.getElementById('live').className === 'on'")
        await page.screenshot(shots / "list.png")

        # a rollout created meanwhile appears in the open list
        store.create(rollout("cart", created=ago(minutes=1), replicas=1, steps=STEPS))
        await page.wait_for("document.querySelector('#rollouts tr.row[data-name=cart]')")

        await page.click(row)
        await page.wait_for(f"{text_of('#steps li.current')}.startsWith('2. Pause')")
        assert await page.evaluate("location.hash") == SHOP
        assert await page.wait_for(text_of("#analysis .metric h3")) == "success-rate Running"
        assert (
            await page.evaluate("document.querySelectorAll('#analysis svg.chart circle').length")
            == 2
        )
        assert await page.evaluate(text_of("#analysis .last")) == "last: [0.97] (Successful)"
        resolved = QUERY.replace("{{args.service-name}}", "shop-canary")
        assert json.loads(await page.evaluate(text_of("#analysis pre.provider"))) == {
            "prometheus": {"query": resolved}
        }
        await page.wait_for("document.getElementById('live').className === 'on'")
        await page.screenshot(shots / "rollout.png")
        assert page.errors == []  # the CSP let the script and style run, nothing threw
    assert ("GET", "/api/v1/rollouts/default/info/watch") in dashboard.opened
    assert ("GET", "/api/v1/rollouts/default/shop/info/watch") in dashboard.opened
    assert (shots / "list.png").read_bytes().startswith(b"\x89PNG")
    assert (shots / "rollout.png").read_bytes() != (shots / "list.png").read_bytes()


async def test_rollout_page_follows_the_store_without_a_reload(
    browser: Connection, dashboard: Dashboard, store: SqliteStore, shots: Path
) -> None:
    async with open_page(browser) as page:
        await page.navigate(dashboard.url(SHOP))
        await page.wait_for(f"{text_of('#steps li.current')}.startsWith('2. Pause')")
        await page.evaluate("window.sameDocument = true")
        # what the controller writes when the pause ends and the canary moves to 50%
        store.patch(
            "Rollout",
            "shop",
            "default",
            merge={
                "phase": "Progressing",
                "message": "more replicas need to be updated",
                "currentStepIndex": 2,
                "pauseConditions": None,
            },
            status=True,
        )
        store.record_event(
            kind="Rollout",
            name="shop",
            namespace="default",
            type="Normal",
            reason="TrafficWeightUpdated",
            message="Traffic weight updated from 20 to 50",
            at=NOW,
        )
        await page.wait_for(f"{text_of('#steps li.current')}.startsWith('3. Set weight 50%')")
        await page.wait_for(f"{text_of('#summary h2')} === 'shop Progressing'")
        assert await page.evaluate("window.sameDocument") is True
        await page.wait_for("document.querySelector('svg.chart polyline')")
        await page.screenshot(shots / "rollout-live.png")
        assert page.errors == []
    # one load, and one stream that brought the rest
    assert [r for r in dashboard.opened if r[1] in ("/", f"{WATCH}/shop/info/watch")] == [
        ("GET", "/"),
        ("GET", f"{WATCH}/shop/info/watch"),
    ]


async def test_promote_and_abort_with_the_printed_token(
    browser: Connection, dashboard: Dashboard, store: SqliteStore, shots: Path
) -> None:
    async with open_page(browser) as page:
        await page.navigate(dashboard.printed())
        await page.click("#rollouts tr.row[data-name=shop]")
        await page.wait_for(f"{text_of('#summary h2')} === 'shop Paused'")
        # the page keeps the token for its actions and drops it from the address bar
        assert await page.evaluate("location.hash") == SHOP
        assert await page.evaluate("document.getElementById('token').value") == TOKEN

        assert await toast_after(page, "#promote") == ("rollout 'shop' promoted", False)
        assert "pauseConditions" not in store.require("Rollout", "shop")["status"]
        await page.wait_for(f"{text_of('#summary h2')} === 'shop Progressing'")

        assert await toast_after(page, "#abort") == ("rollout 'shop' aborted", False)
        assert page.dialogs == ["Abort rollout 'shop'?"]
        assert store.require("Rollout", "shop")["status"]["abort"] is True
        await page.wait_for(f"{text_of('#aborted')} === 'aborted'")
        await page.screenshot(shots / "aborted.png")
        assert page.errors == []
    assert dashboard.actions() == [
        ("/api/v1/rollouts/default/shop/promote", 200),
        ("/api/v1/rollouts/default/shop/abort", 200),
    ]


async def test_actions_without_the_token_are_refused(
    browser: Connection, dashboard: Dashboard, store: SqliteStore, shots: Path
) -> None:
    before = store.require("Rollout", "shop")
    async with open_page(browser) as page:
        await page.navigate(dashboard.url(SHOP))
        await page.wait_for(f"{text_of('#summary h2')} === 'shop Paused'")
        assert await page.evaluate("document.getElementById('token').value") == ""

        assert await toast_after(page, "#promote") == ("a valid token is required", True)
        assert await toast_after(page, "#abort") == ("a valid token is required", True)
        assert page.dialogs == ["Abort rollout 'shop'?"]
        # a dismissed confirmation sends nothing at all
        page.accept_dialogs = False
        await page.click("#abort")
        assert len(page.dialogs) == 2
        page.accept_dialogs = True
        await page.type_text("#token", "a-guess")
        assert await toast_after(page, "#abort") == ("a valid token is required", True)
        assert len(page.dialogs) == 3
        await page.screenshot(shots / "refused.png")

        assert store.require("Rollout", "shop") == before
        assert await page.evaluate(text_of("#summary h2")) == "shop Paused"
        assert await page.evaluate("!document.getElementById('aborted')")
    assert dashboard.actions() == [
        ("/api/v1/rollouts/default/shop/promote", 401),
        ("/api/v1/rollouts/default/shop/abort", 401),
        ("/api/v1/rollouts/default/shop/abort", 401),
    ]


async def test_read_only_dashboard_offers_no_working_buttons(
    browser: Connection, home: Path, store: SqliteStore, shots: Path
) -> None:
    server, dashboard = await start(home, read_only=True)
    before = store.require("Rollout", "shop")
    try:
        async with open_page(browser) as page:
            await page.navigate(dashboard.url(SHOP, token=TOKEN))
            await page.wait_for(f"{text_of('#summary h2')} === 'shop Paused'")
            await page.wait_for("!document.getElementById('mode').hidden")
            buttons = await page.evaluate(
                "[...document.querySelectorAll('#main button')]"
                ".map((b) => [b.textContent, b.disabled])"
            )
            labels = {label for label, _ in buttons}
            assert {"Promote", "Promote full", "Abort", "Retry", "Restart", "Rollback"} <= labels
            assert all(disabled for _, disabled in buttons), buttons
            assert await page.evaluate("document.getElementById('token-field').hidden") is True
            await page.click("#promote")
            await page.click("#abort")
            await page.screenshot(shots / "read-only.png")
            assert page.dialogs == []
    finally:
        await server.close()
    assert dashboard.actions() == []
    assert store.require("Rollout", "shop") == before
