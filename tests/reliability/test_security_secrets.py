"""Secret values never leave their Secret: not in logs, status, events, metrics, the dashboard,
the CLI or notifications, even when a metrics server or a webhook echoes them back.

One canary runs through the real local controller (a subprocess, as a person runs it). Its step
analysis reads three kinds of secret: a `secretKeyRef` arg (sent by `web` metrics in a header
and a query string, and written into a condition), the `datadog` provider's credentials from
the `datadog` Secret, and the notification Secret's `$hook-token` (in a webhook's URL and
header). Every server on the other side is a careless loopback server that quotes what it
received: the metrics server answers the `Authorization` header as the value, then as the body
of a 500; the Datadog stand-in refuses the keys and quotes them; the webhook answers its first
delivery with a 500 quoting its URL and headers. The run errors, the rollout aborts, the
notifications go out. Then every place a value could surface is read and searched for each
secret (and the base64 of each): every file of the home (the controller's log, the SQLite store,
the notifier's state), every stored object but the Secrets themselves and every event,
`/metrics`, every endpoint of the dashboard (the two live streams included), the CLI's views of
the rollout and the run (`-o yaml`, `-o json`, text), `rollwise analyze` of the template (which
measures in-process), the rendered notifications (`notifications test --dry-run`) and the
bodies the webhook received. The test also checks that
the servers did receive the secrets and that `*****` stands where they were echoed, so it would
fail if the echo never happened.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sqlite3
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.support import (
    IMAGE,
    ControllerProcess,
    controller,
    home,
    rollwise,
    store_of,
    wait_until,
)

__all__ = ["controller", "home"]  # the e2e fixtures, used here

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ARG_SECRET = "rw-ArgSecret-7f3a9c1e"
DD_API_KEY = "rw-DdApiKey-4b8e2d60"
DD_APP_KEY = "rw-DdAppKey-9c1f5a27"
HOOK_TOKEN = "rw-HookToken-2e7b6d93"
SECRETS = (ARG_SECRET, DD_API_KEY, DD_APP_KEY, HOOK_TOKEN)
MASK = "*****"


@dataclass
class EchoServer:
    """A loopback server that quotes back whatever credentials it was sent."""

    server: ThreadingHTTPServer | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def hooks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"].startswith("/hook/")]

    def answer(self, handler: BaseHTTPRequestHandler, body: str) -> tuple[int, str, str]:
        headers = dict(handler.headers.items())
        with self.lock:
            self.requests.append(
                {"method": handler.command, "path": handler.path, "headers": headers, "body": body}
            )
            hooks = sum(1 for r in self.requests if r["path"].startswith("/hook/"))
        auth = headers.get("Authorization", "")
        path = handler.path
        if path.startswith("/metrics/ok"):
            return 200, "application/json", json.dumps({"auth": auth, "value": 0.5})
        if path.startswith("/metrics/fail"):
            return 500, "text/plain", f"upstream refused {path} with Authorization: {auth}"
        if path.startswith("/api/v1/query"):
            keys = f"{headers.get('DD-API-KEY')} / {headers.get('DD-APPLICATION-KEY')}"
            return 403, "application/json", json.dumps({"errors": [f"bad keys {keys}"]})
        if path.startswith("/hook/") and hooks == 1:
            return 500, "text/plain", f"cannot deliver to {path}: Authorization: {auth}"
        return 200, "text/plain", "ok"


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    state = EchoServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            status, kind, text = state.answer(self, body)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.server.shutdown()
        state.server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def manifest(port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    header = '[{key: Authorization, value: "Bearer {{args.api-token}}"}]'
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: leaky
spec:
  args:
  - name: api-token
    valueFrom:
      secretKeyRef: {{name: api, key: token}}
  metrics:
  - name: echo-ok
    count: 1
    successCondition: "result != ''"
    provider:
      web:
        url: "{base}/metrics/ok?token={{{{args.api-token}}}}"
        headers: {header}
        jsonPath: "{{$.auth}}"
  - name: echo-fail
    count: 1
    consecutiveErrorLimit: 0
    successCondition: "result > 0"
    provider:
      web:
        url: "{base}/metrics/fail?token={{{{args.api-token}}}}"
        headers: {header}
  - name: condition-quotes-the-secret
    count: 1
    consecutiveErrorLimit: 0
    successCondition: "result == 'Bearer {{{{args.api-token}}}}' && asInt(result) > 0"
    provider:
      web:
        url: "{base}/metrics/ok"
        headers: {header}
        jsonPath: "{{$.auth}}"
  - name: datadog-refuses
    count: 1
    consecutiveErrorLimit: 0
    successCondition: "result > 0"
    provider:
      datadog: {{query: "avg:requests{{*}}", interval: 1m}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: shop
  annotations:
    notifications.argoproj.io/subscribe.on-rollout-aborted.leak: ""
spec:
  replicas: 1
  strategy:
    canary:
      steps:
      - analysis:
          templates:
          - templateName: leaky
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
      containers:
      - name: shop
        image: {IMAGE}:blue
"""


