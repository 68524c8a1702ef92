"""`rollwise analyze`'s loop: the controller's reconciler driven in real (short) time against a
local web server and real job processes - count, interval, limits, fail-fast, `once`, the
refusal of runs that never finish, cancellation - and how the run is built from templates."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rollwise.api.errors import TransientError, UserError
from rollwise.api.models import AnalysisRun, AnalysisTemplate, Argument, ClusterAnalysisTemplate
from rollwise.controller.analysis import AnalysisRunReconciler
from rollwise.controller.analyze import (
    SecretsOnly,
    analyze,
    exit_code,
    local_services,
    once_metrics,
    refuse_unbounded,
    run_from_run,
    run_from_templates,
    traefik_metrics_source,
)
from rollwise.core.timestamps import SystemClock, parse_time
from rollwise.platforms.local.traefik import process_start_time

pytestmark = pytest.mark.timeout(30)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Values:
    """A local web server: `/value` answers the queued numbers in turn (the last one again and
    again); `hits` counts the requests."""

    def __init__(self) -> None:
        self.queue: list[object] = [1]
        self.hits = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        value = self.queue.pop(0) if len(self.queue) > 1 else self.queue[0]
        return web.json_response({"value": value})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text="traefik_up 1\n")


@pytest.fixture
async def values() -> AsyncIterator[Values]:
    server = Values()
    app = web.Application()
    app.router.add_get("/value", server.handle)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}/value"
    try:
        yield server
    finally:
        await runner.cleanup()


def web_metric(name: str, url: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields, "provider": {"web": {"url": url, "jsonPath": "{$.value}"}}}


def make_run(*metrics: dict[str, Any], **spec: Any) -> AnalysisRun:
    return AnalysisRun.model_validate(
        {"metadata": {"name": "r", "namespace": "default"}, "spec": {"metrics": metrics, **spec}}
    )


def reconciler(home: Path) -> AnalysisRunReconciler:
    return AnalysisRunReconciler(SecretsOnly(), clock=SystemClock(), services=local_services(home))


def result(run: AnalysisRun, name: str) -> Any:
    assert run.status is not None
    return next(r for r in run.status.metric_results or () if r.name == name)


# --- the loop honours the metric settings ------------------------------------------------------


async def test_count_and_interval_as_the_controller_does(values: Values, tmp_path: Path) -> None:
    updates: list[AnalysisRun] = []
    run = make_run(
        web_metric("m", values.url, count=2, interval="1s", successCondition="result > 0")
    )
    done = await analyze(
        run, reconciler=reconciler(tmp_path), secrets={}, once=False, on_update=updates.append
    )
    assert done.status is not None
    assert done.status.phase == "Successful"
    assert exit_code(done) == 0
    first, second = result(done, "m").measurements
    assert parse_time(second.started_at) >= parse_time(first.finished_at) + timedelta(seconds=1)
    assert values.hits == 2
    assert [len(result(u, "m").measurements or ()) for u in updates if u.status.metric_results] == [
        1,
        2,
    ]


async def test_the_failure_limit_ends_the_metric(values: Values, tmp_path: Path) -> None:
    values.queue = [0]
    metric = web_metric(
        "m", values.url, count=5, interval="0.2s", failureLimit=1, successCondition="result > 0"
    )
    done = await analyze(make_run(metric), reconciler=reconciler(tmp_path), secrets={}, once=False)
    assert done.status is not None
    assert done.status.phase == "Failed"
    assert exit_code(done) == 1
    assert values.hits == 2
    assert done.status.message == 'Metric "m" assessed Failed due to failed (2) > failureLimit (1)'


async def test_consecutive_successes_end_the_metric(values: Values, tmp_path: Path) -> None:
    values.queue = [0, 1, 1, 0]
    metric = web_metric(
        "m",
        values.url,
        count=6,
        interval="0.2s",
        failureLimit=-1,
        consecutiveSuccessLimit=2,
        successCondition="result > 0",
    )
    done = await analyze(make_run(metric), reconciler=reconciler(tmp_path), secrets={}, once=False)
    assert done.status is not None
    assert done.status.phase == "Successful"
    assert values.hits == 3


async def test_a_failed_metric_stops_the_others(values: Values, tmp_path: Path) -> None:
    values.queue = [0]
    failing = web_metric("failing", values.url, successCondition="result > 0")
    slow = web_metric("slow", values.url, count=3, interval="1m")
    done = await analyze(
        make_run(failing, slow), reconciler=reconciler(tmp_path), secrets={}, once=False
    )
    assert done.status is not None
    assert done.status.phase == "Failed"
    assert values.hits == 2  # one each, then fail-fast: no second `slow` a minute later
    assert result(done, "slow").phase == "Successful"


async def test_a_job_metric_runs_a_process(tmp_path: Path) -> None:
    container = {"name": "c", "image": "x", "command": [sys.executable, "-c", "exit(2)"]}
    job = {"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}}}
    run = make_run({"name": "smoke", "provider": {"job": job}})
    done = await analyze(run, reconciler=reconciler(tmp_path), secrets={}, once=False)
    assert done.status is not None
    assert done.status.phase == "Failed"


# --- once, and runs that never finish ----------------------------------------------------------


def test_once_rewrites_every_metric_to_one_decisive_measurement() -> None:
    run = make_run(
        web_metric(
            "m",
            "{{args.url}}",
            count="{{args.n}}",
            interval="5m",
            initialDelay="1m",
            failureLimit=-1,
            inconclusiveLimit=2,
            consecutiveErrorLimit=4,
            consecutiveSuccessLimit=3,
        )
    )
    (metric,) = once_metrics(run.spec.metrics)
    raw = metric.to_raw()
    assert raw == {
        "name": "m",
        "count": 1,
        "failureLimit": 0,
        "inconclusiveLimit": 0,
        "consecutiveErrorLimit": 0,
        "provider": {"web": {"url": "{{args.url}}", "jsonPath": "{$.value}"}},
    }


async def test_once_measures_an_unbounded_metric_once(values: Values, tmp_path: Path) -> None:
    values.queue = [0]
    metric = web_metric("m", values.url, interval="1s", successCondition="result > 0")
    done = await analyze(make_run(metric), reconciler=reconciler(tmp_path), secrets={}, once=True)
    assert done.status is not None
    assert done.status.phase == "Failed"
    assert values.hits == 1


@pytest.mark.parametrize(
    ("metrics", "spec", "refused"),
    [
        ([web_metric("m", "u", interval="1s")], {}, "'m'"),
        ([web_metric("m", "u", interval="1s", count=0)], {}, "'m'"),
        (
            [web_metric("a", "u"), web_metric("dry", "u", interval="1s")],
            {"dryRun": [{"metricName": "dr"}]},
            "a dry-run metric too",
        ),
        (
            [web_metric("m", "u", interval="1s", count="{{args.n}}")],
            {"args": [{"name": "n", "value": "3"}]},
            None,
        ),
        ([web_metric("m", "u")], {}, None),
        ([web_metric("m", "u", count=2, interval="1s")], {}, None),
    ],
    ids=["interval only", "count 0", "dry run", "count from args", "one", "count 2"],
)
def test_a_run_that_never_finishes_is_refused(
    metrics: list[dict[str, Any]], spec: dict[str, Any], refused: str | None
) -> None:
    run = make_run(*metrics, **spec)
    if refused is None:
        refuse_unbounded(run)
        return
    with pytest.raises(UserError) as raised:
        refuse_unbounded(run)
    assert refused in str(raised.value)
    assert "would never finish" in str(raised.value)
    assert "--once" in str(raised.value)


async def test_analyze_refuses_before_measuring(values: Values, tmp_path: Path) -> None:
    with pytest.raises(UserError):
        await analyze(
            make_run(web_metric("m", values.url, interval="1s")),
            reconciler=reconciler(tmp_path),
            secrets={},
            once=False,
        )
    assert values.hits == 0


async def test_cancelling_stops_a_running_job(tmp_path: Path) -> None:
    code = "import time; time.sleep(60)"
    container = {"name": "c", "image": "x", "command": [sys.executable, "-c", code]}
    job = {"spec": {"template": {"spec": {"containers": [container]}}}}
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def seen(run: AnalysisRun) -> None:
        for measurement in result(run, "sleepy").measurements or ():
            handle = (measurement.metadata or {}).get("rollwise.io/job-handle")
            if handle and not started.done():
                started.set_result(int(json.loads(handle)["pid"]))

    task = asyncio.create_task(
        analyze(
            make_run({"name": "sleepy", "provider": {"job": job}}),
            reconciler=reconciler(tmp_path),
            secrets={},
            once=False,
            on_update=seen,
        )
    )
    pid = await asyncio.wait_for(started, timeout=10)
    assert process_start_time(pid) is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if process_start_time(pid) is None:
            break
        await asyncio.sleep(0.05)
    assert process_start_time(pid) is None


# --- the run analyze builds ----------------------------------------------------------------------


def template(name: str, *metrics: dict[str, Any], cluster: bool = False, **spec: Any) -> Any:
    model = ClusterAnalysisTemplate if cluster else AnalysisTemplate
    return model.model_validate({"metadata": {"name": name}, "spec": {"metrics": metrics, **spec}})


def test_templates_are_merged_as_a_rollout_would_with_nested_refs_looked_up() -> None:
    cluster = template("shared", web_metric("shared", "u"), cluster=True)
    nested = template("nested", web_metric("nested", "{{args.url}}"), args=[{"name": "url"}])
    top = template(
        "top",
        web_metric("top", "u"),
        templates=[{"templateName": "nested"}],
        args=[{"name": "url", "value": "default"}],
    )
    looked_up: list[str] = []

    def lookup(ref: Any) -> Any:
        looked_up.append(ref.template_name)
        return {"nested": nested}.get(ref.template_name)

    prepared = run_from_templates(
        [cluster, top],
        args=[Argument(name="url", value="http://x"), Argument(name="other", value="1")],
        name="try",
        namespace="shop",
        lookup=lookup,
        now=NOW,
    )
    run = prepared.run
    assert run.status is None
    assert (run.name, run.namespace) == ("try", "shop")
    assert [m.name for m in run.spec.metrics] == ["nested", "top", "shared"]
    assert [a.to_raw() for a in run.spec.args or ()] == [{"name": "url", "value": "http://x"}]
    assert prepared.ignored_args == ("other",)
    assert looked_up == ["nested"]  # the templates given are not looked up


def test_a_run_that_cannot_be_built_is_an_error_run() -> None:
    needs = template("t", web_metric("m", "{{args.url}}"), args=[{"name": "url"}])
    missing = template("u", web_metric("n", "u"), templates=[{"templateName": "gone"}])
    for templates, message in [
        ([needs], "Unable to create the AnalysisRun: args.url was not resolved (give it with -a"),
        ([missing], 'Unable to create the AnalysisRun: AnalysisTemplate "gone" not found'),
        ([template("t2", web_metric("m", "u")), needs], "two metrics have the same name 'm'"),
    ]:
        run = run_from_templates(
            templates, args=[], name="r", namespace="default", lookup=lambda _: None, now=NOW
        ).run
        assert run.status is not None
        assert run.status.phase == "Error"
        assert message in (run.status.message or "")
        assert exit_code(run) == 2


def test_a_run_from_a_file_starts_afresh_with_args_replaced() -> None:
    run = AnalysisRun.model_validate(
        {
            "metadata": {"name": "old", "namespace": "a", "labels": {"x": "y"}},
            "spec": {
                "args": [{"name": "url", "value": "one"}, {"name": "keep", "value": "k"}],
                "metrics": [web_metric("m", "{{args.url}}")],
            },
            "status": {"phase": "Failed"},
        }
    )
    prepared = run_from_run(
        run,
        args=[Argument(name="url", value="two"), Argument(name="nope", value="")],
        name="new",
        namespace="b",
        now=NOW,
    )
    raw = prepared.run.to_raw()
    assert "status" not in raw
    assert raw["metadata"] == {
        "name": "new",
        "namespace": "b",
        "creationTimestamp": "2026-11-26T12:00:00Z",
        "labels": {"x": "y"},
    }
    assert raw["spec"]["args"] == [{"name": "url", "value": "two"}, {"name": "keep", "value": "k"}]
    assert prepared.ignored_args == ("nope",)


# --- what analyze gives the reconciler ------------------------------------------------------------


async def test_secrets_come_from_secret_objects_of_the_run_namespace(tmp_path: Path) -> None:
    secrets = [
        {
            "kind": "Secret",
            "metadata": {"name": "api", "namespace": "default"},
            "data": {"token": base64.b64encode(b"t0k").decode()},
            "stringData": {"user": "me"},
        },
        {"kind": "Secret", "metadata": {"name": "other", "namespace": "shop"}, "data": {}},
    ]
    store = SecretsOnly(secrets)
    found = AnalysisRunReconciler(store, clock=SystemClock(), services=local_services(tmp_path))
    assert found.secrets("default") == {"api/token": "t0k", "api/user": "me"}
    assert store.get("AnalysisRun", "x") is None
    assert store.list("AnalysisRun") == []
    with pytest.raises(TransientError):
        await store.write_status({})


async def test_traefik_metrics_without_a_running_traefik_say_so(tmp_path: Path) -> None:
    read = traefik_metrics_source(tmp_path)
    with pytest.raises(TransientError, match=f"no Traefik runs for {tmp_path}"):
        await read()
    (tmp_path / "traefik").mkdir()
    dead = {"webPort": 1, "apiPort": 2, "pid": os.getpid(), "started": "not-this-process"}
    (tmp_path / "traefik" / "state.json").write_text(json.dumps(dead))
    with pytest.raises(TransientError, match="no Traefik runs"):
        await traefik_metrics_source(tmp_path)()


async def test_traefik_metrics_are_read_from_the_recorded_api_port(
    values: Values, tmp_path: Path
) -> None:
    # The recorded process must be alive and the same one: this test's own process stands in
    # for Traefik, and the local server answers /metrics on the recorded API port.
    port = int(values.url.split(":")[2].split("/")[0])
    state = {
        "webPort": 1,
        "apiPort": port,
        "pid": os.getpid(),
        "started": process_start_time(os.getpid()),
    }
    (tmp_path / "traefik").mkdir()
    (tmp_path / "traefik" / "state.json").write_text(json.dumps(state))
    assert await traefik_metrics_source(tmp_path)() == "traefik_up 1\n"
