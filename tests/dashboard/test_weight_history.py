"""The weight chart's points, from a rollout's events: traffic-routed canaries record every
weight change; a basic canary's weight is read from its completed setWeight steps."""

from __future__ import annotations

from typing import Any

import pytest

from rollwise.dashboard.payloads import weight_history


def event(reason: str, message: str, at: str) -> dict[str, Any]:
    return {"reason": reason, "message": message, "lastTimestamp": f"2026-11-26T00:00:{at}Z"}


STEP = "RolloutStepCompleted"
ROUTED = "TrafficWeightUpdated"


@pytest.mark.parametrize(
    ("events", "weights"),
    [
        pytest.param([], [], id="no events"),
        pytest.param(
            [
                event(ROUTED, "Traffic weight updated from 0 to 20", "01"),
                event(STEP, "Rollout step 1/4 completed (setWeight: 20)", "02"),
                event(ROUTED, "Traffic weight updated from 20 to 50", "03"),
            ],
            [20, 50],
            id="traffic-routed: its weight events only",
        ),
        pytest.param(
            [
                event("RolloutCompleted", "Rollout completed update to revision 1", "00"),
                event(STEP, "Rollout step 1/8 completed (setWeight: 20)", "01"),
                event(STEP, "Rollout step 2/8 completed (pause: 2m)", "02"),
                event(STEP, "Rollout step 3/8 completed (setWeight: 40)", "03"),
                event("RolloutCompleted", "Rollout completed update to revision 2", "04"),
            ],
            [20, 40, 100],
            id="basic canary: setWeight steps, then 100 when it completes",
        ),
        pytest.param(
            [
                event(STEP, "Rollout step 1/8 completed (setWeight: 20)", "01"),
                event("RolloutAborted", "Rollout aborted update to revision 2", "02"),
            ],
            [20, 0],
            id="basic canary: 0 on an abort",
        ),
    ],
)
def test_weight_history(events: list[dict[str, Any]], weights: list[int]) -> None:
    assert [point["weight"] for point in weight_history(events)] == weights
