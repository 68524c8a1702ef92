"""Message templates: Argo's `template.<name>` entries, written in Jinja2, rendered to a
notification (a mapping: `message`, `email.subject`, `slack.attachments`, `webhook.<name>.body`...).

Where it sits: `rollwise.notify`; the configuration compiles templates once
(`compile_template`), the notifier renders them for each destination (`render_notification`).

Argo writes templates in Go's text/template: `{{.rollout.metadata.name}}`, `{{if X}}...{{end}}`,
`{{range $i, $c := X}}`. rollwise uses Jinja2: `{{ rollout.metadata.name }}`,
`{% if X %}...{% endif %}`, `{% for c in X %}` (with `loop.index0`). A template made only of
Go field references (`{{.rollout.metadata.name}}`) is translated as it is read; any other Go
action is refused with a hint, so a pasted Argo ConfigMap fails loudly rather than sending
garbled text. Every string in a template is a Jinja2 template (Argo templates only the fields
each service reads; templating the others too is harmless). Rendering is sandboxed, and a
missing field renders empty (Go prints `<no value>`).

As in Argo's engine, several templates sent by one trigger are merged into one notification,
later ones overriding earlier ones, and an empty `message` does not override.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rollwise.api.errors import ManifestError

RawNotification = dict[str, Any]

_ENVIRONMENT = ImmutableSandboxedEnvironment(
    undefined=jinja2.ChainableUndefined,
    autoescape=False,
    keep_trailing_newline=False,
)
_ENVIRONMENT.policies["json.dumps_kwargs"] = {"sort_keys": False}

# `{{ ... }}` actions; Go's start with `.`/`$` (fields, variables) or a keyword.
_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.DOTALL)
_GO_FIELD = re.compile(r"\.[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*")
_GO_ACTION = re.compile(
    r"^(?:\.|\$|/\*|(?:if|range|with|define|template|block)\s|(?:end|else)$|else\s+if\s"
    r"|\w+\s+[.$])"
)


@dataclass(frozen=True)
class CompiledTemplate:
    """One `template.<name>`: its structure with every string compiled."""

    name: str
    body: Any = None


def compile_template(name: str, raw: Mapping[str, Any]) -> CompiledTemplate:
    """Compile every string of a template; `ManifestError` names the field that is wrong."""
    return CompiledTemplate(name, _compile(raw, f"template.{name}"))


def _compile(value: Any, where: str) -> Any:
    if isinstance(value, str):
        source = translate_go_fields(value, where=where)
        try:
            return _ENVIRONMENT.from_string(source)
        except jinja2.TemplateSyntaxError as error:
            raise ManifestError(f"{where}: line {error.lineno}: {error.message}") from error
    if isinstance(value, Mapping):
        return {str(key): _compile(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_compile(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def translate_go_fields(text: str, *, where: str = "template") -> str:
    """`{{.rollout.metadata.name}}` -> `{{ rollout.metadata.name }}`; other Go actions refused."""

    def replace(match: re.Match[str]) -> str:
        left, inner, right = match.groups()
        if _GO_FIELD.fullmatch(inner):
            return "{{" + left + " " + inner[1:] + " " + right + "}}"
        if _GO_ACTION.match(inner):
            raise ManifestError(
                f"{where}: '{{{{{inner}}}}}' is Go template syntax; rollwise templates are "
                "Jinja2: write {{ rollout.metadata.name }} for {{.rollout.metadata.name}}, "
                "{% if X %}...{% endif %} for {{if X}}...{{end}}, {% for c in X %}...{% endfor %} "
                "for {{range $i, $c := X}}...{{end}}, {{ X + 1 }} for {{add X 1}} and "
                "{{ X | length }} for {{len X}} (docs/observability.md, Notifications)"
            )
        return match.group(0)

    return _ACTION.sub(replace, text)


def render_template(template: CompiledTemplate, variables: Mapping[str, Any]) -> RawNotification:
    """The notification one template makes with these variables."""
    rendered = _render(template.body, variables)
    return rendered if isinstance(rendered, dict) else {}


def _render(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, jinja2.Template):
        try:
            return value.render(variables)
        except jinja2.TemplateError as error:
            raise ManifestError(f"cannot render template: {error}") from error
    if isinstance(value, Mapping):
        return {key: _render(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, variables) for item in value]
    return value


def render_notification(
    templates: list[CompiledTemplate], variables: Mapping[str, Any]
) -> RawNotification:
    """Render and merge the templates a trigger sends (later ones win; empty message ignored)."""
    merged: RawNotification = {}
    for template in templates:
        rendered = render_template(template, variables)
        if not rendered.get("message"):
            rendered.pop("message", None)
        _merge(merged, rendered)
    return merged


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def json_field(notification: Mapping[str, Any], *path: str) -> Any:
    """A field that holds JSON text once rendered (`slack.attachments`, `slack.blocks`); None
    when absent or blank. `ManifestError` when it is not JSON: the template is wrong."""
    value: Any = notification
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ManifestError(
            f"{'.'.join(path)} is not JSON once rendered ({error.msg} at line {error.lineno} "
            f"column {error.colno}): {value.strip()[:200]}"
        ) from error
