"""Kubernetes-style JSONPath, the subset Argo's `web` metrics use: `{$.data.ok}`.

Who calls it: `rollwise.providers.web` (and any provider that picks a value out of JSON). Pure.

Grammar: one expression in braces (`{...}`; the braces may be left out), starting at `$` (or at
`.`, which Kubernetes reads as `$.`), followed by `.field`, `['field']` / `["field"]`, `[n]`
(negative counts from the end), `[*]` / `.*` (every element or value), `..field` (every
`field` at any depth). `find_all` returns the matches in document order; the web provider takes
the first, as Argo does. Filters (`[?(...)]`), slices and unions are rejected with a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Step = Callable[[Any], Iterator[Any]]


class JSONPathError(ValueError):
    """The path is not in the supported subset; the message names the path and the position."""


@dataclass(frozen=True)
class JSONPath:
    text: str
    steps: tuple[Step, ...]

    def find_all(self, document: Any) -> list[Any]:
        nodes: list[Any] = [document]
        for step in self.steps:
            nodes = [found for node in nodes for found in step(node)]
        return nodes


_NAME = re.compile(r"[A-Za-z_][\w-]*")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")
_WILDCARD = re.compile(r"\[\s*\*\s*\]")


def parse_jsonpath(template: str) -> JSONPath:
    """Parse `{$.a.b[0]}` (or `$.a.b[0]`); raises JSONPathError."""
    text = template.strip()
    body = text[1:-1].strip() if text.startswith("{") and text.endswith("}") else text
    if "{" in body or "}" in body:
        raise JSONPathError(f"jsonPath {template!r}: expected a single {{...}} expression")
    if body.startswith("$"):
        position = 1
    elif body.startswith(".") or body == "":
        position = 0
    else:
        raise JSONPathError(f"jsonPath {template!r}: must start with '$' or '.'")
    steps: list[Step] = []
    while position < len(body):
        rest = body[position:]
        if rest.startswith(".."):
            name = _NAME.match(body, position + 2)
            if name is None:
                raise _error(template, body, position + 2, "a field name after '..'")
            steps.append(_descendants(name.group()))
            position = name.end()
        elif rest.startswith(".*"):
            steps.append(_every)
            position += 2
        elif rest.startswith("."):
            name = _NAME.match(body, position + 1)
            if name is None:
                raise _error(template, body, position + 1, "a field name after '.'")
            steps.append(_field(name.group()))
            position = name.end()
        elif match := _INDEX.match(body, position):
            steps.append(_element(int(match.group(1))))
            position = match.end()
        elif match := _QUOTED.match(body, position):
            key = match.group(1) if match.group(1) is not None else match.group(2)
            steps.append(_field(re.sub(r"\\(.)", r"\1", key)))
            position = match.end()
        elif match := _WILDCARD.match(body, position):
            steps.append(_every)
            position = match.end()
        elif rest.startswith("["):
            raise _error(
                template,
                body,
                position,
                "[n], [*] or ['field'] (filters, slices are not supported)",
            )
        else:
            raise _error(template, body, position, "'.', '..' or '['")
    return JSONPath(text=template, steps=tuple(steps))


def _error(template: str, body: str, position: int, expected: str) -> JSONPathError:
    return JSONPathError(
        f"jsonPath {template!r}: expected {expected} at position {position} of {body!r}"
    )


def _field(name: str) -> Step:
    def step(node: Any) -> Iterator[Any]:
        if isinstance(node, dict) and name in node:
            yield node[name]

    return step


def _element(index: int) -> Step:
    def step(node: Any) -> Iterator[Any]:
        if isinstance(node, list) and -len(node) <= index < len(node):
            yield node[index]

    return step


def _every(node: Any) -> Iterator[Any]:
    if isinstance(node, list):
        yield from node
    elif isinstance(node, dict):
        yield from node.values()


def _descendants(name: str) -> Step:
    def step(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            if name in node:
                yield node[name]
            for value in node.values():
                yield from step(value)
        elif isinstance(node, list):
            for value in node:
                yield from step(value)

    return step
