"""Metric and template rules (Argo's ValidateMetric and more), checked before any run exists.

Each bad manifest gives one problem at the line marked `# <-` (see conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from textwrap import dedent, indent

import pytest

from rollwise.api.lint import lint_text
from rollwise.api.manifests import Problem

ExpectProblem = Callable[..., Problem]

HEAD = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: checks
spec:
"""


def template(spec: str) -> str:
    return HEAD + indent(dedent(spec), "  ")


def metric(body: str) -> str:
    """A template with one metric named `errors`; `body` is the rest of the metric."""
    return template("metrics:\n- name: errors\n" + indent(dedent(body), "  "))


PROMETHEUS = "provider:\n  prometheus: {query: up}\n"

CASES = [
    pytest.param(
        template("metrics:\n- name: errors  # <-\n  interval: 1m\n"),
        "spec.metrics[0].provider",
        "metric 'errors' has no provider; expected one of prometheus, web, job",
        id="no provider",
    ),
    pytest.param(
        metric("provider:  # <-\n  prometheus: {query: up}\n  web: {url: 'http://x/'}\n"),
        "spec.metrics[0].provider",
        "metric 'errors' names 2 providers (prometheus, web); a metric takes exactly one",
        id="two providers",
    ),
    pytest.param(
        metric("provider:\n  promql: {query: up}  # <-\n"),
        "spec.metrics[0].provider.promql",
        "unknown provider 'promql'; expected one of prometheus",
        id="unknown provider",
    ),
    pytest.param(
        metric("provider:\n  prometheus:  # <-\n    address: http://prometheus:9090\n"),
        "spec.metrics[0].provider.prometheus",
        "provider prometheus needs a query",
        id="prometheus without a query",
    ),
    pytest.param(
        metric("provider:\n  plugin:  # <-\n    a/b: {}\n    c/d: {}\n"),
        "spec.metrics[0].provider.plugin",
        "plugin names 2 plugins; it takes exactly one",
        id="plugin with two entries",
    ),
    pytest.param(
        metric("count: 5  # <-\n" + PROMETHEUS),
        "spec.metrics[0].count",
        "count 5 needs an interval between measurements",
        id="count without interval",
    ),
    pytest.param(
        metric("interval: 1m\ncount: 2  # <-\nfailureLimit: 3\n" + PROMETHEUS),
        "spec.metrics[0].count",
        "count 2 is less than failureLimit + consecutiveSuccessLimit (3 + 0)",
        id="count below failureLimit",
    ),
    pytest.param(
        metric(
            "interval: 1m\ncount: 2  # <-\ninconclusiveLimit: 4\nfailureLimit: 1\n" + PROMETHEUS
        ),
        "spec.metrics[0].count",
        "count 2 is less than inconclusiveLimit 4",
        id="count below inconclusiveLimit",
    ),
    pytest.param(
        metric("failureLimit: -2  # <-\n" + PROMETHEUS),
        "spec.metrics[0].failureLimit",
        "failureLimit -2 is negative; expected 0 or more (or -1 for no limit)",
        id="negative failureLimit",
    ),
    pytest.param(
        metric("consecutiveErrorLimit: '-1'  # <-\n" + PROMETHEUS),
        "spec.metrics[0].consecutiveErrorLimit",
        "consecutiveErrorLimit -1 is negative; expected 0 or more",
        id="negative limit written as a string",
    ),
    pytest.param(
        metric("failureLimit: -1  # <-\n" + PROMETHEUS),
        "spec.metrics[0].failureLimit",
        "failureLimit -1 turns the failure check off and needs consecutiveSuccessLimit above 0",
        id="failureLimit -1 alone",
    ),
    pytest.param(
        metric("interval: 5 minutes  # <-\n" + PROMETHEUS),
        "spec.metrics[0].interval",
        "invalid duration '5 minutes'",
        id="unparsable interval",
    ),
    pytest.param(
        metric("initialDelay: soon  # <-\n" + PROMETHEUS),
        "spec.metrics[0].initialDelay",
        "invalid duration 'soon'",
        id="unparsable initialDelay",
    ),
    pytest.param(
        metric("interval: 60  # <-\n" + PROMETHEUS),
        "spec.metrics[0].interval",
        "expected a string, got the number 60",
        id="interval of the wrong type",
    ),
    pytest.param(
        template(
            "metrics:\n- name: errors\n"
            + indent(PROMETHEUS, "  ")
            + "- name: errors  # <-\n"
            + indent(PROMETHEUS, "  ")
        ),
        "spec.metrics[1].name",
        "metric name 'errors' is also used by metrics[0]; names must be unique",
        id="duplicate metric names",
    ),
    pytest.param(
        template(
            "args: [{name: service}]\nmetrics:\n- name: errors  # <-\n"
            "  provider:\n    prometheus: {query: 'up{job=\"{{args.servce}}\"}'}\n"
        ),
        "spec.metrics[0]",
        "metric 'errors' uses {{args.servce}}, which is not one of the declared args (service)",
        id="placeholder of an undeclared arg",
    ),
    pytest.param(
        template(
            "metrics:\n- name: errors  # <-\n"
            "  provider:\n    web: {url: 'http://x/{{ templates.canary.podTemplateHash }}'}\n"
        ),
        "spec.metrics[0]",
        "metric 'errors' uses {{templates.canary.podTemplateHash}}; only {{args.NAME}}",
        id="placeholder that is not an arg",
    ),
    pytest.param(
        template(
            "dryRun:\n- metricName: '*'  # <-\nmetrics:\n- name: errors\n"
            + indent(PROMETHEUS, "  ")
        ),
        "spec.dryRun[0].metricName",
        "'*' is not a valid regular expression",
        id="dryRun star is not a regex",
    ),
    pytest.param(
        template(
            "dryRun:\n- metricName: latency  # <-\nmetrics:\n- name: errors\n"
            + indent(PROMETHEUS, "  ")
        ),
        "spec.dryRun[0].metricName",
        "'latency' matches no metric (errors); Argo Rollouts fails the run",
        id="dryRun matches nothing",
    ),
    pytest.param(
        template("args: []\nmetrics: []  # <-\n"),
        "spec.metrics",
        "a template needs at least one metric",
        id="no metrics",
    ),
    pytest.param(
        template(
            "args:\n- name: token  # <-\n  value: abc\n  valueFrom:\n"
            "    secretKeyRef: {name: s, key: k}\n"
            "metrics:\n- name: errors\n" + indent(PROMETHEUS, "  ")
        ),
        "spec.args[0]",
        "arg 'token' has both value and valueFrom; give one",
        id="arg with value and valueFrom",
    ),
    pytest.param(
        template(
            "templates:\n- templateName: base  # <-\nmetrics:\n- name: errors\n"
            + indent(PROMETHEUS, "  ")
        ),
        "spec.templates[0].templateName",
        "AnalysisTemplate 'base' not found",
        id="nested template missing",
    ),
    pytest.param(
        """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: once
spec:
  args:
  - name: service  # <-
  metrics:
  - name: errors
    provider:
      prometheus: {query: 'up{job="{{args.service}}"}'}
""",
        "spec.args[0]",
        "args.service was not resolved: give it a value or valueFrom",
        id="run with an unresolved arg",
    ),
    pytest.param(
        """\
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: global
spec:
  metrics:
  - name: errors  # <-
    interval: 1m
""",
        "spec.metrics[0].provider",
        "metric 'errors' has no provider",
        id="cluster template metric without provider",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment"), CASES)
def test_a_bad_metric_is_reported_at_its_field(
    expect_problem: ExpectProblem, text: str, path: str, fragment: str
) -> None:
    expect_problem(text, path, fragment)


def test_junk_in_a_number_field_is_a_warning(expect_problem: ExpectProblem) -> None:
    text = metric("interval: 1m\ncount: three  # <-\n" + PROMETHEUS)
    expect_problem(
        text,
        "spec.metrics[0].count",
        "'three' is neither a number nor an {{args.NAME}} placeholder; Argo Rollouts reads it as 0",
        severity="warning",
    )


def test_templated_numbers_are_checked_once_args_are_known() -> None:
    text = template(
        "args: [{name: n}]\nmetrics:\n- name: errors\n  count: '{{args.n}}'\n"
        "  failureLimit: 3\n" + indent(PROMETHEUS, "  ")
    )
    assert lint_text(text) == []


def test_metric_names_must_be_unique_across_merged_templates() -> None:
    text = (
        template("metrics:\n- name: errors\n" + indent(PROMETHEUS, "  "))
        + "---\n"
        + template("metrics:\n- name: errors\n" + indent(PROMETHEUS, "  ")).replace(
            "name: checks", "name: more"
        )
        + """\
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: shop, image: shop:v1}]}
  strategy:
    canary:
      steps:
      - analysis:
          templates: [{templateName: checks}, {templateName: more}]
"""
    )
    problems = lint_text(text, file="m.yaml")
    assert [p.format() for p in problems] == [
        "m.yaml:33:11: spec.strategy.canary.steps[0].analysis.templates: metric 'errors' is in"
        " both checks and more; metric names must be unique across an analysis"
    ]


def test_args_of_nested_templates_must_be_supplied() -> None:
    text = (
        template("args: [{name: service}]\nmetrics:\n- name: errors\n" + indent(PROMETHEUS, "  "))
        + "---\n"
        + template("templates: [{templateName: checks}]\n").replace("name: checks", "name: all")
        + """\
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: shop, image: shop:v1}]}
  strategy:
    blueGreen:
      activeService: shop
      postPromotionAnalysis:
        templates: [{templateName: all}]
"""
    )
    messages = [p.message for p in lint_text(text)]
    assert messages == [
        "spec.strategy.blueGreen.postPromotionAnalysis.args: args.service was not resolved:"
        " add it to the postPromotionAnalysis's args"
    ]
