"""What one call of the core decides for one Rollout: its new status and the actions to take.

Who makes it: `rollwise.core.rollouts.decide`. Who consumes it: the controller, which executes the
actions in order, then writes `status` (skipping the write when it equals the stored status),
then requeues the Rollout after `requeue_after` seconds if that is not None: when a timer
runs out (a timed pause, a scale-down deadline, the progress deadline, a weight to verify
again), or 0 when the decision changed something the next decision builds on (actions were
asked for, or the status changed) - router answers and Service selectors are not always seen
by a store watch. A decision that changes nothing and waits on no timer says None.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollwise.api.models import RolloutStatus
from rollwise.core.actions import Action


@dataclass(frozen=True, slots=True)
class Decision:
    status: RolloutStatus
    actions: tuple[Action, ...] = ()
    requeue_after: float | None = None
