"""rollwise's on-terminate policy: what a metric ends as when its run terminates before the
metric had a single Successful measurement.

Where this sits: read by `rollwise.core.analysis.runs` from the AnalysisRun's annotations
(with the spec, so a bad value ends the run as Error "Analysis spec invalid: ..."), and handed
as a phase to `rollwise.core.analysis.phases.assess_metric` and `assessment_reason`.

Argo Rollouts ends a terminating run's metrics Successful unless they broke a limit (reference
2.8), whatever they measured: a metric that only ever got Error measurements (the provider was
down) or none at all (still in its `initialDelay`) passes, and a step analysis terminated by
hand lets the release through unmeasured. That stays the default. The opt-in lives in
annotations so the YAML stays valid for Argo, which ignores them:

    metadata:
      annotations:
        rollwise.io/on-terminate: inconclusive               # every metric of the run
        rollwise.io/on-terminate.error-rate: successful      # one metric (wins)

Values: `successful` (Argo's) and `inconclusive`: a metric with `successful == 0` that ends
because the run is terminating (by `spec.terminate` or by another metric's fail-fast) ends
Inconclusive, so a rollout waiting on the run pauses for a person. A metric with at least one
Successful measurement and no broken limit still ends Successful, and dry-run metrics keep
Argo's rule (they never change the run's phase anyway). There is no `failed`: the controller
itself terminates runs it no longer needs (a step skipped by `promote`, an aborted or replaced
revision), and "not measured" is a lack of evidence, not evidence of a bad version; aborting on
it is a decision for a person, which is what Inconclusive asks for. Put the annotations on the
AnalysisTemplate/ClusterAnalysisTemplate (copied to the run by `merge_templates`) or on the
AnalysisRun itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal, get_args

from rollwise.core.analysis.annotations import is_per_metric_annotation, per_metric_values
from rollwise.core.analysis.phases import INCONCLUSIVE, SUCCESSFUL

OnTerminate = Literal["successful", "inconclusive"]

ON_TERMINATE_ANNOTATION: Final = "rollwise.io/on-terminate"
"""The annotation for every metric; `<this>.<metric-name>` for one metric."""

OUTCOMES: Final[tuple[str, ...]] = get_args(OnTerminate)

OUTCOME_PHASES: Final[Mapping[str, str]] = {
    "successful": SUCCESSFUL,
    "inconclusive": INCONCLUSIVE,
}
"""The phase a terminated metric without a Successful measurement ends in."""


def is_on_terminate_annotation(key: str) -> bool:
    return is_per_metric_annotation(key, ON_TERMINATE_ANNOTATION)


def unproven_phases(
    annotations: Mapping[str, str] | None, metric_names: Sequence[str]
) -> dict[str, str]:
    """Metric name -> the phase it ends in when terminated with no Successful measurement, for
    each metric whose policy is not Argo's; UserError for a bad value or an unknown metric."""
    found = per_metric_values(
        annotations,
        metric_names,
        base=ON_TERMINATE_ANNOTATION,
        allowed=OUTCOMES,
        what="an on-terminate policy",
    )
    return {
        name: OUTCOME_PHASES[value]
        for name, value in found.items()
        if OUTCOME_PHASES[value] != SUCCESSFUL
    }
