"""What `rollwise --help` and local `get rollout` load: never the slow modules of other paths
(the budget in DESIGN.md is 150 ms; asyncio alone costs ~15 ms, aiohttp ~0.3 s,
kubernetes_asyncio ~0.7 s). Checked in a fresh interpreter, by the modules it ends up holding."""

from __future__ import annotations

import json
import subprocess
import sys

SLOW = ("asyncio", "aiohttp", "kubernetes_asyncio", "sqlite3", "jinja2", "apprise")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_cli_starts_without_the_slow_modules() -> None:
    loaded = loaded_after("import rollwise.cli.main")
    assert sorted(loaded & set(SLOW)) == []
