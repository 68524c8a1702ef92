"""A Rollout that takes its pod template from a Deployment (`workloadRef`): `set image` and
`undo` edit the Deployment, as Argo's CLI does, and leave the Rollout's spec alone."""

from __future__ import annotations

from pathlib import Path

from cli_objects import replica_set
from tests.cli.conftest import Cli

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: legacy
spec:
  selector:
    matchLabels: {app: legacy}
  template:
    metadata:
      labels: {app: legacy}
    spec:
      containers:
      - name: legacy
        image: argoproj/rollouts-demo:blue
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: legacy
spec:
  replicas: 2
  workloadRef:
    apiVersion: apps/v1
    kind: Deployment
    name: legacy
  strategy:
    canary:
      steps:
      - setWeight: 50
"""


def deployment_image(cli: Cli) -> str:
    with cli.store() as store:
        deployment = store.require("Deployment", "legacy")
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_set_image_and_undo_edit_the_deployment(cli: Cli, tmp_path: Path) -> None:
    manifest = tmp_path / "legacy.yaml"
    manifest.write_text(MANIFEST)
    assert cli("apply", "-f", str(manifest)).exit_code == 0

    result = cli("set", "image", "legacy", "legacy=argoproj/rollouts-demo:yellow")
    assert result.exit_code == 0, result.output
    assert deployment_image(cli) == "argoproj/rollouts-demo:yellow"
    assert "template" not in cli.rollout("legacy")["spec"]

    with cli.store() as store:
        for revision, color in ((1, "blue"), (2, "yellow")):
            rs = replica_set(
                "legacy",
                f"h{revision}",
                revision=revision,
                image=f"argoproj/rollouts-demo:{color}",
                replicas=2,
                created=f"2026-11-26T0{revision}:00:00Z",
            )
            rs["spec"]["template"]["metadata"]["labels"]["app"] = "legacy"
            rs["spec"]["template"]["spec"]["containers"][0]["name"] = "legacy"
            store.create(rs)
    result = cli("undo", "legacy")
    assert result.exit_code == 0, result.output
    assert deployment_image(cli) == "argoproj/rollouts-demo:blue"
    assert "template" not in cli.rollout("legacy")["spec"]
