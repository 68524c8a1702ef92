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


def format_path(path: Sequence[PathKey]) -> str:
    """`("spec", "steps", 2, "setWeight")` -> `spec.steps[2].setWeight`.

    Keys that hold dots or brackets (label keys such as `app.kubernetes.io/name`) are quoted
    in brackets so the path stays unambiguous.
    """
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif not key or any(ch in key for ch in ".[]\"' \\"):
            text += f"[{json.dumps(key, ensure_ascii=False)}]"
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


def _mark(mark: yaml.Mark | None) -> tuple[int, int]:
    if mark is None:
        return (1, 1)
    return (mark.line + 1, mark.column + 1)


def _walk(
    node: yaml.Node,
    path: FieldPath,
    positions: dict[FieldPath, tuple[int, int]],
    duplicates: list[tuple[FieldPath, tuple[int, int], tuple[int, int]]],
    active: set[int],
) -> None:
    """Record the position of every field under `node` and every key written twice."""
    if id(node) in active:  # a recursive alias: its fields were recorded on the way down
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # merged keys live where the anchor is; complex keys have no path
            key = str(key_node.value)
            where = _mark(key_node.start_mark)
            child = (*path, key)
            if key in seen:
                duplicates.append((child, where, seen[key]))
            seen[key] = where
            positions[child] = where
            _walk(value_node, child, positions, duplicates, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            positions[child] = _mark(item.start_mark)
            _walk(item, child, positions, duplicates, active)
    active.discard(id(node))


def _yaml_problem(file: str, error: yaml.YAMLError) -> Problem:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        text = error.problem or error.context or "cannot parse"
        if error.context and error.problem and error.context_mark is not None:
            text = f"{text} ({error.context} at line {error.context_mark.line + 1})"
        return make_problem(file, _mark(mark), (), f"invalid YAML: {text}")
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
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            # Walk before constructing: the constructor rewrites mappings with merge keys
            # (`<<: *base`) in place, which would make merged keys look written twice.
            positions: dict[FieldPath, tuple[int, int]] = {}
            duplicates: list[tuple[FieldPath, tuple[int, int], tuple[int, int]]] = []
            _walk(node, (), positions, duplicates, set())
            try:
                value = loader.construct_document(node)
            except yaml.YAMLError as error:
                _reset_constructor(loader)
                problems.append(_yaml_problem(file, error))
            else:
                yield _Composed(index, value, _mark(node.start_mark), positions, duplicates)
            index += 1
    except yaml.YAMLError as error:  # the parser cannot go on after a syntax error
        problems.append(_yaml_problem(file, error))
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


def _read(path: str) -> tuple[list[tuple[str, str]], list[Problem]]:
    """(file name, text) for a file, for `-` (standard input) or for a directory's manifests."""
    if path == "-":
        return [("<stdin>", sys.stdin.read())], []
    target = FilePath(path)
    try:
        if target.is_dir():
            files = sorted(p for p in target.iterdir() if p.suffix in _MANIFEST_SUFFIXES)
            texts: list[tuple[str, str]] = []
            problems: list[Problem] = []
            for file in files:
                found, failed = _read(str(file))
                texts.extend(found)
                problems.extend(failed)
            return texts, problems
        return [(path, target.read_bytes().decode("utf-8-sig"))], []
    except FileNotFoundError:
        return [], [make_problem(path, (1, 1), (), f"cannot read {path}: no such file")]
    except UnicodeDecodeError as error:
        return [], [make_problem(path, (1, 1), (), f"cannot read {path}: not UTF-8 ({error})")]
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
