"""Where bytes leave: the transports that deliver one rendered message, and the retry policy.

Where it sits: the bottom of `rollwise.notify`. `rollwise.notify.services` turns a notification
into an `OutgoingMessage`; the notifier hands it to a `Transport` and reads back a `SendOutcome`
(a value, never an exception, whatever the network does).

- `AppriseMessage` goes through apprise (Teams, PagerDuty, Opsgenie, email, Telegram, Google
  Chat, Discord, Mattermost, any `json://` or other apprise URL). apprise is synchronous, so it
  runs in a worker thread; what it logged while failing becomes the outcome's detail.
- `HttpRequest` is an exact HTTP request: Argo's webhook service (method, path, body, headers as
  the template says) and Slack's `chat.postMessage` with attachments and blocks, which apprise's
  own Slack and JSON plugins cannot carry (they wrap the body in their own payload).

`MemoryTransport` is the in-package implementation for tests and previews: it records what it
was given and answers with scripted outcomes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

NotifyType = Literal["info", "success", "warning", "failure"]
SEND_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request, sent as written. `expect='slack'`: a 2xx is a success only if the
    JSON answer says `"ok": true` (Slack's Web API answers errors with 200)."""

    method: str
    url: str
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    basic_auth: tuple[str, str] | None = None
    verify_tls: bool = True
    expect: Literal["2xx", "slack"] = "2xx"


@dataclass(frozen=True)
class AppriseMessage:
    """A message for one apprise URL."""

    url: str
    body: str
    title: str = ""
    notify_type: NotifyType = "info"
    body_format: Literal["text", "markdown", "html"] = "text"


OutgoingMessage = HttpRequest | AppriseMessage


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    detail: str = ""
    retryable: bool = True
    """False when sending the same message again cannot succeed (a 4xx, a URL apprise rejects)."""


class Transport(Protocol):
    async def send(self, message: OutgoingMessage) -> SendOutcome: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off between attempts of one delivery: `first`, then doubling up to
    `cap` seconds; after `attempts` failed attempts the delivery is given up."""

    attempts: int = 6
    first: float = 1.0
    cap: float = 60.0

    def delay_after(self, failures: int) -> float | None:
        """Seconds to wait after the `failures`-th failed attempt; None: give up."""
        if failures >= self.attempts:
            return None
        return min(self.first * 2.0 ** (failures - 1), self.cap)


# --- HTTP ----------------------------------------------------------------------------------------


class HttpTransport:
    """Exact HTTP requests with aiohttp (one session, opened on first use)."""

    def __init__(self, *, timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout
        self._session: Any = None

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        if not isinstance(message, HttpRequest):
            return SendOutcome(False, f"not an HTTP request: {message!r}", retryable=False)
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        headers = dict(message.headers)
        if message.basic_auth is not None:
            user, password = message.basic_auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            async with self._session.request(
                message.method,
                message.url,
                data=message.body.encode() if message.body else None,
                headers=headers,
                ssl=None if message.verify_tls else False,
            ) as response:
                text = await response.text(errors="replace")
                status = int(response.status)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            return SendOutcome(False, f"{message.method} {message.url}: {_describe(error)}")
        if not 200 <= status <= 299:
            # 4xx means this request will never be accepted, except when asked to slow down.
            retryable = status >= 500 or status in (408, 425, 429)
            return SendOutcome(
                False,
                f"{message.method} {message.url} answered {status}: {text.strip()[:300]}",
                retryable=retryable,
            )
        if message.expect == "slack":
            return _slack_outcome(text)
        return SendOutcome(True, f"{message.method} {message.url} answered {status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _slack_outcome(text: str) -> SendOutcome:
    import json

    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        return SendOutcome(False, f"Slack answered something that is not JSON: {text[:200]}")
    if isinstance(answer, dict) and answer.get("ok") is True:
        return SendOutcome(True, "Slack accepted the message")
    error = answer.get("error", "unknown error") if isinstance(answer, dict) else answer
    # Rate limits and Slack's own trouble pass; a bad token or channel does not.
    retryable = error in ("ratelimited", "internal_error", "fatal_error", "service_unavailable")
    return SendOutcome(False, f"Slack refused the message: {error}", retryable=retryable)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- apprise -------------------------------------------------------------------------------------


class _ThreadLog(logging.Handler):
    """Keeps what apprise logs at WARNING or above in the thread it runs in."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


class AppriseTransport:
    """apprise URLs, each notification in a worker thread so the loop never waits on it."""

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        if not isinstance(message, AppriseMessage):
            return SendOutcome(False, f"not an apprise message: {message!r}", retryable=False)
        return await asyncio.to_thread(_apprise_send, message)


def _apprise_send(message: AppriseMessage) -> SendOutcome:
    import apprise  # type: ignore[import-untyped]

    log = _ThreadLog()
    logger = logging.getLogger("apprise")
    logger.addHandler(log)
    try:
        asset = apprise.AppriseAsset(app_id="rollwise", app_desc="rollwise notifications")
        target = apprise.Apprise(asset=asset)
        if not target.add(message.url):
            return SendOutcome(
                False, f"apprise does not accept the URL {_redact(message.url)}", retryable=False
            )
        sent = target.notify(
            body=message.body or " ",
            title=message.title,
            notify_type=message.notify_type,
            body_format=message.body_format,
        )
    finally:
        logger.removeHandler(log)
    if sent:
        return SendOutcome(True, f"sent through {_redact(message.url)}")
    detail = "; ".join(log.lines[-3:]) or "apprise reported a failure"
    return SendOutcome(False, f"{_redact(message.url)}: {detail}")


def _redact(url: str) -> str:
    """The scheme and host of a URL only: apprise URLs carry tokens in their path."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/..." if rest else url


# --- both, and the in-memory one -----------------------------------------------------------------


class NetworkTransport:
    """What the controller uses: HTTP requests over aiohttp, everything else through apprise."""

    def __init__(self) -> None:
        self.http = HttpTransport()
        self.apprise = AppriseTransport()

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        if isinstance(message, HttpRequest):
            return await self.http.send(message)
        return await self.apprise.send(message)

    async def close(self) -> None:
        await self.http.close()


@dataclass
class MemoryTransport:
    """Records every message; answers with `outcomes` in turn, then with success."""

    outcomes: list[SendOutcome] = field(default_factory=list)
    sent: list[OutgoingMessage] = field(default_factory=list)

    def fail_next(self, outcomes: Iterable[SendOutcome]) -> None:
        self.outcomes.extend(outcomes)

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        self.sent.append(message)
        if self.outcomes:
            return self.outcomes.pop(0)
        return SendOutcome(True, "recorded")


async def close_transport(transport: Transport) -> None:
    """Close a transport that holds connections (no-op for the others)."""
    close = getattr(transport, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
