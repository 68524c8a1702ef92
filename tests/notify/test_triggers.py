"""Trigger names from event reasons (Argo's translation), trigger definitions, conditions."""

from __future__ import annotations

import pytest

from rollwise.api.errors import ManifestError
from rollwise.notify.triggers import (
    Condition,
    parse_trigger,
    reason_for_trigger,
    templates_to_send,
    trigger_for_reason,
)


@pytest.mark.parametrize(
    ("reason", "trigger"),
    [
        ("RolloutStepCompleted", "on-rollout-step-completed"),
        ("AnalysisRunFailed", "on-analysis-run-failed"),
        ("AnalysisRunRunning", "on-analysis-run-running"),
        ("AnalysisRunError", "on-analysis-run-error"),
        ("RolloutCompleted", "on-rollout-completed"),
        ("RolloutUpdated", "on-rollout-updated"),
        ("ScalingReplicaSet", "on-scaling-replica-set"),
        ("RolloutPaused", "on-rollout-paused"),
        ("RolloutAborted", "on-rollout-aborted"),
        ("RolloutNotCompleted", "on-rollout-not-completed"),
        ("TrafficWeightUpdated", "on-traffic-weight-updated"),
        ("SkipSteps", "on-skip-steps"),
        ("NewReplicaSetCreated", "on-new-replica-set-created"),
        # Argo's two expressions keep an acronym together and split it from the next word.
        ("HTTPRouteUpdated", "on-http-route-updated"),
        ("TargetGroupVerified", "on-target-group-verified"),
        ("Step2Done", "on-step2-done"),
    ],
)
def test_every_reason_is_a_trigger_named_as_argo_names_it(reason: str, trigger: str) -> None:
    assert trigger_for_reason(reason) == trigger


@pytest.mark.parametrize(
    "reason", ["RolloutAborted", "AnalysisRunFailed", "ScalingReplicaSet", "RolloutStepCompleted"]
)
def test_a_trigger_names_its_reason_back(reason: str) -> None:
    assert reason_for_trigger(trigger_for_reason(reason)) == reason


def test_a_trigger_definition_is_a_list_of_conditions() -> None:
    conditions = parse_trigger(
        "on-x",
        "- when: rollout.status.phase == 'Degraded'\n  send: [a, b]\n"
        "  oncePer: rollout.metadata.uid\n"
        "- send: [c]\n",
    )
    assert conditions == (
        Condition(
            send=("a", "b"),
            when="rollout.status.phase == 'Degraded'",
            once_per="rollout.metadata.uid",
        ),
        Condition(send=("c",)),
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("send: [a]", "expected a list of conditions"),
        ("- a", "expected a mapping"),
        ("- send: a", "expected a list of template names"),
        ("- when: 'rollout.status.phase =='\n  send: [a]", "trigger.on-x[0].when"),
    ],
)
def test_a_bad_trigger_definition_says_where(text: str, problem: str) -> None:
    with pytest.raises(ManifestError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_trigger("on-x", text)


CONDITIONS = (
    Condition(send=("degraded",), when="rollout.status.phase == 'Degraded'"),
    Condition(send=("always", "degraded")),
    Condition(send=("healthy",), when="rollout.status.phase == 'Healthy'"),
)


def test_argo_rollouts_sends_the_first_conditions_templates_and_never_reads_when() -> None:
    variables = {"rollout": {"status": {"phase": "Healthy"}}}
    assert templates_to_send(CONDITIONS, variables) == ("degraded",)


@pytest.mark.parametrize(
    ("phase", "templates"),
    [
        ("Degraded", ("degraded", "always")),
        ("Healthy", ("always", "degraded", "healthy")),
        ("Paused", ("always", "degraded")),
    ],
)
def test_evaluated_conditions_send_every_template_whose_when_holds(
    phase: str, templates: tuple[str, ...]
) -> None:
    variables = {"rollout": {"status": {"phase": phase}}}
    assert templates_to_send(CONDITIONS, variables, evaluate=True) == templates


def test_a_when_that_cannot_be_evaluated_does_not_send() -> None:
    conditions = (Condition(send=("x",), when="rollout.status.phase > 3"),)
    assert (
        templates_to_send(conditions, {"rollout": {"status": {"phase": "Healthy"}}}, evaluate=True)
        == ()
    )
