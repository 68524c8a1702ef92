"""`rollwise analyze`, `get/list/terminate analysisrun` and `create secret generic` through the
CLI, against a real SQLite home, a local HTTP server for the `web` provider and real processes
for the `job` provider: the exit code and what is printed for passing, failing, inconclusive and
broken templates, and that a secret's value never appears in any output."""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.cli.conftest import Cli

pytestmark = pytest.mark.timeout(60)


class MetricsServer:
    """A loopback HTTP server: each path answers the bodies it was given, in turn (the last one
    again and again); every request's path and headers are recorded."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[str]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                if self.path == "/echo-auth":
                    body = json.dumps({"auth": self.headers.get("Authorization", "")})
                else:
                    queue = server.bodies.get(self.path)
                    if not queue:
                        self.send_error(404)
                        return
                    body = queue.pop(0) if len(queue) > 1 else queue[0]
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def answer(self, path: str, *bodies: str) -> str:
        self.bodies[path] = list(bodies)
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    metrics = MetricsServer()
    metrics.thread.start()
    try:
        yield metrics
    finally:
        metrics.httpd.shutdown()
        metrics.httpd.server_close()
        metrics.thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def template(
    metrics: list[dict[str, Any]],
    *,
    name: str = "check",
    args: list[dict[str, Any]] | None = None,
    kind: str = "AnalysisTemplate",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"metrics": metrics, **(extra or {})}
    if args is not None:
        spec["args"] = args
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def web_metric(name: str, url: str, **fields: Any) -> dict[str, Any]:
    json_path = fields.pop("jsonPath", "{$.rate}")
    return {"name": name, **fields, "provider": {"web": {"url": url, "jsonPath": json_path}}}


def job_metric(name: str, code: int) -> dict[str, Any]:
    container = {
        "name": "check",
        "image": "none",
        "command": [sys.executable, "-c", f"exit({code})"],
    }
    return {
        "name": name,
        "provider": {
            "job": {"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}}}
        },
    }


def write(tmp_path: Path, *documents: dict[str, Any], name: str = "analysis.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return str(path)


# --- analyze: the verdicts -----------------------------------------------------------------------


def test_a_passing_template_exits_0_and_shows_every_measurement(
    cli: Cli, server: MetricsServer, tmp_path: Path
) -> None:
    url = server.answer("/rate", '{"rate": 0.97}', '{"rate": 0.99}')
    file = write(
        tmp_path,
        template(
            [
                web_metric(
                    "success-rate",
                    "{{args.url}}",
                    count=2,
                    interval="0.2s",
                    successCondition="result >= 0.95",
                ),
                job_metric("smoke", 0),
            ],
            args=[{"name": "url"}],
        ),
    )
    result = cli("analyze", "-f", file, "-a", f"url={url}")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    progress = lines[: lines.index("")]  # one line per measurement as it lands, then the run
    assert sorted(line.split("  ")[1:3] for line in progress) == [
        ["smoke", "✔ Successful"],
        ["success-rate", "✔ Successful"],
        ["success-rate", "✔ Successful"],
    ]
    assert "Status:          ✔ Successful" in result.stdout
    assert "successful 2, failed 0, inconclusive 0, error 0; count 2" in result.stdout
    assert "0.97" in result.stdout
    assert "0.99" in result.stdout
    assert len(server.requests) == 2


def test_a_failing_template_exits_1_with_the_reason(
    cli: Cli, server: MetricsServer, tmp_path: Path
) -> None:
    url = server.answer("/rate", '{"rate": 0.42}')
    file = write(tmp_path, template([web_metric("rate", url, successCondition="result >= 0.95")]))
    result = cli("analyze", "-f", file)
    assert result.exit_code == 1, result.output
    assert "Status:          ✖ Failed" in result.stdout
    assert 'Metric "rate" assessed Failed due to failed (1) > failureLimit (0)' in result.stdout
    assert "0.42" in result.stdout


def test_a_failing_job_exits_1(cli: Cli, tmp_path: Path) -> None:
    file = write(tmp_path, template([job_metric("smoke", 3)]))
    result = cli("analyze", "-f", file)
    assert result.exit_code == 1, result.output
    assert "Status:          ✖ Failed" in result.stdout


def test_an_inconclusive_template_exits_3(cli: Cli, server: MetricsServer, tmp_path: Path) -> None:
    url = server.answer("/rate", '{"rate": 0.9}')
    metric = web_metric(
        "rate", url, successCondition="result >= 0.95", failureCondition="result < 0.5"
    )
    result = cli("analyze", "-f", write(tmp_path, template([metric])))
    assert result.exit_code == 3, result.output
    assert "Status:          ? Inconclusive" in result.stdout
    assert "inconclusive (1) > inconclusiveLimit (0)" in result.stdout


def test_nan_never_passes_it_fails_as_in_argo(
    cli: Cli, server: MetricsServer, tmp_path: Path
) -> None:
    # Argo keeps NaN as a float: `result >= 0.95` is false for it, so the measurement fails
    # (reference 2.10); it is never a pass, and the value shows why.
    url = server.answer("/rate", '{"rate": NaN}')
    metric = web_metric("rate", url, successCondition="result >= 0.95")
    result = cli("analyze", "-f", write(tmp_path, template([metric])))
    assert result.exit_code == 1, result.output
    assert "✖ Failed  NaN" in result.stdout


BROKEN = [
    pytest.param(
        lambda server: (
            web_metric(
                "rate",
                server.answer("/rate", '{"rate": 1}'),
                successCondition="result >=",
                consecutiveErrorLimit=0,
            ),
            [],
        ),
        'could not evaluate successCondition "result >=": invalid condition',
        id="bad expression",
    ),
    pytest.param(
        lambda server: (
            web_metric("rate", f"http://127.0.0.1:{closed_port()}/rate", consecutiveErrorLimit=0),
            [],
        ),
        "is unreachable: connection refused",
        id="unreachable server",
    ),
    pytest.param(
        lambda server: (
            web_metric(
                "rate",
                server.answer("/empty", "[]"),
                jsonPath="{$}",
                successCondition="result[0] > 1",
                consecutiveErrorLimit=0,
            ),
            [],
        ),
        "metric result is nil or empty",
        id="empty result",
    ),
    pytest.param(
        lambda server: (
            web_metric("rate", "http://127.0.0.1:1/{{args.path}}", consecutiveErrorLimit=0),
            [{"name": "path"}],
        ),
        "Unable to create the AnalysisRun: args.path was not resolved (give it with -a path=",
        id="unresolved arg",
    ),
]


@pytest.mark.parametrize(("make", "message"), BROKEN)
def test_a_broken_template_is_an_error_with_its_reason_exit_2(
    cli: Cli, server: MetricsServer, tmp_path: Path, make: Any, message: str
) -> None:
    metric, args = make(server)
    result = cli("analyze", "-f", write(tmp_path, template([metric], args=args)))
    assert result.exit_code == 2, result.output
    assert "Status:          ⚠ Error" in result.stdout
    assert message in result.stdout
    assert "Traceback" not in result.output


def test_once_ends_at_the_first_error_whatever_the_limits(cli: Cli, tmp_path: Path) -> None:
    # Default consecutiveErrorLimit (4) and the fixed 10 s retry would take 40 s; --once
    # measures once and takes the outcome as it is.
    metric = web_metric("rate", f"http://127.0.0.1:{closed_port()}/x", count=5, interval="1m")
    result = cli("analyze", "-f", write(tmp_path, template([metric])), "--once")
    assert result.exit_code == 2, result.output
    assert "connection refused" in result.stdout


def test_once_takes_the_worst_measurement(cli: Cli, server: MetricsServer, tmp_path: Path) -> None:
    good = web_metric(
        "good", server.answer("/good", '{"rate": 1}'), successCondition="result > 0.5"
    )
    bad = web_metric(
        "bad",
        server.answer("/bad", '{"rate": 0}'),
        successCondition="result > 0.5",
        failureLimit=3,
        count=4,
        interval="1m",
    )
    result = cli("analyze", "-f", write(tmp_path, template([good, bad])), "--once", "--json")
    assert result.exit_code == 1, result.output
    run = json.loads(result.stdout)
    phases = {r["name"]: r["phase"] for r in run["status"]["metricResults"]}
    assert phases == {"good": "Successful", "bad": "Failed"}
    assert run["spec"]["metrics"][1]["failureLimit"] == 0


def test_a_run_that_would_never_finish_is_refused_unless_once(
    cli: Cli, server: MetricsServer, tmp_path: Path
) -> None:
    url = server.answer("/rate", '{"rate": 1}')
    file = write(tmp_path, template([web_metric("forever", url, interval="1s")]))
    refused = cli("analyze", "-f", file)
    assert refused.exit_code == 1
    assert "'forever'" in refused.stderr
    assert "would never finish" in refused.stderr
    assert "--once" in refused.stderr
    assert server.requests == []
    once = cli("analyze", "-f", file, "--once")
    assert once.exit_code == 0, once.output
    assert len(server.requests) == 1


# --- analyze: the file ---------------------------------------------------------------------------


def test_json_prints_only_the_final_run(cli: Cli, server: MetricsServer, tmp_path: Path) -> None:
    url = server.answer("/rate", '{"rate": 0.99}')
    metric = web_metric("rate", url, successCondition="result > 0.9")
    result = cli("analyze", "-f", write(tmp_path, template([metric])), "--json", "--name", "try-1")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["kind"] == "AnalysisRun"
    assert run["metadata"]["name"] == "try-1"
    assert run["status"]["phase"] == "Successful"
    measurement = run["status"]["metricResults"][0]["measurements"][0]
    assert (measurement["phase"], measurement["value"]) == ("Successful", "0.99")


def test_a_file_with_problems_exits_1_with_their_positions_and_measures_nothing(
    cli: Cli, server: MetricsServer, tmp_path: Path
) -> None:
    url = server.answer("/rate", '{"rate": 1}')
    metric = web_metric("rate", url + "?q={{args.missing}}", count=2)
    file = write(tmp_path, template([metric]), name="bad.yaml")
    result = cli("analyze", "-f", file)
    assert result.exit_code == 1
    assert "bad.yaml:" in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(file)]
    assert any("{{args.missing}}" in line for line in lines)
    assert any("needs an interval" in line for line in lines)
    for line in lines:
        location = line[len(file) :].split(":")
        assert location[1].isdigit()
        assert location[2].isdigit()
    assert "nothing run" in result.stderr
    assert server.requests == []


def test_templates_merge_with_nested_refs_from_the_file_then_the_store(
    cli: Cli, server: MetricsServer, tmp_path: Path
) -> None:
    stored = template(
        [web_metric("stored", server.answer("/s", '{"rate": 1}'), successCondition="result > 0")],
        name="from-store",
    )
    applied = cli("apply", "-f", write(tmp_path, stored, name="stored.yaml"))
    assert applied.exit_code == 0, applied.output
    nested = template(
        [web_metric("nested", server.answer("/n", '{"rate": 1}'))],
        name="nested",
        kind="ClusterAnalysisTemplate",
    )
    top = template(
        [web_metric("top", "{{args.url}}")],
        name="top",
        args=[{"name": "url"}],
        extra={
            "templates": [
                {"templateName": "nested", "clusterScope": True},
                {"templateName": "from-store"},
            ]
        },
    )
    file = write(tmp_path, top, nested)
    url = server.answer("/t", '{"rate": 1}')
    result = cli("analyze", "-f", file, "-a", f"url={url}", "-a", "unused=1", "--json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert [m["name"] for m in run["spec"]["metrics"]] == ["nested", "stored", "top"]
    assert "note: -a unused: the analysis declares no such arg; ignored" in result.stderr
    assert sorted(path for path, _ in server.requests) == ["/n", "/s", "/t"]


def test_an_analysis_run_file_runs_as_is_with_its_args_overridden(
    cli: Cli, server: MetricsServer, tmp_path: Path
) -> None:
    good = server.answer("/good", '{"rate": 1}')
    run = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "by-hand"},
        "spec": {
            "args": [{"name": "url", "value": f"http://127.0.0.1:{closed_port()}/"}],
            "metrics": [web_metric("rate", "{{args.url}}", successCondition="result == 1")],
        },
        "status": {"phase": "Failed"},
    }
    result = cli("analyze", "-f", write(tmp_path, run), "-a", f"url={good}", "--json")
    assert result.exit_code == 0, result.output
    measured = json.loads(result.stdout)
    assert measured["metadata"]["name"] == "by-hand"
    assert measured["spec"]["args"] == [{"name": "url", "value": good}]
    assert measured["status"]["phase"] == "Successful"


def test_a_file_without_anything_to_run_is_refused(cli: Cli, tmp_path: Path) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}
    result = cli("analyze", "-f", write(tmp_path, service))
    assert result.exit_code == 1
    assert "holds no AnalysisTemplate, ClusterAnalysisTemplate or AnalysisRun" in result.stderr


def test_the_builtin_provider_without_a_running_traefik_is_a_clear_error(
    cli: Cli, tmp_path: Path
) -> None:
    metric = {
        "name": "success",
        "consecutiveErrorLimit": 0,
        "provider": {"plugin": {"rollwise/builtin": {"metric": "success-rate", "service": "x"}}},
    }
    result = cli("analyze", "-f", write(tmp_path, template([metric])))
    assert result.exit_code == 2, result.output
    assert f"no Traefik runs for {cli.home}" in result.stdout


# --- secrets -------------------------------------------------------------------------------------

SECRET = "s3cr3t-t0ken-value"


def test_create_secret_stores_base64_data_and_prints_no_value(cli: Cli, tmp_path: Path) -> None:
    key_file = tmp_path / "ca.pem"
    key_file.write_bytes(b"\x00binary\xff")
    created = cli(
        "create",
        "secret",
        "generic",
        "api",
        "--from-literal",
        f"token={SECRET}",
        "--from-file",
        str(key_file),
    )
    assert (created.exit_code, created.output) == (0, "secret/api created\n")
    with cli.store() as store:
        secret = store.require("Secret", "api", "default")
    assert secret["apiVersion"] == "v1"
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["token"]).decode() == SECRET
    assert base64.b64decode(secret["data"]["ca.pem"]) == b"\x00binary\xff"
    again = cli("create", "secret", "generic", "api", "--from-literal", "token=other")
    assert (again.exit_code, again.output) == (0, "secret/api configured\n")
    with cli.store() as store:
        assert list(store.require("Secret", "api", "default")["data"]) == ["token"]


@pytest.mark.parametrize(
    "args",
    [
        ["--from-literal", SECRET],
        ["--from-literal", f"bad key={SECRET}"],
        ["--from-literal", f"k={SECRET}", "--from-literal", f"k={SECRET}"],
    ],
    ids=["no key", "bad key", "key twice"],
)
def test_a_bad_secret_is_refused_without_showing_its_value(cli: Cli, args: list[str]) -> None:
    result = cli("create", "secret", "generic", "api", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert SECRET not in result.output
    assert not (cli.home / "state.db").exists()


def test_a_secret_arg_reaches_the_provider_and_never_the_output(
    cli: Cli, server: MetricsServer, tmp_path: Path
) -> None:
    created = cli("create", "secret", "generic", "api", "--from-literal", f"token={SECRET}")
    assert created.exit_code == 0
    metric = {
        "name": "echo",
        "successCondition": "result != ''",
        "provider": {
            "web": {
                "url": f"http://127.0.0.1:{server.port}/echo-auth",
                "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}],
                "jsonPath": "{$.auth}",
            }
        },
    }
    args = [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}]
    file = write(tmp_path, template([metric], args=args))
    text = cli("analyze", "-f", file)
    as_json = cli("analyze", "-f", file, "--json")
    assert (text.exit_code, as_json.exit_code) == (0, 0), text.output + as_json.output
    assert [headers.get("Authorization") for _, headers in server.requests] == [
        f"Bearer {SECRET}"
    ] * 2
    assert "Bearer *****" in text.stdout
    assert "token=<secret api/token>" in text.stdout
    for result in (created, text, as_json):
        assert SECRET not in result.output
    run = json.loads(as_json.stdout)
    assert run["status"]["metricResults"][0]["measurements"][0]["value"] == "Bearer *****"


# --- get / list / terminate analysisrun ----------------------------------------------------------


def stored_run(cli: Cli, name: str = "myapp-7d9f-2", namespace: str = "default") -> None:
    run = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "api", "key": "t"}}}],
            "metrics": [{"name": "success-rate", "provider": {"prometheus": {"query": "up"}}}],
        },
    }
    status = {
        "phase": "Running",
        "startedAt": "2026-11-26T01:50:00Z",
        "metricResults": [
            {
                "name": "success-rate",
                "phase": "Running",
                "count": 1,
                "successful": 1,
                "metadata": {"ResolvedPrometheusQuery": "up"},
                "measurements": [
                    {
                        "phase": "Successful",
                        "startedAt": "2026-11-26T01:50:00Z",
                        "finishedAt": "2026-11-26T01:50:01Z",
                        "value": "[1]",
                    }
                ],
            }
        ],
    }
    with cli.store() as store:
        store.create(run)
        store.patch("AnalysisRun", name, namespace, merge=status, status=True)


def test_get_analysisrun_shows_the_run_and_its_aliases_agree(cli: Cli) -> None:
    stored_run(cli)
    result = cli("get", "analysisrun", "myapp-7d9f-2")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Name:            myapp-7d9f-2\nNamespace:       default\n")
    assert "Status:          ◌ Running" in result.stdout
    assert "  Query:         up" in result.stdout
    assert "  2026-11-26T01:50:01Z  ✔ Successful  [1]" in result.stdout
    for alias in ("ar", "analysisruns"):
        assert cli("get", alias, "myapp-7d9f-2").stdout == result.stdout


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_get_analysisrun_prints_the_object(cli: Cli, output: str) -> None:
    stored_run(cli)
    result = cli("get", "analysisrun", "myapp-7d9f-2", "-o", output)
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.stdout) if output == "json" else yaml.safe_load(result.stdout)
    assert parsed["metadata"]["name"] == "myapp-7d9f-2"
    assert parsed["status"]["metricResults"][0]["measurements"][0]["value"] == "[1]"


def test_get_analysisrun_watch_draws_until_the_timeout(cli: Cli) -> None:
    stored_run(cli)
    result = cli("get", "analysisrun", "myapp-7d9f-2", "-w", "--timeout-seconds", "1")
    assert result.exit_code == 0, result.output
    assert "\033[H\033[2J" in result.stdout
    assert "Name:            myapp-7d9f-2" in result.stdout


@pytest.mark.parametrize("verb", [["get", "analysisrun"], ["terminate", "analysisrun"]])
def test_an_unknown_run_is_a_clear_error_and_nothing_is_written(cli: Cli, verb: list[str]) -> None:
    stored_run(cli)
    before = cli.revision()
    result = cli(*verb, "nope")
    assert result.exit_code == 1
    assert result.stderr == "Error: analysisrun 'nope' not found in namespace 'default'\n"
    assert cli.revision() == before


def test_terminate_sets_spec_terminate(cli: Cli) -> None:
    stored_run(cli)
    result = cli("terminate", "analysisrun", "myapp-7d9f-2")
    assert (result.exit_code, result.stdout) == (0, "analysisrun 'myapp-7d9f-2' terminated\n")
    with cli.store() as store:
        run = store.require("AnalysisRun", "myapp-7d9f-2", "default")
    assert run["spec"]["terminate"] is True
    assert run["status"]["phase"] == "Running"  # the controller decides what it becomes


def test_list_analysisruns(cli: Cli) -> None:
    assert cli("list", "analysisruns").stderr == "No analysis runs found in namespace 'default'.\n"
    stored_run(cli, "one")
    stored_run(cli, "two", namespace="shop")
    mine = cli("list", "analysisruns")
    assert mine.exit_code == 0
    header, row = mine.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "AGE"]
    assert row.split()[:2] == ["one", "Running"]
    everywhere = cli("list", "ar", "-A").stdout.splitlines()
    assert [line.split()[:3] for line in everywhere[1:]] == [
        ["default", "one", "Running"],
        ["shop", "two", "Running"],
    ]
