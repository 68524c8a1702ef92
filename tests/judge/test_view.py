"""`rollwise get rollout` shows the judge's latest evidence and the time to a decision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollwise.views.judge_info import judge_evidence, judge_lines
from rollwise.views.render import render_rollout

NOW = datetime(2026, 11, 26, 1, 50, 30, tzinfo=UTC)

ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {
        "name": "shop",
        "namespace": "default",
        "creationTimestamp": "2026-11-26T01:40:00Z",
    },
    "spec": {
        "replicas": 2,
        "strategy": {"canary": {"steps": [{"setWeight": 20}, {"analysis": {}}]}},
    },
    "status": {"currentPodHash": "new123", "stableRS": "old456", "currentStepIndex": 1},
}


def judge_run(
    measurement: dict[str, Any], *, hash_: str = "new123", name: str = "shop-new123-2-1"
) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": "2026-11-26T01:50:00Z",
            "labels": {"rollouts-pod-template-hash": hash_},
            "annotations": {"rollout.argoproj.io/revision": "2"},
            "ownerReferences": [{"kind": "Rollout", "name": "shop", "controller": True}],
        },
        "spec": {"metrics": []},
        "status": {
            "phase": "Running",
            "metricResults": [{"name": "judge", "phase": "Running", "measurements": [measurement]}],
        },
    }


RUNNING = {
    "phase": "Running",
    "startedAt": "2026-11-26T01:50:00Z",
    "resumeAt": "2026-11-26T01:50:40Z",
    "value": "continue",
    "metadata": {
        "rollwise.io/judge-state": "{}",
        "rollwise.io/judge-looked-at": "2026-11-26T01:50:20Z",
        "decision": "continue",
        "reason": "canary 0% errors of 300 requests vs baseline 0% of 1,200; evidence 0.2 < 100, "
        "upper bound 1.5% > margin 1%",
        "requestsNeeded": "600",
        "canaryRequestRate": "30/s",
        "expected": "pass",
    },
}


def test_a_running_judgement_shows_its_evidence_and_the_time_to_a_decision() -> None:
    lines = judge_lines(ROLLOUT, [judge_run(RUNNING)], now=NOW)
    assert lines == [
        "Judge:           judge: continue",
        "  Evidence:      canary 0% errors of 300 requests vs baseline 0% of 1,200; evidence 0.2 "
        "< 100, upper bound 1.5% > margin 1%",
        # 600 requests at 30/s = 20 s from the look, 10 s ago.
        "  Decision:      pass expected in ~10s (~600 canary requests at 30/s)",
    ]
    view = render_rollout(ROLLOUT, [], [], [judge_run(RUNNING)], now=NOW, color=False)
    assert "\n".join(lines) in view
    assert view.index("  ActualWeight:") < view.index("Judge:") < view.index("Replicas:")


REGRESSION = (
    "canary 5% errors of 430 requests vs baseline 0% of 1,715; evidence 7.2e+12 ≥ 100 → regression"
)


def test_a_decided_judgement_shows_its_reason_without_an_estimate() -> None:
    failed = {
        "phase": "Failed",
        "value": "fail",
        "message": REGRESSION,
        "metadata": {"rollwise.io/judge-state": "{}", "decision": "fail", "reason": REGRESSION},
    }
    assert judge_lines(ROLLOUT, [judge_run(failed)], now=NOW) == [
        "Judge:           judge: fail",
        "  Evidence:      canary 5% errors of 430 requests vs baseline 0% of 1,715; evidence "
        "7.2e+12 ≥ 100 → regression",
    ]


def test_without_an_estimate_the_decision_is_not_in_sight() -> None:
    undecided = {**RUNNING, "metadata": {**RUNNING["metadata"], "requestsNeeded": None}}
    undecided["metadata"].pop("requestsNeeded")
    assert judge_lines(ROLLOUT, [judge_run(undecided)], now=NOW)[-1] == (
        "  Decision:      none in sight at the current rates"
    )


def test_only_the_current_revisions_judge_counts_and_other_metrics_are_not_judges() -> None:
    old = judge_run(RUNNING, hash_="old456", name="shop-old456-1-1")
    plain = judge_run({"phase": "Successful", "value": "0.99", "metadata": {"requests": "20"}})
    assert judge_evidence(ROLLOUT, [old], now=NOW) == []
    assert judge_evidence(ROLLOUT, [plain], now=NOW) == []
    assert judge_lines(ROLLOUT, [], now=NOW) == []
