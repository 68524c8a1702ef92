"""Every verb of the CLI against a real SQLite store: what it prints, what it writes, and that a
bad input prints one clear line, exits 1 and changes nothing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_objects import ago, analysis_run, pod, replica_set
from tests.cli.conftest import SEED_MANIFEST, Cli


def set_status(cli: Cli, status: dict[str, Any], name: str = "myapp") -> None:
    with cli.store() as store:
        store.patch("Rollout", name, "default", merge=status, status=True)


PAUSED_AT_STEP_1 = {
    "phase": "Paused",
    "message": "CanaryPauseStep",
    "currentStepIndex": 1,
    "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-11-26T01:50:00Z"}],
    "controllerPause": True,
    "currentPodHash": "new",
    "stableRS": "old",
}


# --- apply ---------------------------------------------------------------------------------------


def test_apply_creates_then_reports_unchanged_then_configured(cli: Cli, seed_file: Path) -> None:
    first = cli("apply", "-f", str(seed_file))
    assert (first.exit_code, first.stdout) == (
        0,
        "service/myapp created\nrollout.argoproj.io/myapp created\n",
    )
    again = cli("apply", "-f", str(seed_file))
    assert again.stdout == "service/myapp unchanged\nrollout.argoproj.io/myapp unchanged\n"
    seed_file.write_text(SEED_MANIFEST.replace("replicas: 5", "replicas: 3"))
    changed = cli("apply", "-f", str(seed_file))
    assert changed.stdout == "service/myapp unchanged\nrollout.argoproj.io/myapp configured\n"
    rollout = cli.rollout()
    assert rollout["spec"]["replicas"] == 3
    assert rollout["spec"]["strategy"]["canary"]["steps"][0] == {"setWeight": 20}


def test_apply_puts_objects_in_the_chosen_namespace(cli: Cli, seed_file: Path) -> None:
    result = cli("-n", "shop", "apply", "-f", str(seed_file))
    assert result.exit_code == 0, result.output
    assert cli.rollout("myapp", "shop")["metadata"]["namespace"] == "shop"


def test_apply_reads_stdin(cli: Cli) -> None:
    result = cli("apply", "-f", "-", input=SEED_MANIFEST)
    assert result.exit_code == 0, result.output
    assert "rollout.argoproj.io/myapp created" in result.stdout


BAD_INPUTS = [
    (
        "malformed YAML",
        SEED_MANIFEST.replace("  name: myapp\nspec:\n  replicas", "  name: [myapp\nspec:\n  r"),
        r"rollout\.yaml:\d+:\d+: invalid YAML",
    ),
    (
        "unknown step",
        SEED_MANIFEST.replace("- pause: {duration: 2m}  # Wait", "- pauze: {}  # Wait"),
        r"rollout\.yaml:24:9: spec\.strategy\.canary\.steps\[1\]\.pauze: unknown step 'pauze'",
    ),
    (
        "weight 120",
        SEED_MANIFEST.replace("setWeight: 40", "setWeight: 120"),
        r"rollout\.yaml:25:9: spec\.strategy\.canary\.steps\[2\]\.setWeight: weight 120",
    ),
    (
        "unknown image",
        SEED_MANIFEST.replace("argoproj/rollouts-demo:blue", "registry.local/shop:9"),
        r"rollout\.yaml:42:9: spec\.template\.spec\.containers\[0\]\.image: container 'myapp': "
        r"image 'registry.local/shop:9' is not in the image table",
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_apply_of_a_bad_manifest_prints_every_problem_and_changes_nothing(
    applied: Cli, tmp_path: Path, case: str, text: str, expected: str
) -> None:
    before = applied.revision()
    path = tmp_path / "rollout.yaml"
    path.write_text(text)
    result = applied("apply", "-f", str(path))
    assert result.exit_code == 1, case
    assert result.stdout == ""
    *problems, last = result.stderr.splitlines()
    assert all(line.startswith(f"{path}:") for line in problems), result.stderr
    assert any(
        re.match(expected, line[len(str(path)) - len("rollout.yaml") :]) for line in problems
    )
    assert last.startswith("Error: ")
    assert last.endswith("nothing applied")
    assert "Traceback" not in result.output
    assert applied.revision() == before


def test_apply_of_a_good_and_a_bad_file_applies_neither(
    cli: Cli, seed_file: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEED_MANIFEST.replace("name: myapp", "name: other").replace("20 ", "200 "))
    result = cli("apply", "-f", str(seed_file), "-f", str(bad))
    assert result.exit_code == 1
    assert "bad.yaml:" in result.stderr
    with cli.store() as store:
        assert store.list("Rollout", None) == []
        assert store.list("Service", None) == []


def test_apply_of_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("apply", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert "nope.yaml:1:1: cannot read" in result.stderr


def test_apply_resolves_analysis_templates_already_in_the_store(
    applied: Cli, tmp_path: Path
) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n"
        "  name: success-rate\nspec:\n  metrics:\n  - name: ok\n    successCondition: "
        "result == 1\n    provider:\n      web:\n        url: http://127.0.0.1:1/\n"
    )
    assert applied("apply", "-f", str(template)).exit_code == 0
    rollout = tmp_path / "rollout.yaml"
    rollout.write_text(
        SEED_MANIFEST.replace(
            "      - setWeight: 40",
            "      - analysis:\n          templates:\n          - templateName: success-rate\n"
            "      - setWeight: 40",
        )
    )
    result = applied("apply", "-f", str(rollout))
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("rollout.argoproj.io/myapp configured\n")
    missing = tmp_path / "missing.yaml"
    missing.write_text(rollout.read_text().replace("success-rate", "error-rate"))
    refused = applied("apply", "-f", str(missing))
    assert refused.exit_code == 1
    assert "error-rate" in refused.stderr


# --- reads ---------------------------------------------------------------------------------------


def seed_tree(cli: Cli) -> None:
    """The seed lab, mid-update: revision 2 canary with one pod, stable revision 1 with five."""
    set_status(
        cli,
        {
            **PAUSED_AT_STEP_1,
            "currentPodHash": "789746c88d",
            "stableRS": "6c5c5d8f9b",
            "replicas": 6,
            "updatedReplicas": 1,
            "readyReplicas": 6,
            "availableReplicas": 6,
        },
    )
    canary = replica_set(
        "myapp",
        "789746c88d",
        revision=2,
        image="argoproj/rollouts-demo:yellow",
        replicas=1,
        created=ago(seconds=30),
    )
    stable = replica_set(
        "myapp",
        "6c5c5d8f9b",
        revision=1,
        image="argoproj/rollouts-demo:blue",
        replicas=5,
        created=ago(minutes=5),
    )
    with cli.store() as store:
        for rs in (canary, stable):
            store.create(rs)
        store.create(pod(canary, "x", created=ago(seconds=30)))
        for suffix in "abcde":
            store.create(pod(stable, suffix, created=ago(minutes=5)))
        store.create(
            analysis_run(
                "myapp",
                "myapp-789746c88d-2-1",
                revision=2,
                phase="Running",
                created=ago(seconds=10),
                counts={"successful": 1},
            )
        )


def test_get_rollout_draws_the_tree(applied: Cli) -> None:
    seed_tree(applied)
    result = applied("get", "rollout", "myapp")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:10] == [
        "Name:            myapp",
        "Namespace:       default",
        "Status:          ॥ Paused",
        "Message:         CanaryPauseStep",
        "Strategy:        Canary",
        "  Step:          1/8",
        "  SetWeight:     20",
        "  ActualWeight:  16",
        "Images:          argoproj/rollouts-demo:blue (stable)",
        "                 argoproj/rollouts-demo:yellow (canary)",
    ]
    # the store stamps creation times itself, so ages are "0s"-ish: check the shape only
    header = lines[lines.index("") + 1]
    width = header.index("KIND")
    tree = [line[:width].rstrip() for line in lines[lines.index("") + 2 :]]
    assert tree == [
        "⟳ myapp",
        "├──# revision:2",
        "│  ├──⧉ myapp-789746c88d",
        "│  │  └──□ myapp-789746c88d-x",
        "│  └──α myapp-789746c88d-2-1",
        "└──# revision:1",
        "   └──⧉ myapp-6c5c5d8f9b",
        *[f"      {'└' if s == 'e' else '├'}──□ myapp-6c5c5d8f9b-{s}" for s in "abcde"],
    ]
    assert "\x1b[" not in result.stdout  # not a terminal: no colour


def test_get_rollout_aliases(applied: Cli) -> None:
    plain = applied("get", "rollout", "myapp").stdout
    assert applied("get", "ro", "myapp").stdout == plain
    assert applied("get", "rollouts", "myapp").stdout == plain


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_get_rollout_prints_the_object_with_its_status(applied: Cli, output: str) -> None:
    set_status(applied, PAUSED_AT_STEP_1)
    result = applied("get", "rollout", "myapp", "-o", output)
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout) if output == "json" else yaml.safe_load(result.stdout)
    assert obj["kind"] == "Rollout"
    assert obj["status"]["pauseConditions"][0]["reason"] == "CanaryPauseStep"
    assert obj == applied.rollout()


def test_get_rollout_with_an_unknown_output_format(applied: Cli) -> None:
    result = applied("get", "rollout", "myapp", "-o", "xml")
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown output format 'xml': expected json or yaml\n"


def test_get_watch_stops_at_its_timeout(applied: Cli) -> None:
    result = applied("get", "rollout", "myapp", "-w", "--timeout-seconds", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("\x1b[H\x1b[2J")
    assert "Name:            myapp" in result.stdout


def test_list_rollouts(applied: Cli, seed_file: Path) -> None:
    set_status(applied, PAUSED_AT_STEP_1)
    assert applied("-n", "shop", "apply", "-f", str(seed_file)).exit_code == 0
    result = applied("list", "rollouts")
    assert result.stdout.splitlines() == [
        "NAME        STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  "
        "AVAILABLE",
        "myapp       Canary     Paused        1/8   20          0/0    5        0           0",
    ]
    everywhere = applied("list", "rollouts", "-A").stdout.splitlines()
    assert [line.split()[:2] for line in everywhere] == [
        ["NAMESPACE", "NAME"],
        ["default", "myapp"],
        ["shop", "myapp"],
    ]


def test_list_with_nothing_to_list(cli: Cli) -> None:
    result = cli("list", "rollouts")
    assert result.exit_code == 0
    assert result.stderr == "No rollouts found in namespace 'default'.\n"
    assert not cli.home.exists()  # reading never creates a home


def test_get_experiment(applied: Cli) -> None:
    with applied.store() as store:
        store.create(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Experiment",
                "metadata": {"name": "exp1", "namespace": "default"},
                "spec": {"templates": [{"name": "baseline"}]},
            }
        )
        store.patch(
            "Experiment",
            "exp1",
            "default",
            status=True,
            merge={
                "phase": "Running",
                "templateStatuses": [
                    {"name": "baseline", "status": "Running", "replicas": 1, "readyReplicas": 1}
                ],
            },
        )
    result = applied("get", "experiment", "exp1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:3] == [
        "Name:            exp1",
        "Namespace:       default",
        "Status:          ◌ Running",
    ]
    assert "Σ exp1  Experiment  ◌ Running" in result.stdout
    missing = applied("get", "exp", "nope")
    assert missing.stderr == "Error: experiment 'nope' not found in namespace 'default'\n"


# --- a rollout that does not exist ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("get", "rollout", "nope"),
        ("get", "rollout", "nope", "-o", "json"),
        ("status", "nope"),
        ("set", "image", "nope", "myapp=argoproj/rollouts-demo:yellow"),
        ("promote", "nope"),
        ("promote", "nope", "--full"),
        ("abort", "nope"),
        ("retry", "rollout", "nope"),
        ("undo", "nope"),
        ("pause", "nope"),
        ("restart", "nope"),
    ],
)
def test_a_missing_rollout_is_one_clear_line_and_nothing_written(
    applied: Cli, args: tuple[str, ...]
) -> None:
    before = applied.revision()
    result = applied(*args)
    assert result.exit_code == 1
    assert result.stderr == "Error: rollout 'nope' not found in namespace 'default'\n"
    assert result.stdout == ""
    assert applied.revision() == before


def test_a_missing_home_is_not_created_by_a_read_or_a_command(cli: Cli) -> None:
    for args in (("get", "rollout", "myapp"), ("promote", "myapp"), ("status", "myapp")):
        result = cli(*args)
        assert result.stderr == "Error: rollout 'myapp' not found in namespace 'default'\n"
    assert not cli.home.exists()


def test_an_unknown_context_is_refused(applied: Cli) -> None:
    # The kubernetes context is tested against an API server: tests/kubernetes/test_cli_*.py
    unknown = applied("--context", "mars", "list", "rollouts")
    assert unknown.exit_code == 1
    assert unknown.stderr == "Error: unknown context 'mars': expected one of local, kubernetes\n"


# --- writes --------------------------------------------------------------------------------------


def test_set_image(applied: Cli) -> None:
    result = applied("set", "image", "myapp", "myapp=argoproj/rollouts-demo:yellow")
    assert (result.exit_code, result.stdout) == (0, "rollout 'myapp' image updated\n")
    container = applied.rollout()["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "argoproj/rollouts-demo:yellow"
    assert container["ports"][0]["containerPort"] == 8080  # the rest of the container is kept


@pytest.mark.parametrize(
    ("assignment", "error"),
    [
        (
            "web=argoproj/rollouts-demo:yellow",
            "Error: rollout 'myapp' has no container named 'web' (containers: myapp)\n",
        ),
        (
            "myapp",
            "Error: expected CONTAINER=IMAGE (e.g. myapp=argoproj/rollouts-demo:yellow),"
            " got 'myapp'\n",
        ),
        ("myapp=", None),
    ],
)
def test_set_image_refusals(applied: Cli, assignment: str, error: str | None) -> None:
    before = applied.revision()
    result = applied("set", "image", "myapp", assignment)
    assert result.exit_code == 1
    if error is not None:
        assert result.stderr == error
    assert applied.revision() == before


def test_set_image_to_an_image_local_mode_cannot_run(applied: Cli) -> None:
    before = applied.revision()
    result = applied("set", "image", "myapp", "myapp=registry.local/shop:9")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: rollout 'myapp': container 'myapp': image 'registry.local/shop:9' is not in"
    )
    assert applied.revision() == before


def test_promote_clears_the_pause(applied: Cli) -> None:
    set_status(applied, PAUSED_AT_STEP_1)
    result = applied("promote", "myapp")
    assert (result.exit_code, result.stdout) == (0, "rollout 'myapp' promoted\n")
    status = applied.rollout()["status"]
    assert "pauseConditions" not in status
    assert status["currentStepIndex"] == 1


def test_promote_during_a_step_analysis_moves_on(applied: Cli) -> None:
    set_status(applied, {"currentStepIndex": 2, "phase": "Progressing"})
    assert applied("promote", "myapp").exit_code == 0
    assert applied.rollout()["status"]["currentStepIndex"] == 3


def test_promote_unpauses_a_manual_pause(applied: Cli) -> None:
    assert applied("pause", "myapp").stdout == "rollout 'myapp' paused\n"
    assert applied.rollout()["spec"]["paused"] is True
    set_status(applied, PAUSED_AT_STEP_1)
    assert applied("promote", "myapp").exit_code == 0
    rollout = applied.rollout()
    assert rollout["spec"]["paused"] is False
    assert "pauseConditions" not in rollout["status"]


def test_full_promote(applied: Cli) -> None:
    set_status(applied, PAUSED_AT_STEP_1)
    result = applied("promote", "myapp", "--full")
    assert result.stdout == "rollout 'myapp' fully promoted\n"
    assert applied.rollout()["status"]["promoteFull"] is True
    set_status(applied, {"currentPodHash": "same", "stableRS": "same", "promoteFull": None})
    before = applied.revision()
    again = applied("promote", "myapp", "--full")
    assert again.stdout == "rollout 'myapp' is already fully promoted\n"
    assert applied.revision() == before


def test_abort_then_retry(applied: Cli) -> None:
    assert applied("abort", "myapp").stdout == "rollout 'myapp' aborted\n"
    assert applied.rollout()["status"]["abort"] is True
    assert applied("retry", "rollout", "myapp").stdout == "rollout 'myapp' retried\n"
    assert applied.rollout()["status"]["abort"] is False


@pytest.mark.parametrize(("args", "delay"), [((), 0), (("--in", "30s"), 30), (("-i", "2m"), 120)])
def test_restart(applied: Cli, args: tuple[str, ...], delay: int) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    result = applied("restart", "myapp", *args)
    after = datetime.now(UTC)
    assert result.stdout == f"rollout 'myapp' restarts in {args[1] if args else '0s'}\n"
    restart_at = datetime.fromisoformat(applied.rollout()["spec"]["restartAt"])
    assert before + timedelta(seconds=delay) <= restart_at <= after + timedelta(seconds=delay)


@pytest.mark.parametrize("delay", ["soon", "-5s"])
def test_restart_with_a_bad_delay(applied: Cli, delay: str) -> None:
    before = applied.revision()
    result = applied("restart", "myapp", "--in", delay)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --in: ")
    assert applied.revision() == before


def seed_history(cli: Cli) -> None:
    with cli.store() as store:
        for revision, image in ((1, "argoproj/rollouts-demo:blue"), (2, "green"), (3, "red")):
            store.create(
                replica_set(
                    "myapp",
                    f"h{revision}",
                    revision=revision,
                    image=image,
                    replicas=0,
                    created=ago(hours=4 - revision),
                )
            )


def test_undo_to_the_previous_revision(applied: Cli) -> None:
    seed_history(applied)
    result = applied("undo", "myapp")
    assert (result.exit_code, result.stdout) == (0, "rollout 'myapp' undo\n")
    template = applied.rollout()["spec"]["template"]
    assert template == {
        "metadata": {"labels": {"app": "myapp"}},
        "spec": {"containers": [{"name": "myapp", "image": "green"}]},
    }


def test_undo_to_a_revision_already_current_writes_nothing(applied: Cli) -> None:
    seed_history(applied)
    assert applied("undo", "myapp", "--to-revision", "2").exit_code == 0
    before = applied.revision()
    result = applied("undo", "myapp", "--to-revision", "2")
    assert result.stdout == "skipped rollback (current template already matches revision 2)\n"
    assert applied.revision() == before


def test_undo_to_a_missing_revision(applied: Cli) -> None:
    seed_history(applied)
    before = applied.revision()
    result = applied("undo", "myapp", "--to-revision", "7")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: revision 7 of rollout 'myapp' not found (revisions: 1, 2, 3)\n"
    )
    assert applied.revision() == before


# --- status --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "line", "code"),
    [
        ({"phase": "Healthy"}, "Healthy", 0),
        (
            {
                "phase": "Degraded",
                "message": "RolloutAborted: Rollout aborted update to revision 2",
            },
            "Degraded - RolloutAborted: Rollout aborted update to revision 2",
            1,
        ),
    ],
)
def test_status_exit_codes(applied: Cli, status: dict[str, Any], line: str, code: int) -> None:
    set_status(applied, status)
    result = applied("status", "myapp")
    assert (result.exit_code, result.stdout) == (code, line + "\n")


def test_status_times_out_with_code_2(applied: Cli) -> None:
    set_status(applied, PAUSED_AT_STEP_1)
    result = applied("status", "myapp", "--timeout", "0.3s")
    assert result.exit_code == 2
    assert result.stdout == "Paused - CanaryPauseStep\n"
    assert result.stderr == "Error: rollout 'myapp' did not become Healthy within 0.3s\n"


def test_status_without_watch_prints_once(applied: Cli) -> None:
    set_status(applied, PAUSED_AT_STEP_1)
    result = applied("status", "myapp", "--no-watch")
    assert (result.exit_code, result.stdout) == (0, "Paused - CanaryPauseStep\n")


def test_status_with_a_bad_timeout(applied: Cli) -> None:
    result = applied("status", "myapp", "--timeout", "forever")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --timeout: invalid duration 'forever'")


# --- lint, version -------------------------------------------------------------------------------


def test_lint(cli: Cli, seed_file: Path, tmp_path: Path) -> None:
    good = cli("lint", "-f", str(seed_file))
    assert (good.exit_code, good.stdout) == (0, "")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEED_MANIFEST.replace("setWeight: 40", "setWeight: 120"))
    result = cli("lint", "-f", str(bad))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{bad}:25:9: spec.strategy.canary.steps[2].setWeight:")
    assert not cli.home.exists()


def test_version(cli: Cli) -> None:
    result = cli("version")
    assert (result.exit_code, result.stdout) == (0, "rollwise 0.1.0\n")


def test_help_lists_the_verbs_in_order(cli: Cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    verbs = [line.split()[0] for line in result.stdout.split("Commands:\n")[1].splitlines()]
    assert verbs == [
        "apply",
        "create",
        "get",
        "list",
        "status",
        "set",
        "promote",
        "abort",
        "retry",
        "undo",
        "pause",
        "restart",
        "terminate",
        "lint",
        "analyze",
        "notifications",
        "install",
        "controller",
        "dashboard",
        "demo",
        "version",
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("undo", "myapp", "--to-revision", "abc"),
            "Invalid value for '--to-revision': 'abc' is not a valid integer",
        ),
        (("frob",), "No such command 'frob'"),
        (("get", "rollout"), "Missing argument 'ROLLOUT'"),
    ],
)
def test_a_command_line_that_does_not_parse_exits_1(
    applied: Cli, args: tuple[str, ...], error: str
) -> None:
    before = applied.revision()
    result = applied(*args)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == f"Error: {error}."
    assert applied.revision() == before


def test_the_kubernetes_controller_without_a_cluster_says_so_in_one_line(cli: Cli) -> None:
    result = cli("controller", "--kubernetes", "--kubeconfig", str(cli.home / "no-such-config"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot load the kubeconfig")
    assert not cli.home.exists()
