"""The `web` metric provider: one HTTP request, a value picked out of the JSON answer.

Who calls it: the analysis shell through `rollwise.providers.base.provider_for`.

Fields (reference 3.2): `url` (required), `method` GET (default) | POST | PUT,
`headers[{key,value}]`, `body` (a string) or `jsonBody` (an object, sent as JSON with
`Content-Type: application/json`) - one of the two, and only with POST/PUT - `timeoutSeconds`
(default 10), `insecure` (skip TLS verification), `jsonPath` (Kubernetes JSONPath in braces,
default `{$}`: the whole document), `authentication.oauth2{tokenUrl, clientId, clientSecret,
scopes}` (client credentials).

Result: a JSON body gives the first `jsonPath` match, decoded as Go decodes JSON (numbers are
floats, objects maps, arrays lists); a body that is not JSON gives the whole body as a string;
no match is an Error ("result of web metric produced no value"); a status outside 2xx is an
Error with the status and the start of the body.

Two deliberate differences from Argo's code (`webmetric.go`), both so that a release is never
passed on a body nobody measured: Argo returns a body that is not JSON as a *Successful*
measurement without evaluating the conditions (an HTML error page answered with 200 passes);
rollwise hands the body to the conditions as a string, so `result >= 0.95` is an Error. And the
`NaN` / `Infinity` literals Python's json writes (Go refuses them, which in Argo makes the body
"not JSON" and so Successful) are read as the floats they say, judged as Prometheus' NaN is:
`NaN >= 0.95` is false.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollwise.api.models import Measurement, Metric
from rollwise.providers.base import (
    ProviderContext,
    SynchronousProvider,
    error_at,
    finished,
    provider_config,
    register,
)
from rollwise.providers.http import HTTPFailure, fetch, header_pairs, oauth2_token
from rollwise.providers.jsonpath import JSONPathError, parse_jsonpath

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_JSONPATH = "{$}"
METHODS = ("GET", "POST", "PUT")
WHAT = "web metric"


class WebFailure(Exception):
    """Internal: a reason to end this measurement as Error (never leaves the module)."""


@dataclass(frozen=True)
class WebValue:
    """The `result` a web metric's conditions see."""

    value: object


@dataclass(frozen=True)
class WebError:
    """Why the request gave no value (becomes the Error measurement's message)."""

    message: str


@register("web")
class WebProvider(SynchronousProvider):
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        started = context.now()
        outcome = await self.fetch_value(metric)
        if isinstance(outcome, WebError):
            return error_at(outcome.message, started_at=started, finished_at=context.now())
        return finished(metric, outcome.value, started_at=started, finished_at=context.now())

    async def fetch_value(self, metric: Metric) -> WebValue | WebError:
        """The metric's request, answered, and the value picked out of the answer."""
        try:
            return WebValue(await self._fetch_value(provider_config(metric, "web")))
        except WebFailure as failure:
            return WebError(str(failure))

    async def _fetch_value(self, config: Mapping[str, Any]) -> object:
        url = str(config.get("url") or "")
        if not url:
            raise WebFailure("web.url is required")
        method = str(config.get("method") or "GET").upper()
        if method not in METHODS:
            raise WebFailure(f"web.method {method!r} is not one of {', '.join(METHODS)}")
        has_body, has_json = config.get("body") is not None, config.get("jsonBody") is not None
        if has_body and has_json:
            raise WebFailure("web.body and web.jsonBody cannot both be set")
        if (has_body or has_json) and method == "GET":
            raise WebFailure("web.body and web.jsonBody are only allowed with POST or PUT")
        try:
            path = parse_jsonpath(str(config.get("jsonPath") or DEFAULT_JSONPATH))
        except JSONPathError as exc:
            raise WebFailure(str(exc)) from exc
        timeout = _timeout(config.get("timeoutSeconds"))
        insecure = bool(config.get("insecure"))
        headers = header_pairs(config.get("headers"))

        auth = config.get("authentication")
        oauth2 = auth.get("oauth2") if isinstance(auth, Mapping) else None
        if isinstance(oauth2, Mapping) and oauth2.get("tokenUrl"):
            token = await oauth2_token(oauth2, what=WHAT, timeout_s=timeout, insecure=insecure)
            if isinstance(token, HTTPFailure):
                raise WebFailure(token.message)
            headers.append(("Authorization", f"Bearer {token}"))

        data: str | None = None
        if has_json:
            data = json.dumps(config["jsonBody"])
            if not any(key.lower() == "content-type" for key, _ in headers):
                headers.append(("Content-Type", "application/json"))
        elif has_body:
            data = str(config["body"])

        answer = await fetch(
            method, url, what=WHAT, timeout_s=timeout, insecure=insecure, headers=headers, data=data
        )
        if isinstance(answer, HTTPFailure):
            raise WebFailure(answer.message)
        if not answer.ok:
            raise WebFailure(
                f"received non 2xx response code: {answer.status} from {url}: {answer.excerpt()}"
            )
        try:
            # Go decodes every JSON number as float64; conditions and values follow that.
            document = json.loads(answer.text, parse_int=float)
        except ValueError:
            return answer.text
        matches = path.find_all(document)
        if not matches:
            raise WebFailure(
                f"result of web metric produced no value: {path.text} matched nothing in "
                f"{answer.excerpt()}"
            )
        return matches[0]


def _timeout(raw: object) -> float:
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT_S
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise WebFailure(f"web.timeoutSeconds must be a number of seconds, not {raw!r}")
    try:
        seconds = float(raw)
    except ValueError as exc:
        raise WebFailure(f"web.timeoutSeconds must be a number of seconds, not {raw!r}") from exc
    if seconds < 0:
        raise WebFailure(f"web.timeoutSeconds must not be negative ({raw!r})")
    return seconds or DEFAULT_TIMEOUT_S
