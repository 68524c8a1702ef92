"""Roles and references of a canary in local mode, with real processes and Traefik: a Rollout
whose pod template lives in a Deployment (`workloadRef`, applied with `rollwise apply`),
canaryMetadata/stableMetadata reaching the running processes through downward-API files,
a rollback within `rollbackWindow`, and background analysis from its starting step to its
end (terminated as a success, or aborting the rollout) against a real web endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import IMAGE, ControllerProcess, colors_served, rollwise, store_of, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: myapp
spec:
  selector: {app: myapp}
  ports: [{port: 80, targetPort: 8080}]
"""


def read(home: Path, kind: str, name: str = "myapp") -> dict[str, Any]:
    store = store_of(home)
    try:
        return store.get(kind, name, "default") or {}
    finally:
        store.close()


def listed(home: Path, kind: str) -> list[dict[str, Any]]:
    store = store_of(home)
    try:
        return store.list(kind, "default")
    finally:
        store.close()


def status(home: Path) -> dict[str, Any]:
    return read(home, "Rollout").get("status") or {}  # type: ignore[no-any-return]


def events(home: Path) -> list[tuple[str, str]]:
    store = store_of(home)
    try:
        found = store.events(kind="Rollout", name="myapp", limit=500)
    finally:
        store.close()
    return [(event["reason"], event["message"]) for event in found]


def apply(home: Path, tmp_path: Path, text: str, name: str = "manifest.yaml") -> None:
    path = tmp_path / name
    path.write_text(text)
    rollwise(home, "apply", "-f", str(path))


def image_of(obj: dict[str, Any]) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


# --- workloadRef ---------------------------------------------------------------------------------


def deployment(color: str) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: myapp
spec:
  replicas: 2
  selector:
    matchLabels: {{app: myapp}}
  template:
    metadata:
      labels: {{app: myapp}}
    spec:
      containers:
      - name: myapp
        image: {IMAGE}:{color}
"""


WORKLOAD_ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: 2
  workloadRef:
    apiVersion: apps/v1
    kind: Deployment
    name: myapp
    scaleDown: onsuccess
  strategy:
    canary:
      steps:
      - setWeight: 50
      - pause: {}
"""


