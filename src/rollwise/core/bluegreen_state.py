"""The facts of one blue-green decision, and the questions the engine asks of them.

Who uses it: the blue-green engine (`bluegreen`, `bluegreen_scaling`). `BlueGreenFacts` is frozen
and computed once per decision; it satisfies `canary_state.RolloutFacts`, so the shared stage
machine (`Progress`), the `Outbox`, the status conditions, pod restarts and history cleanup work
on it unchanged. `BlueGreenProgress` holds what only blue-green tracks across decisions (its two
analysis runs, the preview scale-up checkpoint) and what this decision chose for the Services.

Vocabulary (reference 1.8): the *active* Service serves production traffic, the *preview*
Service always selects the newest ReplicaSet; *saturated* means the new ReplicaSet runs (and has
available) the full `replicas`; *ready for pause* means it runs what it should before promotion
(`previewReplicaCount`, or all replicas).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rollwise.api import models as api
from rollwise.core import replicas as math
from rollwise.core.canary_state import DEFAULT_REPLICAS, Raw
from rollwise.core.hashing import pod_template_hash, template_with_hash_label
from rollwise.core.observed import Observed, ReplicaSetView
from rollwise.core.timestamps import format_time, parse_time_or_none

BLUE_GREEN_PAUSE = "BlueGreenPause"
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_MAX_UNAVAILABLE = "25%"
"""Argo's code default, used only for restarts (its docs say 0: reference 1.8, doc drift)."""


@dataclass(frozen=True, slots=True)
class BlueGreenFacts:
    """Everything derived from the inputs before deciding anything."""

    rollout: api.Rollout
    blue_green: api.BlueGreenStrategy
    observed: Observed
    now: datetime
    now_text: str
    prev: Mapping[str, Any]
    replicas: int
    pod_hash: str
    new_rs: ReplicaSetView
    """The ReplicaSet of the desired revision (a placeholder with 0 pods while being created)."""
    creating: bool
    stable_rs: ReplicaSetView | None
    others: tuple[ReplicaSetView, ...]
    """ReplicaSets that are neither the desired nor the stable revision."""
    revision: int
    max_unavailable: int
    active_hash: str | None
    """The pod-template hash the active Service selects now; None if its selector has none."""
    steps: tuple[api.CanaryStep, ...] = ()
    """Always empty: blue-green has no steps (the shared stage machine reads it)."""

    @property
    def prev_blue_green(self) -> Mapping[str, Any]:
        return self.prev.get("blueGreen") or {}

    def replica_set(self, pod_hash: str | None) -> ReplicaSetView | None:
        if not pod_hash:
            return None
        return next(
            (rs for rs in self.observed.replica_sets if rs.pod_template_hash == pod_hash), None
        )


def gather_facts(rollout: api.Rollout, observed: Observed, now: datetime) -> BlueGreenFacts:
    blue_green = rollout.spec.strategy.blue_green
    assert blue_green is not None
    prev: Mapping[str, Any] = rollout.status.to_raw() if rollout.status is not None else {}
    replicas = rollout.spec.replicas if rollout.spec.replicas is not None else DEFAULT_REPLICAS
    pod_hash = pod_template_hash(rollout.spec.template or {}, prev.get("collisionCount"))
    new_rs = next((rs for rs in observed.replica_sets if rs.pod_template_hash == pod_hash), None)
    max_old = max(
        (rs.revision for rs in observed.replica_sets if rs.pod_template_hash != pod_hash),
        default=0,
    )
    creating = new_rs is None
    if new_rs is None:
        revision = max_old + 1
        new_rs = ReplicaSetView(
            name=f"{rollout.name}-{pod_hash}",
            pod_template_hash=pod_hash,
            revision=revision,
            replicas=0,
            ready=0,
            available=0,
            template=template_with_hash_label(rollout.spec.template or {}, pod_hash),
            created_at=now,
            current=0,
        )
    else:
        # An older revision that is wanted again becomes the newest one.
        revision = max_old + 1 if new_rs.revision <= max_old else new_rs.revision
    stable_hash = prev.get("stableRS") or ""
    stable_rs = next(
        (rs for rs in observed.replica_sets if stable_hash and rs.pod_template_hash == stable_hash),
        None,
    )
    others = tuple(
        rs for rs in observed.replica_sets if rs.pod_template_hash not in (pod_hash, stable_hash)
    )
    unavailable = math.value_from_int_or_percent(
        blue_green.max_unavailable, DEFAULT_MAX_UNAVAILABLE, replicas, round_up=False
    )
    return BlueGreenFacts(
        rollout=rollout,
        blue_green=blue_green,
        observed=observed,
        now=now,
        now_text=format_time(now),
        prev=prev,
        replicas=replicas,
        pod_hash=pod_hash,
        new_rs=new_rs,
        creating=creating,
        stable_rs=stable_rs,
        others=others,
        revision=revision,
        max_unavailable=unavailable,
        active_hash=observed.service_selectors.get(blue_green.active_service),
    )


