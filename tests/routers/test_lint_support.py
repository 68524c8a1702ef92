"""`rollwise lint` accepts Rollouts whose routers Kubernetes mode does not drive yet, and warns."""

from __future__ import annotations

from textwrap import dedent

import pytest

from rollwise.api.lint import lint_text

ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: myapp
spec:
  replicas: 2
  selector:
    matchLabels: {app: myapp}
  template:
    metadata:
      labels: {app: myapp}
    spec:
      containers:
      - name: myapp
        image: myapp:v1
  strategy:
    canary:
      canaryService: myapp-canary
      stableService: myapp-stable
      trafficRouting:
%s      steps:
      - setWeight: 20
      - pause: {}
"""


def rollout_with(routing: str) -> str:
    """The Rollout with `routing` (YAML, from column 0) under trafficRouting (line 21 on)."""
    return ROLLOUT % "".join(f"        {line}\n" for line in routing.splitlines())


@pytest.mark.parametrize(
    ("routing", "key", "line"),
    [
        ("alb:\n  ingress: myapp\n  servicePort: 80\n", "alb", 21),
        ("ambassador:\n  mappings: [myapp]\n", "ambassador", 21),
        ("apisix:\n  route: {name: myapp}\n", "apisix", 21),
        ("appMesh:\n  virtualService: {name: myapp}\n", "appMesh", 21),
        (
            "plugins:\n  argoproj-labs/openshift: {routes: [myapp]}\n",
            "plugins.argoproj-labs/openshift",
            22,
        ),
    ],
    ids=["alb", "ambassador", "apisix", "appMesh", "other-plugin"],
)
def test_unsupported_routers_lint_clean_with_a_warning(routing: str, key: str, line: int) -> None:
    problems = lint_text(rollout_with(routing), file="rollout.yaml")
    assert [p for p in problems if p.is_error] == [], [p.format() for p in problems]
    warnings = [p for p in problems if "Kubernetes mode" in p.message]
    assert [(p.severity, p.line) for p in warnings] == [("warning", line)]
    assert (
        f"traffic router {key!r} is not supported by rollwise in Kubernetes mode yet (supported"
        " there: istio, nginx, traefik, smi, plugins.argoproj-labs/gatewayAPI); local mode routes"
        " it through its Traefik"
    ) in warnings[0].message


@pytest.mark.parametrize(
    "routing",
    [
        "istio:\n  virtualService: {name: myapp, routes: [primary]}\n",
        "nginx:\n  stableIngress: myapp\n",
        "smi: {}\n",
        "traefik:\n  weightedTraefikServiceName: myapp\n",
        "plugins:\n  argoproj-labs/gatewayAPI: {httpRoute: myapp, namespace: default}\n",
    ],
    ids=["istio", "nginx", "smi", "traefik", "gatewayapi"],
)
def test_supported_routers_get_no_such_warning(routing: str) -> None:
    problems = lint_text(rollout_with(routing), file="rollout.yaml")
    assert [p.format() for p in problems] == []


def test_a_virtual_service_named_name_dot_namespace_is_found_in_the_files() -> None:
    text = rollout_with("istio:\n  virtualService: {name: myapp.shop, routes: [main]}\n") + dedent(
        """\
        ---
        apiVersion: networking.istio.io/v1beta1
        kind: VirtualService
        metadata:
          name: myapp
          namespace: shop
        spec:
          http:
          - name: primary
            route:
            - destination: {host: myapp-stable}
            - destination: {host: myapp-canary}
        """
    )
    problems = lint_text(text, file="rollout.yaml")
    assert [p.message for p in problems if p.is_error] == [
        "spec.strategy.canary.trafficRouting.istio.virtualService.routes[0]: route 'main' is not"
        " in VirtualService 'myapp' (rollout.yaml:27); its http routes are: primary"
    ]
