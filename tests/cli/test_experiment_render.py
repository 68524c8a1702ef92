"""Experiments as Argo's CLI shows them (reference 5.1, 5.2): `Σ` nodes with their ReplicaSets
and AnalysisRuns under a revision of `get rollout`, the template images tagged with the
template names, `get experiment` and `list experiments`; built from objects."""

from __future__ import annotations

from typing import Any

from cli_objects import NOW, ago, analysis_run, owner, pod, replica_set, rollout

from rollwise.views.experiment_render import render_experiment, render_experiment_list
from rollwise.views.render import render_rollout

IMAGE = "argoproj/rollouts-demo"
EXPERIMENT = "shop-5c9d7f8b6-2-1"


def experiment(
    name: str = EXPERIMENT,
    *,
    phase: str = "Running",
    duration: str | None = "10m",
    available: str | None = None,
    owned: bool = True,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "creationTimestamp": ago(minutes=3),
        "annotations": {"rollout.argoproj.io/revision": "2"},
    }
    if owned:
        metadata["ownerReferences"] = owner("Rollout", "shop")
    spec: dict[str, Any] = {"templates": [{"name": "baseline"}, {"name": "canary"}]}
    if duration is not None:
        spec["duration"] = duration
    status: dict[str, Any] = {"phase": phase}
    if available is not None:
        status["availableAt"] = available
    return {"kind": "Experiment", "metadata": metadata, "spec": spec, "status": status}


def template_rs(template: str, pod_hash: str, image: str, *, replicas: int = 1) -> dict[str, Any]:
    rs = replica_set(
        "x", pod_hash, revision=0, image=image, replicas=replicas, created=ago(minutes=3)
    )
    rs["metadata"]["name"] = f"{EXPERIMENT}-{template}"
    rs["metadata"]["annotations"] = {"experiment.argoproj.io/template-name": template}
    rs["metadata"]["ownerReferences"] = [{"kind": "Experiment", "name": EXPERIMENT}]
    return rs


def world() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    ro = rollout(
        "shop",
        created=ago(days=1),
        replicas=1,
        steps=[{"setWeight": 20}, {"experiment": {"templates": []}}],
        image=f"{IMAGE}:yellow",
        status={
            "phase": "Progressing",
            "message": "waiting for all steps to complete",
            "currentStepIndex": 1,
            "stableRS": "68f4c9d5b",
            "currentPodHash": "5c9d7f8b6",
            "replicas": 2,
            "updatedReplicas": 1,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "canary": {"currentExperiment": EXPERIMENT},
        },
    )
    stable = replica_set(
        "shop", "68f4c9d5b", revision=1, image=f"{IMAGE}:blue", replicas=1, created=ago(days=1)
    )
    canary = replica_set(
        "shop", "5c9d7f8b6", revision=2, image=f"{IMAGE}:yellow", replicas=1, created=ago(minutes=4)
    )
    baseline_rs = template_rs("baseline", "bbbbbbbbbb", f"{IMAGE}:blue")
    canary_rs = template_rs("canary", "cccccccccc", f"{IMAGE}:yellow", replicas=0)
    pods = [
        pod(stable, "s1111", created=ago(days=1)),
        pod(canary, "c1111", created=ago(minutes=4)),
        pod(baseline_rs, "b1111", created=ago(minutes=3)),
    ]
    run = analysis_run(
        "x",
        f"{EXPERIMENT}-compare",
        revision=None,
        phase="Running",
        created=ago(minutes=2),
        counts={"successful": 1, "failed": 1},
    )
    run["metadata"]["ownerReferences"] = [{"kind": "Experiment", "name": EXPERIMENT}]
    return ro, [stable, canary, baseline_rs, canary_rs], pods, [run]