@dataclass
class BlueGreenProgress:
    """What blue-green tracks besides the shared stage fields, and this decision's choices."""

    pre_run: Raw | None
    post_run: Raw | None
    checkpoint: bool
    """status.blueGreen.scaleUpPreviewCheckPoint: the preview passed its gate and may grow to
    the full count (only used with previewReplicaCount)."""
    active: str | None
    """The hash the active Service selects after this decision."""
    preview: str | None
    """The hash the preview Service selects after this decision (None: no preview Service)."""
    person_resumed: bool = False
    """A person cleared the pause conditions (promote) and this decision noticed it."""
    pause_added: bool = False

    @classmethod
    def start(cls, facts: BlueGreenFacts) -> BlueGreenProgress:
        prev = facts.prev_blue_green
        preview_service = facts.blue_green.preview_service
        return cls(
            pre_run=prev.get("prePromotionAnalysisRunStatus"),
            post_run=prev.get("postPromotionAnalysisRunStatus"),
            checkpoint=bool(prev.get("scaleUpPreviewCheckPoint")),
            active=facts.active_hash,
            preview=(
                facts.observed.service_selectors.get(preview_service) if preview_service else None
            ),
        )

    def forget_runs(self) -> None:
        """A new revision or a retry: the runs of the previous attempt no longer count."""
        self.pre_run = None
        self.post_run = None
        self.checkpoint = False


# --- questions about the facts ---------------------------------------------------------------


def preview_count(facts: BlueGreenFacts, *, checkpoint: bool, promote_full: bool) -> int:
    """How many pods the new ReplicaSet should run now (Argo's NewRSNewReplicas for blue-green):
    `previewReplicaCount` while it is only previewed, the full count otherwise."""
    count = facts.blue_green.preview_replica_count
    if count is None or checkpoint or promote_full:
        return facts.replicas
    active = facts.replica_set(facts.prev_blue_green.get("activeSelector"))
    if active is None or active.name == facts.new_rs.name:
        return facts.replicas
    if facts.new_rs.scale_down_deadline is not None:
        return facts.replicas  # an old revision within its scale-down delay: it is full already
    return count


def ready_for_pause(facts: BlueGreenFacts, desired: int) -> bool:
    new = facts.new_rs
    return not facts.creating and new.replicas == desired and new.available == desired


def saturated(facts: BlueGreenFacts) -> bool:
    new = facts.new_rs
    return not facts.creating and new.replicas == facts.replicas and new.available == facts.replicas


def needs_controller_pause(blue_green: api.BlueGreenStrategy) -> bool:
    """Whether the controller pauses before the switch (Argo's needsBlueGreenControllerPause)."""
    if blue_green.auto_promotion_enabled is False:
        return True
    return (blue_green.auto_promotion_seconds or 0) > 0


def previous_pause_start(facts: BlueGreenFacts) -> datetime | None:
    """When the BlueGreenPause the decision found began (None: there was none)."""
    for pause in facts.prev.get("pauseConditions") or ():
        if pause.get("reason") == BLUE_GREEN_PAUSE:
            return parse_time_or_none(pause.get("startTime")) or facts.now
    return None


def auto_promotion_deadline(facts: BlueGreenFacts) -> datetime | None:
    """When an automatic promotion is due (autoPromotionSeconds after the pause began)."""
    blue_green = facts.blue_green
    seconds = blue_green.auto_promotion_seconds or 0
    start = previous_pause_start(facts)
    if blue_green.auto_promotion_enabled is False or seconds <= 0 or start is None:
        return None
    return start + timedelta(seconds=seconds)


def abort_delay_seconds(facts: BlueGreenFacts) -> int:
    delay = facts.blue_green.abort_scale_down_delay_seconds
    return DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS if delay is None else delay


def scale_down_delay_seconds(facts: BlueGreenFacts) -> int:
    delay = facts.blue_green.scale_down_delay_seconds
    return DEFAULT_SCALE_DOWN_DELAY_SECONDS if delay is None else delay


def rollback_within_window(facts: BlueGreenFacts) -> bool:
    """The desired template is an older revision within `rollbackWindow` of the stable one."""
    window = facts.rollout.spec.rollback_window
    new, stable = facts.new_rs, facts.stable_rs
    if window is None or not window.revisions or facts.creating or stable is None:
        return False
    if not new.created_at < stable.created_at:
        return False
    between = sum(
        1
        for rs in facts.observed.replica_sets
        if new.created_at < rs.created_at < stable.created_at
    )
    return between < window.revisions
