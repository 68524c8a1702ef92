"""Typed models of the Argo Rollouts resources (argoproj.io/v1alpha1) and core v1 Service.

Who uses this: everything. Parsing (`rollwise.api.manifests`) turns YAML documents into these
models; the core reads them; the platforms store them; the CLI prints them.

Rules that hold for every model here:
- YAML names are camelCase, Python attributes snake_case (`alias_generator=to_camel`).
- Unknown fields are kept (`extra="allow"`) and written back unchanged by `to_raw()`, so a field
  we do not model yet is never lost. Pod templates are raw dicts, passed through untouched.
- Only the fields the user wrote are written back (`exclude_unset`), so defaults are applied by
  the readers (the core), not injected into the user's objects.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "argoproj.io"
API_VERSION = "argoproj.io/v1alpha1"

IntOrString = int | str
RawObject = dict[str, Any]


class Model(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_assignment=False,
        serialize_by_alias=True,
    )

    def to_raw(self) -> RawObject:
        """The object as YAML/JSON would hold it: camelCase, only fields that were set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def copy_with(self, **changes: Any) -> Self:
        """A copy with some attributes replaced, marked as set so they are written back."""
        data = self.model_dump(by_alias=False, exclude_unset=True, round_trip=True)
        data.update(changes)
        return type(self).model_validate(data)


# --- metadata ------------------------------------------------------------------------------------


class OwnerReference(Model):
    api_version: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Model):
    name: str = ""
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None


class LabelSelectorRequirement(Model):
    key: str
    operator: str
    values: list[str] | None = None


class LabelSelector(Model):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class PodMetadata(Model):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


# --- analysis references shared by rollouts and experiments ------------------------------------


class FieldRef(Model):
    field_path: str


class SecretKeyRef(Model):
    name: str
    key: str


class ArgumentValueFrom(Model):
    pod_template_hash_value: Literal["Stable", "Latest"] | None = None
    field_ref: FieldRef | None = None
    secret_key_ref: SecretKeyRef | None = None


class Argument(Model):
    """An argument of a template (value optional) or of a caller (value or valueFrom)."""

    name: str
    value: str | None = None
    value_from: ArgumentValueFrom | None = None


class AnalysisTemplateRef(Model):
    template_name: str
    cluster_scope: bool | None = None


class DryRun(Model):
    metric_name: str


class MeasurementRetention(Model):
    metric_name: str
    limit: int


class AnalysisRunMetadata(Model):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class RolloutAnalysis(Model):
    templates: list[AnalysisTemplateRef] | None = None
    args: list[Argument] | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    analysis_run_metadata: AnalysisRunMetadata | None = None


class RolloutAnalysisBackground(RolloutAnalysis):
    starting_step: int | None = None


# --- canary steps --------------------------------------------------------------------------------


class RolloutPause(Model):
    duration: IntOrString | None = None


class SetCanaryScale(Model):
    weight: int | None = None
    replicas: int | None = None
    match_traffic_weight: bool | None = None


class StringMatch(Model):
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


class HeaderRoutingMatch(Model):
    header_name: str
    header_value: StringMatch


class SetHeaderRoute(Model):
    name: str | None = None
    match: list[HeaderRoutingMatch] | None = None


class RouteMatch(Model):
    method: StringMatch | None = None
    path: StringMatch | None = None
    headers: dict[str, StringMatch] | None = None


class SetMirrorRoute(Model):
    name: str
    match: list[RouteMatch] | None = None
    percentage: int | None = None


class TemplateService(Model):
    name: str | None = None


class RolloutExperimentTemplate(Model):
    name: str
    spec_ref: str
    replicas: int | None = None
    metadata: PodMetadata | None = None
    selector: LabelSelector | None = None
    weight: int | None = None
    service: TemplateService | None = None


class RolloutExperimentStepAnalysisTemplateRef(Model):
    name: str
    template_name: str
    cluster_scope: bool | None = None
    args: list[Argument] | None = None
    required_for_completion: bool | None = None


class RolloutExperimentStep(Model):
    templates: list[RolloutExperimentTemplate]
    duration: str | None = None
    analyses: list[RolloutExperimentStepAnalysisTemplateRef] | None = None
    dry_run: list[DryRun] | None = None
    analysis_run_metadata: AnalysisRunMetadata | None = None
    scale_down_delay_seconds: int | None = None


