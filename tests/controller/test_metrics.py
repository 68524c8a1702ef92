"""`/metrics` series read from a real SQLite store: Argo's names, labels and values, rollwise's
additions, events counted from the store, and series of deleted objects kept for a grace
period, then dropped. Time is a ManualClock; the exposition is read back with
prometheus_client's parser (and checked by promtool where it is installed)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.controller.metrics_support import (
    Series,
    analysis_run,
    matching,
    names,
    parse_series,
    require_binary,
    rollout,
    value,
)

from rollwise.controller.metrics import DELETED_GRACE_SECONDS, ControllerMetrics
from rollwise.core.timestamps import ManualClock
from rollwise.platforms.local.store import SqliteStore

START = datetime(2026, 11, 26, 1, 50, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "state.db", clock=clock) as opened:
        yield opened


def metrics_of(store: SqliteStore, clock: ManualClock, **options: Any) -> ControllerMetrics:
    return ControllerMetrics(store, clock=clock, process_metrics=False, **options)


def scrape(metrics: ControllerMetrics) -> Series:
    return parse_series(metrics.render().decode())


def progressing(reason: str) -> dict[str, Any]:
    return {"type": "Progressing", "status": "True", "reason": reason}


# --- rollouts -------------------------------------------------------------------------------------


ROUTED_PAUSED = {
    "replicas": 5,
    "availableReplicas": 4,
    "updatedReplicas": 1,
    "currentStepIndex": 1,
    "currentPodHash": "c4n4ry",
    "stableRS": "st4b1e",
    "conditions": [progressing("RolloutPaused")],
    "canary": {
        "weights": {
            "canary": {"weight": 20, "podTemplateHash": "c4n4ry"},
            "stable": {"weight": 80, "podTemplateHash": "st4b1e"},
            "verified": True,
        }
    },
}


def test_a_routed_canary_at_a_pause(store: SqliteStore, clock: ManualClock) -> None:
    canary = {
        "canaryService": "c",
        "stableService": "s",
        "trafficRouting": {"istio": {"virtualService": {"name": "vs"}}},
        "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}],
    }
    store.create(rollout("shop", canary=canary, replicas=5, status=ROUTED_PAUSED))
    series = scrape(metrics_of(store, clock))
    ids = {"namespace": "default", "name": "shop"}

    info = {**ids, "strategy": "canary", "traffic_router": "Istio", "phase": "Paused"}
    assert value(series, "rollout_info", **info) == 1
    assert value(series, "rollout_info_replicas_available", **ids) == 4
    assert value(series, "rollout_info_replicas_unavailable", **ids) == 1
    assert value(series, "rollout_info_replicas_desired", **ids) == 5
    assert value(series, "rollout_info_replicas_updated", **ids) == 1
    phases = matching(series, "rollout_phase", **ids, strategy="canary")
    assert {dict(labels)["phase"]: v for labels, v in phases.items()} == {
        "Completed": 0,
        "Progressing": 0,
        "Paused": 1,
        "Timeout": 0,
        "Error": 0,
        "Abort": 0,
    }
    assert value(series, "rollwise_rollout_canary_weight", **ids) == 20
    assert value(series, "rollwise_rollout_set_weight", **ids) == 20
    assert value(series, "rollwise_rollout_step", **ids) == 1
    assert value(series, "rollwise_rollout_steps", **ids) == 3
    assert value(series, "rollwise_rollout_version_info", **ids, role="canary", version="c4n4ry")
    assert value(series, "rollwise_rollout_version_info", **ids, role="stable", version="st4b1e")


@pytest.mark.parametrize(
    ("conditions", "phase"),
    [
        ([], "Progressing"),
        ([progressing("ReplicaSetUpdated")], "Progressing"),
        ([progressing("NewReplicaSetAvailable")], "Completed"),
        ([progressing("RolloutPaused")], "Paused"),
        ([progressing("ServiceNotFound")], "Error"),
        ([progressing("ReplicaSetCreateError")], "Error"),
        ([progressing("ProgressDeadlineExceeded")], "Timeout"),
        ([progressing("RolloutAborted")], "Abort"),
        (
            [progressing("RolloutAborted"), {"type": "InvalidSpec", "status": "True"}],
            "InvalidSpec",
        ),
    ],
)
def test_the_phase_label_comes_from_the_conditions_as_in_argo(
    store: SqliteStore, clock: ManualClock, conditions: list[dict[str, Any]], phase: str
) -> None:
    # status.phase says something else on purpose: Argo's metric ignores it.
    store.create(rollout("a", status={"phase": "Healthy", "conditions": conditions}))
    series = scrape(metrics_of(store, clock))
    info = matching(series, "rollout_info", name="a")
    assert [dict(labels)["phase"] for labels in info] == [phase]


@pytest.mark.parametrize(
    ("strategy", "labels"),
    [
        ({"blueGreen": {"activeService": "a"}}, ("blueGreen", "")),
        ({}, ("none", "")),
        ({"canary": {}}, ("canary", "")),
        (
            {"canary": {"trafficRouting": {"traefik": {"weightedTraefikServiceName": "t"}}}},
            ("canary", ""),
        ),
        ({"canary": {"trafficRouting": {"nginx": {"stableIngress": "i"}}}}, ("canary", "Nginx")),
        # Argo checks the routers in turn and the last one found wins.
        (
            {"canary": {"trafficRouting": {"alb": {}, "smi": {}, "istio": {}}}},
            ("canary", "SMI"),
        ),
    ],
)
def test_strategy_and_traffic_router_labels(
    store: SqliteStore, clock: ManualClock, strategy: dict[str, Any], labels: tuple[str, str]
) -> None:
    store.create(rollout("a", strategy=strategy))
    series = scrape(metrics_of(store, clock))
    [info] = matching(series, "rollout_info", name="a")
    assert (dict(info)["strategy"], dict(info)["traffic_router"]) == labels


def test_desired_replicas_default_to_one_and_weights_are_only_for_canaries(
    store: SqliteStore, clock: ManualClock
) -> None:
    store.create(rollout("bg", strategy={"blueGreen": {"activeService": "a"}}, replicas=None))
    series = scrape(metrics_of(store, clock))
    assert value(series, "rollout_info_replicas_desired", namespace="default", name="bg") == 1
    assert not matching(series, "rollwise_rollout_canary_weight", name="bg")


def test_without_traffic_routing_the_weight_is_the_canary_share_of_available_pods(
    store: SqliteStore, clock: ManualClock
) -> None:
    status = {"availableReplicas": 4, "currentPodHash": "new", "stableRS": "old"}
    created = store.create(rollout("basic", canary={"steps": [{"setWeight": 25}]}, status=status))
    for pod_hash, available in (("old", 3), ("new", 1)):
        store.create(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"basic-{pod_hash}",
                    "labels": {"app": "basic", "rollouts-pod-template-hash": pod_hash},
                    "ownerReferences": [
                        {"kind": "Rollout", "name": "basic", "uid": created["metadata"]["uid"]}
                    ],
                },
                "spec": {"replicas": available},
                "status": {"availableReplicas": available},
            }
        )
    metrics = metrics_of(store, clock)
    ids = {"namespace": "default", "name": "basic"}
    assert value(scrape(metrics), "rollwise_rollout_canary_weight", **ids) == 25

    # Once the canary is the stable one, nothing is "canary" any more.
    stored = store.require("Rollout", "basic")
    store.update_status({**stored, "status": {**status, "stableRS": "new"}})
    assert value(scrape(metrics), "rollwise_rollout_canary_weight", **ids) == 0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"currentStepIndex": 0}, 10),
        ({"currentStepIndex": 1}, 10),  # a pause keeps the weight of the step before it
        ({"currentStepIndex": 2}, 50),
        ({"currentStepIndex": 3}, 100),  # past the last step
        ({"currentStepIndex": 2, "abort": True}, 0),
    ],
)
def test_set_weight_follows_the_steps(
    store: SqliteStore, clock: ManualClock, status: dict[str, Any], expected: int
) -> None:
    steps = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]
    store.create(rollout("a", canary={"steps": steps}, status=status))
    series = scrape(metrics_of(store, clock))
    assert value(series, "rollwise_rollout_set_weight", namespace="default", name="a") == expected


# --- analysis runs, templates, experiments --------------------------------------------------------


def test_analysis_run_series(store: SqliteStore, clock: ManualClock) -> None:
    store.create(analysis_run())
    series = scrape(metrics_of(store, clock))
    ids = {"namespace": "default", "name": "shop-c4n4ry-2-1"}

    assert value(series, "analysis_run_info", **ids, phase="Running") == 1
    run_phases = matching(series, "analysis_run_phase", **ids)
    assert {dict(labels)["phase"] for labels, v in run_phases.items() if v} == {"Running"}
    assert len(run_phases) == 6

    types = {
        dict(labels)["metric"]: dict(labels)["type"]
        for labels in matching(series, "analysis_run_metric_type", **ids)
    }
    assert types == {
        "success-rate": "Prometheus",
        "latency": "Web",
        "smoke": "Job",
        "pending": "NewRelic",
    }
    current = {
        (dict(labels)["metric"], dict(labels)["dry_run"], dict(labels)["phase"])
        for labels, v in matching(series, "analysis_run_metric_phase", **ids).items()
        if v == 1
    }
    assert current == {
        ("success-rate", "false", "Successful"),
        ("latency", "true", "Failed"),
        ("smoke", "false", "Running"),
        ("pending", "false", "Pending"),  # no result yet: Argo counts it Pending
    }
    last = {
        dict(labels)["metric"]: (dict(labels)["rollout"], v)
        for labels, v in matching(series, "rollwise_analysis_metric_value", **ids).items()
    }
    # The job's measurement has no value, so it has no series.
    assert last == {"success-rate": ("shop", 0.97), "latency": ("shop", 0.42)}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["0.5"], 0.5),
        (["[12]"], 12.0),
        (["3", "not a number"], 3.0),  # the last *numeric* value
        (["[1, 2]"], None),
        (["{}"], None),
        ([""], None),
    ],
)
def test_the_last_numeric_measurement_value(
    store: SqliteStore, clock: ManualClock, values: list[str], expected: float | None
) -> None:
    run = analysis_run()
    run["status"]["metricResults"] = [
        {"name": "success-rate", "measurements": [{"value": v} for v in values]}
    ]
    store.create(run)
    series = scrape(metrics_of(store, clock))
    found = matching(series, "rollwise_analysis_metric_value", metric="success-rate")
    assert list(found.values()) == ([] if expected is None else [expected])


def test_templates_and_experiments(store: SqliteStore, clock: ManualClock) -> None:
    metric = {"name": "success-rate", "provider": {"prometheus": {"query": "q"}}}
    for kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
        store.create(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": kind,
                "metadata": {"name": kind.lower()},
                "spec": {"metrics": [metric]},
            }
        )
    store.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "exp"},
            "spec": {"templates": []},
            "status": {"phase": "Successful"},
        }
    )
    series = scrape(metrics_of(store, clock))
    assert value(series, "analysis_template_info", namespace="default", name="analysistemplate")
    # Cluster-scoped: no namespace, as Argo's label is empty for it.
    assert value(series, "analysis_template_info", namespace="", name="clusteranalysistemplate")
    assert value(
        series,
        "analysis_template_metric_info",
        namespace="default",
        name="analysistemplate",
        type="Prometheus",
        metric="success-rate",
    )
    assert value(series, "experiment_info", namespace="default", name="exp", phase="Successful")
    experiment_phases = matching(series, "experiment_phase", name="exp")
    assert {dict(labels)["phase"]: v for labels, v in experiment_phases.items()} == {
        "Pending": 0,
        "Error": 0,
        "Successful": 1,
        "Running": 0,
        "Inconclusive": 0,
    }


# --- what the loop and the notifier report --------------------------------------------------------


def test_reconciles_fill_argo_buckets_and_errors_keep_argo_names(
    store: SqliteStore, clock: ManualClock
) -> None:
    store.create(rollout("a"))
    metrics = metrics_of(store, clock)
    for seconds in (0.005, 0.2, 0.2, 3.0):
        metrics.observe_reconcile("Rollout", "default", "a", seconds=seconds, failed=False)
    metrics.observe_reconcile("Rollout", "default", "a", seconds=0.02, failed=True)
    metrics.observe_reconcile("AnalysisRun", "default", "run", seconds=0.02, failed=True)
    metrics.observe_reconcile("Pod", "default", "p", seconds=0.02, failed=True)  # not Argo's
    text = metrics.render().decode()
    series = parse_series(text)
    ids = {"namespace": "default", "name": "a"}

    buckets = {
        dict(labels)["le"]: v
        for labels, v in matching(series, "rollout_reconcile_bucket", **ids).items()
    }
    assert buckets == {"0.01": 1, "0.15": 2, "0.25": 4, "0.5": 4, "1": 4, "+Inf": 5}
    assert value(series, "rollout_reconcile_count", **ids) == 5
    assert value(series, "rollout_reconcile_sum", **ids) == pytest.approx(3.425)
    assert value(series, "rollout_reconcile_error", **ids) == 1
    assert value(series, "analysis_run_reconcile_error", namespace="default", name="run") == 1
    assert "# TYPE rollout_reconcile_error counter" in text
    assert "rollout_reconcile_error_total" not in text
    assert not any('name="p"' in line for line in text.splitlines())


def test_notification_sends(store: SqliteStore, clock: ManualClock) -> None:
    store.create(rollout("a"))
    metrics = metrics_of(store, clock)
    for succeeded in (True, False, False):
        metrics.observe_notification(
            "default",
            "a",
            event_type="Warning",
            reason="RolloutAborted",
            seconds=0.1,
            succeeded=succeeded,
        )
    series = scrape(metrics)
    labels = {"namespace": "default", "name": "a", "type": "Warning", "reason": "RolloutAborted"}
    assert value(series, "notification_send_success", **labels) == 1
    assert value(series, "notification_send_error", **labels) == 2
    assert value(series, "notification_send_count", namespace="default", name="a") == 3


# --- events ---------------------------------------------------------------------------------------


def record(store: SqliteStore, name: str, reason: str, message: str = "m") -> None:
    store.record_event(
        kind="Rollout",
        name=name,
        namespace="default",
        type="Warning" if reason == "RolloutAborted" else "Normal",
        reason=reason,
        message=message,
        at=START,
    )


def test_events_are_counted_from_the_store_and_survive_a_restart(
    store: SqliteStore, clock: ManualClock
) -> None:
    store.create(rollout("a"))
    record(store, "a", "RolloutUpdated")
    record(store, "a", "RolloutUpdated")  # the same event again: one row, count 2
    record(store, "a", "RolloutUpdated", message="another revision")
    metrics = metrics_of(store, clock)
    updated = {"namespace": "default", "name": "a", "type": "Normal", "reason": "RolloutUpdated"}
    assert value(scrape(metrics), "rollout_events_total", **updated) == 3

    record(store, "a", "RolloutUpdated")
    record(store, "a", "RolloutAborted")
    series = scrape(metrics)
    assert value(series, "rollout_events_total", **updated) == 4
    aborted = {**updated, "type": "Warning", "reason": "RolloutAborted"}
    assert value(series, "rollout_events_total", **aborted) == 1

    # A new controller process starts from what the store recorded, not from zero.
    assert value(scrape(metrics_of(store, clock)), "rollout_events_total", **updated) == 4


def test_trimmed_event_rows_never_make_the_counter_go_down(
    tmp_path: Path, clock: ManualClock
) -> None:
    with SqliteStore(tmp_path / "small.db", clock=clock, event_limit=2) as store:
        store.create(rollout("a"))
        metrics = metrics_of(store, clock)
        labels = {"namespace": "default", "name": "a", "type": "Normal", "reason": "RolloutUpdated"}
        totals = []
        for index in range(5):
            record(store, "a", "RolloutUpdated", message=f"revision {index}")
            totals.append(value(scrape(metrics), "rollout_events_total", **labels))
        assert totals == [1, 2, 3, 4, 5]
        assert len(store.events(kind="Rollout", namespace=None)) <= 2


# --- deleted objects ------------------------------------------------------------------------------


def test_series_of_a_deleted_rollout_stay_for_the_grace_period_then_go(
    store: SqliteStore, clock: ManualClock
) -> None:
    store.create(rollout("gone", status=ROUTED_PAUSED))
    store.create(rollout("kept"))
    record(store, "gone", "RolloutUpdated")
    metrics = metrics_of(store, clock, deleted_grace_seconds=300)
    metrics.observe_reconcile("Rollout", "default", "gone", seconds=0.01, failed=True)
    metrics.observe_notification(
        "default", "gone", event_type="Normal", reason="RolloutUpdated", seconds=0.1, succeeded=True
    )
    before = {key for key in scrape(metrics) if ("name", "gone") in key[1]}
    assert {name for name, _ in before} >= {
        "rollout_info",
        "rollwise_rollout_canary_weight",
        "rollout_reconcile_count",
        "rollout_reconcile_error",
        "rollout_events_total",
        "notification_send_success",
    }

    store.delete("Rollout", "gone")
    assert {key for key in scrape(metrics) if ("name", "gone") in key[1]} == before
    clock.advance(299)
    assert {key for key in scrape(metrics) if ("name", "gone") in key[1]} == before
    clock.advance(1)
    series = scrape(metrics)
    assert not [key for key in series if ("name", "gone") in key[1]]
    assert value(series, "rollout_info_replicas_desired", namespace="default", name="kept") == 4

    # Created again under the same name: its series come back from its current state.
    store.create(rollout("gone"))
    [info] = matching(scrape(metrics), "rollout_info", name="gone")
    assert dict(info)["phase"] == "Progressing"


def test_argo_grace_period_by_default(store: SqliteStore, clock: ManualClock) -> None:
    store.create(rollout("a"))
    metrics = metrics_of(store, clock)
    scrape(metrics)
    store.delete("Rollout", "a")
    assert matching(scrape(metrics), "rollout_info", name="a")
    clock.advance(DELETED_GRACE_SECONDS)
    assert not matching(scrape(metrics), "rollout_info", name="a")


def test_a_reconcile_of_an_object_already_gone_is_dropped_after_the_grace_period(
    store: SqliteStore, clock: ManualClock
) -> None:
    metrics = metrics_of(store, clock)
    metrics.observe_reconcile("AnalysisRun", "default", "run", seconds=0.01, failed=False)
    assert matching(scrape(metrics), "analysis_run_reconcile_count", name="run")
    clock.advance(DELETED_GRACE_SECONDS)
    assert not matching(scrape(metrics), "analysis_run_reconcile_count", name="run")


# --- the exposition -------------------------------------------------------------------------------


def test_controller_info_and_process_series(store: SqliteStore, clock: ManualClock) -> None:
    series = scrape(ControllerMetrics(store, clock=clock, version="9.9.9"))
    assert value(series, "argo_rollouts_controller_info", version="9.9.9") == 1
    assert value(series, "rollwise_controller_info", version="9.9.9", mode="local") == 1
    assert {"process_cpu_seconds_total", "python_info"} <= names(series)


def test_promtool_reads_the_exposition(store: SqliteStore, clock: ManualClock) -> None:
    promtool = require_binary("promtool")
    store.create(rollout("a", status=ROUTED_PAUSED))
    store.create(analysis_run())
    record(store, "a", "RolloutUpdated")
    metrics = ControllerMetrics(store, clock=clock)
    metrics.observe_reconcile("Rollout", "default", "a", seconds=0.01, failed=True)
    metrics.observe_notification(
        "default", "a", event_type="Normal", reason="RolloutUpdated", seconds=0.1, succeeded=False
    )
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=metrics.render(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    report = (checked.stdout + checked.stderr).decode()
    # Exit 3 is lint advice; a text that does not parse is exit 1. The only advice is about
    # Argo's counters, whose names (without `_total`) dashboards already query.
    assert checked.returncode in (0, 3), report
    advice = {line.split(" ")[0] for line in report.splitlines() if line.strip()}
    assert advice <= {
        "rollout_reconcile_error",
        "analysis_run_reconcile_error",
        "experiment_reconcile_error",
        "notification_send_success",
        "notification_send_error",
    }, report
