"""Reading manifests: multi-document YAML with the line and column of every field.

Where this sits: the first thing `rollwise lint` and `rollwise apply` do with a file. It turns
text into `Document`s (plain Python values plus a map from field paths to positions), then
into typed models (`rollwise.api.models`) for the kinds rollwise knows; every other kind
(VirtualService, Ingress, ConfigMap...) passes through as a raw dict. Who reads the result:
`rollwise.api.validation` (rules that need the whole set of files), the CLI, the dashboard.

Nothing here raises for a bad manifest: every problem becomes a `Problem` value that names
the file, line, column and field, so one run reports all of them.

Why compose and construct separately: PyYAML's constructor silently keeps the last of two
equal keys and forgets where each value came from. Walking the composed node tree first gives
the positions and the duplicate keys; the constructor then builds the values as usual.

Hostile YAML is refused here, as a problem, before anything walks it recursively: more than
`MAX_NESTING` levels of mappings and lists (libyaml's composer recurses in C and crashes the
process near 100,000 levels; everything after it recurses in Python), aliases that expand to
more than `MAX_ALIAS_EXPANSION` nodes (a "billion laughs" file of ten lines would take hours),
and recursive aliases (an object that contains itself cannot be stored or sent as JSON).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from rollwise.api.models import API_VERSION, GROUP, KINDS, RawObject, Resource

try:  # libyaml is several times faster; fall back to the pure-Python parser when absent
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

PathKey = str | int
FieldPath = tuple[PathKey, ...]
Severity = Literal["error", "warning"]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

MAX_NESTING = 200
"""Levels of mappings and lists one document may nest; real manifests use a few dozen."""

MAX_ALIAS_EXPANSION = 100_000
"""Nodes one document may reach again through aliases (`*name`), beyond those written."""

# Every level of nesting starts with one of these characters, so a text holding fewer of them
# cannot nest deeper; only a text holding more is scanned (libyaml's events, iteratively)
# before composing, far below the ~100,000 levels where the composer runs out of C stack.
_NESTING_INDICATORS = "[{-:?"
_SCAN_ABOVE = 5_000


def format_path(path: Sequence[PathKey]) -> str:
    """`("spec", "steps", 2, "setWeight")` -> `spec.steps[2].setWeight`.

    Keys that hold dots or brackets (label keys such as `app.kubernetes.io/name`) are quoted
    in brackets so the path stays unambiguous, and so are keys with line breaks or other
    unprintable characters, so a problem stays on one line.
    """
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif not key or not key.isprintable() or any(ch in key for ch in ".[]\"' \\"):
            text += f"[{json.dumps(key, ensure_ascii=not key.isprintable())}]"
        else:
            text += f".{key}" if text else key
    return text


_PATH_PART = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|\.?([^.\[\]]+)')


def parse_path(text: str) -> FieldPath:
    """The inverse of `format_path`: `spec.steps[2].setWeight` -> `("spec", "steps", 2, ...)`."""
    path: list[PathKey] = []
    for match in _PATH_PART.finditer(text):
        quoted, index, plain = match.groups()
        if index is not None:
            path.append(int(index))
        else:
            path.append(json.loads(f'"{quoted}"') if quoted is not None else plain)
    return tuple(path)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, located at the field that is wrong.

    `message` starts with the field path (`spec.replicas: ...`) so it reads well on its own;
    `format()` prefixes the location. Warnings describe YAML that Argo Rollouts accepts but
    that almost certainly does not do what its author meant (a step analysis that never
    ends, a misspelt field that is silently ignored); they do not make a manifest invalid.
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = "error"

    def format(self) -> str:
        marker = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {marker}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def has_errors(problems: Sequence[Problem]) -> bool:
    """True if any problem is an error (warnings alone leave a manifest valid)."""
    return any(problem.is_error for problem in problems)


def make_problem(
    file: str,
    position: tuple[int, int],
    path: Sequence[PathKey],
    text: str,
    *,
    severity: Severity = "error",
) -> Problem:
    dotted = format_path(path)
    message = f"{dotted}: {text}" if dotted else text
    return Problem(file, position[0], position[1], dotted, message, severity)


@dataclass
class Document:
    """One YAML document that is a mapping with apiVersion and kind, and where its fields are.

    `index` counts the documents of the file from 0, empty ones included, so it names the
    document the way a reader counting `---` separators would.
    """

    file: str
    index: int
    raw: dict[str, Any]
    positions: dict[FieldPath, tuple[int, int]]
    start: tuple[int, int] = (1, 1)

    @property
    def kind(self) -> str:
        return str(self.raw.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.raw.get("apiVersion", ""))

    @property
    def name(self) -> str:
        metadata = self.raw.get("metadata")
        return str(metadata.get("name") or "") if isinstance(metadata, dict) else ""

    @property
    def namespace(self) -> str | None:
        """The namespace written in the document, None when it names none."""
        metadata = self.raw.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("namespace"), str):
            return str(metadata["namespace"]) or None
        return None

    def position(self, path: Sequence[PathKey] | str) -> tuple[int, int]:
        """(line, column), 1-based, of the field at `path`, or of its nearest written ancestor.

        `path` is a tuple of keys and indexes or its dotted form (`spec.steps[2].setWeight`).
        A field that is missing altogether is reported where its parent is written, and a
        missing top-level field at the start of the document.
        """
        key = parse_path(path) if isinstance(path, str) else tuple(path)
        while key:
            found = self.positions.get(key)
            if found is not None:
                return found
            key = key[:-1]
        return self.start

    def problem(
        self, path: Sequence[PathKey], text: str, *, severity: Severity = "error"
    ) -> Problem:
        return make_problem(self.file, self.position(path), path, text, severity=severity)


@dataclass(frozen=True)
class Loaded:
    """A parsed resource and the document it came from.

    `resource` is the typed model for the kinds in `models.KINDS`, the raw dict otherwise.
    When some fields of a known kind had the wrong type, the model is built without them (they
    are listed in `pruned`, and a problem was reported for each) so that validation can still
    check the rest of the object: never store or apply a `Loaded` whose `pruned` is not empty.
    """

    resource: Resource | RawObject
    document: Document
    pruned: tuple[FieldPath, ...] = ()

    @property
    def kind(self) -> str:
        return self.document.kind

    @property
    def name(self) -> str:
        return self.document.name


# --- YAML -> documents ---------------------------------------------------------------------------


class _Loader(_SafeLoader):
    """Safe loading, except that timestamps stay strings.

    Kubernetes reads YAML as JSON, where `2026-11-26T01:50:00Z` is a string; PyYAML would make
    it a datetime that the models and the store cannot hold.
    """


def _timestamp_as_string(loader: _Loader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_string)


def _mark(mark: Any) -> tuple[int, int]:
    """(line, column), 1-based, of a mark of PyYAML or of libyaml's events (another class)."""
    if mark is None:
        return (1, 1)
    return (mark.line + 1, mark.column + 1)


