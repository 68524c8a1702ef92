"""The image table: how a container of a pod template becomes a local process.

Who uses this: `pods.PodSupervisor` resolves each pod's container into a `ProcessSpec` before it
starts the process; `rollwise lint`/`apply` can call `check_template` to report, up front, the
containers local mode cannot run.

A container runs its `command`/`args` when it has them, exactly as Kubernetes combines them
with the image's entrypoint; otherwise its image is looked up here. `<home>/images.yaml` maps
image references to programs and is laid over the built-in entries (the demo images):

```yaml
myorg/app:v1:                     # one exact reference
  command: [python, -m, myapp]
  args: [--version, v1]
  env: {LOG_LEVEL: debug}
myorg/app:*:                      # every tag of a repository; {tag} is the tag
  command: ["./run-app", "--tag", "{tag}"]
  cwd: ../myapp                   # relative to the home directory
```
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rollwise.api.errors import ManifestError, UserError

IMAGES_FILE = "images.yaml"
DEMO_IMAGES = ("argoproj/rollouts-demo", "rollwise/demo-app")

# Kubernetes' $(VAR) references in command, args and env values; $$ escapes a dollar.
_REFERENCE = re.compile(r"\$(\$|\(([A-Za-z_][A-Za-z0-9_.\-]*)\))")


@dataclass(frozen=True)
class ProcessSpec:
    """What to run for one container. `env` holds only rollwise's additions; the supervisor
    lays them over its own environment (so PATH and the virtualenv still work)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path | None = None


@dataclass(frozen=True)
class ImageEntry:
    """One row of the table: the image's entrypoint (`command`), default `args`, env, cwd."""

    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    def for_tag(self, tag: str) -> ImageEntry:
        """The entry with `{tag}` replaced by the image's tag everywhere."""

        def put(text: str) -> str:
            return text.replace("{tag}", tag)

        return ImageEntry(
            command=tuple(put(part) for part in self.command),
            args=tuple(put(part) for part in self.args),
            env={key: put(value) for key, value in self.env.items()},
            cwd=None if self.cwd is None else Path(put(str(self.cwd))),
        )


def builtin_entries() -> dict[str, ImageEntry]:
    """The images every local rollwise knows: the Argo demo app and rollwise's own, whose tag is
    the colour the app answers with."""
    demo = ImageEntry(
        command=(sys.executable, "-m", "rollwise.demo.app", "--color", "{tag}"),
        env={"PYTHONUNBUFFERED": "1"},
    )
    return {f"{repository}:*": demo for repository in DEMO_IMAGES}


