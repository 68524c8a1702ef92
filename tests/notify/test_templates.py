"""Templates in Jinja2, the variables they see, and the built-in catalog's messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.notify.objects import ABORT_MESSAGE, CANARY_HASH, event, rollout, runs

from rollwise.api.errors import ManifestError
from rollwise.notify import catalog
from rollwise.notify.config import parse_config
from rollwise.notify.templates import (
    compile_template,
    render_notification,
    render_template,
    translate_go_fields,
)
from rollwise.notify.variables import notification_variables

NOW = datetime(2026, 1, 2, 0, 0, 30, tzinfo=UTC)


def variables(trigger: str = "on-rollout-aborted", **changes: Any) -> dict[str, Any]:
    return notification_variables(
        rollout=changes.get("rollout", rollout()),
        analysis_runs=runs(),
        event=event("RolloutAborted", ABORT_MESSAGE, type_="Warning"),
        trigger=trigger,
        recipient="alerts",
        secrets={"token": "s3cret"},
        now=NOW,
    )


def test_the_variables_hold_argo_names_and_what_rollwise_adds() -> None:
    found = variables()
    assert found["rollout"]["metadata"]["name"] == "shop"
    assert [r["metadata"]["name"] for r in found["analysisRuns"]] == [
        "shop-6c8f9d7b5-2-1",
        "shop-6c8f9d7b5-2-0",
    ], "runs of the current revision only, newest first"
    assert found["recipient"] == "alerts"
    assert found["secrets"] == {"token": "s3cret"}
    assert found["trigger"] == "on-rollout-aborted"
    assert found["event"]["reason"] == "RolloutAborted"
    assert found["event"]["type"] == "Warning"
    assert found["step"] == {
        "index": 1,
        "count": 3,
        "current": {"analysis": {"templates": [{"templateName": "success-rate"}]}},
        "label": "analysis",
    }
    assert found["weights"] == {"canary": 0, "stable": 100}
    assert found["failedMetrics"] == [
        {
            "analysisRun": "shop-6c8f9d7b5-2-1",
            "name": "success-rate",
            "phase": "Failed",
            "message": "",
            "value": "0.5",
        }
    ]
    assert found["now"] == "2026-01-02T00:00:30Z"


def test_after_a_manual_abort_the_step_is_the_status_step() -> None:
    found = notification_variables(
        rollout=rollout(),
        analysis_runs=[r for r in runs() if r["status"]["phase"] == "Successful"],
        event=event("RolloutAborted"),
        trigger="on-rollout-aborted",
        now=NOW,
    )
    assert (found["step"]["index"], found["step"]["label"]) == (0, "setWeight: 50")
    assert found["failedMetrics"] == []


def test_a_rollout_with_every_step_done_has_no_current_step() -> None:
    done = rollout(aborted=False)
    done["status"]["currentStepIndex"] = 3
    step = variables(rollout=done)["step"]
    assert step["current"] is None
    assert (step["index"], step["count"], step["label"]) == (3, 3, "")


def render(text: str, values: dict[str, Any] | None = None) -> str:
    template = compile_template("t", {"message": text})
    return str(render_template(template, values or variables())["message"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Rollout {{ rollout.metadata.name }} aborted", "Rollout shop aborted"),
        ("{{ rollout.spec.strategy.canary.steps | length }} steps", "3 steps"),
        ("step {{ rollout.status.currentStepIndex + 1 }}", "step 1"),
        (
            "{% for c in rollout.spec.template.spec.containers %}{{ c.name }} {% endfor %}",
            "shop proxy ",
        ),
        ("[{{ rollout.status.noSuchField.deeper }}]", "[]"),
        ("{{ analysisRuns[0].status.phase }}", "Failed"),
        ("{{ event.message }}", ABORT_MESSAGE),
        # Argo's Go form of a plain field reference is translated as it is read.
        (
            "Rollout {{.rollout.metadata.name}} at {{- .rollout.status.phase -}} !",
            "Rollout shop atDegraded!",
        ),
    ],
)
def test_templates_render_with_jinja2(text: str, expected: str) -> None:
    assert render(text) == expected


def test_the_sandbox_keeps_templates_away_from_python_internals() -> None:
    assert render("{{ rollout.__class__.__mro__ }}") == ""


@pytest.mark.parametrize(
    "text",
    [
        "{{if .rollout.spec.strategy.canary}}Canary{{end}}",
        "{{range $i, $c := .rollout.spec.template.spec.containers}}{{$c.name}}{{end}}",
        "{{ add .rollout.status.currentStepIndex 1 }}",
        "{{len .rollout.spec.strategy.canary.steps}}",
    ],
)
def test_other_go_template_actions_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(ManifestError, match=r"template\.t\.message: .* is Go template syntax"):
        compile_template("t", {"message": text})


def test_a_jinja_syntax_error_names_the_field() -> None:
    with pytest.raises(ManifestError, match=r"template\.t\.slack\.attachments: line 1"):
        compile_template("t", {"slack": {"attachments": "{% if x %}never closed"}})


def test_jinja_text_that_looks_like_go_is_left_alone() -> None:
    assert translate_go_fields("{{ index }} {{ x | default('.y') }}") == (
        "{{ index }} {{ x | default('.y') }}"
    )


def test_templates_sent_together_merge_later_ones_winning() -> None:
    first = compile_template("a", {"message": "first", "email": {"subject": "s1", "body": "b1"}})
    second = compile_template("b", {"message": "", "email": {"subject": "s2"}})
    assert render_notification([first, second], variables()) == {
        "message": "first",
        "email": {"subject": "s2", "body": "b1"},
    }


# --- the catalog ---------------------------------------------------------------------------------


def catalog_notification(template: str, values: dict[str, Any]) -> dict[str, Any]:
    config = parse_config({})
    return render_notification([config.templates[template]], values)


MESSAGES = {
    "rollout-completed": "Rollout shop has been completed.",
    "rollout-step-completed": "Rollout shop step number 1/3 has been completed.",
    "rollout-updated": "Rollout shop has been updated.",
    "scaling-replicaset": "Scaling Rollout shop's replicaset to 2.",
    "rollout-paused": "Rollout shop has been paused.",
    "rollout-aborted": "Rollout shop has been aborted.",
    "analysis-run-running": "Rollout shop's analysis run is running.",
    "analysis-run-error": "Rollout shop's analysis run is in error state.",
    "analysis-run-failed": "Rollout shop's analysis run failed.",
}


def test_the_catalog_has_argo_nine_triggers_each_sending_its_template() -> None:
    config = parse_config({})
    assert sorted(config.triggers) == sorted(
        [
            "on-rollout-completed",
            "on-rollout-step-completed",
            "on-rollout-updated",
            "on-scaling-replica-set",
            "on-rollout-paused",
            "on-rollout-aborted",
            "on-analysis-run-running",
            "on-analysis-run-error",
            "on-analysis-run-failed",
        ]
    )
    sent = {trigger: conditions[0].send for trigger, conditions in config.triggers.items()}
    assert sent["on-scaling-replica-set"] == ("scaling-replicaset",)
    assert all(len(c) == 1 and not c[0].when for c in config.triggers.values())
    assert sorted(t for (t,) in sent.values()) == sorted(MESSAGES)


@pytest.mark.parametrize(("template", "message"), sorted(MESSAGES.items()))
def test_each_catalog_template_says_what_argo_says(template: str, message: str) -> None:
    # After the first step completed: one step counted, half the traffic on the canary.
    values = variables(rollout=rollout(aborted=False))
    values["rollout"]["status"]["currentStepIndex"] = 1
    notification = catalog_notification(template, values)
    assert notification["message"] == message
    assert notification["email"]["subject"] == message
    (attachment,) = json.loads(notification["slack"]["attachments"])
    assert attachment["title"] == "shop"
    expected_color = {
        "rollout-aborted": catalog.RED,
        "analysis-run-failed": catalog.RED,
        "analysis-run-error": catalog.YELLOW,
    }.get(template, catalog.GREEN)
    assert attachment["color"] == expected_color
    fields = attachment["fields"]
    assert fields[0] == {"title": "Strategy", "value": "Canary", "short": True}
    assert fields[-2:] == [
        {"title": "shop", "value": "argoproj/rollouts-demo:bad-red", "short": True},
        {"title": "proxy", "value": 'envoy:"1.30"', "short": True},
    ], "one field per container, as Argo's catalog, quotes escaped"


def test_the_step_completed_and_scaling_messages_carry_argo_fields() -> None:
    values = variables(rollout=rollout(aborted=False))
    step = json.loads(
        catalog_notification("rollout-step-completed", values)["slack"]["attachments"]
    )
    assert step[0]["fields"][1] == {"title": "Step completed", "value": "1/3", "short": True}
    scaling = json.loads(catalog_notification("scaling-replicaset", values)["slack"]["attachments"])
    assert scaling[0]["fields"][1:3] == [
        {"title": "Desired replica", "value": "2", "short": True},
        {"title": "Updated replicas", "value": "1", "short": True},
    ]


def test_a_pasted_argo_catalog_in_go_keeps_the_builtin_jinja_version() -> None:
    config = parse_config(
        {
            "template.rollout-aborted": (
                "message: Rollout {{.rollout.metadata.name}} has been aborted.\n"
                "slack:\n  attachments: |\n"
                "    [{{range $i, $c := .rollout.spec.template.spec.containers}}{{end}}]\n"
            )
        }
    )
    assert config.problems == (
        "template.rollout-aborted: not a Jinja2 template; the built-in template.rollout-aborted "
        "is used instead",
    )
    notification = render_notification([config.templates["rollout-aborted"]], variables())
    assert notification["message"] == "Rollout shop has been aborted."


def test_a_template_of_the_user_replaces_the_builtin_one() -> None:
    config = parse_config(
        {"template.rollout-aborted": {"message": "{{ rollout.metadata.name }} :("}}
    )
    notification = render_notification([config.templates["rollout-aborted"]], variables())
    assert notification == {"message": "shop :("}
    assert CANARY_HASH in variables()["analysisRuns"][0]["metadata"]["name"]
