"""The notification configuration: Argo's `argo-rollouts-notification-configmap` data, read from
`<home>/notifications.yaml` in local mode.

Where it sits: `rollwise.notify`; the notifier reloads the file when it changes, and
`rollwise notifications test` reads it once. The keys are Argo's, so a ConfigMap's `data` can be
pasted (the whole ConfigMap manifest is accepted too):

    service.<type>[.<name>]   a service (`service.slack`, `service.webhook.receiver`), YAML options
    template.<name>           a message template (Jinja2, see `rollwise.notify.templates`)
    trigger.<name>            a list of {when, send, oncePer}
    defaultTriggers           triggers of subscriptions that name no trigger
    defaultTriggers.<service> the same, for one service
    subscriptions             subscriptions of every Rollout whose labels match a selector
    rollwise.triggerConditions  `compatible` (default: Argo's, `when` ignored) or `evaluate`

Values may be YAML text (as in a ConfigMap) or YAML structure. The built-in catalog
(`rollwise.notify.catalog`) is there unless the file replaces an entry. Secrets: any `$key` in a
string of a service's options is replaced, at send time, by that key of the Secret
`argo-rollouts-notification-secret` (as Argo does; an unknown key is left as written).

An entry that cannot be read is left out and reported in `problems`, so one bad template does
not silence every other notification. A Go template that has a built-in Jinja2 version of the
same name (Argo's catalog pasted as it is) leaves the built-in one in place.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rollwise.api.errors import ManifestError
from rollwise.notify import catalog
from rollwise.notify.subscriptions import (
    Destination,
    GlobalSubscription,
    annotation_destinations,
    global_destinations,
    merge_destinations,
    parse_subscriptions,
)
from rollwise.notify.templates import CompiledTemplate, compile_template
from rollwise.notify.triggers import Condition, parse_trigger

CONFIG_FILE = "notifications.yaml"
CONFIG_MAP_NAME = "argo-rollouts-notification-configmap"
SECRET_NAME = "argo-rollouts-notification-secret"
TRIGGER_CONDITIONS_KEY = "rollwise.triggerConditions"

_SECRET_REFERENCE = re.compile(r"\$[\w-]+")


@dataclass(frozen=True)
class ServiceConfig:
    """A configured service: its type (`slack`, `webhook`...), its name, its options (secrets
    still as `$key` references)."""

    type: str
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def resolved(self, secrets: Mapping[str, str]) -> dict[str, Any]:
        """The options with every `$key` replaced by the secret's value."""
        value = resolve_secrets(self.options, secrets)
        return dict(value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class NotificationConfig:
    services: Mapping[str, ServiceConfig] = field(default_factory=dict)
    templates: Mapping[str, CompiledTemplate] = field(default_factory=dict)
    triggers: Mapping[str, tuple[Condition, ...]] = field(default_factory=dict)
    default_triggers: tuple[str, ...] = ()
    service_default_triggers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    subscriptions: tuple[GlobalSubscription, ...] = ()
    evaluate_conditions: bool = False
    problems: tuple[str, ...] = ()

    def destinations(self, rollout: Mapping[str, Any]) -> dict[str, list[Destination]]:
        """Destinations by trigger for one Rollout: the global subscriptions matching its
        labels, then its annotations."""
        metadata = rollout.get("metadata") or {}
        return merge_destinations(
            global_destinations(
                self.subscriptions,
                metadata.get("labels") or {},
                default_triggers=self.default_triggers,
            ),
            annotation_destinations(
                metadata.get("annotations") or {},
                default_triggers=self.default_triggers,
                service_default_triggers=self.service_default_triggers,
            ),
        )


def builtin_data() -> dict[str, Any]:
    """The catalog as configuration data (what `parse_config({})` starts from)."""
    data: dict[str, Any] = {f"template.{k}": v for k, v in catalog.TEMPLATES.items()}
    data.update({f"trigger.{k}": [{"send": [v]}] for k, v in catalog.TRIGGERS.items()})
    return data


def parse_config(data: Mapping[str, Any], *, with_catalog: bool = True) -> NotificationConfig:
    """Read configuration data (a ConfigMap's `data`, or the same keys with YAML values)."""
    problems: list[str] = []
    services: dict[str, ServiceConfig] = {}
    templates: dict[str, CompiledTemplate] = {}
    triggers: dict[str, tuple[Condition, ...]] = {}
    service_defaults: dict[str, tuple[str, ...]] = {}
    builtin = builtin_data() if with_catalog else {}
    for key, value in {**builtin, **data}.items():
        try:
            if key.startswith("template."):
                name = key.removeprefix("template.")
                try:
                    templates[name] = compile_template(name, _mapping(key, value))
                except ManifestError:
                    if key not in builtin or value is builtin[key]:
                        raise
                    templates[name] = compile_template(name, builtin[key])
                    problems.append(
                        f"{key}: not a Jinja2 template; the built-in {key} is used instead"
                    )
            elif key.startswith("trigger."):
                triggers[key.removeprefix("trigger.")] = parse_trigger(key[8:], _parsed(value))
            elif key.startswith("service."):
                service = _service(key, value)
                services[service.name] = service
            elif key.startswith("defaultTriggers."):
                service_defaults[key.removeprefix("defaultTriggers.")] = _names(key, value)
        except (ManifestError, ValueError, yaml.YAMLError) as error:
            problems.append(f"{key}: {error}" if not str(error).startswith(key) else str(error))
    default_triggers: tuple[str, ...] = ()
    subscriptions: tuple[GlobalSubscription, ...] = ()
    try:
        default_triggers = _names("defaultTriggers", data.get("defaultTriggers"))
        subscriptions = parse_subscriptions(_parsed(data.get("subscriptions")))
    except (ManifestError, ValueError, yaml.YAMLError) as error:
        problems.append(str(error))
    conditions = str(data.get(TRIGGER_CONDITIONS_KEY, "compatible")).strip()
    if conditions not in ("compatible", "evaluate"):
        problems.append(f"{TRIGGER_CONDITIONS_KEY}: expected 'compatible' or 'evaluate'")
    return NotificationConfig(
        services=services,
        templates=templates,
        triggers=triggers,
        default_triggers=default_triggers,
        service_default_triggers=service_defaults,
        subscriptions=subscriptions,
        evaluate_conditions=conditions == "evaluate",
        problems=tuple(problems),
    )


def read_config_data(text: str, *, source: str = CONFIG_FILE) -> dict[str, Any]:
    """The data of a configuration file: a bare mapping of keys, or a ConfigMap manifest."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ManifestError(f"{source}: not YAML: {error}") from error
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{source}: expected a mapping of configuration keys")
    if raw.get("kind") == "ConfigMap":
        raw = raw.get("data") or {}
        if not isinstance(raw, Mapping):
            raise ManifestError(f"{source}: the ConfigMap's data is not a mapping")
    return {str(key): value for key, value in raw.items()}


def load_config_file(path: Path) -> NotificationConfig | None:
    """The configuration in `path`; None when there is no such file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ManifestError(f"{path}: cannot read: {error}") from error
    return parse_config(read_config_data(text, source=str(path)))


def resolve_secrets(value: Any, secrets: Mapping[str, str]) -> Any:
    """Every `$key` in every string replaced by `secrets[key]` (unknown keys left as written)."""
    if isinstance(value, str):
        return _SECRET_REFERENCE.sub(lambda m: secrets.get(m.group(0)[1:], m.group(0)), value)
    if isinstance(value, Mapping):
        return {key: resolve_secrets(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_secrets(item, secrets) for item in value]
    return value


def referenced_secrets(value: Any, secrets: Mapping[str, str]) -> list[str]:
    """The values of `secrets` that `resolve_secrets(value, secrets)` puts in (every `$key` of
    every string that names a key), to be masked wherever the result may be quoted."""
    if isinstance(value, str):
        keys = (match.group(0)[1:] for match in _SECRET_REFERENCE.finditer(value))
        return [secrets[key] for key in keys if secrets.get(key)]
    if isinstance(value, Mapping):
        return [found for item in value.values() for found in referenced_secrets(item, secrets)]
    if isinstance(value, list):
        return [found for item in value for found in referenced_secrets(item, secrets)]
    return []


def secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's keys and values: `data` (base64, as Kubernetes stores it) and `stringData`."""
    values: dict[str, str] = {}
    for key, encoded in (secret.get("data") or {}).items():
        try:
            values[str(key)] = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue  # not base64 text: nothing a service option could use
    values.update({str(k): str(v) for k, v in (secret.get("stringData") or {}).items()})
    return values


# --- helpers -------------------------------------------------------------------------------------


def _parsed(value: Any) -> Any:
    return yaml.safe_load(value) if isinstance(value, str) else value


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    parsed = _parsed(value)
    if parsed is None:
        return {}
    if not isinstance(parsed, Mapping):
        raise ManifestError(f"{key}: expected a mapping")
    return parsed


def _names(key: str, value: Any) -> tuple[str, ...]:
    parsed = _parsed(value)
    if parsed is None:
        return ()
    if isinstance(parsed, str):
        return (parsed,)
    if not isinstance(parsed, list):
        raise ManifestError(f"{key}: expected a list of trigger names")
    return tuple(str(item) for item in parsed)


def _service(key: str, value: Any) -> ServiceConfig:
    parts = key.split(".")
    if len(parts) == 3:
        kind, name = parts[1], parts[2]
    elif len(parts) == 2:
        kind = name = parts[1]
    else:
        raise ManifestError(
            f"invalid service key; expected 'service.<type>(.<name>)' but got {key}"
        )
    return ServiceConfig(type=kind, name=name, options=_mapping(key, value))
