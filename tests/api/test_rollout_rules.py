"""Each Rollout rule: a bad manifest gives one problem, at the marked line, with a clear message.

The line that should be reported carries a `# <-` marker; the expected column is where the
field's key starts on that line (after `- ` for a list item).
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
kind: Rollout
metadata:
  name: shop
  labels: {team: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
      - name: shop
        image: shop:v1
"""

TEMPLATE = """\
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 1m
    count: 3
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        query: rate(x{service="{{args.service-name}}"}[1m])
"""

ENDLESS_TEMPLATE = """\
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: endless
spec:
  metrics:
  - name: errors
    interval: 30s
    failureLimit: 2
    provider:
      web: {url: "http://checker/"}
"""

VIRTUAL_SERVICE = """\
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: shop
spec:
  http:
  - name: primary
    route:
    - destination: {host: shop-stable}
      weight: 100
    - destination: {host: shop-canary}
      weight: 0
"""


def rollout(strategy: str, *, spec: str = "", after: str = "") -> str:
    """HEAD + extra spec fields + `strategy:` + the given strategy block (+ more documents)."""
    text = HEAD + indent(dedent(spec), "  ") + "  strategy:\n" + indent(dedent(strategy), "    ")
    return text + after


CASES = [
    pytest.param(
        rollout("canary:\n  steps:\n  - setWeight: 20\n  - setWeight: 120  # <-\n"),
        "spec.strategy.canary.steps[1].setWeight",
        "weight 120 is outside 0..100",
        id="setWeight above 100",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - setWeight: -5  # <-\n"),
        "spec.strategy.canary.steps[0].setWeight",
        "weight -5 is outside 0..100",
        id="negative setWeight",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-canary
              stableService: shop-stable
              trafficRouting:
                maxTrafficWeight: 1000
                nginx: {stableIngress: shop}
              steps:
              - setWeight: 900
              - setWeight: 1200  # <-
            """
        ),
        "spec.strategy.canary.steps[1].setWeight",
        "weight 1200 is outside 0..1000",
        id="setWeight above maxTrafficWeight",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - setWieght: 20  # <-\n"),
        "spec.strategy.canary.steps[0].setWieght",
        "unknown step 'setWieght'; expected one of setWeight, pause, analysis",
        id="unknown step key",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - setWeight: 20  # <-\n    pause: {}\n"),
        "spec.strategy.canary.steps[0]",
        "a step takes exactly one action, found 2 (setWeight, pause)",
        id="two actions in one step",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - setWeight: 20\n    setWeight: 40  # <-\n"),
        "spec.strategy.canary.steps[0].setWeight",
        "duplicate key 'setWeight' (first written at line 20)",
        id="duplicate key in a step",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - {}  # <-\n"),
        "spec.strategy.canary.steps[0]",
        "empty step; expected one of setWeight",
        id="empty step",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - pause:  # <-\n"),
        "spec.strategy.canary.steps[0].pause",
        "step 'pause' has no value (write pause: {} to pause until promoted)",
        id="pause with no value",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - pause:\n      duration: 2 minutes  # <-\n"),
        "spec.strategy.canary.steps[0].pause.duration",
        "invalid duration '2 minutes'",
        id="unparsable pause",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - pause:\n      duration: -30s  # <-\n"),
        "spec.strategy.canary.steps[0].pause.duration",
        "duration '-30s' is negative",
        id="negative pause",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - pause:\n      duration: [1]  # <-\n"),
        "spec.strategy.canary.steps[0].pause.duration",
        "expected an integer or a string, got a list",
        id="pause duration of the wrong type",
    ),
    pytest.param(
        HEAD.replace("replicas: 3", "replicas: five  # <-") + "  strategy:\n    canary: {}\n",
        "spec.replicas",
        "expected an integer, got the string 'five'",
        id="replicas not a number",
    ),
    pytest.param(
        HEAD.replace("replicas: 3", "replicas: -1  # <-") + "  strategy:\n    canary: {}\n",
        "spec.replicas",
        "must be 0 or more, got -1",
        id="negative replicas",
    ),
    pytest.param(
        rollout("canary: {}\n", spec="minReadySeconds: 30\nprogressDeadlineSeconds: 20  # <-\n"),
        "spec.progressDeadlineSeconds",
        "progressDeadlineSeconds (20) must be greater than minReadySeconds (30)",
        id="deadline below minReadySeconds",
    ),
    pytest.param(
        """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: shop
spec:  # <-
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers: [{name: shop, image: shop:v1}]
  strategy:
    canary: {}
""",
        "spec.selector",
        "selector is required",
        id="no selector",
    ),
    pytest.param(
        HEAD.replace("    matchLabels: {app: shop}\n", "    {}\n").replace(
            "  selector:", "  selector:  # <-"
        )
        + "  strategy:\n    canary: {}\n",
        "spec.selector",
        "selector is empty",
        id="empty selector",
    ),
    pytest.param(
        HEAD.replace("matchLabels: {app: shop}", "matchLabels: {app: other}").replace(
            "  selector:", "  selector:  # <-"
        )
        + "  strategy:\n    canary: {}\n",
        "spec.selector",
        "selector does not match the template labels (app=shop)",
        id="selector does not select the template",
    ),
    pytest.param(
        """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: shop
spec:  # <-
  selector:
    matchLabels: {app: shop}
  strategy:
    canary: {}
""",
        "spec.template",
        "template is required",
        id="no template",
    ),
    pytest.param(
        HEAD.replace("        image: shop:v1\n", "").replace(
            "      - name: shop", "      - name: shop  # <-"
        )
        + "  strategy:\n    canary: {}\n",
        "spec.template.spec.containers[0].image",
        "container 'shop' has no image",
        id="container without image",
    ),
    pytest.param(
        HEAD.replace(
            "      containers:\n      - name: shop\n        image: shop:v1\n",
            "      containers: []  # <-\n",
        )
        + "  strategy:\n    canary: {}\n",
        "spec.template.spec.containers",
        "at least one container is required",
        id="no containers",
    ),
    pytest.param(
        HEAD + "  strategy:  # <-\n    canary: {}\n    blueGreen: {activeService: shop}\n",
        "spec.strategy",
        "canary and blueGreen are both set",
        id="two strategies",
    ),
    pytest.param(
        HEAD.replace("spec:\n  replicas", "spec:  # <-\n  replicas"),
        "spec.strategy",
        "exactly one of canary or blueGreen is required",
        id="no strategy",
    ),
    pytest.param(
        rollout(
            "canary:\n  canaryService: shop\n  stableService: shop\n".replace(
                "  canaryService: shop\n", "  canaryService: shop  # <-\n"
            )
        ),
        "spec.strategy.canary.canaryService",
        "This rollout uses the same service for the stable and canary services",
        id="same canary and stable service",
    ),
    pytest.param(
        rollout("canary:\n  maxSurge: 0\n  maxUnavailable: '0%'  # <-\n"),
        "spec.strategy.canary.maxUnavailable",
        "MaxSurge and MaxUnavailable both can not be zero",
        id="maxSurge and maxUnavailable both 0",
    ),
    pytest.param(
        rollout("canary:\n  maxSurge: lots  # <-\n"),
        "spec.strategy.canary.maxSurge",
        "expected an integer or a percentage like '25%', got 'lots'",
        id="maxSurge not a number",
    ),
    pytest.param(
        rollout("canary:\n  steps:\n  - setCanaryScale: {replicas: 2}  # <-\n"),
        "spec.strategy.canary.steps[0].setCanaryScale",
        "SetCanaryScale requires TrafficRouting to be set",
        id="setCanaryScale without routing",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-canary
              stableService: shop-stable
              trafficRouting:
                nginx: {stableIngress: shop}
              steps:
              - setCanaryScale: {weight: 20, replicas: 2}  # <-
            """
        ),
        "spec.strategy.canary.steps[0].setCanaryScale",
        "takes exactly one of weight, replicas or matchTrafficWeight",
        id="setCanaryScale with two sizes",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-canary
              stableService: shop-stable
              trafficRouting:
                nginx: {stableIngress: shop}
                managedRoutes: [{name: beta}]
              steps:
              - setHeaderRoute:  # <-
                  name: beta
                  match: [{headerName: X-Beta, headerValue: {exact: "yes"}}]
            """
        ),
        "spec.strategy.canary.steps[0].setHeaderRoute",
        "setHeaderRoute needs trafficRouting with istio, alb, apisix or plugins",
        id="setHeaderRoute with nginx",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-canary
              stableService: shop-stable
              trafficRouting:
                istio: {virtualService: {name: shop}}
                managedRoutes: [{name: beta}]
              steps:
              - setHeaderRoute:
                  name: gamma  # <-
                  match: [{headerName: X-Beta, headerValue: {exact: "yes"}}]
            """
        ),
        "spec.strategy.canary.steps[0].setHeaderRoute.name",
        "setHeaderRoute 'gamma' is not in trafficRouting.managedRoutes (beta)",
        id="header route not managed",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-canary
              stableService: shop-stable
              trafficRouting:
                istio: {virtualService: {name: shop}}
                managedRoutes: [{name: beta}]
              steps:
              - setHeaderRoute:
                  name: beta
                  match:
                  - headerName: X-Beta
                    headerValue: {exact: "yes", prefix: "y"}  # <-
            """
        ),
        "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue",
        "takes exactly one of exact, prefix or regex",
        id="header match with two kinds",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-canary
              stableService: shop-stable
              trafficRouting:
                nginx: {stableIngress: shop}
                managedRoutes: [{name: mirror}]
              steps:
              - setMirrorRoute:  # <-
                  name: mirror
                  match: [{method: {exact: GET}}]
            """
        ),
        "spec.strategy.canary.steps[0].setMirrorRoute",
        "setMirrorRoute needs trafficRouting with istio or plugins",
        id="setMirrorRoute with nginx",
    ),
    pytest.param(
        rollout("canary:\n  scaleDownDelaySeconds: 30  # <-\n"),
        "spec.strategy.canary.scaleDownDelaySeconds",
        "Canary scaleDownDelaySeconds can only be used with traffic routing",
        id="scaleDownDelaySeconds without routing",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-canary
              stableService: shop-stable
              trafficRouting:
                nginx: {stableIngress: shop}
              dynamicStableScale: true
              scaleDownDelaySeconds: 30  # <-
            """
        ),
        "spec.strategy.canary.scaleDownDelaySeconds",
        "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds",
        id="scaleDownDelaySeconds with dynamicStableScale",
    ),
    pytest.param(
        rollout("canary:\n  dynamicStableScale: true  # <-\n"),
        "spec.strategy.canary.dynamicStableScale",
        "Canary dynamicStableScale can only be used with traffic routing",
        id="dynamicStableScale without routing",
    ),
    pytest.param(
        rollout(
            "canary:\n  scaleDownDelayRevisionLimit: 4  # <-\n", spec="revisionHistoryLimit: 2\n"
        ),
        "spec.strategy.canary.scaleDownDelayRevisionLimit",
        "scaleDownDelayRevisionLimit (4) must not exceed revisionHistoryLimit (2)",
        id="revision limit above history",
    ),
    pytest.param(
        rollout(
            """\
            canary:  # <-
              canaryService: shop-canary
              trafficRouting:
                istio: {virtualService: {name: shop}}
            """
        ),
        "spec.strategy.canary.stableService",
        "stableService is required with trafficRouting.istio",
        id="istio without stableService",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-canary
              stableService: shop-stable
              trafficRouting:
                istio: {virtualService: {name: shop}}
                maxTrafficWeight: 1000  # <-
            """
        ),
        "spec.strategy.canary.trafficRouting.maxTrafficWeight",
        "maxTrafficWeight is only supported with nginx or plugins",
        id="maxTrafficWeight with istio",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              trafficRouting:
                gatewayAPI: {httpRoute: shop}  # <-
            """
        ),
        "spec.strategy.canary.trafficRouting.gatewayAPI",
        "unknown traffic router 'gatewayAPI'",
        id="unknown router",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-canary
              stableService: shop-stable
              trafficRouting:
                istio:
                  virtualService:
                    name: shop
                    routes:
                    - primary
                    - secondary  # <-
            """,
            after=VIRTUAL_SERVICE,
        ),
        "spec.strategy.canary.trafficRouting.istio.virtualService.routes[1]",
        "route 'secondary' is not in VirtualService 'shop' (manifest.yaml:29); its http routes"
        " are: primary",
        id="istio route missing from the VirtualService",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              canaryService: shop-preview
              stableService: shop-stable
              trafficRouting:
                istio:
                  virtualService:  # <-
                    name: shop
            """,
            after=VIRTUAL_SERVICE,
        ),
        "spec.strategy.canary.trafficRouting.istio.virtualService",
        "route 'primary' of VirtualService 'shop' has no destination for canaryService"
        " 'shop-preview' (its destination hosts: shop-stable, shop-canary)",
        id="VirtualService does not reach the canary service",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              antiAffinity:  # <-
                preferredDuringSchedulingIgnoredDuringExecution: {weight: 50}
                requiredDuringSchedulingIgnoredDuringExecution: {}
            """
        ),
        "spec.strategy.canary.antiAffinity",
        "antiAffinity takes exactly one of",
        id="two anti-affinity rules",
    ),
    pytest.param(
        rollout("blueGreen:\n  activeService: shop\n  previewService: shop  # <-\n"),
        "spec.strategy.blueGreen.previewService",
        "previewService and activeService are both 'shop'",
        id="same active and preview service",
    ),
    pytest.param(
        rollout("blueGreen:  # <-\n  previewService: shop-preview\n"),
        "spec.strategy.blueGreen.activeService",
        "required field is missing",
        id="blueGreen without activeService",
    ),
    pytest.param(
        HEAD.replace(
            "spec:\n  replicas: 3\n",
            "spec:\n  replicas: 3\n  workloadRef: {kind: Deployment, name: shop}\n",
        ).replace("  template:\n", "  template:  # <-\n")
        + "  strategy:\n    canary: {}\n",
        "spec.template",
        "template must be empty when workloadRef is set",
        id="workloadRef and template",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              steps:
              - analysis:
                  templates:
                  - templateName: missing  # <-
            """,
            after=TEMPLATE,
        ),
        "spec.strategy.canary.steps[0].analysis.templates[0].templateName",
        "AnalysisTemplate 'missing' not found: looked in manifest.yaml (namespace default);"
        " no known AnalysisTemplates were given",
        id="missing template",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              steps:
              - analysis:
                  templates: [{templateName: success-rate}]
                  args:  # <-
                  - name: service
                    value: shop
            """,
            after=TEMPLATE,
        ),
        "spec.strategy.canary.steps[0].analysis.args",
        "args.service-name was not resolved: add it to the step's args",
        id="unresolved template arg",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              steps:
              - analysis:  # <-
                  templates: [{templateName: success-rate}]
            """,
            after=TEMPLATE,
        ),
        "spec.strategy.canary.steps[0].analysis.args",
        "args.service-name was not resolved: add it to the step's args",
        id="unresolved arg with no args at all",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              steps:
              - analysis:
                  templates: [{templateName: success-rate}]
                  args:
                  - name: service-name
                    valueFrom:
                      fieldRef:
                        fieldPath: metadata.labels['app']  # <-
            """,
            after=TEMPLATE,
        ),
        "spec.strategy.canary.steps[0].analysis.args[0].valueFrom.fieldRef.fieldPath",
        "fieldRef metadata.labels['app'] does not resolve: the Rollout has no label 'app'",
        id="fieldRef to a missing label",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              steps:
              - analysis:
                  templates: [{templateName: success-rate}]
                  args:
                  - name: service-name
                    valueFrom:
                      secretKeyRef: {name: s, key: k}  # <-
            """,
            after=TEMPLATE,
        ),
        "spec.strategy.canary.steps[0].analysis.args[0].valueFrom.secretKeyRef",
        "secretKeyRef is only read in an AnalysisTemplate's args",
        id="secretKeyRef on the rollout side",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment"), CASES)
def test_a_bad_rollout_is_reported_at_its_field(
    expect_problem: ExpectProblem, text: str, path: str, fragment: str
) -> None:
    expect_problem(text, path, fragment)


WARNING_CASES = [
    pytest.param(
        rollout(
            """\
            canary:
              steps:
              - setWeight: 20
              - analysis:  # <-
                  templates: [{templateName: endless}]
            """,
            after=ENDLESS_TEMPLATE,
        ),
        "spec.strategy.canary.steps[1].analysis",
        "metric 'errors' has an interval and no count, so this step analysis never completes",
        id="step analysis that never completes",
    ),
    pytest.param(
        rollout(
            """\
            blueGreen:
              activeService: shop
              prePromotionAnalysis:  # <-
                templates: [{templateName: endless}]
            """,
            after=ENDLESS_TEMPLATE,
        ),
        "spec.strategy.blueGreen.prePromotionAnalysis",
        "metric 'errors' has an interval and no count, so this prePromotionAnalysis never"
        " completes",
        id="pre-promotion analysis that never completes",
    ),
    pytest.param(
        rollout(
            """\
            canary:
              steps:
              - analysis:
                  templates: [{templateName: success-rate}]
                  args:
                  - name: service-name
                    value: shop
                  - name: servce  # <-
                    value: typo
            """,
            after=TEMPLATE,
        ),
        "spec.strategy.canary.steps[0].analysis.args[1].name",
        "arg 'servce' is not declared by success-rate; Argo Rollouts ignores it",
        id="arg the template does not declare",
    ),
    pytest.param(
        rollout("canary:\n  stepz:  # <-\n  - setWeight: 20\n"),
        "spec.strategy.canary.stepz",
        "unknown field 'stepz' (did you mean 'steps'?)",
        id="misspelt field",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment"), WARNING_CASES)
def test_suspicious_but_valid_yaml_is_a_warning(
    expect_problem: ExpectProblem, text: str, path: str, fragment: str
) -> None:
    expect_problem(text, path, fragment, severity="warning")


def test_background_analysis_may_run_until_the_rollout_ends() -> None:
    text = rollout(
        "canary:\n  analysis:\n    templates: [{templateName: endless}]\n", after=ENDLESS_TEMPLATE
    )
    assert lint_text(text) == []


def test_a_template_known_elsewhere_is_not_missing() -> None:
    text = rollout(
        """\
        canary:
          steps:
          - analysis:
              templates: [{templateName: shared}]
          - analysis:
              templates: [{templateName: global, clusterScope: true}]
        """
    )
    text = text.replace("  name: shop\n", "  name: shop\n  namespace: shop\n", 1)
    assert (
        lint_text(text, known_templates=["shop/shared"], known_cluster_templates=["global"]) == []
    )
    assert lint_text(text, known_templates=["shared"], known_cluster_templates=["global"]) == []
    missing = lint_text(text, known_templates=["other/shared"])
    assert [p.path for p in missing] == [
        "spec.strategy.canary.steps[0].analysis.templates[0].templateName",
        "spec.strategy.canary.steps[1].analysis.templates[0].templateName",
    ]
    assert "among the 1 known AnalysisTemplates" in missing[0].message
    assert "ClusterAnalysisTemplate 'global' not found" in missing[1].message


def test_services_not_in_the_files_are_not_errors() -> None:
    text = rollout(
        """\
        canary:
          canaryService: shop-canary
          stableService: shop-stable
          trafficRouting:
            istio: {virtualService: {name: shop, routes: [primary]}}
        """
    )
    assert lint_text(text) == []


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = rollout(
        """\
        canary:
          steps:
          - setWeight: 120
          - pause: {duration: soon}
          - setWieght: 5
        """
    )
    text = text.replace("replicas: 3", "replicas: many")
    text = text.replace("matchLabels: {app: shop}", "matchLabels: {app: other}")
    paths = [p.path for p in lint_text(text)]
    assert paths == [
        "spec.replicas",
        "spec.selector",
        "spec.strategy.canary.steps[0].setWeight",
        "spec.strategy.canary.steps[1].pause.duration",
        "spec.strategy.canary.steps[2].setWieght",
    ]


def test_a_field_of_the_wrong_type_is_reported_once() -> None:
    text = HEAD.replace("    matchLabels: {app: shop}\n", "    matchLabels: [app, shop]\n")
    text += "  strategy:\n    canary: {}\n"
    problems = lint_text(text)
    assert [p.message for p in problems] == [
        "spec.selector.matchLabels: expected a mapping, got a list"
    ]
