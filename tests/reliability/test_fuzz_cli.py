"""The command line under odd arguments: every main verb, with names, numbers, durations,
namespaces and files chosen to be awkward, options missing their values, unknown options,
global options in the wrong places.

Generated: 300 argument vectors (derandomized), spread over get/list/status/set image/
promote/abort/retry/pause/restart/undo/analyze/lint/apply/create secret/terminate, each run
in-process against one local home that holds a paused rollout (`myapp`, the target of the
writes) and a Healthy one (`steady`, the target of `status`, which therefore never waits).

What must hold for every vector: exit code 0, 1 or 2 (2 only where documented: analyze's
Error, status's timeout), no exception out of the command and no traceback; a command that
fails says so in exactly one `Error: ...` line on stderr (usage errors keep click's usage
lines above it; a group named without a verb shows its help instead) and writes nothing (the
store's revision is unchanged); one that succeeds prints no `Error:` line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from fuzzing import TRACEBACK, Rollwise
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rollwise.platforms.local.store import SqliteStore

EXAMPLES = 300
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
REPO = Path(__file__).resolve().parents[2]

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: rate
spec:
  args:
  - name: service
  - name: threshold
    value: "0.5"
  metrics:
  - name: rate
    successCondition: result >= {{args.threshold}}
    provider:
      web:
        url: http://127.0.0.1:9/{{args.service}}
        jsonPath: "{$.rate}"
"""
STEADY = (REPO / "examples" / "rollout.yaml").read_text().replace("myapp", "steady")
PAUSED = {
    "phase": "Paused",
    "message": "CanaryPauseStep",
    "currentStepIndex": 1,
    "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-11-26T01:50:00Z"}],
    "controllerPause": True,
    "currentPodHash": "new",
    "stableRS": "old",
}


@dataclass(frozen=True)
class World:
    home: Path
    files: dict[str, str]

    def revision(self) -> int:
        with SqliteStore.open_home(self.home) as store:
            return store.revision()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("cli-fuzz")
    home = root / "home"
    files = {
        "valid": root / "rollout.yaml",
        "steady": root / "steady.yaml",
        "invalid": root / "invalid.yaml",
        "template": root / "template.yaml",
        "binary": root / "binary.yaml",
        "directory": root / "manifests",
    }
    files["valid"].write_text((REPO / "examples" / "rollout.yaml").read_text())
    files["steady"].write_text(STEADY)
    files["invalid"].write_text("apiVersion: v1\nkind: Service\nmetadata: {name: [x\n")
    files["template"].write_text(TEMPLATE)
    files["binary"].write_bytes(b"\xff\xfe\x00\x01kind: Rollout\n")
    files["directory"].mkdir()
    (files["directory"] / "a.yaml").write_text(TEMPLATE)
    rollwise = Rollwise()
    for name in ("valid", "steady", "template"):
        outcome = rollwise(["--home", str(home), "apply", "-f", str(files[name])])
        assert outcome.exit_code == 0, outcome.output
    with SqliteStore.open_home(home) as store:
        steady = store.require("Rollout", "steady", "default")
        generation = steady["metadata"].get("generation", 1)
        healthy = {"phase": "Healthy", "observedGeneration": str(generation)}
        store.patch("Rollout", "steady", "default", merge=healthy, status=True)
        store.patch("Rollout", "myapp", "default", merge=PAUSED, status=True)
    paths = {name: str(path) for name, path in files.items()}
    paths["missing"] = str(root / "missing.yaml")
    return World(home, paths)


# --- argument vectors ---------------------------------------------------------------------------

