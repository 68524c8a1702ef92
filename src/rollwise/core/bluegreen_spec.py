"""What the blue-green engine refuses to run: Argo's InvalidSpec checks that need the live
objects (the Services, the AnalysisTemplates). `rollwise lint` checks the rest with line numbers.

Who calls it: `rollwise.core.rollouts.spec_problem`.
"""

from __future__ import annotations

from rollwise.api import models as api
from rollwise.core.observed import Observed

DUPLICATED_SERVICES_MESSAGE = (
    "This rollout uses the same service for the active and preview services, "
    "but two different services are required."
)


def blue_green_problem(blue_green: api.BlueGreenStrategy, observed: Observed) -> str | None:
    """Why the engine cannot run this blue-green strategy, or None (Argo's InvalidSpec checks
    that need the live objects; `rollwise lint` checks the rest with line numbers)."""
    where = "spec.strategy.blueGreen"
    if blue_green.preview_service and blue_green.preview_service == blue_green.active_service:
        return f"{where}.previewService: {DUPLICATED_SERVICES_MESSAGE}"
    for key, value in (
        ("previewReplicaCount", blue_green.preview_replica_count),
        ("autoPromotionSeconds", blue_green.auto_promotion_seconds),
        ("scaleDownDelaySeconds", blue_green.scale_down_delay_seconds),
        ("abortScaleDownDelaySeconds", blue_green.abort_scale_down_delay_seconds),
    ):
        if value is not None and value < 0:
            return f"{where}.{key}: must not be negative"
    for key, service in (
        ("activeService", blue_green.active_service),
        ("previewService", blue_green.preview_service),
    ):
        if service and service not in observed.service_selectors:
            return f'{where}.{key}: service "{service}" not found'
    missing = set(observed.missing_templates)
    for key, analysis in (
        ("prePromotionAnalysis", blue_green.pre_promotion_analysis),
        ("postPromotionAnalysis", blue_green.post_promotion_analysis),
    ):
        for ref in (analysis.templates or ()) if analysis is not None else ():
            if ref.template_name in missing:
                kind = "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate"
                return f'{where}.{key}.templates: {kind} "{ref.template_name}" not found'
    return None
