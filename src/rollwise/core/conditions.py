"""Rollout conditions (reference section 1.11) and the reasons/messages Argo writes in them.

Who calls it: the canary engine, to keep `status.conditions` as Argo does; tools that read our
objects (Argo CD health checks, `kubectl argo rollouts get`) look at these exact strings.
Conditions are handled as raw dicts (camelCase), the shape the status is written in.
"""

from __future__ import annotations

from typing import Any

RawCondition = dict[str, Any]

# Types.
PROGRESSING = "Progressing"
PAUSED = "Paused"
AVAILABLE = "Available"
HEALTHY = "Healthy"
COMPLETED = "Completed"
INVALID_SPEC = "InvalidSpec"

# Progressing reasons.
REPLICA_SET_UPDATED = "ReplicaSetUpdated"
NEW_REPLICA_SET_CREATED = "NewReplicaSetCreated"
FOUND_NEW_REPLICA_SET = "FoundNewReplicaSet"
NEW_REPLICA_SET_AVAILABLE = "NewReplicaSetAvailable"
REPLICA_SET_NOT_AVAILABLE = "ReplicaSetNotAvailable"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
ROLLOUT_PAUSED = "RolloutPaused"
ROLLOUT_RESUMED = "RolloutResumed"
ROLLOUT_ABORTED = "RolloutAborted"
ROLLOUT_RETRY = "RolloutRetry"

# Other reasons.
AVAILABLE_REASON = "AvailableReason"
ROLLOUT_HEALTHY = "RolloutHealthy"
ROLLOUT_COMPLETED = "RolloutCompleted"

# Messages (the %-style ones are format strings, as in Argo).
AVAILABLE_MESSAGE = "Rollout has minimum availability"
NOT_AVAILABLE_MESSAGE = "Rollout does not have minimum availability"
HEALTHY_MESSAGE = "Rollout is healthy"
NOT_HEALTHY_MESSAGE = "Rollout is not healthy"
PAUSED_MESSAGE = "Rollout is paused"
RESUMED_MESSAGE = "Rollout is resumed"
RETRY_MESSAGE = "Retrying Rollout after abort"
NEW_REPLICA_SET_MESSAGE = 'Created new replica set "{}"'
REPLICA_SET_PROGRESSING_MESSAGE = 'ReplicaSet "{}" is progressing.'
ROLLOUT_PROGRESSING_MESSAGE = 'Rollout "{}" is progressing.'
REPLICA_SET_COMPLETED_MESSAGE = 'ReplicaSet "{}" has successfully progressed.'
REPLICA_SET_TIMED_OUT_MESSAGE = 'ReplicaSet "{}" has timed out progressing.'
ROLLOUT_TIMED_OUT_MESSAGE = 'Rollout "{}" has timed out progressing.'
ROLLOUT_ABORTED_MESSAGE = "Rollout aborted update to revision {}"


def find_condition(conditions: list[RawCondition], type_: str) -> RawCondition | None:
    for condition in conditions:
        if condition.get("type") == type_:
            return condition
    return None


def remove_condition(conditions: list[RawCondition], type_: str) -> bool:
    """Drop the condition of `type_`; True if there was one."""
    before = len(conditions)
    conditions[:] = [c for c in conditions if c.get("type") != type_]
    return len(conditions) != before


def set_condition(
    conditions: list[RawCondition],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: str,
) -> bool:
    """Argo's SetRolloutCondition: nothing changes when status and reason are the same (even if
    the message differs); lastTransitionTime is kept when only the reason changes. The updated
    condition moves to the end of the list. True if the list changed."""
    current = find_condition(conditions, type_)
    if current is not None and current.get("status") == status and current.get("reason") == reason:
        return False
    transition = now
    if current is not None and current.get("status") == status:
        transition = current.get("lastTransitionTime") or now
    remove_condition(conditions, type_)
    conditions.append(
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastUpdateTime": now,
            "lastTransitionTime": transition,
        }
    )
    return True


def refresh_progressing(
    conditions: list[RawCondition], *, reason: str, message: str, now: str
) -> None:
    """Record progress: Progressing True with a fresh lastUpdateTime even when the reason is the
    same - the progress deadline counts from the last progress."""
    current = find_condition(conditions, PROGRESSING)
    transition = now
    if current is not None and current.get("status") == "True":
        transition = current.get("lastTransitionTime") or now
    remove_condition(conditions, PROGRESSING)
    conditions.append(
        {
            "type": PROGRESSING,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastUpdateTime": now,
            "lastTransitionTime": transition,
        }
    )
