"""deploy/grafana/rollwise.json: every PromQL expression parses (promtool, Prometheus' own
parser) and every metric it selects, with every label it matches on, is one that rollwise's
controller or its demo app really exports (read from their exposition, not from a list)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.controller.metrics_support import analysis_run, parse_series, require_binary, rollout

from rollwise.controller.http import ControllerHTTPServer
from rollwise.controller.metrics import ControllerMetrics
from rollwise.core.timestamps import ManualClock
from rollwise.demo.app import Behaviour
from rollwise.demo.app import Metrics as DemoMetrics
from rollwise.demo.prometheus import PrometheusServer
from rollwise.platforms.local.store import SqliteStore

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "rollwise.json"

# What Grafana puts in place of its variables before a query leaves for Prometheus.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "30m",
    "namespace": "default",
    "rollout": "shop",
    "datasource": "prometheus",
}
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def expressions(node: Any) -> Iterator[str]:
    """Every `expr` in the dashboard: panel targets, rows' panels, annotations."""
    if isinstance(node, dict):
        for key, child in node.items():
            if key == "expr" and isinstance(child, str):
                yield child
            else:
                yield from expressions(child)
    elif isinstance(node, list):
        for child in node:
            yield from expressions(child)


def variable_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(selector, label) of every `label_values(selector, label)` template variable."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else ""
        found = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        assert found, f"variable {variable['name']}: {query!r} is not label_values(selector, label)"
        yield found.group(1), found.group(2)


