"""A real local store in a temporary home, and a runner for the rollwise CLI against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from rollwise.cli.main import app
from rollwise.platforms.local.store import SqliteStore

SEED_MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: myapp
spec:
  ports:
  - port: 80
    targetPort: 8080
    protocol: TCP
    name: http
  selector:
    app: myapp
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: 5
  strategy:
    canary:
      steps:
      - setWeight: 20    # Step 1: 20% traffic to canary
      - pause: {duration: 2m}  # Wait 2 minutes
      - setWeight: 40    # Step 2: 40% traffic
      - pause: {duration: 2m}
      - setWeight: 60    # Step 3: 60% traffic
      - pause: {duration: 2m}
      - setWeight: 80    # Step 4: 80% traffic
      - pause: {duration: 2m}
  revisionHistoryLimit: 2
  selector:
    matchLabels:
      app: myapp
  template:
    metadata:
      labels:
        app: myapp
    spec:
      containers:
      - name: myapp
        image: argoproj/rollouts-demo:blue
        ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        resources:
          requests:
            memory: 32Mi
            cpu: 5m
"""


class Cli:
    """Runs `rollwise --home HOME ...` in-process and reads the same home's store."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(app, ["--home", str(self.home), *args], input=input)

    def store(self) -> SqliteStore:
        return SqliteStore.open_home(self.home)

    def revision(self) -> int:
        with self.store() as store:
            return store.revision()

    def rollout(self, name: str = "myapp", namespace: str = "default") -> dict[str, Any]:
        with self.store() as store:
            return store.require("Rollout", name, namespace)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "rollout.yaml"
    path.write_text(SEED_MANIFEST)
    return path


@pytest.fixture
def applied(cli: Cli, seed_file: Path) -> Cli:
    result = cli("apply", "-f", str(seed_file))
    assert result.exit_code == 0, result.output
    return cli
