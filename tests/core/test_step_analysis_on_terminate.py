"""A step analysis terminated by hand before it measured anything good (docs/analysis.md 2.9),
through the real pieces: the run is built from its template by `analysis_run_object`, measured
and terminated by the run reconciler with time passed in, and its status decides the step in
the Rollout core. Argo's default lets the step pass; `rollwise.io/on-terminate: inconclusive`
on the template pauses the rollout instead."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.core.canary_world import World, basic_rollout, deployed

from rollwise.api.models import AnalysisRun, AnalysisTemplate, AnalysisTemplateRef
from rollwise.core import actions as act
from rollwise.core.analysis.creation import analysis_run_object
from rollwise.core.analysis.evaluate import error_measurement
from rollwise.core.analysis.runs import plan, record

YELLOW = "argoproj/rollouts-demo:yellow"
PROVIDER_DOWN = "dial tcp 10.0.0.7:9090: connection refused"


def _template(annotations: dict[str, str]) -> AnalysisTemplate:
    return AnalysisTemplate.model_validate(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "success-rate", "annotations": annotations},
            "spec": {
                "metrics": [
                    {
                        "name": "success-rate",
                        "interval": "1m",
                        "count": 5,
                        "successCondition": "result[0] >= 0.95",
                        "provider": {"prometheus": {"address": "http://p:9090", "query": "up"}},
                    }
                ]
            },
        }
    )


def _world(*, background: bool = False) -> World:
    analysis = {"templates": [{"templateName": "success-rate"}]}
    steps: list[dict[str, Any]] = [{"setWeight": 20}, {"pause": {"duration": "1h"}}]
    extra: dict[str, Any] = {"analysis": analysis} if background else {}
    if not background:
        steps = [{"setWeight": 20}, {"analysis": analysis}, {"setWeight": 60}, {"pause": {}}]
    world = deployed(basic_rollout(steps, **extra))
    world.set_image(YELLOW)
    world.settle()
    return world


def _real_run(world: World, kind: str, template: AnalysisTemplate) -> AnalysisRun:
    """The AnalysisRun the executor would create for the Rollout's CreateAnalysisRun."""
    (action,) = [a for a in world.log if isinstance(a, act.CreateAnalysisRun) and a.kind == kind]

    def lookup(ref: AnalysisTemplateRef) -> AnalysisTemplate | None:
        return template if ref.template_name == template.name else None

    raw = analysis_run_object(action, rollout=world.rollout.to_raw(), lookup=lookup, now=world.now)
    return AnalysisRun.model_validate(raw)


def _provider_down_then_terminated(world: World, run: AnalysisRun) -> AnalysisRun:
    """Two Error measurements a minute apart (Prometheus unreachable), then `spec.terminate`
    (`rollwise terminate analysisrun`), as the run reconciler records them."""
    for minute in range(2):
        now = world.now + timedelta(minutes=minute)
        planned = plan(run, now)
        assert planned.to_run == ("success-rate",)
        run = run.model_copy(update={"status": planned.status})
        down = error_measurement(PROVIDER_DOWN, started_at=now, finished_at=now)
        run = run.model_copy(update={"status": record(run, {"success-rate": down}, now)})
    run = run.model_copy(update={"spec": run.spec.model_copy(update={"terminate": True})})
    stopped = plan(run, world.now + timedelta(minutes=2))
    assert stopped.idle
    return run.model_copy(update={"status": stopped.status})


def _show(world: World, run: AnalysisRun) -> None:
    """The Rollout controller observes the run as written."""
    raw = world.runs[run.name]
    raw["spec"] = run.to_raw()["spec"]
    raw["status"] = run.to_raw()["status"]


@pytest.mark.parametrize(
    ("annotations", "run_phase"),
    [({}, "Successful"), ({"rollwise.io/on-terminate": "inconclusive"}, "Inconclusive")],
)
def test_a_step_analysis_terminated_by_hand_while_the_provider_is_down(
    annotations: dict[str, str], run_phase: str
) -> None:
    world = _world()
    run = _real_run(world, "Step", _template(annotations))
    assert run.metadata.annotations is not None
    assert {k: v for k, v in run.metadata.annotations.items() if k.startswith("rollwise.io/")} == (
        annotations
    )
    run = _provider_down_then_terminated(world, run)
    assert run.status is not None
    assert run.status.phase == run_phase
    _show(world, run)
    world.settle()
    status = world.status
    if run_phase == "Successful":  # Argo's trap: the release goes on unmeasured
        assert status["currentStepIndex"] == 3
        assert world.sizes() == {"blue": 2, "yellow": 3}
    else:
        assert (status["phase"], status["message"]) == ("Paused", "InconclusiveAnalysisRun")
        assert status["currentStepIndex"] == 1
        assert status["canary"]["currentStepAnalysisRunStatus"]["message"] == (
            'Metric "success-rate" assessed Inconclusive due to terminated before any'
            f' successful measurement: "Error Message: {PROVIDER_DOWN}"'
        )
        assert "AnalysisRunInconclusive" in world.reasons()


def test_a_background_run_the_rollout_terminates_at_the_end_does_not_pause_it() -> None:
    world = _world(background=True)
    template = _template({"rollwise.io/on-terminate": "inconclusive"})
    run = _real_run(world, "Background", template)
    world.advance(3600)
    world.settle()
    assert world.status["phase"] == "Healthy"
    assert act.TerminateAnalysisRun(run.name) in world.log
    run = _provider_down_then_terminated(world, run)  # what the run reconciler then writes
    assert run.status is not None
    assert run.status.phase == "Inconclusive"
    _show(world, run)
    world.settle()
    assert world.status["phase"] == "Healthy"
