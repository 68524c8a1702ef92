"""Retake the dashboard's pictures in `docs/` from a real `rollwise demo` run.

    uv run python -m tests.dashboard.screenshots [OUT_DIR]      # default: docs/

Not a test (pytest does not collect it): it runs `rollwise demo` (real Traefik, real processes,
about a minute), opens the address the demo prints in headless Chromium (`tests/dashboard/cdp.py`)
and shoots, as the demo goes by:

- `dashboard.png`: the list while `myapp` is paused at 40% (the first scenario);
- `dashboard-canary.png`: `myapp`'s page at that moment (steps, weight over time, revisions);
- `dashboard-rollout.png`: `shop`'s page once its analysis has failed and the rollout is aborted
  (the third scenario: the measurements against the success condition, the weight back to 0).

Every wait is bounded; the demo is left to finish (it cleans up its own processes) and is killed
only if it overruns.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from tests.dashboard.cdp import Page, connect, launch_chromium, open_page

DEMO_SECONDS = 300.0
ADDRESS = re.compile(r"watch the demo in the dashboard: (\S+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_demo(rollwise: Path, log: Path) -> subprocess.Popen[bytes]:
    """`rollwise demo` with its dashboard on a free port, all its output in `log`."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            [str(rollwise), "demo", "--dashboard-port", str(free_port())],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )


def output(log: Path) -> str:
    return log.read_text(errors="replace")


async def demo_address(log: Path, demo: subprocess.Popen[bytes], *, within: float) -> str:
    """The address the demo printed, once its dashboard answers."""
    deadline = time.monotonic() + within
    url = ""
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if demo.poll() is not None:
                raise RuntimeError(f"the demo exited early:\n{output(log)}")
            if not url and (found := ADDRESS.search(output(log))):
                url = found.group(1)
            if url:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url.split("#")[0] + "api/v1/version") as response:
                        if response.status == 200:
                            return url
            await asyncio.sleep(0.2)
    raise TimeoutError(f"no dashboard within {within:.0f} s:\n{output(log)}")


def row(name: str) -> str:
    """JavaScript: the cells' texts of the list's row for `name` ([] while it is missing)."""
    return (
        f"[...document.querySelectorAll('#rollouts tr.row[data-name={name}] td')]"
        ".map((td) => td.textContent)"
    )


def heading() -> str:
    return "((document.querySelector('#summary h2') || {}).textContent || '')"


async def shoot(out: Path, pages: dict[str, Page]) -> None:
    listing, canary, shop = pages["list"], pages["myapp"], pages["shop"]
    # The first scenario: myapp paused at 40% (a 4 s pause), both pictures in that window.
    await listing.wait_for(
        f"(() => {{ const c = {row('myapp')};"
        " return c.length && c[1].startsWith('Paused') && c[4].startsWith('40 /'); })()",
        within=120,
    )
    await canary.wait_for(f"{heading()} === 'myapp Paused'", within=10)
    await listing.screenshot(out / "dashboard.png")
    await canary.screenshot(out / "dashboard-canary.png", full_page=True)
    print("shot the list and myapp at 40%", flush=True)
    # The third scenario: shop's analysis fails and the rollout is aborted, traffic back to 0
    # (the weight chart's last point).
    await shop.wait_for(
        f"{heading()}.startsWith('shop Degraded')"
        " && document.querySelectorAll('#analysis svg.chart circle').length > 0"
        " && (document.querySelector('#analysis .st') || {}).textContent === 'Failed'"
        " && [...document.querySelectorAll('#summary .kv .k')].some((k) =>"
        " k.textContent === 'Actual weight' && k.nextElementSibling.textContent === '0')"
        " && document.querySelectorAll('svg.chart')[0].querySelectorAll('circle').length >= 3",
        within=180,
    )
    await shop.screenshot(out / "dashboard-rollout.png", full_page=True)
    print("shot shop aborted by its analysis", flush=True)


async def main(out: Path) -> None:
    browser_binary = shutil.which("chromium")
    rollwise = Path(sys.executable).with_name("rollwise")
    if browser_binary is None:
        raise SystemExit("chromium is not installed")
    work = Path(tempfile.mkdtemp(prefix="rollwise-shots-"))
    log = work / "demo.log"
    demo = start_demo(rollwise, log)
    try:
        url = await demo_address(log, demo, within=60)
        print(f"demo dashboard at {url}", flush=True)
        with launch_chromium(browser_binary, work / "profile") as chromium:
            async with contextlib.AsyncExitStack() as stack:
                browser = await stack.enter_async_context(connect(chromium))
                pages = {}
                for name, route in (
                    ("list", ""),
                    ("myapp", "&/rollout/default/myapp"),
                    ("shop", "&/rollout/default/shop"),
                ):
                    page = await stack.enter_async_context(open_page(browser, height=860))
                    await page.navigate(url + route)
                    pages[name] = page
                await shoot(out, pages)
    finally:
        try:
            await asyncio.to_thread(demo.wait, DEMO_SECONDS)
        except subprocess.TimeoutExpired:
            demo.kill()
            await asyncio.to_thread(demo.wait)
        lines = output(log).strip().splitlines()
        print(f"demo: {lines[-1] if lines else 'no output'}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs")))
