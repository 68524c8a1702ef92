"""The AnalysisRun a Rollout creates: templates expanded and merged as Argo does, args filled
from the caller and the Rollout, and a run that cannot be built created in phase Error."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollwise.api import models as api
from rollwise.core.actions import CreateAnalysisRun
from rollwise.core.analysis.creation import analysis_run_object, rollout_field

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "myapp", "namespace": "shop", "uid": "u-1", "labels": {"app": "myapp"}},
    "spec": {"template": {"metadata": {"labels": {"version": "v2"}}}},
}


def template(name: str, **spec: Any) -> api.AnalysisTemplate:
    return api.AnalysisTemplate.model_validate({"metadata": {"name": name}, "spec": spec})


def metric(name: str) -> dict[str, Any]:
    return {"name": name, "provider": {"web": {"url": "http://x/{{args.service-name}}"}}}


def create(analysis: dict[str, Any], templates: dict[str, api.AnalysisTemplate]) -> dict[str, Any]:
    action = CreateAnalysisRun(
        name="myapp-abc-2-1",
        kind="Step",
        step_index=1,
        analysis=api.RolloutAnalysis.model_validate(analysis),
        pod_template_hash="abc",
        revision=2,
        labels={"rollout-type": "Step"},
        annotations={"rollout.argoproj.io/revision": "2"},
    )
    return analysis_run_object(
        action, rollout=ROLLOUT, lookup=lambda ref: templates.get(ref.template_name), now=NOW
    )


def test_templates_merge_and_caller_args_fill_the_declared_ones() -> None:
    templates = {
        "a": template("a", args=[{"name": "service-name"}], metrics=[metric("one")]),
        "b": template("b", args=[{"name": "service-name"}], metrics=[metric("two")]),
    }
    run = create(
        {
            "templates": [{"templateName": "a"}, {"templateName": "b"}],
            "args": [{"name": "service-name", "value": "myapp"}, {"name": "unused", "value": "x"}],
        },
        templates,
    )
    assert [m["name"] for m in run["spec"]["metrics"]] == ["one", "two"]
    assert run["spec"]["args"] == [{"name": "service-name", "value": "myapp"}]
    assert run["metadata"]["ownerReferences"][0]["name"] == "myapp"
    assert run["metadata"]["namespace"] == "shop"
    assert "status" not in run


def test_nested_templates_are_expanded_once() -> None:
    templates = {
        "outer": template("outer", templates=[{"templateName": "inner"}], metrics=[metric("x")]),
        "inner": template("inner", metrics=[metric("y")]),
    }
    run = create({"templates": [{"templateName": "outer"}, {"templateName": "inner"}]}, templates)
    assert [m["name"] for m in run["spec"]["metrics"]] == ["y", "x"]


def test_field_ref_args_are_read_from_the_rollout() -> None:
    templates = {"t": template("t", args=[{"name": "v"}], metrics=[metric("m")])}
    run = create(
        {
            "templates": [{"templateName": "t"}],
            "args": [
                {
                    "name": "v",
                    "valueFrom": {
                        "fieldRef": {"fieldPath": "spec.template.metadata.labels.version"}
                    },
                }
            ],
        },
        templates,
    )
    assert run["spec"]["args"] == [{"name": "v", "value": "v2"}]
    assert rollout_field(ROLLOUT, "metadata.labels['app']") == "myapp"
    assert rollout_field(ROLLOUT, "spec.template") is None


def test_a_run_that_cannot_be_built_is_created_in_error_with_the_reason() -> None:
    templates = {"t": template("t", args=[{"name": "service-name"}], metrics=[metric("m")])}
    unresolved = create({"templates": [{"templateName": "t"}]}, templates)
    assert unresolved["status"]["phase"] == "Error"
    assert "args.service-name was not resolved" in unresolved["status"]["message"]
    missing = create({"templates": [{"templateName": "nope"}]}, templates)
    assert missing["status"]["phase"] == "Error"
    assert 'AnalysisTemplate "nope" not found' in missing["status"]["message"]
    duplicate = create(
        {"templates": [{"templateName": "t"}, {"templateName": "u"}]},
        {**templates, "u": template("u", metrics=[metric("m")])},
    )
    assert duplicate["status"]["phase"] == "Error"
