"""`rollwise lint` finds templates a Rollout refers to in the files or in the local store."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: stored
spec:
  metrics:
  - name: ok
    provider:
      web:
        url: http://127.0.0.1:1/health
"""

ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: uses
spec:
  selector:
    matchLabels: {app: uses}
  template:
    metadata:
      labels: {app: uses}
    spec:
      containers:
      - name: uses
        image: argoproj/rollouts-demo:blue
  strategy:
    canary:
      steps:
      - analysis:
          templates:
          - templateName: stored
"""


def test_a_template_in_the_store_counts_as_known(cli: Cli, tmp_path: Path) -> None:
    rollout = tmp_path / "rollout.yaml"
    rollout.write_text(ROLLOUT)
    missing = cli("lint", "-f", str(rollout))
    assert missing.exit_code == 1
    assert f"{rollout}:" in missing.output
    assert "AnalysisTemplate 'stored' not found" in missing.output

    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    assert cli("apply", "-f", str(template)).exit_code == 0
    found = cli("lint", "-f", str(rollout))
    assert found.exit_code == 0, found.output
    assert found.output == ""
