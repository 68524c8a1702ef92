"""`rollwise notifications test`: the real CLI sends one notification now, to a real receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.e2e.support import rollwise
from tests.notify.receiving import Receiver

from rollwise.platforms.local.store import SqliteStore

ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: shop
  annotations:
    notifications.argoproj.io/subscribe.on-rollout-aborted.receiver: ""
spec:
  replicas: 1
  strategy:
    canary:
      steps:
      - setWeight: 50
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
      - name: shop
        image: argoproj/rollouts-demo:blue
"""


@pytest.fixture
def home(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "home"
    with SqliteStore.open_home(path) as store:
        store.apply(yaml.safe_load(ROLLOUT))
    (path / "notifications.yaml").write_text(
        f"service.webhook.receiver: 'url: {receiver.url}/hooks'\n"
        f"service.webhook.other: 'url: {receiver.url}/other'\n"
    )
    return path


def test_it_sends_the_trigger_to_the_rollouts_subscribers(home: Path, receiver: Receiver) -> None:
    result = rollwise(
        home, "notifications", "test", "--trigger", "on-rollout-aborted", "--rollout", "shop"
    )
    assert result.stdout == "sent on-rollout-aborted about rollout 'shop' to receiver\n"
    (got,) = receiver.requests
    assert (got.method, got.path, got.body) == ("GET", "/hooks", "Rollout shop has been aborted.")
    assert not (home / "notifier-state.json").exists(), "the controller's notifier is untouched"


def test_it_can_send_to_a_service_nobody_subscribed(home: Path, receiver: Receiver) -> None:
    rollwise(
        home,
        "notifications",
        "test",
        "--trigger",
        "on-rollout-completed",
        "--rollout",
        "shop",
        "--service",
        "other",
    )
    (got,) = receiver.requests
    assert (got.path, got.body) == ("/other", "Rollout shop has been completed.")


def test_dry_run_prints_the_rendered_notification_and_sends_nothing(
    home: Path, receiver: Receiver
) -> None:
    result = rollwise(
        home,
        "notifications",
        "test",
        "--trigger",
        "on-rollout-aborted",
        "--rollout",
        "shop",
        "--dry-run",
    )
    header, _, rendered = result.stdout.partition("\n")
    assert header == "# on-rollout-aborted to receiver"
    notification = json.loads(rendered)
    assert notification["message"] == "Rollout shop has been aborted."
    assert json.loads(notification["slack"]["attachments"])[0]["title"] == "shop"
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--trigger", "on-rollout-paused", "--rollout", "shop"],
            "rollout 'shop' subscribes nobody to on-rollout-paused: add the annotation "
            "notifications.argoproj.io/subscribe.on-rollout-paused.<service>",
        ),
        (["--trigger", "on-nothing", "--rollout", "shop"], "no trigger.on-nothing is configured"),
        (["--trigger", "on-rollout-aborted", "--rollout", "cart"], "rollout 'cart' not found"),
    ],
)
def test_what_cannot_be_sent_is_explained(home: Path, args: list[str], error: str) -> None:
    result = rollwise(home, "notifications", "test", *args, check=False)
    assert result.returncode == 1
    assert error in result.stderr


def test_a_failed_send_exits_1_with_what_the_service_said(home: Path, receiver: Receiver) -> None:
    receiver.answer((503, "try later"))
    result = rollwise(
        home,
        "notifications",
        "test",
        "--trigger",
        "on-rollout-aborted",
        "--rollout",
        "shop",
        check=False,
    )
    assert result.returncode == 1
    assert "on-rollout-aborted to receiver failed: GET" in result.stderr
    assert "answered 503: try later" in result.stderr


def test_without_a_configuration_it_says_where_to_write_one(tmp_path: Path) -> None:
    result = rollwise(
        tmp_path,
        "notifications",
        "test",
        "--trigger",
        "on-rollout-aborted",
        "--rollout",
        "shop",
        check=False,
    )
    assert result.returncode == 1
    assert f"no notification configuration at {tmp_path / 'notifications.yaml'}" in result.stderr
