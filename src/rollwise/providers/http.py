"""HTTP plumbing shared by the providers that talk to a metrics server over HTTP.

Where it sits: under the provider modules (prometheus, web, datadog, ...), over aiohttp. It is
the one place where aiohttp errors become the sentences an Error measurement shows: a provider
calls `fetch(...)` and gets either an `HTTPAnswer` or an `HTTPFailure` value, never an aiohttp
exception. OAuth2 client credentials (Prometheus, Web) live here too.

The controllers run inside `shared_session()`: every provider request they make goes through one
connection pool, so a measurement taken every few seconds reuses its kept-alive connection to
the metrics server instead of opening a session and a TCP (and TLS) connection each time.
Outside it (`rollwise analyze`, tests) each `fetch` has a session of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import aiohttp

EXCERPT_CHARS = 200

_SESSION: ContextVar[aiohttp.ClientSession | None] = ContextVar("provider_session", default=None)


@contextlib.asynccontextmanager
async def shared_session() -> AsyncIterator[None]:
    """Provider requests made inside (and in tasks started inside) share one connection pool."""
    # No cookie jar: the pool is shared by servers that must not see each other's cookies.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        token = _SESSION.set(session)
        try:
            yield
        finally:
            _SESSION.reset(token)


@dataclass(frozen=True)
class HTTPAnswer:
    """A response that arrived (any status)."""

    status: int
    text: str
    content_type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The decoded JSON body; raises ValueError when it is not JSON."""
        return json.loads(self.text)

    def excerpt(self) -> str:
        return excerpt(self.text)


@dataclass(frozen=True)
class HTTPFailure:
    """No response: the message says what happened and to which address."""

    message: str


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of `text` on one line, marked when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def header_pairs(raw: object) -> list[tuple[str, str]]:
    """Argo's `headers: [{key, value}]` as pairs (entries without a key are skipped)."""
    pairs: list[tuple[str, str]] = []
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        for item in raw:
            if isinstance(item, Mapping) and item.get("key"):
                pairs.append((str(item["key"]), str(item.get("value", ""))))
    return pairs


def basic_authorization(username: str, password: str) -> str:
    """The `Authorization` header value of HTTP basic auth (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def ssl_option(insecure: bool) -> ssl.SSLContext | bool:
    """aiohttp's `ssl=`: False skips verification (`insecure: true`), True verifies."""
    return not insecure


async def fetch(
    method: str,
    url: str,
    *,
    what: str,
    timeout_s: float,
    insecure: bool = False,
    headers: Sequence[tuple[str, str]] = (),
    params: Mapping[str, str] | None = None,
    data: Mapping[str, str] | str | bytes | None = None,
    json_body: Any = None,
    auth: tuple[str, str] | None = None,
) -> HTTPAnswer | HTTPFailure:
    """One HTTP request with a total `timeout_s` in seconds. `what` names the server in messages
    (`"Prometheus"`, `"web metric"`), so a failure reads "Prometheus at URL: connection refused".
    """
    headers = [*headers, ("Authorization", basic_authorization(*auth))] if auth else headers
    shared = _SESSION.get()
    try:
        async with (
            contextlib.nullcontext(shared) if shared else aiohttp.ClientSession() as session,
            session.request(
                method,
                url,
                headers=list(headers) or None,
                params=dict(params) if params else None,
                data=data,
                json=json_body,
                ssl=ssl_option(insecure),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response,
        ):
            raw = await response.read()
            text = raw.decode(response.charset or "utf-8", errors="replace")
            return HTTPAnswer(
                status=response.status,
                text=text,
                content_type=response.content_type,
                headers=dict(response.headers),
            )
    except TimeoutError:
        return HTTPFailure(f"{what} at {url} did not answer within {timeout_s:g} s")
    except aiohttp.ClientConnectorCertificateError as exc:
        return HTTPFailure(
            f"{what} at {url}: TLS certificate not trusted ({exc.certificate_error}); "
            "set insecure: true to skip verification"
        )
    except aiohttp.ClientConnectorError as exc:
        return HTTPFailure(f"{what} at {url} is unreachable: {_reason(exc.os_error)}")
    except aiohttp.InvalidURL:
        return HTTPFailure(f"{what}: invalid URL {url!r}")
    except (aiohttp.ClientError, ValueError, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        return HTTPFailure(f"{what} at {url}: {detail}")
    except asyncio.CancelledError:
        raise


def _reason(error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        # Resolver errors carry negative EAI_* codes that os.strerror does not know.
        return f"the host name does not resolve ({(error.strerror or str(error)).lower()})"
    # asyncio words a refused connection "Connect call failed (...)"; the errno says it plainly.
    if error.errno and error.errno > 0:
        return os.strerror(error.errno).lower()
    return (error.strerror or str(error) or type(error).__name__).lower()


async def oauth2_token(
    config: Mapping[str, Any], *, what: str, timeout_s: float, insecure: bool
) -> str | HTTPFailure:
    """An access token by the OAuth2 client-credentials grant (what Go's `clientcredentials`
    does: credentials in a Basic header first, in the form when the server refuses that)."""
    token_url = str(config.get("tokenUrl") or "")
    if not token_url:
        return HTTPFailure(f"{what}: authentication.oauth2.tokenUrl is required")
    client_id = str(config.get("clientId") or "")
    client_secret = str(config.get("clientSecret") or "")
    form = {"grant_type": "client_credentials"}
    scopes = config.get("scopes")
    if isinstance(scopes, Sequence) and not isinstance(scopes, str) and scopes:
        form["scope"] = " ".join(str(scope) for scope in scopes)
    answer = await fetch(
        "POST",
        token_url,
        what=f"{what} OAuth2 token endpoint",
        timeout_s=timeout_s,
        insecure=insecure,
        data=form,
        auth=(client_id, client_secret),
    )
    if isinstance(answer, HTTPAnswer) and answer.status in (400, 401):
        answer = await fetch(
            "POST",
            token_url,
            what=f"{what} OAuth2 token endpoint",
            timeout_s=timeout_s,
            insecure=insecure,
            data={**form, "client_id": client_id, "client_secret": client_secret},
        )
    if isinstance(answer, HTTPFailure):
        return answer
    if not answer.ok:
        return HTTPFailure(
            f"{what}: OAuth2 token request to {token_url} failed with HTTP {answer.status}: "
            f"{answer.excerpt()}"
        )
    try:
        token = answer.json().get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        return HTTPFailure(f"{what}: OAuth2 token endpoint {token_url} returned no access_token")
    return token
