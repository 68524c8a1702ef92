"""Who is told about a trigger: subscriptions from a Rollout's annotations and the config.

Where it sits: `rollwise.notify`, called by the notifier for each event. Same rules as Argo's
notifications engine (`pkg/subscriptions/annotations.go`, `pkg/api/config.go`):

- `notifications.argoproj.io/subscribe.<trigger>.<service>: <recipient>[;<recipient>...]`
  subscribes recipients of a service to one trigger; recipients are split on `;` and trimmed,
  an empty value is one empty recipient (services like webhooks need none);
- `notifications.argoproj.io/subscribe.<service>: ...` (no trigger) subscribes to the service's
  default triggers (`defaultTriggers.<service>`) or else to `defaultTriggers`;
- `notifications.argoproj.io/subscribe_yaml: [{trigger: [...], destinations: [{service,
  recipients}]}]` says the same in YAML;
- the configuration's `subscriptions` list subscribes `service:recipient` pairs to triggers for
  every Rollout whose labels match its `selector` (`key=value,key!=value`).

Destinations are de-duplicated, so a recipient subscribed twice is told once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

ANNOTATION_PREFIX = "notifications.argoproj.io"
SUBSCRIBE_PREFIX = ANNOTATION_PREFIX + "/subscribe."
SUBSCRIBE_YAML = ANNOTATION_PREFIX + "/subscribe_yaml"


@dataclass(frozen=True, order=True)
class Destination:
    """One recipient of one configured service (the name after `service.<type>.`)."""

    service: str
    recipient: str = ""

    def __str__(self) -> str:
        return f"{self.service}:{self.recipient}" if self.recipient else self.service


@dataclass(frozen=True)
class GlobalSubscription:
    """An entry of the configuration's `subscriptions` list."""

    recipients: tuple[Destination, ...]
    triggers: tuple[str, ...] = ()
    selector: tuple[tuple[str, str, bool], ...] = field(default=())
    """(label, value, equal): `key=value` is (key, value, True), `key!=value` False."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all((labels.get(key, "") == value) == equal for key, value, equal in self.selector)


def subscription_key(trigger: str, service: str) -> str:
    """The annotation that subscribes to `trigger` on `service`."""
    return f"{SUBSCRIBE_PREFIX}{trigger}.{service}"


def parse_recipients(value: str) -> list[str]:
    """`a; b;;c` -> ['a', 'b', 'c']."""
    return [part.strip() for part in value.split(";") if part.strip()]


def _annotation_subscriptions(
    annotations: Mapping[str, str],
) -> Iterator[tuple[str, str, list[str]]]:
    """(trigger or '', service, recipients) for every subscription annotation."""
    for key, value in annotations.items():
        if key.startswith(SUBSCRIBE_PREFIX):
            parts = key[len(SUBSCRIBE_PREFIX) :].split(".")
            trigger, service = (parts[0], parts[1]) if len(parts) >= 2 else ("", parts[0])
            recipients = parse_recipients(value) if value else [""]
            yield trigger, service, recipients
        elif key.startswith(SUBSCRIBE_YAML):
            try:
                entries = yaml.safe_load(value) or []
            except yaml.YAMLError:
                continue  # Argo logs and ignores a subscription it cannot read
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, Mapping):
                    continue
                for trigger in _strings(entry.get("trigger")):
                    for dest in entry.get("destinations") or []:
                        if isinstance(dest, Mapping) and dest.get("service"):
                            recipients = _strings(dest.get("recipients")) or [""]
                            yield trigger, str(dest["service"]), recipients


def annotation_destinations(
    annotations: Mapping[str, str],
    *,
    default_triggers: Sequence[str] = (),
    service_default_triggers: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[Destination]]:
    """Destinations by trigger, from a Rollout's annotations."""
    by_service = service_default_triggers or {}
    found: dict[str, list[Destination]] = {}
    for trigger, service, recipients in _annotation_subscriptions(annotations):
        if trigger:
            triggers: Sequence[str] = [trigger]
        else:
            triggers = by_service.get(service, default_triggers)
        for recipient in recipients:
            for name in triggers:
                _add(found, name, Destination(service, recipient))
    return found


def global_destinations(
    subscriptions: Sequence[GlobalSubscription],
    labels: Mapping[str, str],
    *,
    default_triggers: Sequence[str] = (),
) -> dict[str, list[Destination]]:
    """Destinations by trigger, from the configuration's `subscriptions` for these labels."""
    found: dict[str, list[Destination]] = {}
    for subscription in subscriptions:
        if not subscription.matches(labels):
            continue
        for trigger in subscription.triggers or default_triggers:
            for destination in subscription.recipients:
                _add(found, trigger, destination)
    return found


def parse_subscriptions(text: str | Sequence[Any]) -> tuple[GlobalSubscription, ...]:
    """The configuration's `subscriptions` value: `[{recipients: ['slack:ch'], triggers: [...],
    selector: 'env=prod'}]`."""
    raw: Any = yaml.safe_load(text) if isinstance(text, str) else text
    result: list[GlobalSubscription] = []
    for entry in raw or []:
        if not isinstance(entry, Mapping):
            raise ValueError("each subscription must be a mapping with 'recipients'")
        recipients = tuple(
            Destination(*item.split(":", 1)) if ":" in item else Destination(item)
            for item in _strings(entry.get("recipients"))
        )
        result.append(
            GlobalSubscription(
                recipients=recipients,
                triggers=tuple(_strings(entry.get("triggers"))),
                selector=_parse_selector(str(entry.get("selector") or "")),
            )
        )
    return tuple(result)


def _parse_selector(text: str) -> tuple[tuple[str, str, bool], ...]:
    terms: list[tuple[str, str, bool]] = []
    for term in filter(None, (part.strip() for part in text.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append((key.strip(), value.strip(), False))
        elif "=" in term:
            key, value = term.replace("==", "=", 1).split("=", 1)
            terms.append((key.strip(), value.strip(), True))
        else:
            raise ValueError(f"selector term {term!r}: expected key=value or key!=value")
    return tuple(terms)


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _add(found: dict[str, list[Destination]], trigger: str, destination: Destination) -> None:
    entries = found.setdefault(trigger, [])
    if destination not in entries:
        entries.append(destination)


def merge_destinations(
    *sources: Mapping[str, Sequence[Destination]],
) -> dict[str, list[Destination]]:
    """Destinations by trigger from several sources, each destination once."""
    merged: dict[str, list[Destination]] = {}
    for source in sources:
        for trigger, destinations in source.items():
            for destination in destinations:
                _add(merged, trigger, destination)
    return merged
