"""Transports against a real HTTP receiver on loopback: exact requests (Argo's webhook, Slack's
API) and apprise URLs; outcomes as values, retryable or not; the back-off schedule."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator

import pytest
from tests.notify.receiving import Receiver

from rollwise.notify.delivery import (
    AppriseMessage,
    AppriseTransport,
    HttpRequest,
    HttpTransport,
    NetworkTransport,
    RetryPolicy,
)
from rollwise.notify.services import build_message
from rollwise.notify.subscriptions import Destination


@pytest.fixture
async def http() -> AsyncIterator[HttpTransport]:
    transport = HttpTransport(timeout=5)
    try:
        yield transport
    finally:
        await transport.close()


async def test_a_webhook_request_arrives_as_written(
    receiver: Receiver, http: HttpTransport
) -> None:
    request = build_message(
        "webhook",
        "receiver",
        options={
            "url": receiver.url + "/hooks/",
            "headers": [{"name": "X-Token", "value": "t0k"}],
            "basicAuth": {"username": "u", "password": "p"},
        },
        destination=Destination("receiver"),
        notification={
            "message": "ignored when the template has a body",
            "webhook": {
                "receiver": {"method": "PUT", "path": "/rollouts/shop", "body": '{"a": 1}'},
                "other": {"body": "not ours"},
            },
        },
    )
    outcome = await http.send(request)
    assert outcome.ok, outcome.detail
    (got,) = receiver.requests
    assert (got.method, got.path, got.body) == ("PUT", "/hooks/rollouts/shop", '{"a": 1}')
    assert got.headers["X-Token"] == "t0k"
    assert got.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


async def test_a_webhook_without_a_template_section_gets_the_message_by_get(
    receiver: Receiver, http: HttpTransport
) -> None:
    request = build_message(
        "webhook",
        "hook",
        options={"url": receiver.url},
        destination=Destination("hook"),
        notification={"message": "Rollout shop has been aborted."},
    )
    assert (await http.send(request)).ok
    (got,) = receiver.requests
    assert (got.method, got.body) == ("GET", "Rollout shop has been aborted.")


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (404, False), (400, False)]
)
async def test_an_error_status_is_a_failed_outcome(
    receiver: Receiver, http: HttpTransport, status: int, retryable: bool
) -> None:
    receiver.answer((status, "no thanks"))
    outcome = await http.send(HttpRequest("POST", receiver.url + "/x", body="{}"))
    assert not outcome.ok
    assert outcome.retryable is retryable
    assert f"answered {status}: no thanks" in outcome.detail


async def test_nobody_listening_is_a_retryable_failure(http: HttpTransport) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await http.send(HttpRequest("POST", f"http://127.0.0.1:{port}/"))
    assert not outcome.ok
    assert outcome.retryable
    assert f"127.0.0.1:{port}" in outcome.detail


@pytest.mark.parametrize(
    ("answer", "ok", "retryable"),
    [
        ('{"ok": true, "ts": "1"}', True, True),
        ('{"ok": false, "error": "channel_not_found"}', False, False),
        ('{"ok": false, "error": "ratelimited"}', False, True),
    ],
)
async def test_slack_answers_errors_with_200_and_they_count_as_failures(
    receiver: Receiver, http: HttpTransport, answer: str, ok: bool, retryable: bool
) -> None:
    receiver.answer((200, answer))
    request = build_message(
        "slack",
        "slack",
        options={"token": "xoxb-1", "apiURL": receiver.url + "/api/"},
        destination=Destination("slack", "#deploys"),
        notification={"message": "hello"},
    )
    outcome = await http.send(request)
    assert (outcome.ok, outcome.retryable) == (ok, retryable)
    (got,) = receiver.requests
    assert got.path == "/api/chat.postMessage"
    assert got.headers["Authorization"] == "Bearer xoxb-1"
    assert got.json() == {"channel": "#deploys", "text": "hello"}


# --- apprise -------------------------------------------------------------------------------------


async def test_a_json_url_goes_through_apprise_in_its_envelope(receiver: Receiver) -> None:
    message = build_message(
        "webhook",
        "hook",
        options={"url": f"json://127.0.0.1:{receiver.port}/apprise?method=PUT"},
        destination=Destination("hook"),
        notification={"message": "Rollout shop has been aborted."},
        notify_type="warning",
    )
    assert isinstance(message, AppriseMessage)
    outcome = await AppriseTransport().send(message)
    assert outcome.ok, outcome.detail
    (got,) = receiver.requests
    assert (got.method, got.path) == ("PUT", "/apprise")
    envelope = got.json()
    assert envelope["message"] == "Rollout shop has been aborted."
    assert envelope["type"] == "warning"
    assert got.headers["User-Agent"] == "rollwise"


async def test_apprise_failures_are_outcomes_with_what_apprise_said(receiver: Receiver) -> None:
    receiver.answer((500, "down"))
    outcome = await AppriseTransport().send(
        AppriseMessage(url=f"json://127.0.0.1:{receiver.port}/", body="x")
    )
    assert not outcome.ok
    assert outcome.retryable
    assert "500" in outcome.detail
    refused = await AppriseTransport().send(AppriseMessage(url="nosuchscheme://x", body="x"))
    assert (refused.ok, refused.retryable) == (False, False)
    assert "does not accept the URL nosuchscheme://x/..." in refused.detail


async def test_the_network_transport_sends_both_kinds_concurrently(receiver: Receiver) -> None:
    transport = NetworkTransport()
    try:
        outcomes = await asyncio.gather(
            transport.send(HttpRequest("POST", receiver.url + "/exact", body="raw")),
            transport.send(AppriseMessage(url=f"json://127.0.0.1:{receiver.port}/env", body="m")),
        )
    finally:
        await transport.close()
    assert all(o.ok for o in outcomes), outcomes
    assert sorted(r.path for r in receiver.requests) == ["/env", "/exact"]


def test_the_back_off_doubles_up_to_its_cap_then_gives_up() -> None:
    policy = RetryPolicy(attempts=6, first=1.0, cap=10.0)
    assert [policy.delay_after(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 10.0, None, None]