class PluginStep(Model):
    name: str
    config: RawObject | None = None


STEP_KEYS = (
    "setWeight",
    "pause",
    "analysis",
    "experiment",
    "setCanaryScale",
    "setHeaderRoute",
    "setMirrorRoute",
    "plugin",
)


class CanaryStep(Model):
    """One step of a canary plan; validation requires exactly one key to be set."""

    set_weight: int | None = None
    pause: RolloutPause | None = None
    analysis: RolloutAnalysis | None = None
    experiment: RolloutExperimentStep | None = None
    set_canary_scale: SetCanaryScale | None = None
    set_header_route: SetHeaderRoute | None = None
    set_mirror_route: SetMirrorRoute | None = None
    plugin: PluginStep | None = None

    def keys(self) -> list[str]:
        """The step keys present, in YAML spelling (the unknown ones included)."""
        raw = self.to_raw()
        return list(raw)


# --- strategies ----------------------------------------------------------------------------------


class ManagedRoute(Model):
    name: str


class TraefikTrafficRouting(Model):
    weighted_traefik_service_name: str | None = None


class TrafficRouting(Model):
    istio: RawObject | None = None
    nginx: RawObject | None = None
    alb: RawObject | None = None
    smi: RawObject | None = None
    ambassador: RawObject | None = None
    app_mesh: RawObject | None = None
    traefik: TraefikTrafficRouting | None = None
    apisix: RawObject | None = None
    plugins: dict[str, Any] | None = None
    managed_routes: list[ManagedRoute] | None = None
    max_traffic_weight: int | None = None

    def router_names(self) -> list[str]:
        """The routers this rollout names, in YAML spelling (`istio`, `plugins`, ...)."""
        skip = {"managedRoutes", "maxTrafficWeight"}
        return [key for key in self.to_raw() if key not in skip]


class PreferredAntiAffinity(Model):
    weight: int


class AntiAffinity(Model):
    preferred_during_scheduling_ignored_during_execution: PreferredAntiAffinity | None = None
    required_during_scheduling_ignored_during_execution: RawObject | None = None


class PingPong(Model):
    ping_service: str
    pong_service: str


class ReplicaProgressThreshold(Model):
    type: Literal["Percent", "Pods"]
    value: int


class CanaryStrategy(Model):
    canary_service: str | None = None
    stable_service: str | None = None
    steps: list[CanaryStep] | None = None
    max_surge: IntOrString | None = None
    max_unavailable: IntOrString | None = None
    traffic_routing: TrafficRouting | None = None
    analysis: RolloutAnalysisBackground | None = None
    anti_affinity: AntiAffinity | None = None
    canary_metadata: PodMetadata | None = None
    stable_metadata: PodMetadata | None = None
    scale_down_delay_seconds: int | None = None
    scale_down_delay_revision_limit: int | None = None
    abort_scale_down_delay_seconds: int | None = None
    dynamic_stable_scale: bool | None = None
    ping_pong: PingPong | None = None
    min_pods_per_replica_set: int | None = None
    replica_progress_threshold: ReplicaProgressThreshold | None = None


class BlueGreenStrategy(Model):
    active_service: str
    preview_service: str | None = None
    preview_replica_count: int | None = None
    auto_promotion_enabled: bool | None = None
    auto_promotion_seconds: int | None = None
    max_unavailable: IntOrString | None = None
    scale_down_delay_seconds: int | None = None
    scale_down_delay_revision_limit: int | None = None
    abort_scale_down_delay_seconds: int | None = None
    pre_promotion_analysis: RolloutAnalysis | None = None
    post_promotion_analysis: RolloutAnalysis | None = None
    anti_affinity: AntiAffinity | None = None
    preview_metadata: PodMetadata | None = None
    active_metadata: PodMetadata | None = None


class RolloutStrategy(Model):
    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None


# --- rollout -------------------------------------------------------------------------------------


class WorkloadRef(Model):
    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    scale_down: str | None = None


class RollbackWindow(Model):
    revisions: int | None = None


class AnalysisRunHistory(Model):
    successful_run_history_limit: int | None = None
    unsuccessful_run_history_limit: int | None = None