ODD = ["", " ", "-", "--", "ünï", "💥", "a" * 300, "../../etc/passwd", "x\ny", "-1", "$(id)", "*"]
NAMES = ["myapp", "myapp", "nope", "MyApp", "my_app", "my.app", "myapp ", *ODD]
STATUS_NAMES = ["steady", "steady", "nope", "Steady", *ODD]  # never `myapp`: it is not Healthy
NUMBERS = ["-1", "0", "1", "2", "3", "99999999999999999999", "1e3", "0x10", "", "abc", "١٢", "1_0"]
NUMBERS += [" 1", "NaN", "-0", "9" * 5000]
DURATIONS = ["30s", "0", "", "-5m", "1h1h", "9999999999999h", "1e400s", "nan", "5 m", "1.5s"]
DURATIONS += ["0.01s", "abc", "-0s", "1d", "💥"]
NAMESPACES = ["default", "default", "", "shop", "Ü", "a b", "-x", "x" * 64, "../x", "💥", "A"]
CONTEXTS = ["local", "local", "kubernetes", "", "LOCAL", "k8s"]
FORMATS = ["json", "yaml", "", "wide", "JSON", "x"]
IMAGES = ["myapp=argoproj/rollouts-demo:yellow", "myapp=", "=img", "noequals", "x=y=z"]
IMAGES += ["*=argoproj/rollouts-demo:green", "myapp=ünï:tag", "myapp=" + "a" * 5000, "myapp=a b"]
IMAGES += ["myapp=argoproj/rollouts-demo:blue", "nosuch=argoproj/rollouts-demo:red", ""]
ARGS = ["service=x", "service=", "=x", "service", "threshold=abc", "threshold=0.1", "unknown=1"]
ARGS += ["service=a b/c?d#", "service=💥", "service=" + "a" * 5000, "threshold=1e400", ""]
LITERALS = ["k=v", "k=", "=v", "k", "k=v=w", "ü=1", "k=" + "v" * 5000, "", "a b=c"]
FILE_KEYS = ["valid", "valid", "steady", "invalid", "template", "binary", "directory", "missing"]
UNKNOWN = ["--nope", "-x", "--watch", "-w", "--full", "--to-revision", "--", "-", "-h", "--json"]


def _maybe(draw: st.DrawFn, args: list[str]) -> list[str]:
    return args if draw(st.booleans()) else []


@st.composite
def verb_vectors(draw: st.DrawFn, files: dict[str, str]) -> tuple[str, list[str]]:
    """(verb, arguments after the global --home): one verb's arguments, with odd values."""
    verb = draw(
        st.sampled_from(
            [
                "get rollout",
                "list rollouts",
                "status",
                "set image",
                "promote",
                "abort",
                "retry rollout",
                "pause",
                "restart",
                "undo",
                "analyze",
                "lint",
                "apply",
                "create secret generic",
                "get analysisrun",
                "terminate analysisrun",
                "get experiment",
                "list experiments",
            ]
        )
    )
    name = draw(st.sampled_from(NAMES))
    args = verb.split()
    if verb == "get rollout":
        args += [name, *_maybe(draw, ["-o", draw(st.sampled_from(FORMATS))])]
        args += _maybe(draw, ["--no-color"]) + _maybe(
            draw, ["--timeout-seconds", draw(st.sampled_from(NUMBERS))]
        )
    elif verb in ("list rollouts", "list experiments"):
        args += _maybe(draw, [draw(st.sampled_from(["-A", "--all-namespaces"]))])
    elif verb == "status":
        args += [draw(st.sampled_from(STATUS_NAMES))]
        args += _maybe(
            draw, [draw(st.sampled_from(["--timeout", "-t"])), draw(st.sampled_from(DURATIONS))]
        )
        args += _maybe(draw, [draw(st.sampled_from(["-w", "--watch", "--no-watch"]))])
    elif verb == "set image":
        args += [name, draw(st.sampled_from(IMAGES))]
    elif verb == "promote":
        args += [name, *_maybe(draw, ["--full"])]
    elif verb == "restart":
        args += [
            name,
            *_maybe(
                draw, [draw(st.sampled_from(["--in", "-i"])), draw(st.sampled_from(DURATIONS))]
            ),
        ]
    elif verb == "undo":
        args += [name, *_maybe(draw, ["--to-revision", draw(st.sampled_from(NUMBERS))])]
    elif verb == "analyze":
        args += [
            "-f",
            files[
                draw(
                    st.sampled_from(
                        [
                            "template",
                            "template",
                            "directory",
                            "valid",
                            "invalid",
                            "missing",
                            "binary",
                        ]
                    )
                )
            ],
        ]
        for argument in draw(st.lists(st.sampled_from(ARGS), max_size=3)):
            args += [draw(st.sampled_from(["-a", "--argument"])), argument]
        args += ["--once"]  # one measurement: the provider is refused at once, no waiting
        args += _maybe(draw, ["--json"]) + _maybe(draw, ["--name", name])
    elif verb in ("lint", "apply"):
        for key in draw(st.lists(st.sampled_from(FILE_KEYS), min_size=1, max_size=2)):
            args += [draw(st.sampled_from(["-f", "--filename"])), files[key]]
    elif verb == "create secret generic":
        args += [name]
        for literal in draw(st.lists(st.sampled_from(LITERALS), max_size=2)):
            args += ["--from-literal", literal]
    else:
        args += [name]
    return verb, args


