"""Each Argo service type becomes a message apprise accepts (or an exact request); email goes
all the way to a small SMTP server on loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import apprise  # type: ignore[import-untyped]
import pytest

from rollwise.api.errors import ManifestError
from rollwise.notify.delivery import AppriseMessage, AppriseTransport
from rollwise.notify.services import build_message
from rollwise.notify.subscriptions import Destination

NOTIFICATION: dict[str, Any] = {
    "message": "Rollout shop has been aborted.",
    "email": {"subject": "shop aborted"},
    "teams": {"title": "shop", "text": "**aborted**"},
    "pagerdutyv2": {"summary": "shop aborted", "severity": "critical", "source": "rollwise"},
    "opsgenie": {"description": "the canary failed", "priority": "P1", "tags": ["a", "b"]},
}


@pytest.mark.parametrize(
    ("kind", "options", "recipient", "schema"),
    [
        (
            "teams",
            {
                "recipientUrls": {
                    "ops": "https://outlook.office.com/webhook/abc@def/IncomingWebhook/ghi/jkl"
                }
            },
            "ops",
            "msteams",
        ),
        (
            "googlechat",
            {
                "webhooks": {
                    "room": "https://chat.googleapis.com/v1/spaces/AAA/messages?key=k&token=t"
                }
            },
            "room",
            "gchat",
        ),
        (
            "email",
            {
                "host": "smtp.example.com",
                "port": 587,
                "username": "u",
                "password": "p@ss",
                "from": "r@example.com",
            },
            "dev@example.com",
            "mailtos",
        ),
        ("pagerdutyv2", {"serviceKeys": {"shop": "intkey123"}}, "shop", "pagerduty"),
        (
            "opsgenie",
            {"apiUrl": "https://api.eu.opsgenie.com", "apiKeys": {"ops": "key123"}},
            "ops",
            "opsgenie",
        ),
        (
            "mattermost",
            {"apiURL": "https://mm.example.com", "token": "hookkey123"},
            "town-square",
            "mmosts",
        ),
        ("telegram", {"token": "123456789:ABCdefGhIJKlmnOPQRstuVWxyz"}, "-100123", "tgram"),
        (
            "rocketchat",
            {"serverUrl": "https://rc.example.com", "email": "bot", "password": "pw"},
            "#deploys",
            "rockets",
        ),
        ("pushover", {"token": "a" * 30}, "u" * 30, "pover"),
        ("webhook", {"url": "discord://123456/abcdefTOKEN"}, "", "discord"),
    ],
)
def test_each_service_type_makes_a_url_apprise_accepts(
    kind: str, options: dict[str, Any], recipient: str, schema: str
) -> None:
    message = build_message(
        kind,
        kind,
        options=options,
        destination=Destination(kind, recipient),
        notification=NOTIFICATION,
        notify_type="warning",
    )
    assert isinstance(message, AppriseMessage)
    plugin = apprise.Apprise.instantiate(message.url)
    assert plugin is not None, f"apprise refused {message.url}"
    assert plugin.url().startswith(schema + "://")


def test_service_sections_of_the_template_reach_apprise_parameters() -> None:
    pd = build_message(
        "pagerdutyv2",
        "pd",
        options={"serviceKeys": {"shop": "intkey123"}},
        destination=Destination("pd", "shop"),
        notification=NOTIFICATION,
    )
    assert isinstance(pd, AppriseMessage)
    assert pd.body == "shop aborted"
    assert "severity=critical" in pd.url
    assert pd.url.startswith("pagerduty://intkey123@intkey123/rollwise")
    og = build_message(
        "opsgenie",
        "og",
        options={"apiUrl": "https://api.eu.opsgenie.com", "apiKeys": {"ops": "key123"}},
        destination=Destination("og", "ops"),
        notification=NOTIFICATION,
    )
    assert isinstance(og, AppriseMessage)
    assert (og.title, og.body) == ("Rollout shop has been aborted.", "the canary failed")
    for part in ("region=eu", "priority=5", "tags=a%2Cb"):
        assert part in og.url
    teams = build_message(
        "teams",
        "t",
        options={"recipientUrls": {"ops": "https://x"}},
        destination=Destination("t", "ops"),
        notification=NOTIFICATION,
    )
    assert isinstance(teams, AppriseMessage)
    assert (teams.title, teams.body, teams.body_format) == ("shop", "**aborted**", "markdown")


@pytest.mark.parametrize(
    ("kind", "options", "problem"),
    [
        ("slack", {}, "option 'token' is required"),
        ("webhook", {}, "option 'url' is required"),
        ("teams", {"recipientUrls": {"a": "x"}}, "no recipientUrls entry for recipient 'b'"),
        ("github", {}, "not supported by rollwise; reach it through apprise"),
    ],
)
def test_a_service_that_cannot_make_a_message_says_why(
    kind: str, options: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ManifestError, match=problem):
        build_message(
            kind, kind, options=options, destination=Destination(kind, "b"), notification={}
        )


# --- email, end to end ---------------------------------------------------------------------------


@dataclass
class SmtpServer:
    """Just enough SMTP (RFC 5321, no TLS, no auth) to receive what apprise sends."""

    port: int = 0
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sender, recipients = "", []
        writer.write(b"220 localhost ESMTP test\r\n")
        while line := await reader.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                writer.write(b"250 localhost\r\n")
            elif verb == "MAIL":
                sender = command.split(":", 1)[1].strip(" <>")
                writer.write(b"250 OK\r\n")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip(" <>"))
                writer.write(b"250 OK\r\n")
            elif verb == "DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                data = b""
                while (chunk := await reader.readline()) != b".\r\n":
                    data += chunk
                self.messages.append((sender, recipients, data))
                writer.write(b"250 OK\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    state = SmtpServer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


async def test_an_email_is_delivered_through_apprise(smtp: SmtpServer) -> None:
    message = build_message(
        "email",
        "email",
        options={"host": "127.0.0.1", "port": smtp.port, "from": "rollwise@example.com"},
        destination=Destination("email", "dev@example.com"),
        notification=NOTIFICATION,
    )
    outcome = await AppriseTransport().send(message)
    assert outcome.ok, outcome.detail
    ((sender, recipients, data),) = smtp.messages
    assert (sender, recipients) == ("rollwise@example.com", ["dev@example.com"])
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == "shop aborted"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert "Rollout shop has been aborted." in body.get_content()
