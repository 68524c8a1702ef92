"""Rules for a Rollout: spec, strategy, canary steps, traffic routing, blue-green.

Where this sits: called by `rollwise.api.validation.validate` for each Rollout document; the
analyses a Rollout names are checked by `rollwise.api.analysis_rules`, its selector and pod
template by `rollwise.api.pod_rules`.

The rules are those of Argo's `pkg/apis/rollouts/validation/validation.go` (reference
sections 1.2-1.5, 1.8, 1.14) that can be checked from the files alone; trafficRouting has its
own module, `rollwise.api.routing_rules`. A Service a Rollout names may live in the store
rather than in the files, so a name missing from the files is not an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rollwise.api.analysis_rules import (
    Caller,
    TemplateRef,
    check_analysis_refs,
    check_caller_args,
    check_rollout_analysis,
)
from rollwise.api.context import Catalog, Report
from rollwise.api.manifests import FieldPath
from rollwise.api.metric_rules import check_duration
from rollwise.api.models import (
    STEP_KEYS,
    AntiAffinity,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    IntOrString,
    RawObject,
    Rollout,
    RolloutExperimentStep,
    SetCanaryScale,
    SetHeaderRoute,
    SetMirrorRoute,
    StringMatch,
)
from rollwise.api.pod_rules import check_selector, check_selector_and_template
from rollwise.api.routing_rules import RoutingRules, names_text

_DEFAULT_REVISION_HISTORY = 10
_DEFAULT_PROGRESS_DEADLINE = 600
_WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "PodTemplate")
_SCALE_DOWN_MODES = ("", "never", "onsuccess", "progressively")
_INT_OR_PERCENT = re.compile(r"(\d+)%?")


def _non_negative(report: Report, path: FieldPath, value: int | None) -> None:
    if value is not None and value < 0:
        report.error(path, f"must be 0 or more, got {value}")


def _int_or_percent(report: Report, path: FieldPath, value: IntOrString | None) -> int | None:
    """The number in `3` or `"25%"`, None when unset or unreadable (reported)."""
    if value is None:
        return None
    if isinstance(value, int):
        if value < 0:
            report.error(path, f"must be 0 or more, got {value}")
        return value
    match = _INT_OR_PERCENT.fullmatch(value.strip())
    if match is None:
        report.error(path, f"expected an integer or a percentage like '25%', got {value!r}")
        return None
    return int(match.group(1))


def check_rollout(report: Report, rollout: Rollout, *, catalog: Catalog) -> None:
    spec = rollout.spec
    path: FieldPath = ("spec",)
    raw = report.loaded.document.raw
    _non_negative(report, (*path, "replicas"), spec.replicas)
    _non_negative(report, (*path, "minReadySeconds"), spec.min_ready_seconds)
    _non_negative(report, (*path, "revisionHistoryLimit"), spec.revision_history_limit)
    deadline = spec.progress_deadline_seconds
    min_ready = spec.min_ready_seconds or 0
    effective_deadline = _DEFAULT_PROGRESS_DEADLINE if deadline is None else deadline
    if effective_deadline <= min_ready:
        report.error(
            (*path, "progressDeadlineSeconds" if deadline is not None else "minReadySeconds"),
            f"progressDeadlineSeconds ({effective_deadline}) must be greater than"
            f" minReadySeconds ({min_ready})",
        )
    if spec.workload_ref is not None:
        ref, where = spec.workload_ref, (*path, "workloadRef")
        if spec.template:
            report.error(
                (*path, "template"),
                "template must be empty when workloadRef is set: the pod template comes from"
                " the referenced object",
            )
        if ref.kind not in _WORKLOAD_KINDS:
            report.error(
                (*where, "kind"),
                f"workloadRef.kind must be one of {', '.join(_WORKLOAD_KINDS)}, got {ref.kind!r}",
            )
        if not ref.name:
            report.error((*where, "name"), "workloadRef needs the name of the object")
        if (ref.scale_down or "") not in _SCALE_DOWN_MODES:
            report.error(
                (*where, "scaleDown"),
                f"scaleDown must be never, onsuccess or progressively, got {ref.scale_down!r}",
            )
        if spec.selector is not None:
            check_selector(report, spec.selector, (*path, "selector"))
    else:
        check_selector_and_template(report, spec.selector, spec.template, path)

    strategy_path = (*path, "strategy")
    canary, blue_green = spec.strategy.canary, spec.strategy.blue_green
    if canary is None and blue_green is None:
        report.error(strategy_path, "exactly one of canary or blueGreen is required")
    elif canary is not None and blue_green is not None:
        report.error(
            strategy_path, "canary and blueGreen are both set; a Rollout takes exactly one strategy"
        )
    history = spec.revision_history_limit
    history = _DEFAULT_REVISION_HISTORY if history is None else history
    if canary is not None:
        _CanaryRules(report, rollout, canary, catalog=catalog, owner=raw, history=history).check()
    if blue_green is not None:
        _check_blue_green(report, rollout, blue_green, catalog=catalog, owner=raw, history=history)


def _check_revision_limit(
    report: Report, path: FieldPath, limit: int | None, *, history: int
) -> None:
    _non_negative(report, path, limit)
    if limit is not None and limit > history:
        report.error(
            path,
            f"scaleDownDelayRevisionLimit ({limit}) must not exceed revisionHistoryLimit"
            f" ({history})",
        )


def _check_anti_affinity(report: Report, rules: AntiAffinity | None, path: FieldPath) -> None:
    if rules is None:
        return
    preferred = rules.preferred_during_scheduling_ignored_during_execution
    required = rules.required_during_scheduling_ignored_during_execution
    if (preferred is None) == (required is None):
        report.error(
            path,
            "antiAffinity takes exactly one of preferredDuringSchedulingIgnoredDuringExecution"
            " or requiredDuringSchedulingIgnoredDuringExecution",
        )
    if preferred is not None and not 1 <= preferred.weight <= 100:
        report.error(
            (*path, "preferredDuringSchedulingIgnoredDuringExecution", "weight"),
            f"weight {preferred.weight} is outside 1..100",
        )


def _check_string_match(
    report: Report, match: StringMatch, path: FieldPath, *, exact_only: bool
) -> None:
    kinds = [key for key, value in match.to_raw().items() if value is not None]
    if exact_only and kinds != ["exact"]:
        report.error(path, "alb only matches headers exactly: use exact")
    elif len(kinds) != 1:
        report.error(path, "takes exactly one of exact, prefix or regex")


class _CanaryRules:
    """The canary strategy of one Rollout; one method per part of it."""

    def __init__(
        self,
        report: Report,
        rollout: Rollout,
        canary: CanaryStrategy,
        *,
        catalog: Catalog,
        owner: RawObject,
        history: int,
    ) -> None:
        self.report = report
        self.rollout = rollout
        self.canary = canary
        self.catalog = catalog
        self.owner = owner
        self.history = history
        self.path: FieldPath = ("spec", "strategy", "canary")
        self.routing = canary.traffic_routing
        self.routers = self.routing.router_names() if self.routing is not None else []
        self.namespace = rollout.metadata.namespace

    def has_router(self, *names: str) -> bool:
        return any(name in self.routers for name in names)

    def check(self) -> None:
        report, canary, path = self.report, self.canary, self.path
        if canary.canary_service and canary.canary_service == canary.stable_service:
            report.error(
                (*path, "canaryService"),
                "This rollout uses the same service for the stable and canary services, but two"
                f" different services are required (both are {canary.canary_service!r})",
            )
        surge = _int_or_percent(report, (*path, "maxSurge"), canary.max_surge)
        unavailable = _int_or_percent(report, (*path, "maxUnavailable"), canary.max_unavailable)
        if surge == 0 and unavailable == 0:
            report.error(
                (*path, "maxUnavailable"),
                "MaxSurge and MaxUnavailable both can not be zero: no pod could ever be replaced",
            )
        self.check_scale_down()
        _check_anti_affinity(report, canary.anti_affinity, (*path, "antiAffinity"))
        self.check_ping_pong()
        _non_negative(report, (*path, "minPodsPerReplicaSet"), canary.min_pods_per_replica_set)
        threshold = canary.replica_progress_threshold
        if threshold is not None:
            where = (*path, "replicaProgressThreshold", "value")
            _non_negative(report, where, threshold.value)
            if threshold.type == "Percent" and threshold.value > 100:
                report.error(where, f"{threshold.value}% is more than 100%")
        if self.routing is not None:
            RoutingRules(
                report, canary, self.routing, catalog=self.catalog, namespace=self.namespace
            ).check()
        for index, step in enumerate(canary.steps or []):
            self.check_step(index, step)
        if canary.analysis is not None:
            where = (*path, "analysis")
            check_rollout_analysis(
                report,
                canary.analysis,
                where,
                caller=Caller("background analysis", "the background analysis's args", False),
                catalog=self.catalog,
                owner=self.owner,
                namespace=self.namespace,
            )
            start = canary.analysis.starting_step
            steps = len(canary.steps or [])
            if start is not None and not 0 <= start <= steps:
                report.error(
                    (*where, "startingStep"), f"startingStep {start} is outside 0..{steps}"
                )

    def check_scale_down(self) -> None:
        report, canary, path = self.report, self.canary, self.path
        if canary.scale_down_delay_seconds is not None:
            where = (*path, "scaleDownDelaySeconds")
            _non_negative(report, where, canary.scale_down_delay_seconds)
            if self.routing is None:
                report.error(
                    where, "Canary scaleDownDelaySeconds can only be used with traffic routing"
                )
            elif canary.dynamic_stable_scale:
                report.error(
                    where, "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds"
                )
        if canary.dynamic_stable_scale and self.routing is None:
            report.error(
                (*path, "dynamicStableScale"),
                "Canary dynamicStableScale can only be used with traffic routing",
            )
        _non_negative(
            report, (*path, "abortScaleDownDelaySeconds"), canary.abort_scale_down_delay_seconds
        )
        _check_revision_limit(
            report,
            (*path, "scaleDownDelayRevisionLimit"),
            canary.scale_down_delay_revision_limit,
            history=self.history,
        )

    def check_ping_pong(self) -> None:
        ping_pong = self.canary.ping_pong
        if ping_pong is None:
            return
        where = (*self.path, "pingPong")
        if ping_pong.ping_service == ping_pong.pong_service:
            self.report.error(
                (*where, "pongService"),
                "This rollout uses the same service for the ping and pong services, but two"
                " different services are required.",
            )
        alb = self.routing.alb if self.routing is not None else None
        if not self.has_router("istio", "plugins", "alb"):
            self.report.error(
                where, "pingPong needs trafficRouting with istio, alb (with rootService) or plugins"
            )
        elif alb is not None and not alb.get("rootService"):
            self.report.error(
                (*self.path, "trafficRouting", "alb"), "alb.rootService is required with pingPong"
            )

    # --- steps -----------------------------------------------------------------------------------

    def check_step(self, index: int, step: CanaryStep) -> None:
        report = self.report
        where = (*self.path, "steps", index)
        raw = step.to_raw()
        expected = ", ".join(STEP_KEYS)
        for key in raw:
            if key not in STEP_KEYS:
                report.error((*where, key), f"unknown step {key!r}; expected one of {expected}")
        known = [key for key in raw if key in STEP_KEYS]
        if not raw:
            report.error(where, f"empty step; expected one of {expected}")
        if len(known) > 1:
            report.error(
                where,
                f"a step takes exactly one action, found {len(known)} ({', '.join(known)});"
                " split it into separate steps",
            )
        for key in known:
            if raw[key] is None:
                hint = " (write pause: {} to pause until promoted)" if key == "pause" else ""
                report.error((*where, key), f"step {key!r} has no value{hint}")
        if step.set_weight is not None:
            limit = self.routing.max_traffic_weight if self.routing is not None else None
            limit = limit if limit and limit > 0 else 100
            if not 0 <= step.set_weight <= limit:
                report.error(
                    (*where, "setWeight"), f"weight {step.set_weight} is outside 0..{limit}"
                )
        if step.pause is not None:
            check_duration(report, (*where, "pause", "duration"), step.pause.duration)
        if step.analysis is not None:
            check_rollout_analysis(
                report,
                step.analysis,
                (*where, "analysis"),
                caller=Caller("step analysis", "the step's args", True),
                catalog=self.catalog,
                owner=self.owner,
                namespace=self.namespace,
            )
        if step.experiment is not None:
            self.check_experiment(step.experiment, (*where, "experiment"))
        if step.set_canary_scale is not None:
            self.check_canary_scale(step.set_canary_scale, (*where, "setCanaryScale"))
        if step.set_header_route is not None:
            self.check_header_route(step.set_header_route, (*where, "setHeaderRoute"))
        if step.set_mirror_route is not None:
            self.check_mirror_route(step.set_mirror_route, (*where, "setMirrorRoute"))
        if step.plugin is not None and not step.plugin.name:
            report.error((*where, "plugin", "name"), "a plugin step needs the plugin's name")

    def check_managed_name(self, name: str | None, where: FieldPath, action: str) -> None:
        managed = (
            [route.name for route in (self.routing.managed_routes or [])] if self.routing else []
        )
        if not name:
            self.report.error(
                where, f"{action} needs a name listed in trafficRouting.managedRoutes"
            )
        elif name not in managed:
            self.report.error(
                (*where, "name"),
                f"{action} {name!r} is not in trafficRouting.managedRoutes ({names_text(managed)})",
            )

    def check_canary_scale(self, scale: SetCanaryScale, where: FieldPath) -> None:
        if self.routing is None:
            self.report.error(
                where,
                "SetCanaryScale requires TrafficRouting to be set (without it the canary's size"
                " follows setWeight)",
            )
        chosen = [
            key
            for key, set_ in (
                ("weight", scale.weight is not None),
                ("replicas", scale.replicas is not None),
                ("matchTrafficWeight", bool(scale.match_traffic_weight)),
            )
            if set_
        ]
        if len(chosen) != 1:
            self.report.error(
                where,
                "setCanaryScale takes exactly one of weight, replicas or matchTrafficWeight: true",
            )
        if scale.weight is not None and not 0 <= scale.weight <= 100:
            self.report.error((*where, "weight"), f"weight {scale.weight} is outside 0..100")
        _non_negative(self.report, (*where, "replicas"), scale.replicas)

    def check_header_route(self, route: SetHeaderRoute, where: FieldPath) -> None:
        if not self.has_router("istio", "alb", "apisix", "plugins"):
            self.report.error(
                where, "setHeaderRoute needs trafficRouting with istio, alb, apisix or plugins"
            )
        self.check_managed_name(route.name, where, "setHeaderRoute")
        exact_only = self.has_router("alb")
        for index, match in enumerate(route.match or []):
            _check_string_match(
                self.report,
                match.header_value,
                (*where, "match", index, "headerValue"),
                exact_only=exact_only,
            )

    def check_mirror_route(self, route: SetMirrorRoute, where: FieldPath) -> None:
        if not self.has_router("istio", "plugins"):
            self.report.error(where, "setMirrorRoute needs trafficRouting with istio or plugins")
        self.check_managed_name(route.name, where, "setMirrorRoute")
        if route.percentage is not None and not 0 <= route.percentage <= 100:
            self.report.error(
                (*where, "percentage"), f"percentage {route.percentage} is outside 0..100"
            )
        for index, match in enumerate(route.match or []):
            match_path = (*where, "match", index)
            if match.method is None and match.path is None and not match.headers:
                self.report.error(
                    match_path, "a match needs at least one of method, path or headers"
                )
            for key, value in (("method", match.method), ("path", match.path)):
                if value is not None:
                    _check_string_match(self.report, value, (*match_path, key), exact_only=False)
            for header, value in (match.headers or {}).items():
                _check_string_match(
                    self.report, value, (*match_path, "headers", header), exact_only=False
                )

    def check_experiment(self, experiment: RolloutExperimentStep, where: FieldPath) -> None:
        report = self.report
        if not experiment.templates:
            report.error((*where, "templates"), "an experiment step needs at least one template")
        names: set[str] = set()
        for index, template in enumerate(experiment.templates):
            template_path = (*where, "templates", index)
            if template.name in names:
                report.error(
                    (*template_path, "name"), f"template name {template.name!r} is used twice"
                )
            names.add(template.name)
            if template.spec_ref not in ("canary", "stable"):
                report.error(
                    (*template_path, "specRef"),
                    f"specRef must be canary or stable, got {template.spec_ref!r}",
                )
            _non_negative(report, (*template_path, "replicas"), template.replicas)
            if template.weight is not None:
                if not self.routers:
                    report.error(
                        (*template_path, "weight"),
                        "Experiment template weight cannot be set unless TrafficRouting is enabled",
                    )
                elif not self.has_router("alb", "smi", "istio", "plugins"):
                    report.error(
                        (*template_path, "weight"),
                        "Experiment template weight is only available for TrafficRouting with"
                        " SMI, ALB, and Istio at this time",
                    )
                if not 0 <= template.weight <= 100:
                    report.error(
                        (*template_path, "weight"), f"weight {template.weight} is outside 0..100"
                    )
        check_duration(report, (*where, "duration"), experiment.duration)
        check_experiment_analyses(
            report,
            experiment.analyses or [],
            (*where, "analyses"),
            catalog=self.catalog,
            owner=self.owner,
            namespace=self.namespace,
            rollout=True,
        )


def check_experiment_analyses(
    report: Report,
    analyses: Sequence[Any],
    path: FieldPath,
    *,
    catalog: Catalog,
    owner: RawObject,
    namespace: str | None,
    rollout: bool,
) -> None:
    """Analyses of an experiment (a Rollout's experiment step, or an Experiment)."""
    names: set[str] = set()
    for index, analysis in enumerate(analyses):
        where = (*path, index)
        if analysis.name in names:
            report.error((*where, "name"), f"analysis name {analysis.name!r} is used twice")
        names.add(analysis.name)
        args = analysis.args or []
        check_caller_args(report, args, (*where, "args"), owner=owner, rollout=rollout)
        refs = [
            TemplateRef(
                analysis.template_name, bool(analysis.cluster_scope), (*where, "templateName")
            )
        ]
        check_analysis_refs(
            report,
            refs,
            where,
            args=args,
            caller=Caller(
                f"experiment analysis {analysis.name!r}", f"analyses[{index}].args", False
            ),
            catalog=catalog,
            namespace=namespace,
        )


def _check_blue_green(
    report: Report,
    rollout: Rollout,
    blue_green: BlueGreenStrategy,
    *,
    catalog: Catalog,
    owner: RawObject,
    history: int,
) -> None:
    path: FieldPath = ("spec", "strategy", "blueGreen")
    if not blue_green.active_service:
        report.error((*path, "activeService"), "activeService is required")
    if blue_green.preview_service and blue_green.preview_service == blue_green.active_service:
        report.error(
            (*path, "previewService"),
            f"previewService and activeService are both {blue_green.active_service!r};"
            " they must be different Services",
        )
    for key, value in (
        ("previewReplicaCount", blue_green.preview_replica_count),
        ("autoPromotionSeconds", blue_green.auto_promotion_seconds),
        ("scaleDownDelaySeconds", blue_green.scale_down_delay_seconds),
        ("abortScaleDownDelaySeconds", blue_green.abort_scale_down_delay_seconds),
    ):
        _non_negative(report, (*path, key), value)
    _check_revision_limit(
        report,
        (*path, "scaleDownDelayRevisionLimit"),
        blue_green.scale_down_delay_revision_limit,
        history=history,
    )
    _int_or_percent(report, (*path, "maxUnavailable"), blue_green.max_unavailable)
    _check_anti_affinity(report, blue_green.anti_affinity, (*path, "antiAffinity"))
    for key, analysis in (
        ("prePromotionAnalysis", blue_green.pre_promotion_analysis),
        ("postPromotionAnalysis", blue_green.post_promotion_analysis),
    ):
        if analysis is not None:
            check_rollout_analysis(
                report,
                analysis,
                (*path, key),
                caller=Caller(key, f"the {key}'s args", True),
                catalog=catalog,
                owner=owner,
                namespace=rollout.metadata.namespace,
            )
