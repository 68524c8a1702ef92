"""The image table turns containers into processes: built-ins, the home's file, the fix on error."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from rollwise.api.errors import ManifestError, UserError
from rollwise.platforms.local.images import ImageTable

RESOLVE = {"port": 8123, "pod_name": "web-abc-x2b4d", "template_hash": "abc"}


def write_table(home: Path, text: str) -> ImageTable:
    home.mkdir(parents=True, exist_ok=True)
    (home / "images.yaml").write_text(text, encoding="utf-8")
    return ImageTable.load(home)


@pytest.mark.parametrize(
    ("image", "color"),
    [
        ("argoproj/rollouts-demo:blue", "blue"),
        ("argoproj/rollouts-demo:bad-red", "bad-red"),
        ("docker.io/argoproj/rollouts-demo:yellow", "yellow"),
        ("rollwise/demo-app:green", "green"),
        ("rollwise/demo-app", "latest"),
    ],
)
def test_demo_images_are_built_in(tmp_path: Path, image: str, color: str) -> None:
    table = ImageTable.load(tmp_path)
    spec = table.resolve({"name": "app", "image": image}, **RESOLVE)
    assert spec.argv == (sys.executable, "-m", "rollwise.demo.app", "--color", color)
    assert spec.env["PORT"] == "8123"
    assert spec.env["POD_NAME"] == "web-abc-x2b4d"
    assert spec.env["ROLLWISE_POD_TEMPLATE_HASH"] == "abc"


def test_the_file_adds_images_and_wildcards_fill_the_tag(tmp_path: Path) -> None:
    table = write_table(
        tmp_path,
        """
myapp:v1.0:
  command: [python3, app.py]
  args: [--mode, exact]
  env: {LEVEL: 3}
myapp:*:
  command: ["./run", "--version", "{tag}"]
  env: {VERSION: "{tag}"}
  cwd: apps/{tag}
short: python3 -m short
""",
    )
    exact = table.resolve({"name": "c", "image": "myapp:v1.0"}, **RESOLVE)
    assert exact.argv == ("python3", "app.py", "--mode", "exact")
    assert exact.env["LEVEL"] == "3"
    wild = table.resolve({"name": "c", "image": "myapp:v2.0"}, **RESOLVE)
    assert wild.argv == ("./run", "--version", "v2.0")
    assert wild.env["VERSION"] == "v2.0"
    assert wild.cwd == tmp_path / "apps" / "v2.0"
    assert table.resolve({"image": "short"}, **RESOLVE).argv == ("python3", "-m", "short")


def test_the_file_overrides_a_builtin(tmp_path: Path) -> None:
    table = write_table(tmp_path, "argoproj/rollouts-demo:blue: {command: [my-blue]}\n")
    assert table.resolve({"image": "argoproj/rollouts-demo:blue"}, **RESOLVE).argv == ("my-blue",)
    other = table.resolve({"image": "argoproj/rollouts-demo:red"}, **RESOLVE)
    assert other.argv[-2:] == ("--color", "red")


def test_container_command_and_args_follow_kubernetes(tmp_path: Path) -> None:
    table = write_table(tmp_path, "app:1: {command: [entry], args: [default]}\n")

    def argv(**container: Any) -> tuple[str, ...]:
        return table.resolve({"name": "c", **container}, **RESOLVE).argv

    assert argv(image="app:1") == ("entry", "default")
    assert argv(image="app:1", args=["mine"]) == ("entry", "mine")
    assert argv(image="app:1", command=["own"]) == ("own",)
    assert argv(image="app:1", command=["own"], args=["x"]) == ("own", "x")
    assert argv(image="unknown:1", command=["own", "$(PORT)"]) == ("own", "8123")


def test_container_env_and_references(tmp_path: Path) -> None:
    table = ImageTable.load(tmp_path)
    spec = table.resolve(
        {
            "command": ["sh", "-c", "echo $(GREETING) $$(PORT) $(MISSING)"],
            "env": [
                {"name": "WHO", "value": "world"},
                {"name": "GREETING", "value": "hello $(WHO)"},
                {"name": "PORT", "value": "1"},
            ],
        },
        **RESOLVE,
    )
    assert spec.argv[-1] == "echo hello world $(PORT) $(MISSING)"
    assert spec.env["PORT"] == "8123", "the supervisor's port wins"


def test_an_unknown_image_says_how_to_fix_it(tmp_path: Path) -> None:
    table = ImageTable.load(tmp_path)
    with pytest.raises(UserError) as raised:
        table.resolve({"name": "c", "image": "myorg/app:v3"}, **RESOLVE)
    message = str(raised.value)
    assert "image 'myorg/app:v3' is not in the image table" in message
    assert str(tmp_path / "images.yaml") in message
    assert "myorg/app:*" in message
    assert "give the container a command" in message


def test_check_template_lists_every_problem(tmp_path: Path) -> None:
    table = ImageTable.load(tmp_path)
    good = {"spec": {"containers": [{"name": "a", "image": "argoproj/rollouts-demo:blue"}]}}
    assert table.check_template(good) == []
    bad = {
        "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [
                {
                    "name": "a",
                    "image": "myapp:v1.0",
                    "env": [{"name": "X", "valueFrom": {"fieldRef": {}}}],
                },
                {"name": "sidecar", "image": "envoy"},
            ],
        }
    }
    problems = table.check_template(bad)
    assert len(problems) == 4
    assert any("one container per pod" in p for p in problems)
    assert any("initContainers" in p for p in problems)
    assert any("'myapp:v1.0' is not in the image table" in p for p in problems)
    assert any("valueFrom" in p for p in problems)
    assert table.check_template({"spec": {"containers": [{"name": "n"}]}}) == [
        "container 'n' has neither an image nor a command"
    ]


def test_a_broken_table_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as raised:
        write_table(tmp_path, "a:1: {args: [x], colour: red}\nb:1: 3\n")
    message = str(raised.value)
    assert "a:1: command must be a non-empty list" in message
    assert "unknown field(s) colour" in message
    assert "b:1: expected a mapping" in message
    with pytest.raises(ManifestError, match="cannot read"):
        write_table(tmp_path, "a: [unclosed\n")
