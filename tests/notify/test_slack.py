"""The Slack message of an abort: the rollout, the step, the weights and the failing metric."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from tests.notify.objects import ABORT_MESSAGE, event, rollout, runs

from rollwise.api.errors import ManifestError
from rollwise.notify.config import parse_config
from rollwise.notify.delivery import HttpRequest
from rollwise.notify.services import build_message, slack_payload
from rollwise.notify.subscriptions import Destination
from rollwise.notify.templates import render_notification
from rollwise.notify.variables import notification_variables


def aborted_notification() -> dict[str, object]:
    config = parse_config({})
    values = notification_variables(
        rollout=rollout(),
        analysis_runs=runs(),
        event=event("RolloutAborted", ABORT_MESSAGE, type_="Warning"),
        trigger="on-rollout-aborted",
        recipient="#deploys",
        now=datetime(2026, 1, 2, tzinfo=UTC),
    )
    return render_notification([config.templates["rollout-aborted"]], values)


def test_the_abort_message_shows_rollout_step_weights_and_failing_metric() -> None:
    payload = slack_payload(aborted_notification(), channel="#deploys", options={})
    assert payload["channel"] == "#deploys"
    assert payload["text"] == "Rollout shop has been aborted."
    (attachment,) = payload["attachments"]
    assert attachment["title"] == "shop"
    assert attachment["color"] == "#E01E5A"
    assert attachment["fields"] == [
        {"title": "Strategy", "value": "Canary", "short": True},
        {"title": "Step", "value": "2/3 (analysis)", "short": True},
        {"title": "Weights", "value": "canary 0%, stable 100%", "short": True},
        {"title": "Failed metric: success-rate", "value": "Failed, value 0.5", "short": False},
        {"title": "Message", "value": ABORT_MESSAGE, "short": False},
        {"title": "shop", "value": "argoproj/rollouts-demo:bad-red", "short": True},
        {"title": "proxy", "value": 'envoy:"1.30"', "short": True},
    ]
    assert "blocks" not in payload


def test_username_icon_blocks_and_unfurl_follow_argo_options() -> None:
    notification = {
        "message": "hi",
        "slack": {"blocks": '[{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]'},
    }
    emoji = slack_payload(
        notification, channel="c", options={"username": "rollwise", "icon": ":rocket:"}
    )
    assert emoji["username"] == "rollwise"
    assert emoji["icon_emoji"] == ":rocket:"
    assert emoji["blocks"][0]["text"]["text"] == "*hi*"
    url = slack_payload(
        notification, channel="c", options={"icon": "https://x/i.png", "disableUnfurl": True}
    )
    assert url["icon_url"] == "https://x/i.png"
    assert url["unfurl_links"] is False
    assert url["unfurl_media"] is False


def test_the_slack_request_is_chat_post_message_with_the_bot_token() -> None:
    request = build_message(
        "slack",
        "slack",
        options={"token": "xoxb-1", "apiURL": "http://127.0.0.1:9/api"},
        destination=Destination("slack", "#deploys"),
        notification=aborted_notification(),
    )
    assert isinstance(request, HttpRequest)
    assert request.url == "http://127.0.0.1:9/api/chat.postMessage"
    assert ("Authorization", "Bearer xoxb-1") in request.headers
    assert request.expect == "slack"
    body = json.loads(request.body)
    assert body == slack_payload(aborted_notification(), channel="#deploys", options={})


def test_attachments_that_are_not_json_once_rendered_are_a_template_error() -> None:
    with pytest.raises(ManifestError, match=r"slack\.attachments is not JSON once rendered"):
        slack_payload({"slack": {"attachments": "[{oops}]"}}, channel="c", options={})
