"""rollwise's no-data policy: what an empty metric result means, per metric.

Where this sits: read by `rollwise.core.analysis.runs` from the AnalysisRun's annotations,
carried on the resolved metrics it hands to the providers, and applied by
`rollwise.core.analysis.evaluate.measurement_from_value` before the conditions are evaluated.

Argo Rollouts has no such setting (issues #1466, #1905, #3503): a query that returns nothing
(`nil`, `[]`, `""`) reaches the conditions, where `result[0]` errors ("metric result is nil or
empty") and the run fails only after five such errors in a row, or `len(result) == 0 || ...`
silently passes. That stays the default. The policy is opt-in and lives in annotations so the
YAML stays valid for Argo, which ignores them:

    metadata:
      annotations:
        rollwise.io/no-data-policy: inconclusive               # every metric of the run
        rollwise.io/no-data-policy.success-rate: fail          # one metric (wins)

Values: `succeed`, `fail`, `inconclusive`, `error` (the measurement's phase when the result is
empty). Put them on the AnalysisTemplate/ClusterAnalysisTemplate (they are copied to the run
by `merge_templates`) or on the AnalysisRun itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal, cast, get_args

from rollwise.api.models import Metric
from rollwise.core.analysis.annotations import is_per_metric_annotation, per_metric_values

NoDataPolicy = Literal["succeed", "fail", "inconclusive", "error"]

NO_DATA_ANNOTATION: Final = "rollwise.io/no-data-policy"
"""The annotation for every metric; `<this>.<metric-name>` for one metric."""

POLICIES: Final[tuple[str, ...]] = get_args(NoDataPolicy)

POLICY_PHASES: Final[Mapping[str, str]] = {
    "succeed": "Successful",
    "fail": "Failed",
    "inconclusive": "Inconclusive",
    "error": "Error",
}

_CARRIER: Final = "rollwiseNoDataPolicy"
"""Where a resolved metric carries its policy to the provider: an extra field of the in-memory
metric only (resolved metrics are handed to providers, never written back to a resource)."""


def is_no_data_annotation(key: str) -> bool:
    return is_per_metric_annotation(key, NO_DATA_ANNOTATION)


def no_data_policies(
    annotations: Mapping[str, str] | None, metric_names: Sequence[str]
) -> dict[str, NoDataPolicy]:
    """The policy of each metric that has one; UserError for a bad value or an unknown metric."""
    found = per_metric_values(
        annotations,
        metric_names,
        base=NO_DATA_ANNOTATION,
        allowed=POLICIES,
        what="a no-data policy",
    )
    return {name: cast(NoDataPolicy, value) for name, value in found.items()}


def with_no_data_policy(metric: Metric, policy: NoDataPolicy | None) -> Metric:
    """`metric` carrying `policy` for `measurement_from_value` (unchanged when None)."""
    if policy is None:
        return metric
    return metric.model_copy(update={_CARRIER: policy})


def no_data_policy_of(metric: Metric) -> NoDataPolicy | None:
    """The policy a resolved metric carries, None for Argo's behaviour."""
    value = (metric.model_extra or {}).get(_CARRIER)
    return cast(NoDataPolicy, value) if value in POLICIES else None


def is_no_data(value: object) -> bool:
    """nil, an empty list or an empty string: what the policy applies to."""
    return value is None or (isinstance(value, list | tuple | str) and len(value) == 0)
