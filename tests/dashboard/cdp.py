"""A small Chrome DevTools Protocol client, enough to drive the dashboard in headless Chromium.

Who uses it: the browser tests in this folder and `tests/dashboard/screenshots.py` (the
documentation's pictures). No browser library: Debian's `chromium` is started with
`--remote-debugging-port=0`, the port is read from the `DevToolsActivePort` file it writes in
its profile, and one aiohttp websocket to the browser carries every page's session
(`Target.attachToTarget` with `flatten`).

Every wait here is bounded and polls the page; a wait that runs out raises `TimeoutError` with
what it waited for and what it saw last. Each page gets its own browser context, so pages share
no storage (a token kept in one tab's sessionStorage is not in the next).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

Json = dict[str, Any]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


class CdpError(Exception):
    """The browser answered a command with an error, or a script in the page threw."""


@dataclass(frozen=True)
class Chromium:
    """A running headless Chromium and the address of its DevTools endpoint."""

    process: subprocess.Popen[bytes]
    port: int
    browser_path: str

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.browser_path}"


@contextlib.contextmanager
def launch_chromium(binary: str, profile: Path, *, timeout: float = 30.0) -> Iterator[Chromium]:
    """Start Chromium on an empty profile and yield it once its DevTools port is known; kill its
    whole process group on the way out (renderers included)."""
    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"
    process = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while len(lines) < 2:
            if process.poll() is not None:
                raise CdpError(f"chromium exited with {process.returncode} before listening")
            if time.monotonic() > deadline:
                raise TimeoutError(f"chromium wrote no {port_file} within {timeout:.0f} s")
            if port_file.exists():
                lines = port_file.read_text().split()
            if len(lines) < 2:
                time.sleep(0.05)  # waiting for the browser to start, not a timing assertion
        yield Chromium(process, int(lines[0]), lines[1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class Connection:
    """One websocket to the browser: commands by id, events routed to their page's session."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self._websocket = websocket
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Json]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read())

    async def send(
        self,
        method: str,
        params: Json | None = None,
        *,
        session_id: str | None = None,
        within: float = 15.0,
    ) -> Json:
        """Send one command and return its result; CdpError if the browser refused it."""
        if self._reader.done():
            raise CdpError(f"the connection to the browser is closed (sending {method})")
        message: Json = {"id": next(self._ids), "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = future
        try:
            await self._websocket.send_str(json.dumps(message))
            async with asyncio.timeout(within):
                reply = await future
        finally:
            self._pending.pop(message["id"], None)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        result: Json = reply.get("result") or {}
        return result

    def track(self, page: Page) -> Page:
        """Route the events of `page`'s session to it from now on."""
        self._pages[page.session_id] = page
        return page

    def untrack(self, page: Page) -> None:
        self._pages.pop(page.session_id, None)

    async def _read(self) -> None:
        try:
            async for frame in self._websocket:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                if "id" in message:
                    future = self._pending.get(message["id"])
                    if future is not None and not future.done():
                        future.set_result(message)
                elif (page := self._pages.get(message.get("sessionId", ""))) is not None:
                    page.on_event(message["method"], message.get("params") or {})
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CdpError("the browser closed the connection"))

    async def close(self) -> None:
        await self._websocket.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def connect(chromium: Chromium) -> AsyncIterator[Connection]:
    """A connection to the browser's DevTools endpoint, closed on the way out."""
    async with aiohttp.ClientSession() as http:
        websocket = await http.ws_connect(chromium.websocket_url, max_msg_size=0)
        connection = Connection(websocket)
        try:
            yield connection
        finally:
            await connection.close()