class RolloutSpec(Model):
    replicas: int | None = None
    selector: LabelSelector | None = None
    template: RawObject | None = None
    workload_ref: WorkloadRef | None = None
    min_ready_seconds: int | None = None
    revision_history_limit: int | None = None
    paused: bool | None = None
    progress_deadline_seconds: int | None = None
    progress_deadline_abort: bool | None = None
    restart_at: str | None = None
    rollback_window: RollbackWindow | None = None
    analysis: AnalysisRunHistory | None = None
    strategy: RolloutStrategy = Field(default_factory=RolloutStrategy)


class PauseCondition(Model):
    reason: str
    start_time: str


class Condition(Model):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_update_time: str | None = None
    last_transition_time: str | None = None


class RolloutAnalysisRunStatus(Model):
    name: str
    status: str
    message: str | None = None


class WeightDestination(Model):
    weight: int
    service_name: str | None = None
    pod_template_hash: str | None = None


class TrafficWeights(Model):
    canary: WeightDestination
    stable: WeightDestination
    additional: list[WeightDestination] | None = None
    verified: bool | None = None


class CanaryStatus(Model):
    current_step_analysis_run_status: RolloutAnalysisRunStatus | None = None
    current_background_analysis_run_status: RolloutAnalysisRunStatus | None = None
    current_experiment: str | None = None
    weights: TrafficWeights | None = None
    stable_ping_pong: str | None = None
    step_plugin_statuses: list[RawObject] | None = None


class BlueGreenStatus(Model):
    preview_selector: str | None = None
    active_selector: str | None = None
    scale_up_preview_check_point: bool | None = None
    pre_promotion_analysis_run_status: RolloutAnalysisRunStatus | None = None
    post_promotion_analysis_run_status: RolloutAnalysisRunStatus | None = None


class RolloutStatus(Model):
    abort: bool | None = None
    aborted_at: str | None = None
    pause_conditions: list[PauseCondition] | None = None
    controller_pause: bool | None = None
    current_pod_hash: str | None = None
    current_step_hash: str | None = None
    current_step_index: int | None = None
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    hpa_replicas: int | None = Field(default=None, alias="HPAReplicas")
    selector: str | None = None
    stable_rs: str | None = Field(default=None, alias="stableRS")
    restarted_at: str | None = None
    promote_full: bool | None = None
    phase: str | None = None
    message: str | None = None
    observed_generation: str | None = None
    workload_observed_generation: str | None = None
    collision_count: int | None = None
    conditions: list[Condition] | None = None
    canary: CanaryStatus | None = None
    blue_green: BlueGreenStatus | None = None


class Resource(Model):
    api_version: str = API_VERSION
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"


class Rollout(Resource):
    kind: Literal["Rollout"] = "Rollout"
    spec: RolloutSpec = Field(default_factory=RolloutSpec)
    status: RolloutStatus | None = None


# --- analysis ------------------------------------------------------------------------------------


class MetricProvider(Model):
    """Exactly one provider key; each provider's own fields are kept raw for its module to read."""

    prometheus: RawObject | None = None
    web: RawObject | None = None
    job: RawObject | None = None
    datadog: RawObject | None = None
    new_relic: RawObject | None = None
    wavefront: RawObject | None = None
    kayenta: RawObject | None = None
    cloud_watch: RawObject | None = None
    graphite: RawObject | None = None
    influxdb: RawObject | None = None
    skywalking: RawObject | None = None
    plugin: dict[str, Any] | None = None


class Metric(Model):
    name: str
    interval: str | None = None
    initial_delay: str | None = None
    count: IntOrString | None = None
    success_condition: str | None = None
    failure_condition: str | None = None
    failure_limit: IntOrString | None = None
    inconclusive_limit: IntOrString | None = None
    consecutive_error_limit: IntOrString | None = None
    consecutive_success_limit: IntOrString | None = None
    provider: MetricProvider | None = None


class AnalysisTemplateSpec(Model):
    metrics: list[Metric] | None = None
    args: list[Argument] | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    templates: list[AnalysisTemplateRef] | None = None


class AnalysisTemplate(Resource):
    kind: Literal["AnalysisTemplate"] = "AnalysisTemplate"
    spec: AnalysisTemplateSpec = Field(default_factory=AnalysisTemplateSpec)