@st.composite
def argument_vectors(draw: st.DrawFn, files: dict[str, str]) -> tuple[str, list[str]]:
    """A verb's vector, then disturbed: global options anywhere, unknown flags, values
    missing, duplicated options."""
    verb, args = draw(verb_vectors(files))
    hows = draw(
        st.lists(st.sampled_from(["context", "unknown", "truncate", "duplicate"]), max_size=2)
    )
    if draw(st.booleans()):  # half of them in a namespace, well or badly named
        hows.insert(0, "namespace")
    for how in hows:
        at = draw(st.integers(0, len(args)))
        if how == "namespace":
            value = draw(st.sampled_from(NAMESPACES))
            form = draw(st.sampled_from(["-n", "--namespace", "--namespace=", "-n="]))
            args[at:at] = [form + value] if form.endswith("=") else [form, value]
        elif how == "context":
            args[at:at] = ["--context", draw(st.sampled_from(CONTEXTS))]
        elif how == "unknown":
            args[at:at] = [draw(st.sampled_from(UNKNOWN))]
        elif how == "truncate" and args:
            args = args[: max(len(args) - draw(st.integers(1, 2)), 0)]
        elif how == "duplicate" and args:
            args.insert(at, args[min(at, len(args) - 1)])
    return verb, args


EXIT_CODE_2 = ("analyze", "status")  # analyze: the analysis ended in Error; status: timed out


def test_odd_argument_vectors_exit_cleanly_and_refusals_write_nothing(world: World) -> None:
    rollwise = Rollwise()
    seen: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(argument_vectors(world.files))
    # What fuzzing found once, kept so that it is always tried: objects applied into a
    # namespace no cluster could hold; options and no verb; lint's verdict.
    @example(("apply", ["-n", "Ü b", "apply", "-f", world.files["valid"]]))
    @example(("create secret generic", ["create", "secret", "generic", "s", "-n", "💥"]))
    @example(("list rollouts", []))
    @example(("lint", ["lint", "-f", world.files["invalid"]]))
    def check(vector: tuple[str, list[str]]) -> None:
        verb, args = vector
        before = world.revision()
        outcome = rollwise(["--home", str(world.home), *args])
        seen[verb] += 1
        assert outcome.crash is None, (args, outcome.crash)
        assert TRACEBACK not in outcome.output, args
        assert outcome.exit_code in (0, 1, 2), (args, outcome.exit_code, outcome.output)
        errors = [line for line in outcome.stderr.splitlines() if line.startswith("Error:")]
        analysis_ended = verb == "analyze" and outcome.exit_code == 2
        if outcome.exit_code == 0 or analysis_ended:
            assert not errors, (args, outcome.stderr)
        elif not errors and "\nCommands:\n" in outcome.stderr:
            # a group named without its verb (`rollwise list`) shows its help, as with no args
            assert outcome.exit_code == 1, args
            assert outcome.stderr.startswith("Usage: "), args
        else:
            assert outcome.exit_code == 1 or verb in EXIT_CODE_2, (args, outcome.output)
            assert len(errors) == 1, (args, outcome.stderr)
            assert errors[0][len("Error:") :].strip(), (args, outcome.stderr)
        if outcome.exit_code != 0:
            assert world.revision() == before, (args, outcome.output)

    check()
    print(f"{seen.total()} vectors: {dict(seen)}")
    assert seen.total() >= 200
    # What the accepted commands wrote lives where Kubernetes could hold it.
    with SqliteStore.open_home(world.home) as store:
        for kind in ("Rollout", "Service", "Secret", "AnalysisTemplate", "AnalysisRun"):
            for obj in store.list(kind, None):
                namespace = obj["metadata"].get("namespace", "")
                assert DNS_LABEL.fullmatch(namespace), (kind, namespace)
