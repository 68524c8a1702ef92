"""The working state of one canary decision: the facts it starts from, the stage-owned status
fields it may change (only through transitions), and the actions it collects.

Who uses it: the canary engine's modules (`canary`, `traffic`, `scaling`, `rollout_status`).
`CanaryFacts` is frozen and computed once per decision; `Progress` is the only writer of the
fields the stage owns (pauses, abort, step index, stable revision) and moves the stage through
`phases.TRANSITIONS`; `Outbox` collects actions and requeue times in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from rollwise.api import models as api
from rollwise.core import actions as act
from rollwise.core import replicas as math
from rollwise.core import steps as st
from rollwise.core.hashing import pod_template_hash, template_with_hash_label
from rollwise.core.observed import Observed, ReplicaSetView
from rollwise.core.phases import Stage, Trigger, advance, stage_of
from rollwise.core.timestamps import format_time, parse_time_or_none

CANARY_PAUSE = "CanaryPauseStep"
DEFAULT_REPLICAS = 1
DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30

Raw = dict[str, Any]


class RolloutFacts(Protocol):
    """What the shared machinery reads of a decision's facts: the stage machine (`Progress`), the
    `Outbox`, the status conditions, pod restarts and history cleanup. `CanaryFacts` and the
    blue-green engine's `BlueGreenFacts` both provide it."""

    @property
    def rollout(self) -> api.Rollout: ...
    @property
    def observed(self) -> Observed: ...
    @property
    def now(self) -> datetime: ...
    @property
    def now_text(self) -> str: ...
    @property
    def prev(self) -> Mapping[str, Any]: ...
    @property
    def replicas(self) -> int: ...
    @property
    def steps(self) -> tuple[api.CanaryStep, ...]: ...
    @property
    def pod_hash(self) -> str: ...
    @property
    def new_rs(self) -> ReplicaSetView | None: ...
    @property
    def creating(self) -> bool: ...
    @property
    def stable_rs(self) -> ReplicaSetView | None: ...
    @property
    def others(self) -> tuple[ReplicaSetView, ...]: ...
    @property
    def revision(self) -> int: ...
    @property
    def max_unavailable(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CanaryFacts:
    """Everything derived from the inputs before deciding anything."""

    rollout: api.Rollout
    canary: api.CanaryStrategy
    observed: Observed
    now: datetime
    now_text: str
    prev: Mapping[str, Any]
    replicas: int
    steps: tuple[api.CanaryStep, ...]
    traffic_routed: bool
    max_weight: int
    pod_hash: str
    step_hash: str
    max_surge: int
    max_unavailable: int
    new_rs: ReplicaSetView | None
    """The ReplicaSet of the desired revision (a placeholder with 0 pods while being created)."""
    creating: bool
    stable_rs: ReplicaSetView | None
    others: tuple[ReplicaSetView, ...]
    """ReplicaSets that are neither the desired nor the stable revision."""
    revision: int
    stable_service: str | None
    """The Service playing the stable role: stableService, or pingService / pongService
    (whichever `status.canary.stablePingPong` names) with pingPong."""
    canary_service: str | None
    """The Service playing the canary role (canaryService, or the other of ping and pong)."""


PING, PONG = "ping", "pong"


def role_services(
    canary: api.CanaryStrategy, stable_ping_pong: str | None
) -> tuple[str | None, str | None]:
    """(stable, canary) Services of a canary as the status found them (Argo's
    GetStableAndCanaryServices): with pingPong the two Services swap roles at each promotion
    and ping is stable until the first swap."""
    ping_pong = canary.ping_pong
    if ping_pong is None:
        return canary.stable_service, canary.canary_service
    if stable_ping_pong == PONG:
        return ping_pong.pong_service, ping_pong.ping_service
    return ping_pong.ping_service, ping_pong.pong_service


def selector_string(selector: api.LabelSelector | None) -> str:
    """metav1.FormatLabelSelector: `app=myapp,tier in (a,b)`, requirements sorted by key."""
    if selector is None:
        return ""
    parts: list[tuple[str, str]] = [
        (key, f"{key}={value}") for key, value in (selector.match_labels or {}).items()
    ]
    for requirement in selector.match_expressions or ():
        values = ",".join(sorted(requirement.values or ()))
        operator = requirement.operator
        if operator == "In":
            text = f"{requirement.key} in ({values})"
        elif operator == "NotIn":
            text = f"{requirement.key} notin ({values})"
        elif operator == "Exists":
            text = requirement.key
        else:
            text = f"!{requirement.key}"
        parts.append((requirement.key, text))
    return ",".join(text for _, text in sorted(parts))


def gather_facts(rollout: api.Rollout, observed: Observed, now: datetime) -> CanaryFacts:
    canary = rollout.spec.strategy.canary
    assert canary is not None
    prev: Mapping[str, Any] = rollout.status.to_raw() if rollout.status is not None else {}
    replicas = rollout.spec.replicas if rollout.spec.replicas is not None else DEFAULT_REPLICAS
    steps = tuple(canary.steps or ())
    routing = canary.traffic_routing
    traffic_routed = routing is not None
    max_weight = (routing.max_traffic_weight if routing else None) or 100
    pod_hash = pod_template_hash(rollout.spec.template or {}, prev.get("collisionCount"))
    surge, unavailable = math.resolve_fenceposts(canary.max_surge, canary.max_unavailable, replicas)
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
    stable_service, canary_service = role_services(
        canary, (prev.get("canary") or {}).get("stablePingPong")
    )
    return CanaryFacts(
        rollout=rollout,
        canary=canary,
        observed=observed,
        now=now,
        now_text=format_time(now),
        prev=prev,
        replicas=replicas,
        steps=steps,
        traffic_routed=traffic_routed,
        max_weight=max_weight,
        pod_hash=pod_hash,
        step_hash=st.steps_hash(steps),
        max_surge=surge,
        max_unavailable=unavailable,
        new_rs=new_rs,
        creating=creating,
        stable_rs=stable_rs,
        others=others,
        revision=revision,
        stable_service=stable_service,
        canary_service=canary_service,
    )


def abort_delay(facts: CanaryFacts) -> int:
    delay = facts.canary.abort_scale_down_delay_seconds
    return DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS if delay is None else delay


@dataclass
class Progress:
    """The stage and the status fields that move with it (pauses, abort, step index, stable).

    `fire` is the only writer: it advances the stage through `phases.TRANSITIONS` and applies
    the trigger's effect, so the status can never say something the table does not allow.
    """

    facts: RolloutFacts
    stage: Stage
    index: int | None
    abort: bool
    aborted_at: str | None
    abort_message: str
    pauses: list[Raw]
    controller_pause: bool
    promote_full: bool
    stable_hash: str
    step_run: Raw | None
    background_run: Raw | None
    restarted_at: str | None
    # What the pause-step check reads: the pause state as the decision found it.
    baseline_pause_reasons: frozenset[str] = frozenset()
    baseline_controller_pause: bool = False
    fired: list[Trigger] = field(default_factory=list)
    stable_ping_pong: str | None = None
    """status.canary.stablePingPong: which of ping and pong is stable (pingPong only)."""
    experiment: Raw | None = None
    """`{"name", "phase"}` of the current experiment step's Experiment (from
    status.canary.currentExperiment; `rollwise.core.experiments_steps`)."""

    @classmethod
    def start(cls, facts: RolloutFacts) -> Progress:
        prev = facts.prev
        canary = prev.get("canary") or {}
        pauses = [dict(p) for p in prev.get("pauseConditions") or ()]
        return cls(
            facts=facts,
            stage=stage_of(prev),
            index=prev.get("currentStepIndex"),
            abort=bool(prev.get("abort")),
            aborted_at=prev.get("abortedAt"),
            abort_message="",
            pauses=pauses,
            controller_pause=bool(prev.get("controllerPause")),
            promote_full=bool(prev.get("promoteFull")),
            stable_hash=prev.get("stableRS") or "",
            step_run=canary.get("currentStepAnalysisRunStatus"),
            background_run=canary.get("currentBackgroundAnalysisRunStatus"),
            restarted_at=prev.get("restartedAt"),
            baseline_pause_reasons=frozenset(str(p.get("reason")) for p in pauses),
            baseline_controller_pause=bool(prev.get("controllerPause")),
            stable_ping_pong=canary.get("stablePingPong"),
            experiment=(
                {"name": canary["currentExperiment"]} if canary.get("currentExperiment") else None
            ),
        )

    @property
    def aborted(self) -> bool:
        return self.stage == Stage.ABORTED

    @property
    def fully_promoted(self) -> bool:
        return bool(self.stable_hash) and self.stable_hash == self.facts.pod_hash

    def _end_index(self) -> int | None:
        return len(self.facts.steps) if self.facts.steps else None

    def _clear_pauses(self) -> None:
        self.pauses = []
        self.controller_pause = False

    def _clear_abort(self) -> None:
        self.abort = False
        self.aborted_at = None

    def fire(self, trigger: Trigger, *, reason: str = "", message: str = "") -> None:
        """Move the stage by `trigger` and apply its effect; an illegal trigger raises
        IllegalTransitionError before anything changes."""
        self.stage = advance(self.stage, trigger)
        self.fired.append(trigger)
        EFFECTS[trigger](self, reason or message)

    # --- effects, one per trigger (see EFFECTS) ------------------------------------------------

    def _start_over(self, *, skip_steps: bool) -> None:
        self._clear_pauses()
        self._clear_abort()
        self.promote_full = False
        self.step_run = None
        self.background_run = None
        steps = self.facts.steps
        self.index = self._end_index() if skip_steps else (0 if steps else None)
        # New pods for a new revision: a pending restart has nothing left to restart.
        restart_at = parse_time_or_none(self.facts.rollout.spec.restart_at)
        self.restarted_at = format_time(restart_at) if restart_at else None
        self.baseline_pause_reasons = frozenset()
        self.baseline_controller_pause = False

    def _complete_step(self) -> None:
        self.index = (self.index or 0) + 1
        self.pauses = [p for p in self.pauses if p.get("reason") != CANARY_PAUSE]
        self.controller_pause = bool(self.pauses)
        self.step_run = None

    def _pause(self, reason: str) -> None:
        if all(p.get("reason") != reason for p in self.pauses):
            self.pauses.append({"reason": reason, "startTime": self.facts.now_text})
        self.controller_pause = True

    def _abort(self, message: str) -> None:
        self.abort = True
        self.aborted_at = self.aborted_at or self.facts.now_text
        self.abort_message = message
        self._clear_pauses()
        if self.facts.steps:
            self.index = len(self.facts.steps) if self.fully_promoted else 0

    def _skip_to_end(self) -> None:
        self._clear_pauses()
        self._clear_abort()
        self.index = self._end_index()

    def _promote(self) -> None:
        self._skip_to_end()
        self.promote_full = False
        canary = self.facts.rollout.spec.strategy.canary
        switched = self.stable_hash != self.facts.pod_hash
        if canary is not None and canary.ping_pong is not None and switched:
            # The Service that carried the canary carries the new stable: no switch.
            self.stable_ping_pong = PING if self.stable_ping_pong == PONG else PONG
        self.stable_hash = self.facts.pod_hash


# What each trigger does to the stage-owned fields (its target stage is in phases.TRANSITIONS).
EFFECTS: Mapping[Trigger, Callable[[Progress, str], None]] = {
    Trigger.NEW_REVISION: lambda p, _: p._start_over(skip_steps=False),
    Trigger.ROLLBACK_TO_STABLE: lambda p, _: p._start_over(skip_steps=True),
    Trigger.FAST_ROLLBACK: lambda p, _: p._start_over(skip_steps=True),
    Trigger.STEP_COMPLETED: lambda p, _: p._complete_step(),
    Trigger.PAUSE: lambda p, reason: p._pause(reason),
    Trigger.RESUME: lambda p, _: p._clear_pauses(),
    Trigger.ABORT: lambda p, message: p._abort(message),
    Trigger.RETRY: lambda p, _: p._clear_abort(),
    Trigger.PROMOTE_FULL: lambda p, _: p._skip_to_end(),
    Trigger.PROMOTE: lambda p, _: p._promote(),
}


@dataclass
class Outbox:
    facts: RolloutFacts
    actions: list[act.Action] = field(default_factory=list)
    requeue: list[float] = field(default_factory=list)

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.actions.append(
            act.EmitEvent(type="Warning" if warning else "Normal", reason=reason, message=message)
        )

    def requeue_at(self, moment: datetime) -> None:
        self.requeue.append(max(0.0, (moment - self.facts.now).total_seconds()))

    def scale(self, rs: ReplicaSetView, replicas: int, *, deadline: datetime | None) -> None:
        facts = self.facts
        if facts.creating and facts.new_rs is not None and rs.name == facts.new_rs.name:
            # Not created yet: the creation carries the size.
            for i, action in enumerate(self.actions):
                if isinstance(action, act.CreateReplicaSet) and action.name == rs.name:
                    self.actions[i] = replace(action, replicas=replicas)
        else:
            self.actions.append(act.ScaleReplicaSet(rs.name, replicas, deadline))
        if replicas != rs.replicas:
            direction = "up" if replicas > rs.replicas else "down"
            self.event(
                "ScalingReplicaSet",
                f"Scaled {direction} ReplicaSet {rs.name} (revision {rs.revision}) "
                f"from {rs.replicas} to {replicas}",
            )