def test_a_rollout_takes_its_pods_from_a_deployment(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    controller.start()
    apply(home, tmp_path, f"{deployment('blue')}---\n{SERVICE}---\n{WORKLOAD_ROLLOUT}")
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")
    # scaleDown: onsuccess - the Deployment gives way once the Rollout is Healthy.
    wait_until(lambda: read(home, "Deployment")["spec"]["replicas"] == 0, what="Deployment at 0")
    wait_until(
        lambda: (
            status(home).get("workloadObservedGeneration")
            == str(read(home, "Deployment")["metadata"]["generation"])
        ),
        what="the Deployment's generation observed",
    )
    assert colors_served(home, "myapp.localhost", 10) == {"blue": 10}

    # A new template in the Deployment (applied like any manifest) is a new revision.
    apply(home, tmp_path, deployment("yellow"), name="deployment.yaml")
    wait_until(lambda: status(home).get("message") == "CanaryPauseStep", what="revision 2 paused")
    generation = read(home, "Deployment")["metadata"]["generation"]
    assert status(home)["workloadObservedGeneration"] == str(generation)
    assert sorted(image_of(rs) for rs in listed(home, "ReplicaSet")) == [
        f"{IMAGE}:blue",
        f"{IMAGE}:yellow",
    ]
    rollwise(home, "promote", "myapp")
    wait_until(
        lambda: (
            status(home).get("phase") == "Healthy"
            and status(home).get("stableRS") == status(home).get("currentPodHash")
        ),
        what="revision 2 promoted",
    )
    wait_until(
        lambda: colors_served(home, "myapp.localhost", 10) == {"yellow": 10}, what="on yellow"
    )
    # Only revision 1 scales the Deployment down: the replicas the new manifest gave it stay
    # (Argo's advice is to leave `replicas` out of the Deployment for this reason).
    assert read(home, "Deployment")["spec"]["replicas"] == 2


# --- ephemeral metadata, rollbackWindow -----------------------------------------------------

METADATA_ROLLOUT = f"""\
{SERVICE}---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: 2
  rollbackWindow: {{revisions: 1}}
  strategy:
    canary:
      canaryMetadata:
        labels: {{role: canary}}
        annotations: {{team: web}}
      stableMetadata:
        labels: {{role: stable}}
      steps:
      - setWeight: 50
      - pause: {{}}
  selector:
    matchLabels: {{app: myapp}}
  template:
    metadata:
      labels: {{app: myapp}}
    spec:
      containers:
      - name: myapp
        image: {IMAGE}:blue
"""


def pods(home: Path, color: str) -> list[dict[str, Any]]:
    return [
        pod
        for pod in listed(home, "Pod")
        if pod["spec"]["containers"][0]["image"].endswith(f":{color}")
        and not pod["metadata"].get("deletionTimestamp")
    ]


def podinfo(home: Path, pod: dict[str, Any], name: str) -> str:
    return (home / "pods" / "default" / pod["metadata"]["name"] / name).read_text()


def process_environment(pod: dict[str, Any]) -> dict[str, str]:
    pid = pod["metadata"]["annotations"]["rollwise.io/pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def role_everywhere(home: Path, color: str, role: str) -> bool:
    found = pods(home, color)
    return bool(found) and all(
        pod["metadata"]["labels"].get("role") == role
        and f'role="{role}"' in podinfo(home, pod, "labels")
        for pod in found
    )


def test_role_metadata_reaches_the_running_processes(
    home: Path, controller: ControllerProcess, tmp_path: Path
) -> None:
    controller.start()
    apply(home, tmp_path, METADATA_ROLLOUT)
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")
    wait_until(lambda: role_everywhere(home, "blue", "stable"), what="blue pods labelled stable")
    blue = pods(home, "blue")[0]
    directory = home / "pods" / "default" / blue["metadata"]["name"]
    assert process_environment(blue)["ROLLWISE_PODINFO_DIR"] == str(directory)

    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
    wait_until(lambda: status(home).get("message") == "CanaryPauseStep", what="at the pause")
    wait_until(lambda: role_everywhere(home, "yellow", "canary"), what="canary pods labelled")
    canary = pods(home, "yellow")[0]
    assert 'team="web"' in podinfo(home, canary, "annotations")
    assert role_everywhere(home, "blue", "stable")

    rollwise(home, "promote", "myapp")
    wait_until(lambda: status(home).get("phase") == "Healthy", what="promoted")
    # The same processes (no restart) now read the stable role in their files.
    wait_until(lambda: role_everywhere(home, "yellow", "stable"), what="canary became stable")
    same = next(
        p for p in pods(home, "yellow") if p["metadata"]["name"] == canary["metadata"]["name"]
    )
    assert (
        same["metadata"]["annotations"]["rollwise.io/pid"]
        == canary["metadata"]["annotations"]["rollwise.io/pid"]
    )
    assert 'team="web"' not in podinfo(home, same, "annotations")

    # Back to blue, one revision back: within rollbackWindow, so no step and no pause.
    blue_hash = blue["metadata"]["labels"]["rollouts-pod-template-hash"]
    rollwise(home, "undo", "myapp")
    wait_until(
        lambda: (
            status(home).get("phase") == "Healthy"
            and status(home).get("currentPodHash") == blue_hash
            and status(home).get("stableRS") == blue_hash
        ),
        what="rolled back to blue",
    )
    completed = [message for reason, message in events(home) if reason == "RolloutCompleted"]
    assert completed[-1].endswith("Rollback within window")
    wait_until(lambda: role_everywhere(home, "blue", "stable"), what="blue pods stable again")


# --- background analysis --------------------------------------------------------------------------


class Verdict(BaseHTTPRequestHandler):
    """Answers `{"ok": <the server's verdict>}`."""

    def do_GET(self) -> None:
        body = json.dumps({"ok": self.server.ok}).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def verdict() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Verdict)
    server.ok = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def background_manifest(port: int) -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: still-ok
spec:
  metrics:
  - name: ok
    interval: 1s
    successCondition: result == true
    provider:
      web:
        url: http://127.0.0.1:{port}/
        jsonPath: "{{$.ok}}"
---
{SERVICE}---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: 2
  strategy:
    canary:
      analysis:
        templates:
        - templateName: still-ok
        startingStep: 1
      steps:
      - setWeight: 50
      - pause: {{duration: 2s}}
  selector:
    matchLabels: {{app: myapp}}
  template:
    metadata:
      labels: {{app: myapp}}
    spec:
      containers:
      - name: myapp
        image: {IMAGE}:blue
"""


def background_runs(home: Path) -> list[dict[str, Any]]:
    return [
        run
        for run in listed(home, "AnalysisRun")
        if run["metadata"]["labels"].get("rollout-type") == "Background"
    ]


def test_background_analysis_from_its_starting_step_to_success_then_to_an_abort(
    home: Path, controller: ControllerProcess, tmp_path: Path, verdict: ThreadingHTTPServer
) -> None:
    controller.start()
    apply(home, tmp_path, background_manifest(verdict.server_address[1]))
    wait_until(lambda: status(home).get("phase") == "Healthy", what="revision 1 Healthy")
    assert background_runs(home) == []  # no analysis on the first deploy

    blue_hash = status(home)["stableRS"]
    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:yellow")
    wait_until(
        lambda: (
            status(home).get("phase") == "Healthy"
            and status(home).get("stableRS") not in (None, blue_hash)
            and status(home).get("stableRS") == status(home).get("currentPodHash")
        ),
        what="revision 2 promoted",
    )
    [run] = wait_until(
        lambda: [
            r for r in background_runs(home) if (r.get("status") or {}).get("phase") == "Successful"
        ],
        what="the background run ended as a success",
    )
    # It ran while the steps went on, and the full promotion terminated it.
    assert run["spec"].get("terminate") is True
    assert run["metadata"]["labels"]["rollouts-pod-template-hash"] == status(home)["stableRS"]

    verdict.ok = False  # type: ignore[attr-defined]
    rollwise(home, "set", "image", "myapp", f"myapp={IMAGE}:red")
    wait_until(lambda: status(home).get("phase") == "Degraded", what="aborted by its analysis")
    current = status(home)
    assert current["abort"] is True
    assert "RolloutAborted" in current["message"]
    assert any(reason == "AnalysisRunFailed" for reason, _ in events(home))
    wait_until(
        lambda: colors_served(home, "myapp.localhost", 10) == {"yellow": 10},
        what="all traffic back on the stable",
    )
