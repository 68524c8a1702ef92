"""The entry point of the core: `decide(rollout, observed, now) -> Decision`.

Who calls it: the controller, once per reconcile of a Rollout, with an immutable snapshot of
what it observed and the current time. Pure: it never mutates its inputs, reads no clock and
does no I/O; called again with the same inputs it returns the same status and no new actions.
"""

from __future__ import annotations

from datetime import datetime

from rollwise.api.models import Rollout, RolloutStatus
from rollwise.core.decisions import Decision
from rollwise.core.observed import Observed


def decide(rollout: Rollout, observed: Observed, now: datetime) -> Decision:
    """The new status of `rollout` and the actions that bring the world towards its spec."""
    # First commit: the signature the controller codes against; the engine follows.
    status = rollout.status if rollout.status is not None else RolloutStatus()
    return Decision(status=status, actions=(), requeue_after=None)
