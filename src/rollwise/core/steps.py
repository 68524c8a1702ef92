"""Reading a canary's step list: the current step, the weight in force, how a step prints.

Who calls it: the canary engine (which step to run, which weight and scale apply) and the CLI
(which prints `Step: i/N` and `SetWeight`). `status.currentStepIndex` counts completed steps, so
the current step is `steps[index]` and `index == len(steps)` means all steps are done.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from rollwise.api.durations import parse_duration
from rollwise.api.models import CanaryStep, RolloutPause, SetCanaryScale
from rollwise.core.hashing import fnv32a, safe_encode

KNOWN_STEP_KINDS = (
    "setWeight",
    "pause",
    "analysis",
    "experiment",
    "setCanaryScale",
    "setHeaderRoute",
    "setMirrorRoute",
    "plugin",
)


def step_kind(step: CanaryStep) -> str:
    """The YAML key of the step's action (`setWeight`, `pause`, ...), "" if it has none."""
    if step.set_weight is not None:
        return "setWeight"
    if step.pause is not None:
        return "pause"
    if step.analysis is not None:
        return "analysis"
    if step.experiment is not None:
        return "experiment"
    if step.set_canary_scale is not None:
        return "setCanaryScale"
    if step.set_header_route is not None:
        return "setHeaderRoute"
    if step.set_mirror_route is not None:
        return "setMirrorRoute"
    if step.plugin is not None:
        return "plugin"
    return ""


def step_label(step: CanaryStep) -> str:
    """How Argo prints a step in events (`setWeight: 20`, `pause: 2m`, `analysis`...)."""
    if step.set_weight is not None:
        return f"setWeight: {step.set_weight}"
    if step.pause is not None:
        if step.pause.duration is None:
            return "pause"
        return f"pause: {step.pause.duration}"
    if step.set_canary_scale is not None:
        scale = step.set_canary_scale
        if scale.weight is not None:
            return f"setCanaryScale{{weight: {scale.weight}}}"
        if scale.match_traffic_weight:
            return "setCanaryScale{matchTrafficWeight: true}"
        if scale.replicas is not None:
            return f"setCanaryScale{{replicas: {scale.replicas}}}"
        return "invalid"
    kind = step_kind(step)
    return kind or "invalid"


def pause_seconds(pause: RolloutPause) -> float | None:
    """The pause duration in seconds, None for an indefinite pause (raises on a bad duration)."""
    if pause.duration is None:
        return None
    return parse_duration(pause.duration)


def current_step(steps: Sequence[CanaryStep], index: int | None) -> CanaryStep | None:
    """The step being executed, None when there are no steps or all are done."""
    if index is None or index < 0 or index >= len(steps):
        return None
    return steps[index]


def current_set_weight(steps: Sequence[CanaryStep], index: int | None, *, aborted: bool) -> int:
    """The setWeight in force at `index`: the last setWeight at or before it (0 if none), 100
    once every step is done, 0 when aborted."""
    if aborted:
        return 0
    if current_step(steps, index) is None or index is None:
        return 100
    for i in range(index, -1, -1):
        weight = steps[i].set_weight
        if weight is not None:
            return weight
    return 0


def previous_set_weight(steps: Sequence[CanaryStep], index: int) -> int:
    """The last setWeight strictly before `index` (0 if none): what traffic keeps while the
    canary is still growing towards the current step's size."""
    for i in range(min(index, len(steps)) - 1, -1, -1):
        weight = steps[i].set_weight
        if weight is not None:
            return weight
    return 0


def weight_ladder(steps: Sequence[CanaryStep]) -> tuple[int, ...]:
    """The distinct setWeight values of the plan, lowest first, starting at 0: the rungs an
    aborting dynamicStableScale rollout steps down (reference 1.3)."""
    return tuple(sorted({0, *(step.set_weight for step in steps if step.set_weight is not None)}))


def canary_scale_in_force(steps: Sequence[CanaryStep], index: int | None) -> SetCanaryScale | None:
    """The setCanaryScale that applies at `index` (sticky until `matchTrafficWeight`), if any."""
    if current_step(steps, index) is None or index is None:
        return None
    for i in range(index, -1, -1):
        scale = steps[i].set_canary_scale
        if scale is None:
            continue
        if scale.match_traffic_weight:
            return None
        return scale
    return None


def steps_hash(steps: Sequence[CanaryStep]) -> str:
    """A hash of the step list (`status.currentStepHash`): editing the steps restarts them."""
    canonical = json.dumps(
        [step.to_raw() for step in steps], sort_keys=True, separators=(",", ":"), default=str
    ).encode()
    return safe_encode(str(fnv32a(canonical)))
