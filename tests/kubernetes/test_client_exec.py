"""KubeClient and exec plugins: a plugin that takes its time (`aws eks get-token`, about a
second) runs in a worker thread, not on the controller's event loop, and once for requests that
need it at the same time; against the test API server over HTTP.

The plugin waits until a file appears, and the test's own coroutine makes that file once the
plugin has started: were the plugin run on the loop, that coroutine could not run and the plugin
would give up. No timing is measured.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import yaml
from tests.kubernetes.apiserver import KubeApi

from rollwise.platforms.kubernetes.client import KubeClient

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "myapp", "namespace": "default"},
    "spec": {"selector": {"app": "myapp"}},
}
PLUGIN = """
import json, pathlib, sys, time
runs, release, token = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
with runs.open("a") as out:
    out.write("run\\n")
deadline = time.monotonic() + 10
while not release.exists():
    if time.monotonic() > deadline:
        sys.exit("never released: the event loop did not run while the plugin did")
    time.sleep(0.01)
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {"token": token},
}))
"""


def exec_kubeconfig(kube_api: KubeApi, folder: Path) -> tuple[Path, Path, Path]:
    """The test server's kubeconfig with the plugin (which gives the server's token) as its
    user; (path, runs log, release)."""
    script, runs, release = folder / "plugin.py", folder / "runs", folder / "release"
    script.write_text(PLUGIN)
    config = yaml.safe_load(kube_api.kubeconfig_path.read_text())
    config["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script), str(runs), str(release), kube_api.token],
            "interactiveMode": "Never",
        }
    }
    path = folder / "exec-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path, runs, release


async def test_an_exec_plugin_runs_off_the_event_loop_once_for_concurrent_requests(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    kube_api.create(SERVICE)
    path, runs, release = exec_kubeconfig(kube_api, tmp_path)
    async with await KubeClient.connect(kubeconfig=str(path)) as client:
        both = asyncio.gather(
            client.get("v1", "Service", "myapp", "default"),
            client.list("v1", "Service", "default"),
        )
        for _ in range(1000):  # until the plugin started (at most 10 s): the loop runs on
            if runs.exists() or both.done():
                break
            await asyncio.sleep(0.01)
        release.touch()
        found, listed = await both
        again = await client.get("v1", "Service", "myapp", "default")  # the token is kept
    assert found is not None
    assert again is not None
    assert [item["metadata"]["name"] for item in listed.items] == ["myapp"]
    assert runs.read_text() == "run\n"
    sent = kube_api.requests_to(None, "/api/v1/namespaces/default/services")
    assert [request.headers.get("Authorization") for request in sent] == [
        f"Bearer {kube_api.token}"
    ] * 3