class ClusterAnalysisTemplate(Resource):
    kind: Literal["ClusterAnalysisTemplate"] = "ClusterAnalysisTemplate"
    spec: AnalysisTemplateSpec = Field(default_factory=AnalysisTemplateSpec)


class TtlStrategy(Model):
    seconds_after_completion: int | None = None
    seconds_after_success: int | None = None
    seconds_after_failure: int | None = None


class AnalysisRunSpec(Model):
    metrics: list[Metric] = Field(default_factory=list)
    args: list[Argument] | None = None
    terminate: bool | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    ttl_strategy: TtlStrategy | None = None


class Measurement(Model):
    phase: str
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    value: str | None = None
    metadata: dict[str, str] | None = None
    resume_at: str | None = None


class MetricResult(Model):
    name: str
    phase: str
    message: str | None = None
    count: int | None = None
    successful: int | None = None
    failed: int | None = None
    inconclusive: int | None = None
    error: int | None = None
    consecutive_error: int | None = None
    consecutive_success: int | None = None
    dry_run: bool | None = None
    metadata: dict[str, str] | None = None
    measurements: list[Measurement] | None = None


class RunSummary(Model):
    count: int | None = None
    successful: int | None = None
    failed: int | None = None
    inconclusive: int | None = None
    error: int | None = None


class AnalysisRunStatus(Model):
    phase: str | None = None
    message: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    run_summary: RunSummary | None = None
    dry_run_summary: RunSummary | None = None
    metric_results: list[MetricResult] | None = None


class AnalysisRun(Resource):
    kind: Literal["AnalysisRun"] = "AnalysisRun"
    spec: AnalysisRunSpec = Field(default_factory=AnalysisRunSpec)
    status: AnalysisRunStatus | None = None


# --- experiment ----------------------------------------------------------------------------------


class TemplateSpec(Model):
    name: str
    replicas: int | None = None
    min_ready_seconds: int | None = None
    selector: LabelSelector | None = None
    template: RawObject | None = None
    service: TemplateService | None = None


class ExperimentAnalysisTemplateRef(Model):
    name: str
    template_name: str
    cluster_scope: bool | None = None
    args: list[Argument] | None = None
    required_for_completion: bool | None = None


class ExperimentSpec(Model):
    templates: list[TemplateSpec] = Field(default_factory=list)
    duration: str | None = None
    progress_deadline_seconds: int | None = None
    terminate: bool | None = None
    analyses: list[ExperimentAnalysisTemplateRef] | None = None
    scale_down_delay_seconds: int | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    analysis_run_metadata: AnalysisRunMetadata | None = None


class TemplateStatus(Model):
    name: str
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    status: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
    service_name: str | None = None
    pod_template_hash: str | None = None
    collision_count: int | None = None


class ExperimentAnalysisRunStatus(Model):
    name: str
    analysis_run: str | None = None
    phase: str | None = None
    message: str | None = None


class ExperimentStatus(Model):
    phase: str | None = None
    message: str | None = None
    template_statuses: list[TemplateStatus] | None = None
    available_at: str | None = None
    conditions: list[Condition] | None = None
    analysis_runs: list[ExperimentAnalysisRunStatus] | None = None


class Experiment(Resource):
    kind: Literal["Experiment"] = "Experiment"
    spec: ExperimentSpec = Field(default_factory=ExperimentSpec)
    status: ExperimentStatus | None = None


# --- core v1 Service -----------------------------------------------------------------------------


class ServicePort(Model):
    name: str | None = None
    port: int
    target_port: IntOrString | None = None
    protocol: str | None = None
    node_port: int | None = None


class ServiceSpec(Model):
    selector: dict[str, str] | None = None
    ports: list[ServicePort] | None = None
    type: str | None = None


class Service(Resource):
    api_version: str = "v1"
    kind: Literal["Service"] = "Service"
    spec: ServiceSpec = Field(default_factory=ServiceSpec)


AnyResource = (
    Rollout | AnalysisTemplate | ClusterAnalysisTemplate | AnalysisRun | Experiment | Service
)

KINDS: dict[str, type[Resource]] = {
    "Rollout": Rollout,
    "AnalysisTemplate": AnalysisTemplate,
    "ClusterAnalysisTemplate": ClusterAnalysisTemplate,
    "AnalysisRun": AnalysisRun,
    "Experiment": Experiment,
    "Service": Service,
}
