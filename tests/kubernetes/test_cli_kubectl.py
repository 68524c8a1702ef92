"""`kubectl rollwise ...`: the plugin entry point run by kubectl itself, as a person runs it.

kubectl finds `kubectl-rollwise` (the console script pyproject declares) on PATH and hands it
every argument after the plugin's name; the plugin acts on the cluster of the kubeconfig, here
the test API server (`kube_api`), whose request log shows what it was asked. These tests start
real processes (kubectl, then the plugin), so the watch is observed the way a terminal sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.kubernetes.apiserver import KubeApi

ARGO = "argoproj.io/v1alpha1"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
BIN = Path(sys.executable).parent  # where the project's console scripts are installed

pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="needs kubectl")


def seeded_rollout(kube_api: KubeApi) -> dict[str, Any]:
    return kube_api.create(
        {
            "apiVersion": ARGO,
            "kind": "Rollout",
            "metadata": {"name": "myapp", "namespace": "default"},
            "spec": {
                "replicas": 5,
                "selector": {"matchLabels": {"app": "myapp"}},
                "template": {
                    "metadata": {"labels": {"app": "myapp"}},
                    "spec": {"containers": [{"name": "myapp", "image": "argoproj/rollouts-demo"}]},
                },
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
            },
            "status": {
                "phase": "Paused",
                "message": "CanaryPauseStep",
                "currentStepIndex": 1,
                "pauseConditions": [
                    {"reason": "CanaryPauseStep", "startTime": "2026-11-26T01:50:00Z"}
                ],
            },
        }
    )


def plugin_env() -> dict[str, str]:
    # Only the kubeconfig on the command line: none from the environment or ~/.kube.
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    return env


async def kubectl(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        *args,
        env=plugin_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_the_plugin_is_declared_and_installed() -> None:
    # kubectl only finds a plugin by its executable's name on PATH
    assert (BIN / "kubectl-rollwise").exists(), "run `uv sync`: the entry point is not installed"


async def test_kubectl_rollwise_watch_redraws_when_the_rollout_changes(kube_api: KubeApi) -> None:
    seeded_rollout(kube_api)
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        "rollwise",
        "get",
        "rollout",
        "myapp",
        "--watch",
        "--kubeconfig",
        str(kube_api.kubeconfig_path),
        env=plugin_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    seen = ""

    async def read_until(text: str) -> None:
        nonlocal seen
        assert process.stdout is not None
        while text not in seen:
            chunk = await process.stdout.read(4096)
            if not chunk:
                assert process.stderr is not None
                error = (await process.stderr.read()).decode()
                raise AssertionError(f"the watch ended before {text!r}: {seen!r} {error!r}")
            seen += chunk.decode()

    try:
        await asyncio.wait_for(read_until("॥ Paused"), 60)
        # the watch is open (from the version it read) before the change is made
        await asyncio.wait_for(
            kube_api.wait_for(
                lambda: any(r.query.get("watch") for r in kube_api.requests_to("GET")), 60
            ),
            60,
        )
        kube_api.patch(
            ARGO,
            "Rollout",
            "myapp",
            "default",
            {"status": {"phase": "Degraded", "message": "RolloutAborted: aborted by a test"}},
        )
        await asyncio.wait_for(read_until("RolloutAborted: aborted by a test"), 60)
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            process.kill()
            await process.wait()
    frames = seen.split("\033[H\033[2J\033[0;0H")
    assert "Status:          ✖ Degraded" in frames[-1]
    # one namespace, and only the rollout's own objects (by its selector) besides rollouts
    watches = {r.path: r.query for r in kube_api.requests_to("GET") if r.query.get("watch")}
    assert "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts" in watches
    for path, query in watches.items():
        assert "/namespaces/default/" in path
        if not path.endswith("/rollouts"):
            assert query["labelSelector"] == "app=myapp"


async def test_kubectl_rollwise_takes_kubectl_flags_after_the_verb(kube_api: KubeApi) -> None:
    seeded_rollout(kube_api)
    # --context names the kubeconfig context, as in kubectl
    code, out, err = await kubectl(
        "rollwise",
        "promote",
        "myapp",
        "--context",
        "mock",
        "-n",
        "default",
        "--kubeconfig",
        str(kube_api.kubeconfig_path),
    )
    assert (code, out, err) == (0, "rollout 'myapp' promoted\n", "")
    rollout = kube_api.get(ARGO, "Rollout", "myapp")
    assert rollout is not None
    assert "pauseConditions" not in rollout["status"]
    [patch] = [r for r in kube_api.requests if r.method == "PATCH"]
    assert patch.content_type == "application/merge-patch+json"

    code, out, err = await kubectl(
        "rollwise",
        "get",
        "rollout",
        "myapp",
        "--context=nowhere",
        "--kubeconfig",
        str(kube_api.kubeconfig_path),
    )
    assert code == 1
    assert out == ""
    assert err.startswith("Error: cannot load the kubeconfig")
    assert "nowhere" in err
    assert len(err.splitlines()) == 1
