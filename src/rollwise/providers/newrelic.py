"""The `newRelic` metric provider: one NRQL query through New Relic's NerdGraph (GraphQL) API.

Who calls it: the analysis shell through `rollwise.providers.base.provider_for("newRelic")`.
Argo runs the query with New Relic's Go client (reference 3.5), which posts to NerdGraph; rollwise
sends the same request:

    POST <nerdgraph URL>            (https://api.newrelic.com/graphql for region us,
                                     https://api.eu.newrelic.com/graphql for eu,
                                     https://staging-api.newrelic.com/graphql for staging)
    Api-Key: <personal API key>     Content-Type: application/json
    {"query": "query($query: Nrql!, $accountId: Int!) { actor { account(id: $accountId)
               { nrql(query: $query) { results } } } }",
     "variables": {"accountId": <account id>, "query": "<NRQL>"}}

With `timeout` set (seconds; NerdGraph's own default is 5) the document also passes
`nrql(query: $query, timeout: $timeout)` and the HTTP call waits that long plus 10 s, so
New Relic's timeout error arrives before ours.

Result typing (reference 2.10): one result row -> a map keyed by the NRQL field names
(`result.count`, `result.score`); several rows -> the list of maps; no rows (or one empty row) ->
Error "no results returned from NRQL query" (a metric with a `rollwise.io/no-data-policy` gets
that policy's phase instead). GraphQL `errors` in the answer are an Error quoting
their messages.

Credentials (the profile secret, `profile` or `newrelic`; see `credentials`):
`ProviderContext.secrets["<profile>/personal-api-key"]`, `"<profile>/account-id"`, optional
`"<profile>/region"` (`us` default, `eu`, `staging`) and `"<profile>/base-url-nerdgraph"` (the
full GraphQL URL, wins over the region); each falls back to the environment variable
`NEW_RELIC_API_KEY`, `NEW_RELIC_ACCOUNT_ID`, `NEW_RELIC_REGION`, `NEW_RELIC_NERDGRAPH_URL`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rollwise.api.models import Measurement, Metric
from rollwise.providers.base import (
    ProviderContext,
    ProviderFailure,
    SynchronousProvider,
    provider_config,
    register,
    run_query,
)
from rollwise.providers.credentials import from_environment, from_secret
from rollwise.providers.http import HTTPFailure, fetch

WHAT = "New Relic"
DEFAULT_PROFILE = "newrelic"
NERDGRAPH_URLS: Mapping[str, str] = {
    "us": "https://api.newrelic.com/graphql",
    "eu": "https://api.eu.newrelic.com/graphql",
    "staging": "https://staging-api.newrelic.com/graphql",
}
DEFAULT_NRQL_TIMEOUT_S = 5
HTTP_GRACE_S = 10

NRQL_DOCUMENT = (
    "query($query: Nrql!, $accountId: Int!) "
    "{ actor { account(id: $accountId) { nrql(query: $query) { results } } } }"
)
NRQL_DOCUMENT_WITH_TIMEOUT = (
    "query($query: Nrql!, $accountId: Int!, $timeout: Seconds) "
    "{ actor { account(id: $accountId) { nrql(query: $query, timeout: $timeout) { results } } } }"
)

# secret key -> environment variable
API_KEY, ACCOUNT_ID, REGION, NERDGRAPH_URL = (
    "personal-api-key",
    "account-id",
    "region",
    "base-url-nerdgraph",
)
ENVIRONMENT: Mapping[str, str] = {
    API_KEY: "NEW_RELIC_API_KEY",
    ACCOUNT_ID: "NEW_RELIC_ACCOUNT_ID",
    REGION: "NEW_RELIC_REGION",
    NERDGRAPH_URL: "NEW_RELIC_NERDGRAPH_URL",
}


@register("newRelic")
class NewRelicProvider(SynchronousProvider):
    async def run(self, metric: Metric, context: ProviderContext) -> Measurement:
        return await run_query(
            metric,
            context,
            lambda: self._query(provider_config(metric, "newRelic"), context),
            empty=None,
        )

    async def _query(self, config: Mapping[str, Any], context: ProviderContext) -> object:
        nrql = str(config.get("query") or "")
        if not nrql.strip():
            raise ProviderFailure("newRelic.query is empty")
        profile = str(config.get("profile") or DEFAULT_PROFILE)
        api_key = _credential(context, profile, API_KEY)
        account = _credential(context, profile, ACCOUNT_ID)
        if not api_key or not account:
            raise ProviderFailure(
                f"account ID or personal API key not found: set {API_KEY} and {ACCOUNT_ID} in "
                f"the secret {profile!r} (or {ENVIRONMENT[API_KEY]} and "
                f"{ENVIRONMENT[ACCOUNT_ID]})"
            )
        try:
            account_id = int(account)
        except ValueError:
            raise ProviderFailure(f"could not parse account ID {account!r}") from None
        url = nerdgraph_url(
            region=_credential(context, profile, REGION),
            explicit=_credential(context, profile, NERDGRAPH_URL),
        )
        variables: dict[str, Any] = {"accountId": account_id, "query": nrql}
        document = NRQL_DOCUMENT
        timeout = _timeout(config.get("timeout"))
        if timeout is not None:
            variables["timeout"] = timeout
            document = NRQL_DOCUMENT_WITH_TIMEOUT
        answer = await fetch(
            "POST",
            url,
            what=WHAT,
            timeout_s=(timeout or DEFAULT_NRQL_TIMEOUT_S) + HTTP_GRACE_S,
            headers=[("Api-Key", api_key), ("Content-Type", "application/json")],
            data=json.dumps({"query": document, "variables": variables}),
        )
        if isinstance(answer, HTTPFailure):
            raise ProviderFailure(answer.message)
        body: Any = None
        try:
            body = answer.json()
        except ValueError:
            if answer.ok:
                raise ProviderFailure(
                    f"New Relic at {url} answered with a body that is not JSON: {answer.excerpt()}"
                ) from None
        errors = _graphql_errors(body)
        if not answer.ok:
            detail = errors or answer.excerpt()
            raise ProviderFailure(f"New Relic at {url} answered HTTP {answer.status}: {detail}")
        if errors:
            raise ProviderFailure(f"New Relic NerdGraph query failed: {errors}")
        return result_of(_results(body, url))


def _credential(context: ProviderContext, profile: str, key: str) -> str | None:
    return from_secret(context, profile, key) or from_environment(ENVIRONMENT[key])


def nerdgraph_url(*, region: str | None, explicit: str | None) -> str:
    """The NerdGraph endpoint: `base-url-nerdgraph` when given, else the region's."""
    if explicit:
        return explicit
    name = (region or "us").strip().lower()
    url = NERDGRAPH_URLS.get(name)
    if url is None:
        raise ProviderFailure(
            f"unknown New Relic region {name!r} (known: {', '.join(NERDGRAPH_URLS)})"
        )
    return url


