"""Services, Experiments, names and objects defined twice (marker convention: conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rollwise.api.lint import lint_paths, lint_text
from rollwise.api.manifests import Problem

ExpectProblem = Callable[..., Problem]

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {app: shop}
"""

EXPERIMENT = """\
apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata:
  name: compare
spec:
  duration: 5m
  templates:
  - name: baseline
    selector: {matchLabels: {app: shop}}
    template:
      metadata: {labels: {app: shop}}
      spec: {containers: [{name: shop, image: shop:v1}]}
"""

CASES = [
    pytest.param(
        SERVICE.replace("spec:\n", "spec:  # <-\n"),
        "spec.ports",
        "a Service needs at least one port",
        id="service without ports",
    ),
    pytest.param(
        SERVICE + "  ports:\n  - port: 80  # <-\n  - port: 9090\n    name: metrics\n",
        "spec.ports[0]",
        "each port needs a name when a Service has several ports",
        id="unnamed port among several",
    ),
    pytest.param(
        SERVICE + "  ports:\n  - port: 70000  # <-\n",
        "spec.ports[0].port",
        "port 70000 is outside 1..65535",
        id="port out of range",
    ),
    pytest.param(
        SERVICE + "  ports:\n  - port: 80\n    protocol: HTTP  # <-\n",
        "spec.ports[0].protocol",
        "protocol 'HTTP' is not one of TCP, UDP, SCTP",
        id="unknown protocol",
    ),
    pytest.param(
        SERVICE.replace("name: shop", "name: Shop_1  # <-") + "  ports: [{port: 80}]\n",
        "metadata.name",
        "'Shop_1' is not a valid Service name",
        id="invalid service name",
    ),
    pytest.param(
        EXPERIMENT.replace("  duration: 5m\n", "  duration: five  # <-\n"),
        "spec.duration",
        "invalid duration 'five'",
        id="experiment duration",
    ),
    pytest.param(
        EXPERIMENT.replace("    selector: {matchLabels: {app: shop}}\n", "").replace(
            "  - name: baseline", "  - name: baseline  # <-"
        ),
        "spec.templates[0].selector",
        "selector is required",
        id="experiment template without selector",
    ),
    pytest.param(
        EXPERIMENT + "  analyses:\n  - name: check\n    templateName: nowhere  # <-\n",
        "spec.analyses[0].templateName",
        "AnalysisTemplate 'nowhere' not found",
        id="experiment analysis template missing",
    ),
    pytest.param(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:  # <-\n"
        "  labels: {a: b}\nspec:\n  metrics:\n  - name: m\n    provider: {web: {url: 'http://x/'}}\n",
        "metadata.name",
        "a name is required",
        id="no name",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment"), CASES)
def test_a_bad_resource_is_reported_at_its_field(
    expect_problem: ExpectProblem, text: str, path: str, fragment: str
) -> None:
    expect_problem(text, path, fragment)


def test_external_name_services_need_no_ports() -> None:
    text = SERVICE.replace("  selector: {app: shop}\n", "  type: ExternalName\n")
    assert lint_text(text) == []


def test_an_experiment_may_use_generate_name() -> None:
    text = EXPERIMENT.replace("  name: compare\n", "  generateName: compare-\n")
    assert lint_text(text) == []


def test_an_object_defined_twice_points_at_both(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    second = tmp_path / "b.yaml"
    first.write_text(SERVICE + "  ports: [{port: 80}]\n")
    second.write_text("# again\n" + SERVICE + "  ports: [{port: 8080}]\n")
    problems = lint_paths([str(first), str(second)])
    assert [p.format() for p in problems] == [
        f"{second}:5:3: metadata.name: Service 'shop' is also defined at {first}:4;"
        " applying both would keep only the last"
    ]


def test_problems_come_sorted_by_file_line_and_column(tmp_path: Path) -> None:
    late = tmp_path / "z.yaml"
    early = tmp_path / "a.yaml"
    late.write_text(SERVICE)
    early.write_text(
        SERVICE.replace("shop", "front")
        + "  ports:\n  - port: 0\n    name: a\n  - port: 99999\n    name: b\n"
    )
    problems = lint_paths([str(late), str(early)])
    assert [(Path(p.file).name, p.line, p.column) for p in problems] == [
        ("a.yaml", 8, 5),
        ("a.yaml", 10, 5),
        ("z.yaml", 5, 1),
    ]