EXPECTED_TREE = """\
NAME                                             KIND         STATUS         AGE  INFO
⟳ shop                                           Rollout      ◌ Progressing  24h
├──# revision:2
│  ├──⧉ shop-5c9d7f8b6                           ReplicaSet   ✔ Healthy      4m   canary
│  │  └──□ shop-5c9d7f8b6-c1111                  Pod          ✔ Running      4m   ready:1/1
│  └──Σ shop-5c9d7f8b6-2-1                       Experiment   ◌ Running      3m
│     ├──⧉ shop-5c9d7f8b6-2-1-baseline           ReplicaSet   ✔ Healthy      3m
│     │  └──□ shop-5c9d7f8b6-2-1-baseline-b1111  Pod          ✔ Running      3m   ready:1/1
│     ├──⧉ shop-5c9d7f8b6-2-1-canary             ReplicaSet   • ScaledDown   3m
│     └──α shop-5c9d7f8b6-2-1-compare            AnalysisRun  ◌ Running      2m   ✔ 1,✖ 1
└──# revision:1
   └──⧉ shop-68f4c9d5b                           ReplicaSet   ✔ Healthy      24h  stable
      └──□ shop-68f4c9d5b-s1111                  Pod          ✔ Running      24h  ready:1/1
"""


def test_experiments_appear_under_their_revision_with_what_they_own() -> None:
    ro, replica_sets, pods, runs = world()
    text = render_rollout(
        ro, replica_sets, pods, runs, now=NOW, color=False, experiments=[experiment()]
    )
    # Argo's order under a revision: ReplicaSets, Experiments (with their own children), runs.
    assert text.split("\n\n", 1)[1] == EXPECTED_TREE
    # Images: the experiment's scaled-up templates add their names to the roles.
    assert f"Images:          {IMAGE}:blue (stable, baseline)" in text
    assert f"                 {IMAGE}:yellow (canary)\n" in text  # the canary template runs 0


def test_experiments_of_other_rollouts_are_left_out() -> None:
    ro, replica_sets, pods, runs = world()
    stranger = experiment("other", owned=False)
    text = render_rollout(
        ro, replica_sets, pods, runs, now=NOW, color=False, experiments=[stranger]
    )
    assert "Σ" not in text
    assert "baseline" not in text


def test_get_experiment_draws_its_header_and_tree() -> None:
    _, replica_sets, pods, runs = world()
    exp = experiment(phase="Failed")
    exp["status"]["message"] = 'Metric "error-rate" assessed Failed'
    text = render_experiment(exp, replica_sets, pods, runs, now=NOW, color=False)
    lines = text.splitlines()
    assert lines[:5] == [
        f"Name:            {EXPERIMENT}",
        "Namespace:       default",
        "Status:          ✖ Failed",
        'Message:         Metric "error-rate" assessed Failed',
        f"Images:          {IMAGE}:blue (baseline)",
    ]
    assert lines[5] == ""
    assert lines[6].split() == ["NAME", "KIND", "STATUS", "AGE", "INFO"]
    assert lines[7].split()[:5] == ["Σ", EXPERIMENT, "Experiment", "✖", "Failed"]
    assert lines[8].startswith(f"├──⧉ {EXPERIMENT}-baseline ")
    assert lines[-1].startswith(f"└──α {EXPERIMENT}-compare ")


def test_an_invalid_experiment_shows_why_as_its_message() -> None:
    exp = experiment(phase="")
    exp["status"] = {
        "conditions": [{"type": "InvalidSpec", "status": "True", "message": "bad selector"}]
    }
    text = render_experiment(exp, [], [], [], now=NOW, color=False)
    assert "Status:          ◷ Pending" in text
    assert "Message:         InvalidSpec: bad selector" in text


def test_list_experiments_shows_duration_and_time_remaining() -> None:
    running = experiment("a", available=ago(minutes=2))
    done = experiment("b", phase="Successful", available=ago(minutes=20))
    endless = experiment("c", duration=None)
    other = experiment("d")
    other["metadata"]["namespace"] = "shop"
    text = render_experiment_list([running, done, endless], all_namespaces=False, now=NOW)
    assert [line.split() for line in text.splitlines()] == [
        ["NAME", "STATUS", "DURATION", "REMAINING", "AGE"],
        ["a", "Running", "10m", "8m", "3m"],
        ["b", "Successful", "10m", "-", "3m"],
        ["c", "Running", "-", "-", "3m"],
    ]
    wide = render_experiment_list([running, other], all_namespaces=True, now=NOW)
    assert [line.split()[:2] for line in wide.splitlines()] == [
        ["NAMESPACE", "NAME"],
        ["default", "a"],
        ["shop", "d"],
    ]