def _timeout(raw: object) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ProviderFailure(f"newRelic.timeout must be a whole number of seconds, not {raw!r}")
    try:
        seconds = int(raw)
    except ValueError:
        raise ProviderFailure(
            f"newRelic.timeout must be a whole number of seconds, not {raw!r}"
        ) from None
    if seconds <= 0:
        raise ProviderFailure(f"newRelic.timeout must be positive ({raw!r})")
    return seconds


def _graphql_errors(body: Any) -> str:
    """The messages of a GraphQL `errors` list, joined; empty when there are none."""
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not errors:
        return ""
    if not isinstance(errors, list):
        return str(errors)
    messages = [
        str(error.get("message")) if isinstance(error, Mapping) else str(error) for error in errors
    ]
    return "; ".join(messages)


def _results(body: Any, url: str) -> list[Any]:
    try:
        results = body["data"]["actor"]["account"]["nrql"]["results"]
    except (KeyError, TypeError):
        raise ProviderFailure(
            f"New Relic at {url} answered without data.actor.account.nrql.results: "
            f"{json.dumps(body)[:200]}"
        ) from None
    if results is None:
        return []
    if not isinstance(results, list):
        raise ProviderFailure(f"New Relic answered results that are not a list: {results!r}")
    return results


def result_of(rows: list[Any]) -> object:
    """Argo's typing: one row -> the row, several -> the list, none -> an error."""
    if len(rows) == 1:
        if not rows[0]:
            raise ProviderFailure("no results returned from NRQL query", no_data=True)
        return rows[0]
    if rows:
        return rows
    raise ProviderFailure("no results returned from NRQL query", no_data=True)