class _Refused(Exception):
    """A document too hostile to construct: the problem to report instead of its fields.

    `path` and `position` locate it; `named` says whether the message names that path (a path
    hundreds of levels deep would only hide the message).
    """

    def __init__(
        self, path: FieldPath, position: tuple[int, int], text: str, *, named: bool = True
    ) -> None:
        super().__init__(text)
        self.path = path
        self.position = position
        self.text = text
        self.named = named


@dataclass
class _Measure:
    """Sizes and heights of the composed nodes of one document, each node measured once."""

    sizes: dict[int, tuple[int, int]]  # id(node) -> (values once aliases expand, height)
    active: set[int]
    repeated: int = 0  # values reached again through aliases


def _measure(
    node: yaml.Node, path: FieldPath, where: tuple[int, int], state: _Measure
) -> tuple[int, int]:
    """(values once expanded, height) of `node`, refusing what must not be constructed.

    Each node is visited once (aliases share nodes), so a file of ten lines that expands to
    a billion values costs ten lines to measure. Raises `_Refused` for a recursive alias,
    nesting deeper than MAX_NESTING (counting what aliases expand to) and aliases that expand
    to more than MAX_ALIAS_EXPANSION values beyond those written.
    """
    key = id(node)
    known = state.sizes.get(key)
    if known is not None:  # reached again through an alias: everything under it repeats
        state.repeated += known[0]
        if state.repeated > MAX_ALIAS_EXPANSION:
            text = f"invalid YAML: aliases expand to more than {MAX_ALIAS_EXPANSION} values"
            raise _Refused(path, where, text, named=False)
    else:
        if key in state.active:
            text = (
                "invalid YAML: an alias refers to a value that contains it; a Kubernetes"
                " object cannot contain itself"
            )
            raise _Refused(path, where, text)
        if len(path) > MAX_NESTING:
            text = f"invalid YAML: nested more than {MAX_NESTING} levels deep"
            raise _Refused(path, where, text, named=False)
        state.active.add(key)
        size, height = 1, 0
        children: list[tuple[PathKey, yaml.Node, tuple[int, int]]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                children.append((name, key_node, _mark(key_node.start_mark)))
                children.append((name, value_node, _mark(key_node.start_mark)))
        elif isinstance(node, yaml.SequenceNode):
            children = [(i, item, _mark(item.start_mark)) for i, item in enumerate(node.value)]
        for step, child, child_where in children:
            child_size, child_height = _measure(child, (*path, step), child_where, state)
            size += child_size
            height = max(height, child_height + 1)
        state.active.discard(key)
        known = state.sizes[key] = (size, height)
    if len(path) + known[1] > MAX_NESTING:
        text = f"invalid YAML: nested more than {MAX_NESTING} levels deep once aliases expand"
        raise _Refused(path, where, text, named=False)
    return known


def _check_expansion(node: yaml.Node, start: tuple[int, int]) -> None:
    _measure(node, (), start, _Measure(sizes={}, active=set()))


def _walk(
    node: yaml.Node,
    path: FieldPath,
    positions: dict[FieldPath, tuple[int, int]],
    duplicates: list[tuple[FieldPath, tuple[int, int], tuple[int, int]]],
    seen: set[int],
) -> None:
    """Record the position of every field under `node` and every key written twice.

    Run after `_check_expansion`, so the depth is bounded and there are no cycles. A value
    reached again through an alias is not walked again: its fields are located where the
    alias is written, which is where the person reading the error will look.
    """
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # merged keys live where the anchor is; complex keys have no path
            key = str(key_node.value)
            where = _mark(key_node.start_mark)
            child = (*path, key)
            if key in keys:
                duplicates.append((child, where, keys[key]))
            keys[key] = where
            positions[child] = where
            _walk(value_node, child, positions, duplicates, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            positions[child] = _mark(item.start_mark)
            _walk(item, child, positions, duplicates, seen)


def _too_deep(text: str) -> tuple[int, tuple[int, int]] | None:
    """(document index, position) where `text` first nests deeper than MAX_NESTING, if it does.

    Reads libyaml's events, which its parser produces without recursing; a syntax error ends
    the scan (composing stops at the same place and reports it).
    """
    if sum(text.count(char) for char in _NESTING_INDICATORS) <= _SCAN_ABOVE:
        return None
    depth = 0
    index = -1
    try:
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                index += 1
            elif isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    return index, _mark(event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _position_at(text: str, offset: int) -> tuple[int, int]:
    """(line, column), 1-based, of a character offset into `text`."""
    offset = min(max(offset, 0), len(text))
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def _within(text: str, position: tuple[int, int]) -> tuple[int, int]:
    """A position of libyaml's, kept inside the text: at the end of a file without a final
    newline it points at a line after the last."""
    last = text.count("\n") + 1
    if position[0] <= last:
        return position
    return last, len(text) - text.rfind("\n")


def _yaml_problem(file: str, error: yaml.YAMLError, source: str) -> Problem:
    if isinstance(error, yaml.reader.ReaderError):
        # A character YAML does not allow (NUL, other control characters): no mark, an offset.
        character = error.character
        code = ord(character) if isinstance(character, str) else int(character)
        text = f"invalid YAML: unacceptable character #x{code:04x}: {error.reason}"
        return make_problem(file, _position_at(source, error.position), (), text)
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        text = error.problem or error.context or "cannot parse"
        if error.context and error.problem and error.context_mark is not None:
            context_line = _within(source, _mark(error.context_mark))[0]
            text = f"{text} ({error.context} at line {context_line})"
        return make_problem(file, _within(source, _mark(mark)), (), f"invalid YAML: {text}")
    return make_problem(file, (1, 1), (), f"invalid YAML: {error}")


def _reset_constructor(loader: _Loader) -> None:
    # A failed construct_document leaves state behind that would leak into the next document.
    loader.constructed_objects = {}
    loader.recursive_objects = {}
    loader.state_generators = []


@dataclass(frozen=True)
class _Composed:
    index: int
    value: Any
    start: tuple[int, int]
    positions: dict[FieldPath, tuple[int, int]]
    duplicates: list[tuple[FieldPath, tuple[int, int], tuple[int, int]]]


def _documents(text: str, file: str, problems: list[Problem]) -> Iterator[_Composed]:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # lone surrogates: bytes of stdin that were not UTF-8
        where = _position_at(text, error.start)
        problems.append(make_problem(file, where, (), "not UTF-8: a byte here is not text"))
        return
    deep = _too_deep(text)
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            if deep is not None and index == deep[0]:
                message = f"invalid YAML: nested more than {MAX_NESTING} levels deep"
                problems.append(make_problem(file, deep[1], (), message))
                break  # the composer would recurse past any stack; later documents are lost
            node = loader.get_node()
            if node is None:
                break
            # Walk before constructing: the constructor rewrites mappings with merge keys
            # (`<<: *base`) in place, which would make merged keys look written twice.
            start = _mark(node.start_mark)
            try:
                _check_expansion(node, start)
            except _Refused as refused:
                named = refused.path if refused.named else ()
                problems.append(make_problem(file, refused.position, named, refused.text))
                index += 1
                continue
            positions: dict[FieldPath, tuple[int, int]] = {}
            duplicates: list[tuple[FieldPath, tuple[int, int], tuple[int, int]]] = []
            _walk(node, (), positions, duplicates, set())
            try:
                value = loader.construct_document(node)
            except yaml.YAMLError as error:
                _reset_constructor(loader)
                problems.append(_yaml_problem(file, error, text))
            else:
                yield _Composed(index, value, start, positions, duplicates)
            index += 1
    except yaml.YAMLError as error:  # the parser cannot go on after a syntax error
        problems.append(_yaml_problem(file, error, text))
    finally:
        loader.dispose()


def _describe_type(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


_INT64 = (-(2**63), 2**63 - 1)
_MAX_JSON_PROBLEMS = 10  # per document: the first few say it all


def _fits_json(value: Any) -> bool:
    """Whether every value under `value` is one JSON holds (the quick answer, no paths)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            if any(type(key) is bytes for key in item):
                return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is int:
            if not _INT64[0] <= item <= _INT64[1]:
                return False
        elif kind is float:
            if item != item or item in (float("inf"), float("-inf")):
                return False
        else:
            return False
    return True


def _not_json(value: Any) -> Iterator[tuple[FieldPath, str]]:
    """Values no Kubernetes object can hold, by path: objects are JSON, whose numbers are
    finite and fit 64 bits, and which has no bytes (`!!binary`) or sets (`!!set`)."""
    if _fits_json(value):
        return
    stack: list[tuple[FieldPath, Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, bytes):
                    yield (*path, str(key)), "a !!binary key cannot be stored: keys are text"
                stack.append(((*path, str(key)), child))
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in enumerate(item))
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int):
            if not _INT64[0] <= item <= _INT64[1]:
                yield path, "number out of range: Kubernetes objects hold 64-bit integers"
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                yield path, f"{item} is not a number a Kubernetes object can hold (JSON has none)"
        elif isinstance(item, bytes):
            yield path, "a !!binary value cannot be stored: write its base64 text as a string"
        else:
            yield path, f"a !!{_describe_type(item)} value cannot be stored: write a list"


def load_documents(text: str, *, file: str) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of `text` that is a Kubernetes-style object, and the problems.

    Problems: YAML syntax errors (at the parser's position; documents after the error are
    lost), keys written twice (YAML keeps the last, Kubernetes rejects them), documents that
    are not mappings or lack apiVersion/kind (those documents are left out).
    """
    problems: list[Problem] = []
    documents: list[Document] = []
    for composed in _documents(text, file, problems):
        index, value, start = composed.index, composed.value, composed.start
        if value is None:
            continue  # an empty document, e.g. after a trailing `---`
        for path, where, first in composed.duplicates:
            problems.append(
                make_problem(
                    file,
                    where,
                    path,
                    f"duplicate key {path[-1]!r} (first written at line {first[0]});"
                    " YAML would silently keep only this last value",
                )
            )
        if not isinstance(value, dict):
            problems.append(
                make_problem(
                    file,
                    start,
                    (),
                    f"document {index + 1} is {_describe_type(value)}; expected a mapping"
                    " with apiVersion and kind",
                )
            )
            continue
        document = Document(
            file=file, index=index, raw=value, positions=composed.positions, start=start
        )
        unfit = [document.problem(path, text) for path, text in _not_json(value)]
        if unfit:  # not an object Kubernetes (or the store) can hold: left out, like below
            problems.extend(unfit[:_MAX_JSON_PROBLEMS])
            continue
        missing = False
        for key in ("apiVersion", "kind"):
            if key not in value or value[key] in (None, ""):
                problems.append(
                    document.problem(
                        (key,),
                        "required field is missing; every document needs apiVersion and kind",
                    )
                )
                missing = True
            elif not isinstance(value[key], str):
                problems.append(
                    document.problem((key,), f"expected a string, got {_describe_type(value[key])}")
                )
                missing = True
        if not missing:
            documents.append(document)
    return documents, problems


# --- documents -> models -------------------------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


def _describe_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    return _describe_type(value) if not isinstance(value, dict) else "a mapping"


def _data_path(data: Any, loc: tuple[int | str, ...], *, missing: bool) -> FieldPath:
    """The path in the document that a pydantic error location points at.

    pydantic adds segments that are not in the data (the member of a union that failed, like
    `int` or `str`); following the data itself drops them.
    """
    path: list[PathKey] = []
    current = data
    for position, segment in enumerate(loc):
        in_mapping = isinstance(current, dict) and isinstance(segment, str) and segment in current
        in_list = (
            isinstance(current, list) and isinstance(segment, int) and 0 <= segment < len(current)
        )
        if in_mapping or in_list:
            current = current[segment]
            path.append(segment)
        elif missing and position == len(loc) - 1 and isinstance(segment, str):
            path.append(segment)
    return tuple(path)


def _error_text(errors: list[dict[str, Any]], value: Any, *, exists: bool) -> str:
    if any(error["type"] == "missing" for error in errors) and not exists:
        return "required field is missing"
    expected: list[str] = []
    for error in errors:
        if error["type"] == "literal_error":
            phrase = f"one of {error.get('ctx', {}).get('expected', '')}"
        else:
            phrase = _EXPECTED.get(error["type"], error["msg"].lower())
        if phrase not in expected:
            expected.append(phrase)
    return f"expected {' or '.join(expected)}, got {_describe_value(value)}"


def _lookup(data: Any, path: FieldPath) -> tuple[bool, Any]:
    current = data
    for key in path:
        in_list = isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current)
        if (isinstance(current, dict) and key in current) or in_list:
            current = current[key]
        else:
            return False, None
    return True, current


def _without(data: Any, path: FieldPath) -> Any:
    """A copy of `data` without the mapping key at `path` (copying only along the path)."""
    if not path:
        return data
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        copy = dict(data)
        if rest:
            copy[head] = _without(data[head], rest)
        else:
            copy.pop(head, None)
        return copy
    if isinstance(data, list) and isinstance(head, int):
        items = list(data)
        items[head] = _without(data[head], rest)
        return items
    return data


def _model_class(document: Document) -> tuple[type[Resource] | None, str | None]:
    """Which model reads this document, or why none can (a problem message)."""
    kind, api_version = document.kind, document.api_version
    model = KINDS.get(kind)
    if model is None:
        return None, None
    if kind == "Service":
        # Only core v1 Services; a Knative `serving.knative.dev/v1` Service is another thing.
        return (model, None) if api_version == "v1" else (None, None)
    if api_version == API_VERSION:
        return model, None
    if api_version.split("/")[0] == GROUP:
        return None, f"unsupported apiVersion {api_version!r} for {kind}; expected {API_VERSION}"
    return None, None  # a kind of the same name from another API group: not ours


def _parse(document: Document) -> tuple[Resource | RawObject, list[Problem], tuple[FieldPath, ...]]:
    model, refusal = _model_class(document)
    if refusal is not None:
        return document.raw, [document.problem(("apiVersion",), refusal)], ()
    if model is None:
        return document.raw, [], ()
    problems: list[Problem] = []
    reported: set[FieldPath] = set()
    pruned: list[FieldPath] = []
    data: Any = document.raw
    # Each round removes the fields pydantic rejected; a second round only happens when a
    # rejected field hid another one, so a handful of rounds is plenty.
    for _ in range(8):
        try:
            return model.model_validate(data, strict=True), problems, tuple(pruned)
        except ValidationError as failure:
            grouped: dict[FieldPath, list[dict[str, Any]]] = {}
            for error in failure.errors(include_url=False):
                missing = error["type"] == "missing"
                path = _data_path(data, tuple(error["loc"]), missing=missing)
                grouped.setdefault(path, []).append(dict(error))
            can_prune = True
            for path, errors in grouped.items():
                exists, value = _lookup(data, path)
                if path not in reported:
                    reported.add(path)
                    text = _error_text(errors, value, exists=exists)
                    problems.append(document.problem(path, text))
                if not exists or not path or not isinstance(path[-1], str):
                    can_prune = False
            if not can_prune:
                break
            for path in grouped:
                data = _without(data, path)
                pruned.append(path)
    return document.raw, problems, tuple(pruned)


def parse_resource(document: Document) -> tuple[Resource | RawObject, list[Problem]]:
    """The model for a known kind, or the raw dict for any other kind.

    When a known kind does not fit its model, every misfit is reported at its field (what was
    expected, what was written) and the raw dict is returned, so a half-parsed model never
    escapes. Unknown fields are not errors: models keep them.
    """
    resource, problems, _ = _parse(document)
    if problems:
        return document.raw, problems
    return resource, problems


def _decode(data: bytes, file: str) -> tuple[str | None, list[Problem]]:
    """The text of a manifest's bytes (UTF-8, a byte-order mark allowed), or where it is not."""
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        byte = data[error.start : error.start + 1].hex()
        text = f"cannot read {file}: not UTF-8 (byte 0x{byte}: {error.reason})"
        return None, [make_problem(file, (line, column), (), text)]


def _read(path: str) -> tuple[list[tuple[str, str]], list[Problem]]:
    """(file name, text) for a file, for `-` (standard input) or for a directory's manifests."""
    if path == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # a text stream put in place of stdin (tests, embedding)
            return [("<stdin>", sys.stdin.read())], []
        text, problems = _decode(stdin.read(), "<stdin>")
        return ([("<stdin>", text)] if text is not None else []), problems
    target = FilePath(path)
    try:
        if target.is_dir():
            files = sorted(p for p in target.iterdir() if p.suffix in _MANIFEST_SUFFIXES)
            texts: list[tuple[str, str]] = []
            unread: list[Problem] = []
            for file in files:
                found, failed = _read(str(file))
                texts.extend(found)
                unread.extend(failed)
            return texts, unread
        text, problems = _decode(target.read_bytes(), path)
        return ([(path, text)] if text is not None else []), problems
    except FileNotFoundError:
        return [], [make_problem(path, (1, 1), (), f"cannot read {path}: no such file")]
    except OSError as error:
        reason = error.strerror or str(error)
        return [], [make_problem(path, (1, 1), (), f"cannot read {path}: {reason}")]


def load_text(text: str, *, file: str) -> tuple[list[Loaded], list[Problem]]:
    """Documents of one text parsed into resources, with every problem found on the way."""
    documents, problems = load_documents(text, file=file)
    loaded: list[Loaded] = []
    for document in documents:
        resource, found, pruned = _parse(document)
        problems.extend(found)
        loaded.append(Loaded(resource, document, pruned))
    return loaded, problems


def load_files(paths: Sequence[str]) -> tuple[list[Loaded], list[Problem]]:
    """Every resource in the named files (`-` is standard input, a directory its manifests)."""
    loaded: list[Loaded] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for path in dict.fromkeys(paths):
        texts, failed = _read(path)
        problems.extend(failed)
        for file, text in texts:
            key = file if file == "<stdin>" else str(FilePath(file).resolve())
            if key in seen:
                continue  # a file named twice (or also through its directory) is read once
            seen.add(key)
            found, found_problems = load_text(text, file=file)
            loaded.extend(found)
            problems.extend(found_problems)
    return loaded, problems


__all__ = [
    "Document",
    "FieldPath",
    "Loaded",
    "PathKey",
    "Problem",
    "Severity",
    "format_path",
    "has_errors",
    "load_documents",
    "load_files",
    "load_text",
    "make_problem",
    "parse_path",
    "parse_resource",
]
