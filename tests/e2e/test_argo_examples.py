"""Argo Rollouts' own examples (reference section 8.1, the ones that need no cloud service), as
rewritten in `examples/argo/`, run in local mode through the real CLI, a real controller, real
demo-app processes and Traefik, each to the outcome its comments promise.

The files are used as they are, with two exceptions, each said where it happens: the secret
example's Secret is given the address of this test's server, and the background analysis test
makes `random-fail` always pass (a coin that may fail before the test promotes would make the
outcome a race). Every other run of `random-fail` flips the real coin: with `failureLimit: 1`
and no `count` it measures until its second failure, so a run of it always ends Failed, only
its length varies.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import (
    IMAGE,
    ROOT,
    ControllerProcess,
    colors_served,
    rollwise,
    store_of,
    wait_until,
)

from rollwise.api.lint import lint_paths
from rollwise.platforms.local.images import ImageTable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EXAMPLES = ROOT / "examples" / "argo"
TEMPLATES = ("analysis-templates.yaml", "cluster-analysis-templates.yaml")
FILES = (
    *TEMPLATES,
    "experiment-with-analysis.yaml",
    "rollout-analysis-step.yaml",
    "rollout-background-analysis.yaml",
    "rollout-baseline-vs-canary.yaml",
    "rollout-bluegreen.yaml",
    "rollout-canary.yaml",
    "rollout-experiment-step.yaml",
    "rollout-rolling-update.yaml",
    "rollout-secret.yaml",
)
# Argo's shape, kept: the step analysis ends only when `random-fail` fails.
NEVER_COMPLETES = (
    "rollout-analysis-step.yaml:31:9: warning: spec.strategy.canary.steps[1].analysis: metric"
    " 'random-fail' has an interval and no count, so this step analysis never completes"
    " (in template random-fail; give the metric a count)"
)


# -- the files ----------------------------------------------------------------------------------


def test_the_folder_holds_one_file_per_argo_example_and_its_readme() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir()) == sorted((*FILES, "README.md"))
    readme = (EXAMPLES / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in FILES)


def test_the_folder_lints_clean_with_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rollwise", "lint", "-f", str(EXAMPLES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"{EXAMPLES}/{NEVER_COMPLETES}"]


@pytest.mark.parametrize("name", FILES[2:])
def test_each_example_lints_clean_beside_the_templates_it_names(name: str) -> None:
    paths = [str(EXAMPLES / template) for template in TEMPLATES] + [str(EXAMPLES / name)]
    problems = [problem.format() for problem in lint_paths(paths)]
    expected = [f"{EXAMPLES}/{NEVER_COMPLETES}"] if name == "rollout-analysis-step.yaml" else []
    assert problems == expected


def job_container(template: str) -> dict[str, Any]:
    (document,) = [
        d
        for d in yaml.safe_load_all((EXAMPLES / "analysis-templates.yaml").read_text())
        if d and d["metadata"]["name"] == template
    ]
    (metric,) = document["spec"]["metrics"]
    (container,) = metric["provider"]["job"]["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def test_random_fail_flips_a_coin_under_the_local_shell() -> None:
    """Argo's `$RANDOM` is a busybox/bash extension: under dash it is a syntax error (exit 2,
    every time). The rewritten command, resolved as local mode resolves it, exits 0 or 1."""
    spec = ImageTable().resolve(job_container("random-fail"), port=0, pod_name="coin")
    codes = {subprocess.run(spec.argv, check=False, timeout=10).returncode for _ in range(64)}
    assert codes == {0, 1}  # both sides within 64 throws (odds of a miss: 2**-63)
    spec = ImageTable().resolve(job_container("pass"), port=0, pod_name="pass")
    assert subprocess.run(spec.argv, check=False, timeout=10).returncode == 0


# -- helpers ------------------------------------------------------------------------------------


def get(home: Path, kind: str, name: str) -> dict[str, Any]:
    """An object as the store holds it ({} when absent)."""
    store = store_of(home)
    try:
        return store.get(kind, name) or {}
    finally:
        store.close()


def status(home: Path, name: str) -> dict[str, Any]:
    return get(home, "Rollout", name).get("status") or {}


def owned_by(home: Path, kind: str, owner: str) -> list[dict[str, Any]]:
    store = store_of(home)
    try:
        found = store.list(kind, "default")
    finally:
        store.close()
    return [
        raw
        for raw in found
        if any(ref.get("name") == owner for ref in raw["metadata"].get("ownerReferences") or ())
    ]


def replica_sets(home: Path, rollout: str) -> dict[str, dict[str, Any]]:
    """The Rollout's ReplicaSets by the colour (image tag) they run."""
    return {
        rs["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]: rs
        for rs in owned_by(home, "ReplicaSet", rollout)
    }


def healthy_on(home: Path, rollout: str, color: str, replicas: int) -> bool:
    current = status(home, rollout)
    new = replica_sets(home, rollout).get(color) or {}
    return (
        current.get("phase") == "Healthy"
        and current.get("stableRS") == current.get("currentPodHash")
        and (new.get("status") or {}).get("availableReplicas") == replicas
    )


def start(
    home: Path, controller: ControllerProcess, *files: str, texts: dict[str, str] | None = None
) -> None:
    """Start the controller and apply the examples (`texts` replace a file's content)."""
    controller.start()
    paths = []
    for name in files:
        path = EXAMPLES / name
        if texts and name in texts:
            path = home.parent / name
            path.write_text(texts[name])
        paths += ["-f", str(path)]
    rollwise(home, "apply", *paths)


def deploy(home: Path, rollout: str, replicas: int) -> None:
    wait_until(
        lambda: healthy_on(home, rollout, "blue", replicas),
        timeout=60,
        what=f"{rollout} Healthy on blue",
    )


def update(home: Path, rollout: str, color: str) -> None:
    rollwise(home, "set", "image", rollout, f"rollouts-demo={IMAGE}:{color}")


def paused_at(home: Path, rollout: str, step: int) -> bool:
    current = status(home, rollout)
    return current.get("phase") == "Paused" and current.get("currentStepIndex") == step


# -- canary, rolling update, blue-green -----------------------------------------------------------


def test_canary_waits_at_its_indefinite_pause_then_walks_the_timed_steps(
    home: Path, controller: ControllerProcess
) -> None:
    start(home, controller, "rollout-canary.yaml")
    deploy(home, "rollout-canary", 5)
    update(home, "rollout-canary", "yellow")
    wait_until(lambda: paused_at(home, "rollout-canary", 1), what="paused at the pause {} step")
    current = status(home, "rollout-canary")
    assert current["message"] == "CanaryPauseStep"
    assert current["pauseConditions"][0]["reason"] == "CanaryPauseStep"
    assert "until" not in current["pauseConditions"][0]  # no duration: it waits for a person
    # setWeight 20 of 5 replicas, without a router: one new pod, four stable ones.
    sizes = {
        color: rs["spec"]["replicas"] for color, rs in replica_sets(home, "rollout-canary").items()
    }
    assert sizes == {"blue": 4, "yellow": 1}

    rollwise(home, "promote", "rollout-canary")
    wait_until(lambda: healthy_on(home, "rollout-canary", "yellow", 5), what="promoted to yellow")
    store = store_of(home)
    try:
        events = store.events(kind="Rollout", name="rollout-canary", limit=500)
    finally:
        store.close()
    completed = [e["message"] for e in events if e["reason"] == "RolloutStepCompleted"]
    assert completed[-1] == "Rollout step 8/8 completed (pause: 1s)"
    assert replica_sets(home, "rollout-canary")["blue"]["spec"]["replicas"] == 0


def test_rolling_update_replaces_pods_within_max_surge_and_max_unavailable(
    home: Path, controller: ControllerProcess
) -> None:
    start(home, controller, "rollout-rolling-update.yaml")
    deploy(home, "rollout-rollingupdate", 5)
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        store = store_of(home)
        try:
            while not done.is_set():
                found = store.list("ReplicaSet", "default")
                samples.append(
                    (
                        sum(rs["spec"]["replicas"] for rs in found),
                        sum((rs.get("status") or {}).get("availableReplicas", 0) for rs in found),
                    )
                )
                time.sleep(0.02)
        finally:
            store.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        update(home, "rollout-rollingupdate", "yellow")
        wait_until(
            lambda: healthy_on(home, "rollout-rollingupdate", "yellow", 5),
            what="rolled to yellow",
        )
    finally:
        done.set()
        sampler.join(timeout=5)
    assert max(total for total, _ in samples) <= 6  # replicas + maxSurge 1
    assert min(available for _, available in samples) >= 4  # replicas - maxUnavailable 1
    store = store_of(home)
    try:
        events = store.events(kind="Rollout", name="rollout-rollingupdate", limit=500)
    finally:
        store.close()
    yellow = replica_sets(home, "rollout-rollingupdate")["yellow"]["metadata"]["name"]
    scaled_up = [
        e["message"]
        for e in events
        if e["reason"] == "ScalingReplicaSet" and f"Scaled up ReplicaSet {yellow} " in e["message"]
    ]
    assert len(scaled_up) > 1  # in steps, not all at once
    assert replica_sets(home, "rollout-rollingupdate")["blue"]["spec"]["replicas"] == 0


def test_bluegreen_shows_the_new_version_on_preview_until_promoted(
    home: Path, controller: ControllerProcess
) -> None:
    active = "rollout-bluegreen-active.localhost"
    preview = "rollout-bluegreen-preview.localhost"
    start(home, controller, "rollout-bluegreen.yaml")
    deploy(home, "rollout-bluegreen", 2)
    assert colors_served(home, active, 10) == {"blue": 10}

    update(home, "rollout-bluegreen", "green")
    wait_until(
        lambda: status(home, "rollout-bluegreen").get("message") == "BlueGreenPause",
        what="paused before the switch",
    )
    wait_until(lambda: colors_served(home, preview, 10) == {"green": 10}, what="preview on green")
    assert colors_served(home, active, 10) == {"blue": 10}

    rollwise(home, "promote", "rollout-bluegreen")
    wait_until(lambda: healthy_on(home, "rollout-bluegreen", "green", 2), what="promoted to green")
    wait_until(lambda: colors_served(home, active, 10) == {"green": 10}, what="active on green")


# -- analysis -----------------------------------------------------------------------------------


def runs_of(home: Path, rollout: str) -> list[dict[str, Any]]:
    return owned_by(home, "AnalysisRun", rollout)


def metric_phases(run: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["phase"] for m in run["status"].get("metricResults") or ()}


def test_background_analysis_runs_through_the_steps_and_ends_at_promotion(
    home: Path, controller: ControllerProcess
) -> None:
    # `random-fail` made to always pass: a coin could abort before the promote below.
    coin = 'args: ["exit $(( $(od -An -N1 -tu1 /dev/urandom) % 2 ))"]'
    templates = (EXAMPLES / "analysis-templates.yaml").read_text()
    assert coin in templates
    start(
        home,
        controller,
        "analysis-templates.yaml",
        "rollout-background-analysis.yaml",
        texts={"analysis-templates.yaml": templates.replace(coin, "args: [exit 0]")},
    )
    deploy(home, "rollout-background-analysis", 4)
    update(home, "rollout-background-analysis", "yellow")

    def measured_while_paused() -> dict[str, Any] | None:
        runs = runs_of(home, "rollout-background-analysis")
        if not paused_at(home, "rollout-background-analysis", 1) or len(runs) != 1:
            return None
        metric = (runs[0]["status"].get("metricResults") or [{}])[0]
        return runs[0] if metric.get("successful", 0) >= 2 else None

    run = wait_until(measured_while_paused, what="background run measuring at the pause")
    assert run["status"]["phase"] == "Running"
    assert (
        status(home, "rollout-background-analysis")["canary"]["currentBackgroundAnalysisRunStatus"][
            "name"
        ]
        == run["metadata"]["name"]
    )

    rollwise(home, "promote", "rollout-background-analysis")
    wait_until(
        lambda: healthy_on(home, "rollout-background-analysis", "yellow", 4),
        what="promoted to yellow",
    )
    # Full promotion terminates the run (reference 2.8): Successful, unless a Job was still
    # running then - Argo records that measurement as Inconclusive "Metric Terminated", and the
    # run with it. Either way the promoted rollout is not paused by it.
    name = run["metadata"]["name"]
    ended = wait_until(
        lambda: (
            (get(home, "AnalysisRun", name).get("status") or {}).get("completedAt")
            and get(home, "AnalysisRun", name)
        ),
        what="background run ended",
    )
    assert ended["spec"]["terminate"] is True
    (metric,) = ended["status"]["metricResults"]
    *before, last = metric["measurements"]
    assert {m["phase"] for m in before} == {"Successful"}
    if last["phase"] == "Inconclusive":
        assert last["message"] == "Metric Terminated"
    else:
        assert last["phase"] == "Successful"
    assert ended["status"]["phase"] == last["phase"]
    assert healthy_on(home, "rollout-background-analysis", "yellow", 4)
    assert not status(home, "rollout-background-analysis").get("pauseConditions")


class _Answer(BaseHTTPRequestHandler):
    """Answers every GET as Argo's gist does."""

    def do_GET(self) -> None:
        body = json.dumps({"message": "It worked!"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def answer_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/example.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_secret_url_feeds_the_web_metric_of_the_analysis_step(
    home: Path, controller: ControllerProcess, answer_url: str
) -> None:
    text = (EXAMPLES / "rollout-secret.yaml").read_text()
    fixture_url = base64.b64encode(b"http://127.0.0.1:8000/example.json").decode()
    assert fixture_url in text
    # The Secret document, applied by `rollwise apply`, now names the server of this test.
    secret_url = base64.b64encode(answer_url.encode()).decode()
    start(
        home,
        controller,
        "rollout-secret.yaml",
        texts={"rollout-secret.yaml": text.replace(fixture_url, secret_url)},
    )
    deploy(home, "rollout-secret", 1)
    update(home, "rollout-secret", "yellow")

    wait_until(lambda: paused_at(home, "rollout-secret", 2), what="past the analysis, paused")
    (run,) = runs_of(home, "rollout-secret")
    assert run["status"]["phase"] == "Successful"
    (metric,) = run["status"]["metricResults"]
    assert metric["measurements"][0]["value"] == "It worked!"
    shown = rollwise(home, "get", "analysisrun", run["metadata"]["name"], "--no-color").stdout
    assert "secret-url=<secret example-secret/secretUrl>" in shown
    assert answer_url not in shown

    rollwise(home, "promote", "rollout-secret")
    wait_until(lambda: healthy_on(home, "rollout-secret", "yellow", 1), what="promoted")


# -- experiments --------------------------------------------------------------------------------


def experiment_of(home: Path, rollout: str) -> dict[str, Any] | None:
    found = owned_by(home, "Experiment", rollout)
    return found[0] if len(found) == 1 else None


def template_hash(home: Path, replica_set: str) -> str:
    labels = get(home, "ReplicaSet", replica_set)["metadata"]["labels"]
    return str(labels["rollouts-pod-template-hash"])


def test_baseline_and_canary_run_side_by_side_until_the_step_is_promoted(
    home: Path, controller: ControllerProcess
) -> None:
    start(home, controller, "rollout-baseline-vs-canary.yaml")
    deploy(home, "rollout-baseline-vs-canary", 3)
    update(home, "rollout-baseline-vs-canary", "yellow")

    def running() -> dict[str, Any] | None:
        experiment = experiment_of(home, "rollout-baseline-vs-canary")
        if experiment and (experiment.get("status") or {}).get("phase") == "Running":
            return experiment
        return None

    experiment = wait_until(running, what="baseline and canary running")
    name = experiment["metadata"]["name"]
    templates = {t["name"]: t for t in experiment["status"]["templateStatuses"]}
    assert {n: t["availableReplicas"] for n, t in templates.items()} == {
        "baseline": 1,
        "canary": 1,
    }
    image = {
        n: get(home, "ReplicaSet", f"{name}-{n}")["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        for n in templates
    }
    assert image == {"baseline": f"{IMAGE}:blue", "canary": f"{IMAGE}:yellow"}
    # Fresh ReplicaSets of equal size: neither the Rollout's stable nor its new one, each with
    # a hash of its own (an Experiment hashes its templates differently).
    current = status(home, "rollout-baseline-vs-canary")
    hashes = {template_hash(home, f"{name}-{n}") for n in templates}
    assert len(hashes) == 2
    assert not hashes & {current["stableRS"], current["currentPodHash"]}
    assert current["phase"] == "Progressing"  # the step waits for the experiment

    rollwise(home, "promote", "rollout-baseline-vs-canary")
    wait_until(lambda: healthy_on(home, "rollout-baseline-vs-canary", "yellow", 3), what="promoted")
    assert get(home, "Experiment", name)["spec"]["terminate"] is True


# -- the real coin: random-fail fails, sooner or later -----------------------------------------


def aborted(home: Path, rollout: str) -> dict[str, Any] | None:
    current = status(home, rollout)
    return current if current.get("phase") == "Degraded" and current.get("abort") else None


def finished(home: Path, name: str) -> dict[str, Any] | None:
    experiment = get(home, "Experiment", name)
    phase = (experiment.get("status") or {}).get("phase")
    return experiment if phase not in (None, "Pending", "Running") else None


def check_the_analysis_step_aborted(home: Path) -> None:
    """rollout-analysis-step: one run of both templates; random-fail's failure aborts."""
    current = aborted(home, "rollout-analysis-step")
    assert current is not None
    assert current["message"].startswith(
        "RolloutAborted: Rollout aborted update to revision 2: "
        'Metric "random-fail" assessed Failed due to failed (2) > failureLimit (1)'
    )
    (run,) = runs_of(home, "rollout-analysis-step")
    assert run["status"]["phase"] == "Failed"
    # The cluster-scoped `always-pass` (count 1) measured once and passed in the same run.
    assert metric_phases(run) == {"random-fail": "Failed", "pass": "Successful"}
    # The weight is back to 0: the new version has no pods left, the stable all four.
    wait_until(
        lambda: (
            {
                color: rs["spec"]["replicas"]
                for color, rs in replica_sets(home, "rollout-analysis-step").items()
            }
            == {"blue": 4, "yellow": 0}
        ),
        what="the analysis step's canary scaled down",
    )


def check_the_experiment_step_aborted(home: Path) -> None:
    """rollout-experiment-step: the Experiment's own run fails it, and the rollout aborts."""
    current = aborted(home, "rollout-experiment-step")
    assert current is not None
    experiment = experiment_of(home, "rollout-experiment-step")
    assert experiment is not None
    name = experiment["metadata"]["name"]
    assert name == f"rollout-experiment-step-{current['currentPodHash']}-2-1"
    assert experiment["status"]["phase"] == "Failed"
    assert [t["name"] for t in experiment["status"]["templateStatuses"]] == ["canary"]
    (analysis,) = experiment["status"]["analysisRuns"]
    assert (analysis["name"], analysis["phase"]) == ("random-fail", "Failed")
    assert current["message"] == (
        "RolloutAborted: Rollout aborted update to revision 2: " + experiment["status"]["message"]
    )
    # The experiment's canary ran the new version in a ReplicaSet of its own.
    canary = get(home, "ReplicaSet", f"{name}-canary")
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:yellow"


def check_the_experiment_failed(home: Path) -> None:
    """experiment-with-analysis: both images ran; random-fail failed it, `pass` was stopped."""
    experiment = finished(home, "experiment-with-analysis")
    assert experiment is not None
    assert experiment["status"]["phase"] == "Failed"
    assert experiment["status"]["availableAt"]  # the analyses start once both templates run
    runs = {a["name"]: a["phase"] for a in experiment["status"]["analysisRuns"]}
    assert runs["random-fail"] == "Failed"
    images = {
        name: get(home, "ReplicaSet", f"experiment-with-analysis-{name}")["spec"]["template"][
            "spec"
        ]["containers"][0]["image"]
        for name in ("purple", "orange")
    }
    assert images == {"purple": f"{IMAGE}:purple", "orange": f"{IMAGE}:orange"}
    wait_until(
        lambda: get(home, "AnalysisRun", "experiment-with-analysis-pass")["spec"].get("terminate"),
        what="the non-required `pass` run terminated with the experiment",
    )


def test_random_fail_ends_the_analysis_step_the_experiment_step_and_the_experiment(
    home: Path, controller: ControllerProcess
) -> None:
    """The three examples that run the real coin, side by side under one controller: each
    measures until random-fail's second failure, which ends it Failed."""
    start(
        home,
        controller,
        *TEMPLATES,
        "rollout-analysis-step.yaml",
        "rollout-experiment-step.yaml",
        "experiment-with-analysis.yaml",
    )
    for rollout in ("rollout-analysis-step", "rollout-experiment-step"):
        deploy(home, rollout, 4)
        update(home, rollout, "yellow")
    wait_until(
        lambda: (
            aborted(home, "rollout-analysis-step")
            and aborted(home, "rollout-experiment-step")
            and finished(home, "experiment-with-analysis")
        ),
        timeout=90,
        what="random-fail to end all three",
    )
    check_the_analysis_step_aborted(home)
    check_the_experiment_step_aborted(home)
    check_the_experiment_failed(home)
