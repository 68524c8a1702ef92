"""Shared pieces of the fuzzing tests: seed manifests, hostile manifests, odd values, checks.

Who uses it: `test_fuzz_manifests.py`, `test_fuzz_expressions.py` and `test_fuzz_cli.py`.

Every malformed manifest starts from a real document of its kind (the seed module's YAML under
tests/api/fixtures/seed and the examples/ directory; AnalysisRuns are made from the templates
there) and is broken in one to three ways, at the level of values (wrong types, missing
required fields, out-of-range numbers, unknown keys, deep nesting, huge strings, recursive
and exponential aliases) and of text (duplicate keys, tabs, unclosed quotes, bad indentation,
non-UTF-8 bytes, truncation, documents of other kinds around it, empty files). A `Case` says
which ways, so hypothesis' statistics (`--hypothesis-show-statistics`) show the mix.
"""

from __future__ import annotations

import copy
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st
from typer.main import get_command
from typer.testing import CliRunner

from rollwise.cli.main import app

REPO = Path(__file__).resolve().parents[2]
SEED_FILES = sorted(
    [
        *(REPO / "tests" / "api" / "fixtures" / "seed").glob("*.yaml"),
        *(REPO / "examples").glob("*.yaml"),
        *(REPO / "examples" / "argo").glob("*.yaml"),
    ]
)
KINDS = (
    "Rollout",
    "AnalysisTemplate",
    "ClusterAnalysisTemplate",
    "AnalysisRun",
    "Experiment",
    "Service",
)

Raw = dict[str, Any]
FieldPath = tuple[str | int, ...]


def _seed_documents() -> dict[str, list[Raw]]:
    """The documents of the seed files by kind; kinds rollwise does not model under "Other"."""
    found: dict[str, list[Raw]] = {kind: [] for kind in (*KINDS, "Other")}
    for file in SEED_FILES:
        for document in yaml.safe_load_all(file.read_text()):
            if isinstance(document, dict):
                kind = document.get("kind")
                found[kind if kind in KINDS else "Other"].append(document)
    for template in found["AnalysisTemplate"]:
        # An AnalysisRun is a template's spec with every arg given a value, as Argo makes it.
        run = copy.deepcopy(template)
        run["kind"] = "AnalysisRun"
        run["metadata"]["name"] = f"{run['metadata']['name']}-run"
        for arg in run["spec"].get("args") or []:
            if "valueFrom" not in arg:
                arg.setdefault("value", "x")
        found["AnalysisRun"].append(run)
    return found


SEEDS = _seed_documents()
assert all(SEEDS[kind] for kind in KINDS), {kind: len(SEEDS[kind]) for kind in KINDS}

# Required, per kind, in Argo's CRDs and rollwise's models (the paths that exist are used).
REQUIRED: dict[str, list[FieldPath]] = {
    "Rollout": [("spec", "selector"), ("spec", "template"), ("spec", "strategy")],
    "AnalysisTemplate": [("spec", "metrics"), ("spec", "metrics", 0, "name")],
    "ClusterAnalysisTemplate": [("spec", "metrics"), ("spec", "metrics", 0, "provider")],
    "AnalysisRun": [("spec", "metrics"), ("spec", "metrics", 0, "provider")],
    "Experiment": [("spec", "templates"), ("spec", "templates", 0, "selector")],
    "Service": [("spec", "ports"), ("spec", "ports", 0, "port")],
}
COMMON_REQUIRED: list[FieldPath] = [("apiVersion",), ("kind",), ("metadata",), ("metadata", "name")]

ODD_SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    "",
    " ",
    "x",
    "50%",
    "1h",
    "{{args.x}}",
    "ünïcödé ✓",
    "\u202e\u0000\x7f",
    "null",
    "~",
    "yes",
    "0x1F",
    "1e400",
]
OUT_OF_RANGE: list[Any] = [
    -1,
    -(2**31) - 1,
    2**31,
    2**63,
    -(2**63) - 1,
    10**30,
    10**400,
    101,
    1.5,
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
    65536,
]


@dataclass(frozen=True)
class Case:
    """One generated input: what was done to it, and its bytes."""

    how: tuple[str, ...]
    data: bytes


