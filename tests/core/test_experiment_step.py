"""The canary `experiment` step (reference 1.5, 2.11, 4.1), driven from tables with time passed in:
the Experiment a step creates, what each of its phases does to the Rollout (complete, abort,
pause, retry), termination when the step is left, weighted experiment traffic, history."""

from __future__ import annotations

from typing import Any

import pytest
from tests.core.canary_world import (
    T0,
    World,
    basic_rollout,
    deployed,
    rollout_from,
    routed_rollout,
)

from rollwise.core import actions as act
from rollwise.core.experiments_steps import experiment_name
from rollwise.core.observed import Observed
from rollwise.core.rollouts import decide

Raw = dict[str, Any]

BASELINE_VS_CANARY: Raw = {
    "experiment": {
        "duration": "1m",
        "templates": [
            {"name": "baseline", "specRef": "stable", "replicas": 2},
            {"name": "canary", "specRef": "canary", "replicas": 2},
        ],
        "analyses": [
            {
                "name": "compare",
                "templateName": "compare-baseline",
                "requiredForCompletion": True,
                "args": [
                    {"name": "baseline-hash", "value": "{{templates.baseline.podTemplateHash}}"},
                    {"name": "canary-hash", "value": "{{templates.canary.podTemplateHash}}"},
                    {"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}},
                    {"name": "latest", "valueFrom": {"podTemplateHashValue": "Latest"}},
                    {"name": "app", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
            }
        ],
    }
}
STEPS: list[Raw] = [{"setWeight": 20}, BASELINE_VS_CANARY, {"setWeight": 60}]


def at_experiment(raw: Raw | None = None, **world: Any) -> tuple[World, str]:
    """A rollout updated to yellow that reached its experiment step (index 1)."""
    w = deployed(raw or basic_rollout(STEPS), **world)
    w.set_image("argoproj/rollouts-demo:yellow")
    w.settle()
    assert w.status["currentStepIndex"] == 1
    (name,) = w.experiments
    return w, name


def test_the_step_creates_the_experiment_as_argo_names_and_shapes_it() -> None:
    w, name = at_experiment()
    pod_hash = w.status["currentPodHash"]
    stable_hash = w.status["stableRS"]
    assert name == experiment_name("myapp", pod_hash, 2, 1) == f"myapp-{pod_hash}-2-1"
    assert w.status["canary"]["currentExperiment"] == name
    assert w.messages("ExperimentCreated") == [f"Created Experiment '{name}'"]
    experiment = w.experiments[name]
    assert experiment["metadata"]["labels"] == {"rollouts-pod-template-hash": pod_hash}
    assert experiment["metadata"]["annotations"] == {"rollout.argoproj.io/revision": "2"}
    spec = experiment["spec"]
    baseline, canary = spec["templates"]
    images = [t["template"]["spec"]["containers"][0]["image"] for t in (baseline, canary)]
    assert images == ["argoproj/rollouts-demo:blue", "argoproj/rollouts-demo:yellow"]
    assert (baseline["replicas"], canary["replicas"]) == (2, 2)
    assert baseline["selector"]["matchLabels"] == {
        "app": "myapp",
        "rollouts-pod-template-hash": stable_hash,
    }
    assert spec["duration"] == "1m"
    (analysis,) = spec["analyses"]
    assert analysis["requiredForCompletion"] is True
    # The Rollout resolves its own args; the Experiment resolves `{{templates...}}` later.
    assert analysis["args"] == [
        {"name": "baseline-hash", "value": "{{templates.baseline.podTemplateHash}}"},
        {"name": "canary-hash", "value": "{{templates.canary.podTemplateHash}}"},
        {"name": "stable", "value": stable_hash},
        {"name": "latest", "value": pod_hash},
        {"name": "app", "value": "myapp"},
    ]


def test_metadata_and_selector_of_a_step_template_go_into_the_experiment() -> None:
    step = {
        "experiment": {
            "templates": [
                {
                    "name": "preview",
                    "specRef": "canary",
                    "metadata": {"labels": {"role": "preview"}, "annotations": {"a": "b"}},
                    "service": {"name": "preview"},
                }
            ]
        }
    }
    raw = basic_rollout([step])
    raw["spec"]["minReadySeconds"] = 3
    w = deployed(raw)
    w.set_image("argoproj/rollouts-demo:yellow")
    w.settle()
    (template,) = next(iter(w.experiments.values()))["spec"]["templates"]
    assert template["selector"]["matchLabels"]["role"] == "preview"
    assert template["template"]["metadata"]["labels"]["role"] == "preview"
    assert template["template"]["metadata"]["annotations"] == {"a": "b"}
    assert template["service"] == {"name": "preview"}
    assert template["minReadySeconds"] == 3
    assert "replicas" not in template  # the Experiment's default (1) applies


def test_the_step_waits_while_the_experiment_runs_and_completes_when_it_succeeds() -> None:
    w, name = at_experiment()
    for phase in ("Pending", "Running"):
        w.set_experiment_phase(name, phase)
        w.advance(30)
        w.settle()
        assert w.status["currentStepIndex"] == 1
        assert w.status["canary"]["currentExperiment"] == name
    w.set_experiment_phase(name, "Successful")
    w.settle()
    assert w.status["currentStepIndex"] == 3
    assert w.status["phase"] == "Healthy"
    assert "currentExperiment" not in w.status["canary"]
    assert not w.experiments[name]["spec"].get("terminate")
    assert "Rollout step 2/3 completed (experiment)" in w.messages("RolloutStepCompleted")


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_a_failed_or_errored_experiment_aborts_the_update_with_its_message(phase: str) -> None:
    w, name = at_experiment()
    w.set_experiment_phase(name, phase, 'Metric "error-rate" assessed Failed')
    w.settle()
    assert w.status["abort"] is True
    assert w.status["phase"] == "Degraded"
    assert w.status["message"] == (
        'RolloutAborted: Rollout aborted update to revision 2: Metric "error-rate" assessed Failed'
    )
    assert w.sizes() == {"blue": 5}
    assert "currentExperiment" not in w.status["canary"]


def test_an_inconclusive_experiment_pauses_and_promote_runs_the_step_again() -> None:
    w, name = at_experiment()
    w.set_experiment_phase(name, "Inconclusive", "no data")
    w.settle()
    assert [p["reason"] for p in w.status["pauseConditions"]] == ["InconclusiveExperiment"]
    assert w.status["phase"] == "Paused"
    assert w.status["message"] == "InconclusiveExperiment"
    assert list(w.experiments) == [name]  # nothing new while paused
    # `rollwise promote` clears the pause conditions: the step runs again, a new Experiment.
    w.patch_status(pauseConditions=None)
    w.settle()
    assert list(w.experiments) == [name, f"{name}-1"]
    assert w.status["canary"]["currentExperiment"] == f"{name}-1"
    assert w.status["currentStepIndex"] == 1
    assert "pauseConditions" not in w.status


def test_skipping_the_step_terminates_the_experiment() -> None:
    w, name = at_experiment()
    w.set_experiment_phase(name, "Running")
    w.patch_status(currentStepIndex=2)  # `rollwise promote` while not paused
    w.settle()
    assert w.experiments[name]["spec"]["terminate"] is True
    assert "currentExperiment" not in w.status["canary"]


@pytest.mark.parametrize(
    "request_",
    [{"abort": True}, {"promoteFull": True}],
    ids=["abort", "promote-full"],
)
def test_abort_and_full_promotion_terminate_the_experiment(request_: Raw) -> None:
    w, name = at_experiment()
    w.set_experiment_phase(name, "Running")
    w.patch_status(**request_)
    w.settle()
    assert w.experiments[name]["spec"]["terminate"] is True
    assert "currentExperiment" not in w.status["canary"]


def test_retry_after_an_abort_creates_a_fresh_experiment() -> None:
    w, name = at_experiment()
    w.set_experiment_phase(name, "Failed", "bad")
    w.settle()
    w.patch_status(abort=False)
    w.settle()
    assert list(w.experiments) == [name, f"{name}-1"]
    assert w.status["canary"]["currentExperiment"] == f"{name}-1"


def test_a_new_revision_terminates_the_experiment_of_the_old_one() -> None:
    w, name = at_experiment()
    w.set_experiment_phase(name, "Running")
    w.set_image("argoproj/rollouts-demo:green")
    w.settle()
    assert w.experiments[name]["spec"]["terminate"] is True
    current = w.status["canary"].get("currentExperiment")
    assert current is None or current != name


def test_a_lost_status_write_adopts_the_experiment_instead_of_making_another() -> None:
    w, name = at_experiment()
    w.set_experiment_phase(name, "Running")
    w.patch_status(canary={})  # the status that named it was never written
    w.settle()
    assert list(w.experiments) == [name]
    assert w.status["canary"]["currentExperiment"] == name


def test_an_experiment_step_does_nothing_on_the_first_deploy() -> None:
    w = deployed(basic_rollout([BASELINE_VS_CANARY]))
    assert w.experiments == {}
    assert w.status["phase"] == "Healthy"


# --- weighted experiment traffic (reference 4.1) ------------------------------------------------


def weighted(router: Raw | None = None) -> Raw:
    step = {
        "experiment": {
            "templates": [
                {"name": "baseline", "specRef": "stable", "weight": 10},
                {"name": "canary", "specRef": "canary", "weight": 10},
                {"name": "plain", "specRef": "canary"},
            ]
        }
    }
    raw = routed_rollout([{"setWeight": 20}, step, {"setWeight": 60}])
    raw["spec"]["strategy"]["canary"]["trafficRouting"] = router or {"smi": {}}
    return raw


def test_a_running_weighted_experiment_gets_its_share_of_the_traffic() -> None:
    w, name = at_experiment(weighted())
    assert w.additional == ()  # not Running yet
    w.set_experiment_phase(
        name,
        "Running",
        services={"baseline": "svc-baseline", "canary": "svc-canary", "plain": "svc-plain"},
    )
    w.settle()
    additional = [(d.service_name, d.pod_template_hash, d.weight) for d in w.additional]
    assert additional == [("svc-baseline", "h-baseline", 10), ("svc-canary", "h-canary", 10)]
    weights = w.status["canary"]["weights"]
    assert weights["canary"]["weight"] == 20
    assert weights["stable"]["weight"] == 60  # 100 - 20 - 10 - 10
    assert weights["additional"] == [
        {"weight": 10, "serviceName": "svc-baseline", "podTemplateHash": "h-baseline"},
        {"weight": 10, "serviceName": "svc-canary", "podTemplateHash": "h-canary"},
    ]
    verify = [a for a in w.log if isinstance(a, act.VerifyWeight)][-1]
    assert verify.additional == w.additional
    # Done: the experiment's share goes back.
    w.set_experiment_phase(name, "Successful")
    w.settle()
    assert w.additional == ()
    assert "additional" not in w.status["canary"]["weights"]
    assert w.status["phase"] == "Healthy"
    assert w.status["canary"]["weights"]["stable"]["weight"] == 100
    sets = [a.additional for a in w.log if isinstance(a, act.SetWeight)]
    assert sets[-1] == ()


def test_an_aborted_weighted_experiment_gives_its_traffic_back_at_once() -> None:
    w, name = at_experiment(weighted())
    w.set_experiment_phase(name, "Running", services={"baseline": "b", "canary": "c"})
    w.settle()
    assert len(w.additional) == 2
    w.patch_status(abort=True)
    w.settle()
    assert w.additional == ()
    assert w.status["canary"]["weights"]["stable"]["weight"] == 100


@pytest.mark.parametrize(
    ("router", "message"),
    [
        (
            {"traefik": {"weightedTraefikServiceName": "myapp"}},
            "Experiment template weight is only available for TrafficRouting with SMI, ALB, "
            "and Istio at this time",
        ),
        (None, "Experiment template weight cannot be set unless TrafficRouting is enabled"),
    ],
    ids=["traefik", "no-routing"],
)
def test_a_weight_needs_a_router_that_supports_it(router: Raw | None, message: str) -> None:
    raw = weighted(router)
    if router is None:
        del raw["spec"]["strategy"]["canary"]["trafficRouting"]
    services = {"myapp-canary": None, "myapp-stable": None}
    status = decide(rollout_from(raw), Observed(service_selectors=services), T0).status.to_raw()
    assert status["phase"] == "Degraded"
    where = "spec.strategy.canary.steps[1].experiment.templates[0].weight: Invalid value: 10"
    assert status["message"] == f"InvalidSpec: {where}: {message}"


def test_a_missing_analysis_template_is_an_invalid_spec() -> None:
    w = deployed(basic_rollout(STEPS), missing_templates=("compare-baseline",))
    assert w.status["phase"] == "Degraded"
    assert w.status["message"] == (
        "InvalidSpec: spec.strategy.canary.steps[1].experiment.analyses[0].templateName: "
        'AnalysisTemplate "compare-baseline" not found'
    )


# --- history ------------------------------------------------------------------------------------


def test_finished_experiments_beyond_the_history_limit_are_deleted() -> None:
    raw = basic_rollout([BASELINE_VS_CANARY])
    raw["spec"]["analysis"] = {"successfulRunHistoryLimit": 1}
    w = deployed(raw)
    names = []
    for color in ("yellow", "green", "purple"):
        w.set_image(f"argoproj/rollouts-demo:{color}")
        w.advance(10)
        w.settle()
        (name,) = [n for n in w.experiments if n not in names]
        names.append(name)
        w.set_experiment_phase(name, "Successful")
        w.advance(10)
        w.settle()
        assert w.status["phase"] == "Healthy"
    # Kept: the newest successful one (its revision's ReplicaSet is still there).
    assert list(w.experiments) == [names[-1]]
    deleted = [a.name for a in w.log if isinstance(a, act.DeleteExperiment)]
    assert sorted(deleted) == sorted(names[:2])


def test_a_successful_experiment_under_a_manual_pause_completes_the_step_once_resumed() -> None:
    w, name = at_experiment()
    w.edit(lambda raw: raw["spec"].update(paused=True))
    w.set_experiment_phase(name, "Successful")
    w.settle()
    assert w.status["currentStepIndex"] == 1  # manually paused: the step waits
    assert w.status["canary"]["currentExperiment"] == name
    w.edit(lambda raw: raw["spec"].update(paused=False))
    w.settle()
    assert w.status["currentStepIndex"] == 3
    assert list(w.experiments) == [name]  # the same Experiment, not a new one