@dataclass
class Page:
    """One tab, attached by a flat session. JavaScript dialogs (`confirm`, `alert`) are answered
    as `accept_dialogs` says and their messages kept in `dialogs`; uncaught exceptions and error
    log entries (CSP violations among them) are kept in `errors`."""

    connection: Connection
    session_id: str
    accept_dialogs: bool = True
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    _answers: set[asyncio.Task[None]] = field(default_factory=set)

    async def send(self, method: str, params: Json | None = None) -> Json:
        return await self.connection.send(method, params, session_id=self.session_id)

    def on_event(self, method: str, params: Json) -> None:
        if method == "Page.javascriptDialogOpening":
            # Answered from a task: the click that opened the dialog is still waiting for its
            # reply, which the browser sends only once the dialog is closed.
            self.dialogs.append(str(params.get("message")))
            answer = asyncio.create_task(self._answer_dialog(accept=self.accept_dialogs))
            self._answers.add(answer)
            answer.add_done_callback(self._answers.discard)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails") or {}
            exception = details.get("exception") or {}
            self.errors.append(str(exception.get("description") or details.get("text")))
        elif method == "Log.entryAdded":
            entry = params.get("entry") or {}
            if entry.get("level") == "error" and entry.get("source") != "network":
                self.errors.append(f"{entry.get('source')}: {entry.get('text')}")

    async def _answer_dialog(self, *, accept: bool) -> None:
        with contextlib.suppress(CdpError, TimeoutError):  # the page closed meanwhile
            await self.send("Page.handleJavaScriptDialog", {"accept": accept})

    async def navigate(self, url: str) -> None:
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"cannot open {url}: {result['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            description = (details.get("exception") or {}).get("description")
            raise CdpError(f"{expression!r} threw {description or details.get('text')}")
        return (result.get("result") or {}).get("value")

    async def wait_for(self, expression: str, *, within: float = 10.0) -> Any:
        """Poll `expression` until it is truthy (in JavaScript's sense) and return its value (a
        DOM node: True); TimeoutError otherwise. A page in the middle of loading has no context
        to evaluate in: that is 'not yet'."""
        probe = (
            f"(async () => {{ const value = await ({expression});"
            " return [!!value, value && value.nodeType ? true : value]; })()"
        )
        deadline = time.monotonic() + within
        last: Any = None
        while True:
            try:
                truthy, last = await self.evaluate(probe)
            except CdpError as error:
                last = error
            else:
                if truthy:
                    return last
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {within:.0f} s for {expression!r}; last: {last!r}")
            await asyncio.sleep(0.05)

    async def click(self, selector: str, *, within: float = 10.0) -> None:
        """Click the middle of the element `selector` names with the mouse, as a person would
        (so a covered or zero-sized element is not clicked by accident)."""
        quoted = json.dumps(selector)
        box = await self.wait_for(
            f"""(() => {{
              const node = document.querySelector({quoted});
              if (!node) return null;
              node.scrollIntoView({{block: "center", inline: "center"}});
              const r = node.getBoundingClientRect();
              if (r.width === 0 || r.height === 0) return null;
              const x = r.left + r.width / 2, y = r.top + r.height / 2;
              const top = document.elementFromPoint(x, y);
              return top && (top === node || node.contains(top)) ? {{x, y}} : null;
            }})()""",
            within=within,
        )
        point = {"x": box["x"], "y": box["y"]}
        await self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", **point})
        pressed = {**point, "button": "left", "clickCount": 1}
        await self.send(
            "Input.dispatchMouseEvent", {"type": "mousePressed", "buttons": 1, **pressed}
        )
        await self.send("Input.dispatchMouseEvent", {"type": "mouseReleased", **pressed})

    async def type_text(self, selector: str, text: str) -> None:
        """Click into a field and type `text` into it, then leave it (a `change` event)."""
        await self.click(selector)
        await self.send("Input.insertText", {"text": text})
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).blur()")

    async def resize(self, width: int, height: int) -> None:
        """Set the window's size in CSS pixels."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.size = (width, height)

    async def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        """A PNG of the window, or of the whole page however tall (`full_page`: the window is
        made as tall as the page for the shot, so no scrollbar takes from its width)."""
        window = self.size
        if full_page:
            tall = await self.evaluate("document.documentElement.scrollHeight")
            await self.resize(window[0], max(window[1], int(tall)))
        try:
            data = await self.send("Page.captureScreenshot", {"format": "png"})
        finally:
            if full_page:
                await self.resize(*window)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(data["data"]))
        return path


@contextlib.asynccontextmanager
async def open_page(
    connection: Connection, *, width: int = 1280, height: int = 1000
) -> AsyncIterator[Page]:
    """A blank tab in a fresh browser context, closed (context and all) on the way out."""
    context = (await connection.send("Target.createBrowserContext"))["browserContextId"]
    try:
        target = (
            await connection.send(
                "Target.createTarget", {"url": "about:blank", "browserContextId": context}
            )
        )["targetId"]
        session = (
            await connection.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        )["sessionId"]
        page = connection.track(Page(connection, session))
        try:
            for domain in ("Page", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            await page.resize(width, height)
            yield page
        finally:
            connection.untrack(page)
            with contextlib.suppress(CdpError, TimeoutError):
                await connection.send("Target.closeTarget", {"targetId": target})
    finally:
        with contextlib.suppress(CdpError, TimeoutError):
            await connection.send("Target.disposeBrowserContext", {"browserContextId": context})
