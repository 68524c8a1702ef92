"""Argo's notification services, each turned into one outgoing message.

Where it sits: `rollwise.notify`, between a rendered notification and a transport. The registry
`BUILDERS` is keyed by Argo's service type (`service.<type>.<name>` in the configuration); each
builder reads Argo's options for that type and the template's section for it:

- slack: POST `<apiURL>/chat.postMessage` with Argo's options (token, apiURL, username, icon,
  disableUnfurl, insecureSkipVerify): the message, `slack.attachments`, `slack.blocks`; the
  recipient is the channel;
- webhook: `webhook.<name>` {method, path, body} as written (else GET with the message), with
  Argo's url, headers [{name, value}], basicAuth, insecureSkipVerify; a `url` that is not HTTP
  is an apprise URL (`json://`, `discord://`...) and gets the body as its message;
- through apprise: teams and teams-workflows (recipientUrls[recipient]), googlechat
  (webhooks[recipient]), email (`mailto(s)://` from host, port, username, password, from; the
  recipient is the address; `email.subject`, `email.body`), pagerdutyv2
  (serviceKeys[recipient]; `pagerdutyv2.{summary, severity, source, component, group, class}`),
  opsgenie (apiKeys[recipient], apiUrl's region; `opsgenie.{description, priority, alias,
  entity, tags}`), mattermost (apiURL, token: the incoming-webhook key), telegram (token; chat
  id), rocketchat (serverUrl, email, password; channel), pushover (token; user key).

Any other type (Argo's github, grafana, alertmanager... and pagerduty v1, webex) is refused with
a message that says how to reach it through an apprise URL instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from rollwise.api.errors import ManifestError
from rollwise.notify.delivery import AppriseMessage, HttpRequest, NotifyType, OutgoingMessage
from rollwise.notify.subscriptions import Destination
from rollwise.notify.templates import json_field

SLACK_API_URL = "https://slack.com/api/"

Options = Mapping[str, Any]
Notification = Mapping[str, Any]
Builder = Callable[[str, Options, Destination, Notification, NotifyType], OutgoingMessage]


def build_message(
    service_type: str,
    service_name: str,
    *,
    options: Options,
    destination: Destination,
    notification: Notification,
    notify_type: NotifyType = "info",
) -> OutgoingMessage:
    """The message one service sends for one destination; `ManifestError` when the service's
    configuration cannot make one (unknown type, missing option, template not JSON)."""
    builder = BUILDERS.get(service_type)
    if builder is None:
        raise ManifestError(
            f"service.{service_type}: this service type is not supported by rollwise; reach it "
            f"through apprise with service.webhook.{service_name}: {{url: '<apprise URL>'}} "
            "(https://github.com/caronc/apprise/wiki lists the URLs)"
        )
    return builder(service_name, options, destination, notification, notify_type)


# --- exact HTTP ----------------------------------------------------------------------------------


def slack_payload(notification: Notification, *, channel: str, options: Options) -> dict[str, Any]:
    """The body of Slack's `chat.postMessage` for one notification, as Argo's Slack service
    builds it: the message as text, the template's attachments and blocks (JSON once
    rendered), the configured username and icon (an emoji when it is not a URL)."""
    payload: dict[str, Any] = {"channel": channel, "text": notification.get("message", "")}
    attachments = json_field(notification, "slack", "attachments")
    if attachments is not None:
        payload["attachments"] = attachments
    blocks = json_field(notification, "slack", "blocks")
    if blocks is not None:
        payload["blocks"] = blocks
    if options.get("username"):
        payload["username"] = str(options["username"])
    icon = str(options.get("icon") or "")
    if icon:
        payload["icon_url" if "://" in icon else "icon_emoji"] = icon
    if options.get("disableUnfurl"):
        payload["unfurl_links"] = payload["unfurl_media"] = False
    return payload


def _slack(
    name: str, options: Options, dest: Destination, n: Notification, _: NotifyType
) -> HttpRequest:
    token = _required(
        options, "token", f"service.slack.{name}" if name != "slack" else "service.slack"
    )
    base = str(options.get("apiURL") or SLACK_API_URL)
    return HttpRequest(
        method="POST",
        url=base.rstrip("/") + "/chat.postMessage",
        body=json.dumps(slack_payload(n, channel=dest.recipient, options=options)),
        headers=(
            ("Content-Type", "application/json; charset=utf-8"),
            ("Authorization", f"Bearer {token}"),
        ),
        verify_tls=not options.get("insecureSkipVerify"),
        expect="slack",
    )


def _webhook(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> OutgoingMessage:
    url = _required(options, "url", f"service.webhook.{name}")
    section = (n.get("webhook") or {}).get(name) or {}
    body = str(section["body"]) if "body" in section else str(n.get("message", ""))
    if urlsplit(url).scheme not in ("http", "https"):
        return AppriseMessage(url=url, body=body, notify_type=kind)
    method = str(section.get("method") or "GET").upper()
    path = str(section.get("path") or "")
    if path:
        url = url.rstrip("/") + "/" + path.lstrip("/")
    headers = tuple(
        (str(h.get("name", "")), str(h.get("value", "")))
        for h in options.get("headers") or []
        if isinstance(h, Mapping)
    )
    auth = options.get("basicAuth")
    basic = (
        (str(auth.get("username", "")), str(auth.get("password", "")))
        if isinstance(auth, Mapping)
        else None
    )
    return HttpRequest(
        method=method,
        url=url,
        body=body,
        headers=headers,
        basic_auth=basic,
        verify_tls=not options.get("insecureSkipVerify"),
    )


# --- through apprise -----------------------------------------------------------------------------


def _by_recipient(key: str, options: Options, dest: Destination, where: str) -> str:
    table = options.get(key) or {}
    if not isinstance(table, Mapping) or dest.recipient not in table:
        known = ", ".join(sorted(table)) if isinstance(table, Mapping) else ""
        raise ManifestError(
            f"{where}: no {key} entry for recipient '{dest.recipient}' (known: {known or 'none'})"
        )
    return str(table[dest.recipient])


def _teams(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    section = n.get("teams") or {}
    return AppriseMessage(
        url=_by_recipient("recipientUrls", options, dest, f"service.teams.{name}"),
        title=str(section.get("title") or ""),
        body=str(section.get("text") or n.get("message", "")),
        notify_type=kind,
        body_format="markdown",
    )


def _teams_workflows(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    section = n.get("teams-workflows") or n.get("teams") or {}
    return AppriseMessage(
        url=_by_recipient("recipientUrls", options, dest, f"service.teams-workflows.{name}"),
        title=str(section.get("title") or ""),
        body=str(section.get("text") or n.get("message", "")),
        notify_type=kind,
        body_format="markdown",
    )


def _googlechat(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    return AppriseMessage(
        url=_by_recipient("webhooks", options, dest, f"service.googlechat.{name}"),
        body=str(n.get("message", "")),
        notify_type=kind,
    )


def _email(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    host = _required(options, "host", f"service.email.{name}")
    port = int(options.get("port") or 25)
    section = n.get("email") or {}
    user, password = str(options.get("username") or ""), str(options.get("password") or "")
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
    query: dict[str, str] = {"smtp": host, "to": dest.recipient}
    if options.get("from"):
        query["from"] = str(options["from"])
    secure = port in (465, 587)
    if secure:
        query["mode"] = "ssl" if port == 465 else "starttls"
    scheme = "mailtos" if secure else "mailto"
    html = bool(options.get("html"))
    return AppriseMessage(
        url=f"{scheme}://{credentials}{host}:{port}/?{urlencode(query)}",
        title=str(section.get("subject") or ""),
        body=str(section.get("body") or n.get("message", "")),
        notify_type=kind,
        body_format="html" if html else "text",
    )


def _pagerdutyv2(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    key = _by_recipient("serviceKeys", options, dest, f"service.pagerdutyv2.{name}")
    section = n.get("pagerdutyv2") or {}
    # apprise asks for a REST API key too; PagerDuty's Events API v2 does not read it.
    api_key = str(options.get("apiKey") or key)
    query = {k: str(section[k]) for k in ("severity", "group", "class") if section.get(k)}
    path = "/".join(
        quote(str(section[k]), safe="") for k in ("source", "component") if section.get(k)
    )
    url = f"pagerduty://{quote(key, safe='')}@{quote(api_key, safe='')}/{path}"
    return AppriseMessage(
        url=url + (f"?{urlencode(query)}" if query else ""),
        body=str(section.get("summary") or n.get("message", "")),
        notify_type=kind,
    )


_OPSGENIE_PRIORITIES = {"P1": "5", "P2": "4", "P3": "3", "P4": "2", "P5": "1"}


def _opsgenie(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    key = _by_recipient("apiKeys", options, dest, f"service.opsgenie.{name}")
    section = n.get("opsgenie") or {}
    query: dict[str, str] = {}
    if ".eu." in str(options.get("apiUrl") or ""):
        query["region"] = "eu"
    if section.get("priority") in _OPSGENIE_PRIORITIES:
        query["priority"] = _OPSGENIE_PRIORITIES[str(section["priority"])]
    for field in ("alias", "entity"):
        if section.get(field):
            query[field] = str(section[field])
    tags = section.get("tags")
    if tags:
        query["tags"] = ",".join(tags) if isinstance(tags, list) else str(tags)
    return AppriseMessage(
        url=f"opsgenie://{quote(key, safe='')}" + (f"?{urlencode(query)}" if query else ""),
        title=str(n.get("message", "")),
        body=str(section.get("description") or n.get("message", "")),
        notify_type=kind,
    )


def _mattermost(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    api = urlsplit(_required(options, "apiURL", f"service.mattermost.{name}"))
    token = _required(options, "token", f"service.mattermost.{name}")
    scheme = "mmosts" if api.scheme == "https" else "mmost"
    path = api.path.strip("/")
    location = f"{api.netloc}/{path + '/' if path else ''}{quote(token, safe='')}"
    query = f"?{urlencode({'channel': dest.recipient})}" if dest.recipient else ""
    return AppriseMessage(
        url=f"{scheme}://{location}{query}", body=str(n.get("message", "")), notify_type=kind
    )


def _telegram(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    token = _required(options, "token", f"service.telegram.{name}")
    return AppriseMessage(
        url=f"tgram://{quote(token, safe=':')}/{quote(dest.recipient, safe='@')}",
        body=str(n.get("message", "")),
        notify_type=kind,
    )


def _rocketchat(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    server = urlsplit(str(options.get("serverUrl") or "https://open.rocket.chat"))
    user = quote(_required(options, "email", f"service.rocketchat.{name}"), safe="")
    password = quote(_required(options, "password", f"service.rocketchat.{name}"), safe="")
    scheme = "rockets" if server.scheme == "https" else "rocket"
    channel = quote(dest.recipient.lstrip("#"), safe="")
    return AppriseMessage(
        url=f"{scheme}://{user}:{password}@{server.netloc}/%23{channel}",
        body=str(n.get("message", "")),
        notify_type=kind,
    )


def _pushover(
    name: str, options: Options, dest: Destination, n: Notification, kind: NotifyType
) -> AppriseMessage:
    token = _required(options, "token", f"service.pushover.{name}")
    return AppriseMessage(
        url=f"pover://{quote(dest.recipient, safe='')}@{quote(token, safe='')}",
        body=str(n.get("message", "")),
        notify_type=kind,
    )


def _required(options: Options, key: str, where: str) -> str:
    value = options.get(key)
    if value is None or str(value) == "":
        raise ManifestError(f"{where}: option '{key}' is required")
    return str(value)


BUILDERS: dict[str, Builder] = {
    "slack": _slack,
    "webhook": _webhook,
    "teams": _teams,
    "teams-workflows": _teams_workflows,
    "googlechat": _googlechat,
    "email": _email,
    "pagerdutyv2": _pagerdutyv2,
    "opsgenie": _opsgenie,
    "mattermost": _mattermost,
    "telegram": _telegram,
    "rocketchat": _rocketchat,
    "pushover": _pushover,
}