def paths(value: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    """Every field path under `value` (not `value` itself)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from paths(item, (*path, index))


def lookup(value: Any, path: FieldPath) -> Any:
    for key in path:
        value = value[key]
    return value


def exists(value: Any, path: FieldPath) -> bool:
    try:
        lookup(value, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _set(document: Raw, path: FieldPath, value: Any) -> None:
    lookup(document, path[:-1])[path[-1]] = value


def _delete(document: Raw, path: FieldPath) -> None:
    parent = lookup(document, path[:-1])
    del parent[path[-1]]


# --- value-level mutations (on the parsed document) ----------------------------------------------


def _wrong_type(draw: st.DrawFn, document: Raw) -> str:
    every = list(paths(document))
    if not every:
        return _unknown_key(draw, document)
    path = draw(st.sampled_from(every))
    current = lookup(document, path)
    choices = [
        v
        for v in [*ODD_SCALARS, [], {}, [1, "a"], {"a": {"b": None}}]
        if type(v) is not type(current)
    ]
    _set(document, path, copy.deepcopy(draw(st.sampled_from(choices))))
    return "wrong-type"


def _missing(draw: st.DrawFn, document: Raw) -> str:
    kind = document.get("kind")
    own = REQUIRED.get(kind, []) if isinstance(kind, str) else []
    required = [p for p in COMMON_REQUIRED + own if exists(document, p)]
    every = list(paths(document))
    if not every:
        return _unknown_key(draw, document)
    path = draw(
        st.sampled_from(required or every) if draw(st.booleans()) else st.sampled_from(every)
    )
    _delete(document, path)
    return "missing"


def _out_of_range(draw: st.DrawFn, document: Raw) -> str:
    numbers = [
        p
        for p in paths(document)
        if isinstance(lookup(document, p), int | float)
        and not isinstance(lookup(document, p), bool)
    ]
    value = draw(st.sampled_from(OUT_OF_RANGE))
    if not numbers:  # no number written: put one where a number belongs
        if isinstance(document.get("spec"), dict):
            document["spec"]["replicas"] = value
        else:
            document["spec"] = value
        return "out-of-range"
    _set(document, draw(st.sampled_from(numbers)), value)
    return "out-of-range"


def _unknown_key(draw: st.DrawFn, document: Raw) -> str:
    mappings = [()] + [p for p in paths(document) if isinstance(lookup(document, p), dict)]
    path = draw(st.sampled_from(mappings))
    key = draw(st.sampled_from(["replica", "sucessCondition", "setweight", "x", "", "ü", "a.b/c"]))
    lookup(document, path)[key] = draw(st.sampled_from(ODD_SCALARS))
    return "unknown-key"


def _huge_string(draw: st.DrawFn, document: Raw) -> str:
    strings = [p for p in paths(document) if isinstance(lookup(document, p), str)]
    unit = draw(st.sampled_from(["a", "é", "{{args.x}}", "x" * 63 + "\n", "💥"]))
    size = draw(st.sampled_from([300, 5_000, 70_000, 300, 5_000, 1_000_000]))
    if strings and draw(st.booleans()):
        _set(document, draw(st.sampled_from(strings)), unit * (size // len(unit)))
        return "huge-string"
    mappings = [()] + [p for p in paths(document) if isinstance(lookup(document, p), dict)]
    lookup(document, draw(st.sampled_from(mappings[:3])))[unit * (size // len(unit) // 10)] = 1
    return "huge-key"


VALUE_MUTATIONS: dict[str, Callable[[st.DrawFn, Raw], str]] = {
    "wrong-type": _wrong_type,
    "missing": _missing,
    "out-of-range": _out_of_range,
    "unknown-key": _unknown_key,
    "huge-string": _huge_string,
}


def _dump(documents: list[Any]) -> str:
    try:
        return yaml.dump_all(
            documents, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=10**6
        )
    except (ValueError, OverflowError):  # pragma: no cover - safe_dump writes every value here
        return json.dumps(documents[0])


# --- text-level mutations (on the YAML text) -----------------------------------------------------

_KEY_LINE = re.compile(r"^( *)([A-Za-z][\w.-]*):( |$)")


def _lines(
    draw: st.DrawFn, text: str, pattern: re.Pattern[str] | None = None
) -> tuple[list[str], int]:
    lines = text.split("\n")
    candidates = [
        i
        for i, line in enumerate(lines)
        if line.strip() and (pattern is None or pattern.match(line))
    ]
    index = draw(st.sampled_from(candidates)) if candidates else 0
    return lines, index


def _duplicate_key(draw: st.DrawFn, text: str) -> str:
    lines, index = _lines(draw, text, _KEY_LINE)
    match = _KEY_LINE.match(lines[index])
    if match is None:
        return text + "\nkind: Twice\nkind: Twice\n"
    lines.insert(index + 1, f"{match.group(1)}{match.group(2)}: duplicated")
    return "\n".join(lines)


def _tab(draw: st.DrawFn, text: str) -> str:
    lines, index = _lines(draw, text, re.compile(r"^ +\S"))
    line = lines[index]
    lines[index] = "\t" + line.lstrip(" ") if draw(st.booleans()) else line.replace(" ", "\t", 1)
    return "\n".join(lines)


def _unclosed_quote(draw: st.DrawFn, text: str) -> str:
    lines, index = _lines(draw, text, _KEY_LINE)
    quote = draw(st.sampled_from(['"', "'", "`", "[", "{"]))
    line = lines[index]
    if ": " in line:
        lines[index] = line.replace(": ", f": {quote}", 1)
    else:
        lines[index] = line + f" {quote}"
    return "\n".join(lines)


def _bad_indent(draw: st.DrawFn, text: str) -> str:
    lines, index = _lines(draw, text)
    shift = draw(st.sampled_from([-3, -1, 1, 3]))
    line = lines[index]
    lines[index] = (
        " " * shift + line if shift > 0 else line[min(-shift, len(line) - len(line.lstrip(" "))) :]
    )
    if shift < 0 and lines[index] == line:
        lines[index] = " " + line
    return "\n".join(lines)


def _deep_nesting(draw: st.DrawFn, text: str) -> str:
    depth = draw(st.sampled_from([150, 199, 201, 1_000, 150, 199, 201, 30_000, 150_000]))
    flow = draw(st.booleans())
    nested = "[" * depth + "]" * depth if flow else "{a: " * depth + "1" + "}" * depth
    lines, index = _lines(draw, text, _KEY_LINE)
    match = _KEY_LINE.match(lines[index])
    if match is None:
        return text + f"\ndeep: {nested}\n"
    lines.insert(index + 1, f"{match.group(1)}deep{depth}: {nested}")
    return "\n".join(lines)


def _block_nesting(draw: st.DrawFn, text: str) -> str:
    depth = draw(st.sampled_from([120, 250]))
    block = "".join(f"{'  ' * level}l{level}:\n" for level in range(depth))
    return (
        text.rstrip("\n")
        + "\nnested:\n"
        + "\n".join("  " + line for line in block.splitlines())
        + " x\n"
    )


def _truncate(draw: st.DrawFn, text: str) -> str:
    return text[: draw(st.integers(0, max(len(text) - 1, 0)))]


def _alias_bomb(draw: st.DrawFn, text: str) -> str:
    # 9**4 values are fine; 9**9 is the classic bomb (refused after MAX_ALIAS_EXPANSION)
    levels = draw(st.sampled_from([3, 4, 5, 9]))
    lines = ["bomb:", "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    where = draw(st.sampled_from(["top", "labels"]))
    if where == "labels" and "\nmetadata:\n" in text:
        body = "\n".join("  " + line for line in lines)
        return text.replace("\nmetadata:\n", f"\nmetadata:\n{body}\n", 1)
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def _recursive_alias(draw: st.DrawFn, text: str) -> str:
    how = draw(st.sampled_from(["self", "spec", "list"]))
    if how == "spec" and "\nspec:\n" in text:
        return text.replace("\nspec:\n", "\nspec: &spec\n  again: *spec\n", 1)
    if how == "list":
        return text.rstrip("\n") + "\nloop: &loop [1, *loop]\n"
    return text.rstrip("\n") + "\nloop: &loop\n  inner: *loop\n"


def _undefined_alias(draw: st.DrawFn, text: str) -> str:
    return text.rstrip("\n") + "\nref: *nowhere\n"


TEXT_MUTATIONS: dict[str, Callable[[st.DrawFn, str], str]] = {
    "duplicate-key": _duplicate_key,
    "tab": _tab,
    "unclosed-quote": _unclosed_quote,
    "bad-indent": _bad_indent,
    "deep-nesting": _deep_nesting,
    "block-nesting": _block_nesting,
    "truncated": _truncate,
    "alias-bomb": _alias_bomb,
    "recursive-alias": _recursive_alias,
    "undefined-alias": _undefined_alias,
}

EMPTY_FILES = [
    b"",
    b"\n",
    b"---\n",
    b"--- \n...\n",
    b"# only a comment\n",
    b"\xef\xbb\xbf",
    b"   \n\t\n",
    b"---\n---\n---\n",
]
ODD_DOCUMENTS = [
    "42",
    "- a\n- b",
    "just a string",
    "null",
    "[]",
    "{}",
    "!!binary aGVsbG8=",
    "%YAML 1.1\n---\na: 1",
    "? [complex]\n: key",
]


def _bytes_mutation(draw: st.DrawFn, data: bytes) -> tuple[str, bytes]:
    how = draw(st.sampled_from(["non-utf8", "utf16", "latin1", "nul"]))
    if how == "utf16":
        return how, data.decode("utf-8", "replace").encode("utf-16")
    if how == "latin1":
        return how, data.replace(
            b"name: ", "name: é".encode("latin-1"), 1
        ) + "\nnote: café\n".encode("latin-1")
    at = draw(st.integers(0, len(data)))
    junk = (
        b"\x00"
        if how == "nul"
        else draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\x80abc"]))
    )
    return how, data[:at] + junk + data[at:]


@st.composite
def malformed_manifests(draw: st.DrawFn, kind: str) -> Case:
    """A document of `kind`, broken in one to three ways (see the module docstring).

    An unknown key is only ever added on top of a breakage: rollwise keeps unknown fields
    (with a warning), so on its own it would make a valid manifest.
    """
    if draw(st.integers(0, 39)) == 0:
        return Case(("empty",), draw(st.sampled_from(EMPTY_FILES)))
    document: Raw = copy.deepcopy(draw(st.sampled_from(SEEDS[kind])))
    breakers = sorted(name for name in VALUE_MUTATIONS if name != "unknown-key")
    breakers += sorted(TEXT_MUTATIONS)
    chosen = draw(st.lists(st.sampled_from(breakers), min_size=1, max_size=3))
    if draw(st.integers(0, 3)) == 0:
        chosen.insert(0, "unknown-key")
    how: list[str] = []
    for name in chosen:  # the values first: text mutations work on the written YAML
        if name in VALUE_MUTATIONS:
            how.append(VALUE_MUTATIONS[name](draw, document))
    documents: list[Any] = [document]
    if draw(st.integers(0, 4)) == 0:  # a multi-document mix
        others = SEEDS["Other"] + SEEDS["Service"] + SEEDS["AnalysisTemplate"]
        documents += copy.deepcopy(draw(st.lists(st.sampled_from(others), min_size=1, max_size=3)))
        how.append("multi-document")
    if len(documents) == 1 and draw(st.integers(0, 5)) == 0:
        text = json.dumps(document)  # JSON is YAML too: what `kubectl get -o json` writes
        how.append("json")
    else:
        text = _dump(documents)
    for name in chosen:
        if name in TEXT_MUTATIONS:
            text = TEXT_MUTATIONS[name](draw, text)
            how.append(name)
    if "multi-document" in how and draw(st.booleans()):
        text = text + "\n---\n" + draw(st.sampled_from(ODD_DOCUMENTS)) + "\n"
    data = text.encode()
    if draw(st.integers(0, 7)) == 0:
        mutation, data = _bytes_mutation(draw, data)
        how.append(mutation)
    return Case(tuple(how), data)


# --- checks shared by the tests ------------------------------------------------------------------

TRACEBACK = "Traceback (most recent call last)"


def location_of(line: str, file: str) -> tuple[int, int] | None:
    """(line, column) of a `FILE:LINE:COL: message` line about `file`, None if it is not one."""
    match = re.match(re.escape(file) + r":(\d+):(\d+): \S", line)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class Outcome:
    """What one in-process run of `rollwise` did: exit code, streams, and any exception that
    escaped the command (anything but SystemExit is a crash: a user would see a traceback)."""

    exit_code: int
    stdout: str
    stderr: str
    crash: BaseException | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Rollwise:
    """Runs `rollwise ARGS...` in-process like typer's CliRunner, on the click command built
    once: typer rebuilds it from the functions' signatures on every `invoke` (~40 ms, most of
    an example's time here), while the console script builds it once per process anyway."""

    def __init__(self) -> None:
        self.runner = CliRunner()
        self.command = get_command(app)

    def __call__(self, args: Sequence[str], *, input: bytes | str | None = None) -> Outcome:
        crash: BaseException | None = None
        with self.runner.isolation(input=input) as streams:
            try:
                self.command.main(args=list(args), prog_name="rollwise")
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 1
            except Exception as error:  # what `rollwise` would show as a traceback
                crash = error
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            stdout = streams[0].getvalue().decode("utf-8", "replace")
            stderr = streams[1].getvalue().decode("utf-8", "replace")
        return Outcome(code, stdout, stderr, crash)
