"""What `rollwise --help`, local `get rollout` and `get rollout` against a cluster load: never
the slow modules of other paths (the budget in DESIGN.md is 150 ms; asyncio alone costs ~15 ms,
aiohttp ~0.3 s, kubernetes_asyncio ~0.7 s). Checked in a fresh interpreter, by the modules it
ends up holding."""

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


# A stand-in API server in the probe's own process (http.server loads none of SLOW) that knows
# no object: `get rollout` goes the whole way (kubeconfig, request, answer, error message).
CLUSTER_PROBE = """
import http.server, json, sys, tempfile, threading
from pathlib import Path

class NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"kind": "Status", "code": 404, "message": "not found"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        seen.append(self.path)

    def log_message(self, *args):
        pass

seen = []
server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
threading.Thread(target=server.serve_forever, daemon=True).start()
kubeconfig = Path(tempfile.mkdtemp()) / "config"
kubeconfig.write_text(json.dumps({
    "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "x",
}))
sys.argv = ["rollwise", "--context", "kubernetes", "--kubeconfig", str(kubeconfig),
            "get", "rollout", "myapp"]
from rollwise.cli.main import run
try:
    run()
except SystemExit:
    pass
server.shutdown()
assert seen == ["/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/myapp"], seen
"""


def test_the_cli_reads_a_cluster_without_the_slow_modules() -> None:
    loaded = loaded_after(CLUSTER_PROBE)
    assert sorted(loaded & {"asyncio", "aiohttp", "kubernetes_asyncio", "sqlite3"}) == []