def substitute(expr: str) -> str:
    def value(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        assert name in GRAFANA_VARIABLES, f"unknown Grafana variable ${name} in {expr!r}"
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def selectors(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """The vector selectors of a PromQL expression as (metric name, label names matched on),
    and the label names of its grouping clauses (by, without, on, ignoring, group_*)."""
    found: list[tuple[str, set[str]]] = []
    braces = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
    for selector in braces.finditer(expr):
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"", selector.group(2)))
        assert selector.group(1), f"a selector without a metric name in {expr!r}"
        found.append((selector.group(1), labels))
    rest = braces.sub(" ", expr)
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', " ", rest)  # strings (label_replace arguments...)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # ranges and subqueries
    grouping: set[str] = set()
    clause = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
    for group in clause.finditer(rest):
        grouping.update(label.strip() for label in group.group(2).split(",") if label.strip())
    rest = clause.sub(" ", rest)
    for word in re.finditer(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*", rest):
        name = word.group(0)
        end = word.end()
        if name in KEYWORDS or re.match(r"\s*\(", rest[end:]):
            continue
        found.append((name, set()))
    return found, grouping


def populate(store: SqliteStore, clock: ManualClock) -> None:
    """A routed canary at its pause (canary version `new`, stable `old`), its analysis run and
    an event about it."""
    status = {
        "currentStepIndex": 1,
        "currentPodHash": "new",
        "stableRS": "old",
        "canary": {"weights": {"canary": {"weight": 20}, "stable": {"weight": 80}}},
    }
    canary = {"trafficRouting": {"istio": {}}, "steps": [{"setWeight": 20}, {"pause": {}}]}
    store.create(rollout("shop", canary=canary, status=status))
    store.create(analysis_run())
    store.record_event(
        kind="Rollout",
        name="shop",
        namespace="default",
        type="Normal",
        reason="RolloutUpdated",
        message="updated",
        at=clock.now(),
    )


def observe(metrics: ControllerMetrics) -> None:
    """Reconciles (failed ones too) and notifications (failed ones too) about them."""
    for kind, name in (("Rollout", "shop"), ("AnalysisRun", "shop-c4n4ry-2-1")):
        metrics.observe_reconcile(kind, "default", name, seconds=0.01, failed=True)
    for succeeded in (True, False):
        metrics.observe_notification(
            "default",
            "shop",
            event_type="Normal",
            reason="RolloutUpdated",
            seconds=0.1,
            succeeded=succeeded,
        )


def exported_labels(tmp_path: Path) -> dict[str, set[str]]:
    """Series name -> label names, from the exposition of a controller that has seen a
    routed canary with an analysis run, events, reconciles and notifications, and from the
    demo app's."""
    clock = ManualClock(datetime(2026, 11, 26, tzinfo=UTC))
    with SqliteStore(tmp_path / "state.db", clock=clock) as store:
        populate(store, clock)
        metrics = ControllerMetrics(store, clock=clock)
        observe(metrics)
        controller_text = metrics.render().decode()
    demo = Behaviour(
        color="blue", version="new", pod="p", service="shop", error_rate=0.0, latency_s=0.0
    )
    demo_text = DemoMetrics(demo).render()
    labels: dict[str, set[str]] = {}
    for text in (controller_text, demo_text):
        for name, label_set in parse_series(text):
            labels.setdefault(name, set()).update(label for label, _ in label_set)
    return labels


def promtool() -> str:
    return require_binary("promtool")


def check_rules(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` over one recording rule per expression."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"rollwise:dashboard:expr{index}", "expr": expr}
                    for index, expr in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def all_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = list(expressions(dashboard))
    exprs += [selector for selector, _ in variable_queries(dashboard)]
    return [substitute(expr) for expr in exprs]


def test_the_dashboard_has_the_seeds_panels(dashboard: dict[str, Any]) -> None:
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Canary vs Stable Success Rate", "Traffic weights", "Analysis Status"} <= titles
    assert len(all_exprs(dashboard)) >= 20


def test_every_expression_parses(dashboard: dict[str, Any], tmp_path: Path) -> None:
    checked = check_rules(tmp_path, all_exprs(dashboard))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_parse_check_refuses_a_broken_expression(tmp_path: Path) -> None:
    checked = check_rules(tmp_path, ["rollout_info", "sum(rate(rollout_reconcile_count[1m])"])
    assert checked.returncode != 0
    assert "parse error" in checked.stdout + checked.stderr


def test_every_metric_and_label_is_exported(dashboard: dict[str, Any], tmp_path: Path) -> None:
    exported = exported_labels(tmp_path)
    problems: list[str] = []
    for expr in all_exprs(dashboard):
        used, grouping = selectors(expr)
        assert used, f"no metric found in {expr!r}"
        for name, labels in used:
            if name not in exported:
                problems.append(f"{name} is not exported ({expr!r})")
                continue
            unknown = labels - exported[name] - SCRAPE_LABELS
            if unknown:
                problems.append(f"{name} has no label {sorted(unknown)} ({expr!r})")
        known = set().union(*(exported.get(name, set()) for name, _ in used)) | SCRAPE_LABELS
        if grouping - known:
            problems.append(f"grouping by {sorted(grouping - known)} in {expr!r}")
    for selector, label in variable_queries(dashboard):
        [(name, _)] = selectors(substitute(selector))[0]
        if label not in exported.get(name, set()):
            problems.append(f"variable label {label} is not a label of {name}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("expr", "names", "grouping"),
    [
        ('sum by (le) (rate(a_bucket{x="1"}[1m]))', {("a_bucket", frozenset({"x"}))}, {"le"}),
        (
            'rate(b[1m]) and on(version) c{role="canary",n=~"s-.*"}',
            {("b", frozenset()), ("c", frozenset({"role", "n"}))},
            {"version"},
        ),
        ('100 - d{n="a"} offset 5m', {("d", frozenset({"n"}))}, set()),
        ('label_replace(e, "dst", "$1", "src", "(.*)")', {("e", frozenset())}, set()),
    ],
)
def test_the_selector_reader(
    expr: str, names: set[tuple[str, frozenset[str]]], grouping: set[str]
) -> None:
    used, found_grouping = selectors(expr)
    assert {(name, frozenset(labels)) for name, labels in used} == names
    assert found_grouping == grouping


# --- the panels against a real Prometheus ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _query(prometheus: PrometheusServer, promql: str) -> list[dict[str, Any]]:
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body: dict[str, Any] = json.load(response)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@contextlib.contextmanager
def demo_app(version: str, error_rate: float) -> Iterator[str]:
    """A real demo app process whose `version` label is `version`; yields its address."""
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "ROLLWISE_POD_TEMPLATE_HASH": version}
    command = [sys.executable, "-m", "rollwise.demo.app", "--error-rate", str(error_rate)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                if _get(f"http://127.0.0.1:{port}/healthz") == 200:
                    break
            assert process.poll() is None, "the demo app exited"
            assert time.monotonic() < deadline, "the demo app did not answer"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_panels_show_data_in_a_real_prometheus(
    dashboard: dict[str, Any], tmp_path: Path
) -> None:
    """Prometheus scrapes a controller's /metrics and two demo app versions (the canary fails
    half of its requests): every panel query returns series, and the success-rate join of
    `http_requests_total` with `rollwise_rollout_version_info` tells the versions apart."""
    binary = require_binary("prometheus")
    clock = ManualClock(datetime(2026, 11, 26, tzinfo=UTC))
    store = SqliteStore(tmp_path / "state.db", clock=clock)
    with contextlib.ExitStack() as stack:
        stack.callback(store.close)
        populate(store, clock)
        metrics = ControllerMetrics(store, clock=clock)
        observe(metrics)
        server = ControllerHTTPServer(metrics, port=0)
        await server.start()
        canary = stack.enter_context(demo_app("new", 0.5))
        stable = stack.enter_context(demo_app("old", 0.0))
        prometheus = PrometheusServer(tmp_path / "prometheus", binary=binary)
        stack.callback(prometheus.stop)
        try:
            await asyncio.to_thread(prometheus.start)
            prometheus.scrape([f"127.0.0.1:{server.port}", canary, stable])
            exprs = [substitute(expr) for expr in expressions(dashboard)]
            annotations = {substitute(a["expr"]) for a in dashboard["annotations"]["list"]}
            empty: list[str] = list(exprs)
            deadline = time.monotonic() + 60
            while empty and time.monotonic() < deadline:
                for address in (canary, stable):  # traffic for rate() over two scrapes
                    for _ in range(10):
                        await asyncio.to_thread(_get, f"http://{address}/")
                results = [await asyncio.to_thread(_query, prometheus, e) for e in exprs]
                empty = [e for e, r in zip(exprs, results, strict=True) if not r]
                empty = [e for e in empty if e not in annotations]  # `> 0`: may be empty
                await asyncio.sleep(0.5)
            assert not empty, "no data for:\n" + "\n".join(empty)

            [success] = [
                p for p in dashboard["panels"] if p["title"] == "Canary vs Stable Success Rate"
            ]
            rates = {
                target["legendFormat"]: float(
                    (await asyncio.to_thread(_query, prometheus, substitute(target["expr"])))[0][
                        "value"
                    ][1]
                )
                for target in success["targets"]
            }
            assert rates["Stable"] == 1.0
            assert 0.3 < rates["Canary"] < 0.7  # half fail; the window may start mid-stream
        finally:
            await server.stop()
