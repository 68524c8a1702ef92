"""The controller image's Dockerfile, checked without a container engine (none here): it parses,
what it copies exists and is in the build context, and it runs what the Deployment expects."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from rollwise.platforms.kubernetes import install

ROOT = Path(__file__).parents[2]
INSTRUCTIONS = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.strip().startswith("#") and not pending:
            continue
        if not line.strip() and not pending:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "a continuation line ends the file"
    parsed = []
    for line in lines:
        keyword, _, arguments = line.strip().partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
    return parsed


DOCKERFILE = instructions((ROOT / "Dockerfile").read_text())


def of(keyword: str) -> list[str]:
    return [arguments for name, arguments in DOCKERFILE if name == keyword]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent decides."""

    def regex(pattern: str) -> re.Pattern[str]:
        parts = re.split(r"(\*\*/?|\*|\?)", pattern.strip("/"))
        table = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        return re.compile("".join(table.get(part, re.escape(part)) for part in parts))

    pieces = path.split("/")
    candidates = ["/".join(pieces[: index + 1]) for index in range(len(pieces))]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        compiled = regex(pattern.removeprefix("!"))
        if any(compiled.fullmatch(candidate) for candidate in candidates):
            result = not negated
    return result


def dockerignore() -> list[str]:
    text = (ROOT / ".dockerignore").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_every_instruction_is_known_and_json_forms_parse() -> None:
    for keyword, arguments in DOCKERFILE:
        assert keyword in INSTRUCTIONS, keyword
        assert arguments, keyword
        if keyword in ("CMD", "ENTRYPOINT"):
            assert isinstance(json.loads(arguments), list)


def test_two_stages_on_python_311_slim() -> None:
    assert of("FROM") == ["python:3.11-slim AS build", "python:3.11-slim"]


def test_what_it_copies_exists_and_is_in_the_build_context() -> None:
    patterns = dockerignore()
    sources = []
    for arguments in of("COPY"):
        if arguments.startswith("--from="):
            continue
        *copied, _destination = arguments.split()
        sources.extend(copied)
    assert sources == ["pyproject.toml", "uv.lock", "README.md", "src"]
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), source
    tracked = subprocess.run(
        ["git", "ls-files", "src"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked
    assert [path for path in tracked if ignored(path, patterns)] == []


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "tests/install/test_dockerfile.py",
        ".git/HEAD",
        "src/rollwise/__pycache__/x.pyc",
    ],
)
def test_the_build_context_leaves_out_the_rest(path: str) -> None:
    assert ignored(path, dockerignore())


def test_stages_copy_from_earlier_stages_and_uv_matches_the_makefile() -> None:
    stages = [arguments.split(" AS ")[1] for arguments in of("FROM") if " AS " in arguments]
    makefile = (ROOT / "Makefile").read_text()
    (uv_version,) = re.findall(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    for arguments in of("COPY"):
        if arguments.startswith("--from="):
            source = arguments.split()[0].removeprefix("--from=")
            assert source in stages or source == f"ghcr.io/astral-sh/uv:{uv_version}", source


def test_dependencies_come_from_the_lock_without_the_dev_group() -> None:
    syncs = [arguments for arguments in of("RUN") if arguments.startswith("uv sync")]
    assert len(syncs) == 2
    for arguments in syncs:
        assert "--frozen" in arguments.split()
        assert "--no-dev" in arguments.split()
    assert "--no-editable" in syncs[-1].split()


def test_it_runs_the_controller_as_the_deployment_expects() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (entrypoint,) = of("ENTRYPOINT")
    assert json.loads(entrypoint) == ["rollwise"]
    assert "rollwise" in pyproject["project"]["scripts"]
    (command,) = of("CMD")
    assert tuple(json.loads(command)) == install.CONTROLLER_COMMAND
    assert install.controller_args()[: len(install.CONTROLLER_COMMAND)] == list(
        install.CONTROLLER_COMMAND
    )
    (exposed,) = of("EXPOSE")
    assert {int(port) for port in exposed.split()} == {install.METRICS_PORT, install.HEALTHZ_PORT}


def test_it_runs_as_a_numeric_non_root_user() -> None:
    (user,) = of("USER")
    uid, _, gid = user.partition(":")
    assert int(uid) > 0
    assert int(gid) > 0
