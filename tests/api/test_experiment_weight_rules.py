"""An experiment template's weight needs a router, and one that can carry it: Argo's messages."""

from __future__ import annotations

import pytest

from rollwise.api.lint import lint_text

ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: shop
spec:
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
      containers:
      - name: shop
        image: argoproj/rollouts-demo:blue
  strategy:
    canary:
{routing}      steps:
      - experiment:
          templates:
          - name: canary
            specRef: canary
            weight: 20
"""


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ("", "Experiment template weight cannot be set unless TrafficRouting is enabled"),
        (
            "      canaryService: c\n      stableService: s\n"
            "      trafficRouting:\n        nginx: {stableIngress: shop}\n",
            "Experiment template weight is only available for TrafficRouting with SMI, ALB,"
            " and Istio at this time",
        ),
        ("      canaryService: c\n      stableService: s\n      trafficRouting: {smi: {}}\n", None),
    ],
)
def test_experiment_weight_needs_a_router_that_carries_it(
    routing: str, message: str | None
) -> None:
    problems = [p for p in lint_text(ROLLOUT.format(routing=routing), file="r.yaml") if p.is_error]
    weight_problems = [p for p in problems if p.path.endswith("weight")]
    if message is None:
        assert weight_problems == []
    else:
        assert [p.line for p in weight_problems] == [22 + routing.count("\n")]
        assert message in weight_problems[0].message