class ImageTable:
    """Image references mapped to programs: the built-ins, overlaid by `<home>/images.yaml`."""

    def __init__(
        self, entries: Mapping[str, ImageEntry] | None = None, *, path: Path | None = None
    ) -> None:
        self.path = path
        self._builtin = {_normalize(key): entry for key, entry in builtin_entries().items()}
        self._entries = {_normalize(key): entry for key, entry in (entries or {}).items()}

    @classmethod
    def load(cls, home: Path) -> ImageTable:
        """The table of a home directory; a missing `images.yaml` leaves the built-ins alone."""
        path = Path(home) / IMAGES_FILE
        if not path.exists():
            return cls(path=path)
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ManifestError(f"{path}: cannot read the image table: {error}") from error
        return cls(parse_entries(document, path=path, base=path.parent), path=path)

    def lookup(self, image: str) -> ImageEntry | None:
        """The entry for an image reference, `{tag}` filled in; None when it is not known.

        An exact reference beats a `repo:*` wildcard; the file beats the built-ins.
        """
        reference = _normalize(image)
        repository, tag = _split(reference)
        for table in (self._entries, self._builtin):
            for key in (reference, f"{repository}:*"):
                entry = table.get(key)
                if entry is not None:
                    return entry.for_tag(tag)
        return None

    def resolve(
        self,
        container: Mapping[str, Any],
        *,
        port: int,
        pod_name: str,
        template_hash: str = "",
    ) -> ProcessSpec:
        """The process for a container of a pod, which listens on `port`.

        Kubernetes' rules: `command` replaces the image's entrypoint (and its default args),
        `args` replaces the default args; `$(VAR)` in them refers to the container's env.
        Raises `UserError` naming the fix when neither the container nor the table says what to
        run.
        """
        command = _strings(container.get("command"))
        args = _strings(container.get("args"))
        image = container.get("image")
        entry = self.lookup(image) if isinstance(image, str) and image else None
        if not command and entry is None:
            raise UserError(self._unknown(container))
        env: dict[str, str] = dict(entry.env) if entry is not None else {}
        for item in container.get("env") or []:
            if isinstance(item, Mapping) and "name" in item and "value" in item:
                env[str(item["name"])] = _expand(str(item["value"]), env)
        # Set last: the app must listen where the supervisor probes and routes.
        env.update(PORT=str(port), POD_NAME=pod_name, ROLLWISE_POD_TEMPLATE_HASH=template_hash)
        if command:
            argv = [*command, *args]
        else:
            assert entry is not None  # for the type checker: checked above
            argv = [*entry.command, *(args if container.get("args") is not None else entry.args)]
        argv = [_expand(part, env) for part in argv]
        cwd = None
        if entry is not None and entry.cwd is not None:
            cwd = entry.cwd
        return ProcessSpec(argv=tuple(argv), env=env, cwd=cwd)

    def check_template(self, template: Mapping[str, Any]) -> list[str]:
        """Every reason local mode cannot run this pod template, as messages; empty when fine."""
        problems: list[str] = []
        spec = template.get("spec") or {}
        containers = spec.get("containers") or []
        if not containers:
            problems.append("the pod template has no containers")
        if len(containers) > 1:
            problems.append(
                f"local mode runs one container per pod; the template has {len(containers)}"
                " (remove the sidecars or run them yourself)"
            )
        if spec.get("initContainers"):
            problems.append("local mode does not run initContainers")
        for container in containers[:1]:
            name = container.get("name", "?")
            if not _strings(container.get("command")):
                image = container.get("image")
                if not image:
                    problems.append(f"container '{name}' has neither an image nor a command")
                elif self.lookup(image) is None:
                    problems.append(f"container '{name}': {self._unknown(container)}")
            for item in container.get("env") or []:
                if isinstance(item, Mapping) and "value" not in item:
                    problems.append(
                        f"container '{name}' env {item.get('name', '?')}: only plain values"
                        " work in local mode (valueFrom is not supported); give a value"
                    )
                elif isinstance(item, Mapping) and item.get("name") in _RESERVED_ENV:
                    problems.append(
                        f"container '{name}' env {item['name']}: rollwise sets it for every"
                        " local pod; the value in the template is ignored"
                    )
        return problems

    def _unknown(self, container: Mapping[str, Any]) -> str:
        image = container.get("image")
        where = self.path if self.path is not None else IMAGES_FILE
        repository = _split(_normalize(str(image)))[0]
        return (
            f"image '{image}' is not in the image table ({where}); add it there as"
            f" `{image}: {{command: [program, arg, ...]}}` (or `{repository}:*`"
            " for every tag, with {tag} in the command), or give the container a command"
        )


_RESERVED_ENV = frozenset({"PORT", "POD_NAME", "ROLLWISE_POD_TEMPLATE_HASH"})


def parse_entries(document: Any, *, path: Path, base: Path) -> dict[str, ImageEntry]:
    """The entries of an images.yaml document; `ManifestError` listing every problem."""
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ManifestError(f"{path}: the image table must map image references to programs")
    entries: dict[str, ImageEntry] = {}
    problems: list[str] = []
    for key, value in document.items():
        where = f"{path}: {key}"
        if isinstance(value, str | list):
            value = {"command": value}
        if not isinstance(value, Mapping):
            problems.append(f"{where}: expected a mapping with command, args, env, cwd")
            continue
        unknown = set(value) - {"command", "args", "env", "cwd"}
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        command = _command(value.get("command"))
        if not command:
            problems.append(f"{where}: command must be a non-empty list of strings")
        args = value.get("args") or []
        if not isinstance(args, list):
            problems.append(f"{where}: args must be a list of strings")
            args = []
        env = value.get("env") or {}
        if not isinstance(env, Mapping):
            problems.append(f"{where}: env must map names to values")
            env = {}
        cwd = value.get("cwd")
        entries[str(key)] = ImageEntry(
            command=tuple(command),
            args=tuple(str(arg) for arg in args),
            env={str(name): str(item) for name, item in env.items()},
            cwd=None if cwd is None else base / str(cwd),
        )
    if problems:
        raise ManifestError("\n".join(problems))
    return entries


def _command(value: Any) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list):
        return [str(part) for part in value]
    return []


def _strings(value: Any) -> list[str]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [str(part) for part in value]
    return []


def _normalize(reference: str) -> str:
    """Docker Hub's implicit parts removed and a missing tag made `latest`."""
    reference = reference.strip()
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if reference.startswith(prefix):
            reference = reference.removeprefix(prefix)
            break
    reference = reference.removeprefix("library/")
    repository, tag = _split(reference)
    return f"{repository}:{tag}"


def _split(reference: str) -> tuple[str, str]:
    """(repository, tag) of a reference; a digest counts as the tag."""
    if "@" in reference:
        repository, _, digest = reference.partition("@")
        return repository, digest
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def _expand(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        return env.get(match.group(2), match.group(0))

    return _REFERENCE.sub(replace, text)