def notifications(port: int) -> str:
    """A webhook whose URL and header carry the notification secret, and a template that
    renders everything a template can reach about the run (besides `secrets` itself)."""
    body = (
        '{{ {"rollout": rollout, "runs": analysisRuns, "failed": failedMetrics,'
        ' "event": event, "step": step} | tojson }}'
    )
    return f"""\
service.webhook.leak: |
  url: http://127.0.0.1:{port}/hook/$hook-token
  headers:
  - name: Authorization
    value: Bearer $hook-token
template.everything: |
  message: "{{{{ rollout.status.message }}}}"
  webhook:
    leak:
      method: POST
      body: '{body}'
trigger.on-rollout-aborted: |
  - send: [rollout-aborted, everything]
"""


def status(home: Path) -> dict[str, Any]:
    with store_of(home) as store:
        rollout = store.get("Rollout", "shop")
    return (rollout or {}).get("status") or {}


def http_get(url: str, *, first_event: bool = False) -> str:
    request = urllib.request.Request(url, headers={"Host": "127.0.0.1"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if not first_event:
            return str(response.read().decode())
        for raw in response:  # a live stream: its first payload is enough
            line = raw.decode()
            if line.startswith("data: "):
                return line
    raise AssertionError(f"{url}: the stream ended before its first event")


def forms(secret: str) -> list[str]:
    """The secret as written and as base64 (a Secret's `data`, a Basic header)."""
    return [secret, base64.b64encode(secret.encode()).decode()]


def leaks(text: str, *, encoded: bool = True) -> list[str]:
    found = [form for secret in SECRETS for form in forms(secret) if form in text]
    return found if encoded else [form for form in found if form in SECRETS]


def test_no_secret_escapes_a_run_whose_servers_echo_them(
    home: Path, controller: ControllerProcess, tmp_path: Path, echo: EchoServer
) -> None:
    metrics_port, dashboard_port = free_port(), free_port()
    (home / "notifications.yaml").write_text(notifications(echo.port))
    rollwise(home, "create", "secret", "generic", "api", "--from-literal", f"token={ARG_SECRET}")
    rollwise(
        home,
        "create",
        "secret",
        "generic",
        "datadog",
        "--from-literal",
        f"api-key={DD_API_KEY}",
        "--from-literal",
        f"app-key={DD_APP_KEY}",
        "--from-literal",
        f"address=http://127.0.0.1:{echo.port}",
    )
    rollwise(
        home,
        "create",
        "secret",
        "generic",
        "argo-rollouts-notification-secret",
        "--from-literal",
        f"hook-token={HOOK_TOKEN}",
    )
    path = tmp_path / "shop.yaml"
    path.write_text(manifest(echo.port))
    controller.start("--metrics-port", str(metrics_port), "--dashboard-port", str(dashboard_port))
    rollwise(home, "apply", "-f", str(path))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")
    rollwise(home, "set", "image", "shop", f"shop={IMAGE}:yellow")
    wait_until(lambda: status(home).get("abort") is True, timeout=90, what="the analysis aborts")
    delivered = wait_until(lambda: len(echo.hooks()) >= 2 and echo.hooks(), what="a retried hook")

    # The servers did get every secret: a careless message had something to leak.
    received = json.dumps(echo.requests)
    assert all(secret in received for secret in SECRETS)

    seen: dict[str, str] = {}
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    for endpoint in (
        "/",
        "/rollouts",
        "/api/v1/version",
        "/api/v1/namespace",
        "/api/v1/settings",
        "/api/v1/rollouts/default/info",
        "/api/v1/rollouts/default/shop/info",
    ):
        seen[f"dashboard {endpoint}"] = http_get(dashboard + endpoint)
    for endpoint in (
        "/api/v1/rollouts/default/info/watch",
        "/api/v1/rollouts/default/shop/info/watch",
    ):
        seen[f"dashboard {endpoint}"] = http_get(dashboard + endpoint, first_event=True)
    seen["/metrics"] = http_get(f"http://127.0.0.1:{metrics_port}/metrics")

    # Every object of the store (read as rows, whatever its kind) but the Secrets themselves,
    # which hold the values base64-encoded in `data` as Kubernetes does; and every event.
    with contextlib.closing(sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT kind, namespace, name, body FROM objects").fetchall()
        events = db.execute("SELECT * FROM events").fetchall()
    kinds = {kind for kind, _, _, _ in rows}
    assert {"Rollout", "ReplicaSet", "Pod", "AnalysisRun", "AnalysisTemplate"} <= kinds, kinds
    assert sum(1 for kind, _, _, _ in rows if kind == "Secret") == 3
    for kind, namespace, name, body in rows:
        if kind != "Secret":
            seen[f"{kind} {namespace}/{name}"] = body
    assert events
    seen["events"] = json.dumps(events)
    run_name = next(name for kind, _, name, _ in rows if kind == "AnalysisRun")
    for verb in (
        ("get", "rollout", "shop"),
        ("get", "rollout", "shop", "-o", "yaml"),
        ("get", "analysisrun", run_name),
        ("get", "analysisrun", run_name, "-o", "yaml"),
        ("get", "analysisrun", run_name, "-o", "json"),
        ("list", "analysisruns"),
        (
            "notifications",
            "test",
            "--trigger",
            "on-rollout-aborted",
            "--rollout",
            "shop",
            "--dry-run",
        ),
    ):
        result = rollwise(home, *verb)
        seen["rollwise " + " ".join(verb)] = result.stdout + result.stderr
    # `analyze` measures in-process, printing what each metric measured (an Error: exit 2).
    template = tmp_path / "leaky.yaml"
    template.write_text(manifest(echo.port).split("---")[0])
    analyzed = rollwise(home, "analyze", "-f", str(template), "--once", "--no-color", check=False)
    assert analyzed.returncode == 2, analyzed.stdout + analyzed.stderr
    assert MASK in analyzed.stdout
    seen["rollwise analyze"] = analyzed.stdout + analyzed.stderr
    for index, hook in enumerate(delivered):
        seen[f"webhook body {index}"] = hook["body"]
    controller.stop()
    files = {
        f"file {file.relative_to(home)}": file.read_bytes().decode("latin-1")
        for file in sorted(home.rglob("*"))
        if file.is_file()
    }
    assert "file controller-test.log" in files
    assert "file state.db" in files

    found = {where: leaks(text) for where, text in seen.items() if leaks(text)}
    # The store holds the Secrets themselves, base64 in `data`: files are searched for the
    # values as written (the objects above were searched for both forms).
    found |= {
        where: leaks(text, encoded=False)
        for where, text in files.items()
        if leaks(text, encoded=False)
    }
    seen |= files
    assert not found, f"secret values found in: {found}"

    # ... and the mask stands where the servers quoted them.
    run = json.loads(seen[f"AnalysisRun default/{run_name}"])
    results = {r["name"]: r for r in run["status"]["metricResults"]}
    assert results["echo-ok"]["measurements"][-1]["value"] == f"Bearer {MASK}"
    for name in ("echo-fail", "condition-quotes-the-secret", "datadog-refuses"):
        assert results[name]["phase"] == "Error", results[name]
        assert MASK in results[name]["measurements"][-1]["message"], results[name]
    assert MASK in seen["webhook body 1"]
    log = seen["file controller-test.log"]
    assert "could not send" in log  # the failed delivery is logged...
    assert MASK in log  # ... masked
