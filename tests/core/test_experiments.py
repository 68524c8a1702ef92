"""The Experiment state machine (reference 1.13), driven from tables with time passed in: the
phase and template tables, the completion rules (including Argo's quirks), templates, Services,
scale-down delays, analysis runs and their `{{templates...}}` variables, and invalid specs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.core.experiment_world import T0, ExperimentWorld, experiment, running, template

from rollwise.api.errors import IllegalTransitionError
from rollwise.core import actions as act
from rollwise.core.experiments import (
    EXPERIMENT_TRANSITIONS,
    TEMPLATE_TRANSITIONS,
    experiment_spec_problem,
    resolve_value,
    template_hash,
)
from rollwise.core.experiments_state import advance_phase, advance_template
from rollwise.core.hashing import pod_template_hash
from rollwise.core.timestamps import format_time

ANALYSIS = {"name": "a", "templateName": "check"}
REQUIRED = {"name": "r", "templateName": "check", "requiredForCompletion": True}


def world(**spec: Any) -> ExperimentWorld:
    return ExperimentWorld(experiment(**spec), templates={(False, "check")})


# --- the tables ----------------------------------------------------------------------------------

PHASES = ["", "Pending", "Running", "Successful", "Failed", "Error", "Inconclusive"]


@pytest.mark.parametrize("current", PHASES)
@pytest.mark.parametrize("new", PHASES[1:])
def test_every_phase_move_is_in_the_table_or_refused(current: str, new: str) -> None:
    allowed = new in EXPERIMENT_TRANSITIONS[current]
    if allowed:
        assert advance_phase(current, new) == new
    else:
        with pytest.raises(IllegalTransitionError):
            advance_phase(current, new)
    # Finished Experiments never change; nothing returns to "".
    finished = current in ("Successful", "Failed", "Error", "Inconclusive")
    assert allowed == ((not finished and (current != "" or new == "Pending")) or new == current)


TEMPLATE_STATUSES = ["", "Progressing", "Running", "Successful", "Failed", "Error"]


@pytest.mark.parametrize("current", TEMPLATE_STATUSES)
@pytest.mark.parametrize("new", TEMPLATE_STATUSES[1:])
def test_every_template_move_is_in_the_table_or_refused(current: str, new: str) -> None:
    completed = current in ("Successful", "Failed", "Error")
    if completed and new != current:
        with pytest.raises(IllegalTransitionError):
            advance_template(current, new)
    else:
        assert new in TEMPLATE_TRANSITIONS[current]
        assert advance_template(current, new) == new


# --- a whole Experiment --------------------------------------------------------------------------


def test_templates_run_for_the_duration_then_scale_down_after_the_delay() -> None:
    w = world(duration="60s")
    first = w.reconcile()
    assert w.phase == "Pending"
    created = [a for a in first.actions if isinstance(a, act.CreateExperimentReplicaSet)]
    assert [(a.name, a.replicas) for a in created] == [("demo-purple", 0), ("demo-orange", 0)]
    running(w)
    assert w.sizes() == {"demo-purple": 1, "demo-orange": 1}
    assert w.status["availableAt"] == format_time(T0)
    assert [t["status"] for t in w.status["templateStatuses"]] == ["Running", "Running"]
    condition = w.status["conditions"][0]
    assert (condition["reason"], condition["message"]) == (
        "NewReplicaSetAvailable",
        'Experiment "demo" is running.',
    )
    assert w.decide().requeue_after == pytest.approx(60.5)  # just after the duration

    w.advance(60)  # exactly the duration: not passed yet
    w.settle()
    assert w.phase == "Running"
    w.advance(1)
    w.settle()
    assert w.phase == "Successful"
    assert [t["status"] for t in w.status["templateStatuses"]] == ["Successful", "Successful"]
    assert w.status["conditions"][0]["reason"] == "ExperimentCompleted"
    # Pods stay for scaleDownDelaySeconds (30) behind a deadline, then go.
    assert w.sizes() == {"demo-purple": 1, "demo-orange": 1}
    deadline = w.replica_sets["demo-purple"]["metadata"]["annotations"]["scale-down-deadline"]
    assert deadline == format_time(T0 + timedelta(seconds=61 + 30))
    assert w.decide().requeue_after == pytest.approx(30)
    w.advance(31)
    w.settle()
    assert w.sizes() == {"demo-purple": 0, "demo-orange": 0}
    assert "ScalingReplicaSet" in w.reasons()


def test_a_settled_experiment_asks_for_nothing() -> None:
    w = running(world(duration="1m", analyses=[ANALYSIS]))
    w.set_run("a", "Running")
    w.settle()
    decision = w.decide()
    assert decision.actions == ()
    assert decision.status == w.experiment.status


def test_scale_down_delay_zero_scales_down_at_once() -> None:
    w = running(world(duration="10s", scaleDownDelaySeconds=0))
    w.advance(11)
    w.settle()
    assert w.phase == "Successful"
    assert w.sizes() == {"demo-purple": 0, "demo-orange": 0}


def test_replica_set_has_its_own_hash_name_selector_and_template() -> None:
    w = world(templates=[template("purple", replicas=2, minReadySeconds=5)])
    create = next(a for a in w.reconcile().actions if isinstance(a, act.CreateExperimentReplicaSet))
    pod_template = template("purple")["template"]
    assert create.name == "demo-purple"
    assert create.pod_template_hash == template_hash(pod_template)
    # Argo hashes experiment templates differently from Rollout templates (their metrics differ).
    assert create.pod_template_hash != pod_template_hash(pod_template)
    assert create.selector == {
        "matchLabels": {
            "app": "demo",
            "color": "purple",
            "rollouts-pod-template-hash": create.pod_template_hash,
        }
    }
    assert create.template["metadata"]["labels"]["rollouts-pod-template-hash"] == (
        create.pod_template_hash
    )
    assert create.min_ready_seconds == 5
    w.settle()
    assert w.sizes() == {"demo-purple": 2}


def test_template_hash_ignores_the_rollouts_hash_label() -> None:
    plain = template("purple")["template"]
    labelled = {
        **plain,
        "metadata": {"labels": {**plain["metadata"]["labels"], "rollouts-pod-template-hash": "x"}},
    }
    assert template_hash(labelled) == template_hash(plain)
    assert template_hash(plain, 1) != template_hash(plain)


def test_a_template_that_never_becomes_available_fails_at_its_deadline() -> None:
    w = world(progressDeadlineSeconds=30)
    w.pods_come_up = False
    w.settle()
    assert w.phase == "Pending"
    assert w.template_status("purple")["status"] == "Progressing"
    w.advance(30)
    w.settle()
    assert w.phase == "Pending"
    w.advance(2)
    w.settle()
    assert w.phase == "Failed"
    message = "Template 'purple' exceeded its progressDeadlineSeconds (30)"
    assert w.status["message"] == message
    assert w.template_status("purple")["status"] == "Failed"
    warning = next(e for e in w.events if e.reason == "TemplateFailed")
    assert warning.type == "Warning"
    assert warning.message.endswith(message)


def test_service_per_template_with_its_hash_then_removed_with_the_pods() -> None:
    w = world(
        duration="5s",
        scaleDownDelaySeconds=0,
        templates=[template("purple", service={}), template("orange", service={"name": "orange"})],
    )
    running(w)
    assert set(w.services) == {"demo-purple", "orange"}
    purple = w.template_status("purple")
    assert purple["serviceName"] == "demo-purple"
    rs_hash = w.replica_sets["demo-purple"]["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert purple["podTemplateHash"] == rs_hash
    service = w.services["demo-purple"]
    assert service["spec"]["selector"] == {"rollouts-pod-template-hash": rs_hash}
    assert service["spec"]["ports"] == [
        {"port": 8080, "targetPort": 8080, "protocol": "TCP", "name": "http"}
    ]
    assert service["metadata"]["annotations"] == {
        "experiment.argoproj.io/name": "demo",
        "experiment.argoproj.io/template-name": "purple",
    }
    w.advance(6)
    w.settle()
    assert w.phase == "Successful"
    assert w.services == {}
    assert "serviceName" not in w.template_status("purple")


# --- the completion rules (reference 1.13) -------------------------------------------------------

# (spec, what happens to the runs once running, seconds later, expected phase, message)
COMPLETION = [
    pytest.param({"duration": "60s"}, {}, 61, "Successful", "", id="duration, no analyses"),
    pytest.param(
        {"duration": "60s", "analyses": [ANALYSIS]},
        {"a": "Running"},
        61,
        "Successful",
        "",
        id="duration passed, a run still going: Successful (the run is terminated)",
    ),
    pytest.param(
        {"duration": "60s", "analyses": [REQUIRED]},
        {"r": "Running"},
        61,
        "Running",
        "",
        id="duration passed, a required run still going: held",
    ),
    pytest.param(
        {"duration": "60s", "analyses": [REQUIRED]},
        {"r": "Successful"},
        5,
        "Successful",
        "Required AnalysisRuns completed",
        id="required runs succeed before the duration: concludes early (#4161)",
    ),
    pytest.param(
        {"duration": "60s", "analyses": [ANALYSIS]},
        {"a": ("Failed", 'Metric "m" assessed Failed due to failed (1) > failureLimit (0)')},
        5,
        "Failed",
        'Metric "m" assessed Failed due to failed (1) > failureLimit (0)',
        id="a failed run ends it early",
    ),
    pytest.param(
        {"analyses": [ANALYSIS]},
        {"a": ("Inconclusive", "inconclusive")},
        5,
        "Inconclusive",
        "inconclusive",
        id="an inconclusive run ends it early",
    ),
    pytest.param(
        {"analyses": [ANALYSIS]},
        {"a": ("Error", "unreachable")},
        5,
        "Error",
        "unreachable",
        id="an errored run ends it early",
    ),
    pytest.param(
        {"analyses": [ANALYSIS]},
        {"a": "Successful"},
        3600,
        "Running",
        "",
        id="no duration, nothing required: runs until terminated",
    ),
    pytest.param(
        {"duration": "60s", "analyses": [ANALYSIS]},
        {"a": "Successful"},
        5,
        "Running",
        "",
        id="a non-required run succeeding early does not end it",
    ),
    pytest.param(
        {"analyses": [REQUIRED, ANALYSIS]},
        {"r": "Successful", "a": "Running"},
        5,
        "Successful",
        "Required AnalysisRuns completed",
        id="required done, another still going: Successful once it is terminated",
    ),
]


@pytest.mark.parametrize(("spec", "runs", "later", "phase", "message"), COMPLETION)
def test_completion_rules(
    spec: dict[str, Any], runs: dict[str, Any], later: int, phase: str, message: str
) -> None:
    w = running(world(**spec))
    for name, outcome in runs.items():
        run_phase, run_message = outcome if isinstance(outcome, tuple) else (outcome, "")
        w.set_run(name, run_phase, run_message)
    w.advance(later)
    w.settle()
    assert w.phase == phase
    assert w.status.get("message", "") == message
    if phase in ("Successful", "Failed", "Error", "Inconclusive"):
        # Finished: every run still going was terminated.
        assert all(
            run["spec"].get("terminate") or run["status"].get("phase") != "Running"
            for run in w.runs.values()
        )


def test_terminating_a_running_experiment_ends_it_successful() -> None:
    w = running(world(analyses=[ANALYSIS]))
    w.set_run("a", "Running")
    w.edit(terminate=True)
    w.settle()
    assert w.phase == "Successful"
    assert w.runs["demo-a"]["spec"]["terminate"] is True
    assert "AnalysisRunTerminating" in w.reasons()


def test_a_failed_experiment_keeps_its_phase_when_its_runs_change_later() -> None:
    w = running(world(analyses=[ANALYSIS]))
    w.set_run("a", "Failed", "bad")
    w.settle()
    w.set_run("a", "Successful")
    w.advance(60)
    w.settle()
    assert (w.phase, w.status["message"]) == ("Failed", "bad")


def test_templates_progressing_again_make_a_running_experiment_pending() -> None:
    w = running(world())
    w.replica_sets["demo-purple"]["status"]["availableReplicas"] = 0
    w.reconcile()
    assert w.phase == "Pending"
    assert w.template_status("purple")["status"] == "Progressing"


# --- analyses ----------------------------------------------------------------------------------


def test_runs_start_once_available_with_the_experiments_variables() -> None:
    args = [
        {"name": "baseline-hash", "value": "{{templates.purple.podTemplateHash}}"},
        {"name": "canary-rs", "value": "{{ templates.orange.replicaset.name }}"},
        {"name": "since", "value": "{{experiment.availableAt}}"},
        {"name": "until", "value": "{{experiment.finishedAt}}"},
        {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    analysis = {**ANALYSIS, "args": args}
    w = world(duration="10m", analyses=[analysis], analysisRunMetadata={"labels": {"team": "x"}})
    w.settle()
    run = w.runs["demo-a"]
    purple_hash = w.replica_sets["demo-purple"]["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert run["spec"]["args"] == [
        {"name": "baseline-hash", "value": purple_hash},
        {"name": "canary-rs", "value": "demo-orange"},
        {"name": "since", "value": "2026-11-26T03:00:00Z"},
        {"name": "until", "value": "2026-11-26T03:10:00Z"},
        {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    assert run["metadata"]["labels"] == {"team": "x"}
    assert w.run_status("a") == {"name": "a", "analysisRun": "demo-a", "phase": "Pending"}
    w.set_run("a", "Running")
    w.reconcile()
    assert w.run_status("a")["phase"] == "Running"
    assert w.events[-1].message == "AnalysisRun 'a' transitioned from Pending -> Running"


def test_no_run_before_the_templates_are_available() -> None:
    w = world(analyses=[ANALYSIS])
    w.pods_come_up = False
    w.settle()
    assert w.runs == {}
    assert w.status["analysisRuns"] == [{"name": "a"}]


def test_an_unknown_variable_is_an_error_with_argos_message() -> None:
    analysis = {**ANALYSIS, "args": [{"name": "h", "value": "{{templates.nope.podTemplateHash}}"}]}
    w = world(analyses=[analysis])
    w.settle()
    assert w.phase == "Error"
    assert w.status["message"] == (
        "Failed to create AnalysisRun for analysis 'a': "
        "failed to resolve {{templates.nope.podTemplateHash}}"
    )
    assert w.runs == {}
    assert w.sizes() == {"demo-purple": 1, "demo-orange": 1}  # until the scale-down delay


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        (
            False,
            "AnalysisTemplate verification failed for analysis 'a': "
            'analysistemplate.argoproj.io "missing" not found',
        ),
        (
            True,
            "ClusterAnalysisTemplate verification failed for analysis 'a': "
            'clusteranalysistemplate.argoproj.io "missing" not found',
        ),
    ],
)
def test_a_missing_template_errors_the_experiment_before_it_runs(
    cluster: bool, message: str
) -> None:
    analysis = {"name": "a", "templateName": "missing", "clusterScope": cluster}
    w = world(analyses=[analysis])
    w.settle()
    assert (w.phase, w.status["message"]) == ("Error", message)


@pytest.mark.parametrize(
    ("text", "variables", "result"),
    [
        ("{{a}}-{{ b }}", {"a": "1", "b": "2"}, "1-2"),
        ("plain", {}, "plain"),
        ("{{a}}", {}, ValueError("failed to resolve {{a}}")),
        ("{{a", {"a": "1"}, ValueError('cannot find end tag="}}"')),
    ],
)
def test_resolve_value(text: str, variables: dict[str, str], result: str | ValueError) -> None:
    if isinstance(result, ValueError):
        with pytest.raises(ValueError, match=str(result).replace("{", r"\{").replace("}", r"\}")):
            resolve_value(text, variables)
    else:
        assert resolve_value(text, variables) == result


# --- invalid specs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("templates", "spec", "message"),
    [
        (
            [template("purple"), template("purple")],
            {},
            "Experiment demo has repeated template name 'purple' in templates",
        ),
        (
            [{**template("purple"), "selector": None}],
            {},
            "Rollout has missing field '.Spec.Templates[0].Selector'",
        ),
        (
            [{**template("purple"), "selector": {}}],
            {},
            "This experiment is selecting all pods at index 0. A non-empty selector is required.",
        ),
        (
            [template("purple", minReadySeconds=700)],
            {},
            "MinReadySeconds cannot be longer than ProgressDeadlineSeconds. Check template index 0",
        ),
        ([template("purple")], {"duration": "soon"}, "spec.duration: invalid duration 'soon'"),
    ],
)
def test_invalid_specs_get_an_invalid_spec_condition_and_nothing_else(
    templates: list[dict[str, Any]], spec: dict[str, Any], message: str
) -> None:
    exp = experiment(templates=templates, **spec)
    problem = experiment_spec_problem(exp)
    assert problem is not None
    assert problem.startswith(message)
    w = ExperimentWorld(exp)
    decision = w.reconcile()
    assert [a.reason for a in decision.actions if isinstance(a, act.EmitEvent)] == ["InvalidSpec"]
    assert w.replica_sets == {}
    condition = w.status["conditions"][0]
    assert (condition["type"], condition["reason"]) == ("InvalidSpec", "InvalidSpec")
    assert condition["message"].startswith(message)
    assert w.reconcile().actions == ()  # the same problem is not reported twice
