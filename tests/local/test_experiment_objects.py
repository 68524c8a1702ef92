"""Experiments in the local store (a real SQLite store): the objects their actions become, what
the Experiment reconciler observes of them, who is queued when they change, and the cascade a
deleted Experiment takes with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollwise.api.models import Experiment
from rollwise.core import actions as act
from rollwise.core import observing
from rollwise.core.analysis.creation import owner_reference
from rollwise.platforms.local import experiments
from rollwise.platforms.local.executor import owner_keys_for_change
from rollwise.platforms.local.store import SqliteStore

ROLLOUT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "shop", "namespace": "default", "uid": "r-1"},
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "state.db")
    try:
        yield opened
    finally:
        opened.close()


def create_experiment(store: SqliteStore) -> dict[str, object]:
    action = act.CreateExperiment(
        "shop-abc-2-1",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"labels": {"rollouts-pod-template-hash": "abc"}},
            "spec": {
                "templates": [
                    {
                        "name": "canary",
                        "selector": {"matchLabels": {"app": "shop"}},
                        "template": {"metadata": {"labels": {"app": "shop"}}},
                    }
                ],
                "analyses": [{"name": "a", "templateName": "missing"}],
            },
        },
    )
    return store.create(observing.experiment_object(action, ROLLOUT))


def test_a_step_experiment_is_owned_by_its_rollout_and_queues_it(store: SqliteStore) -> None:
    experiment = create_experiment(store)
    metadata = experiment["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["namespace"] == "default"
    assert metadata["ownerReferences"] == [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "name": "shop",
            "controller": True,
            "blockOwnerDeletion": True,
            "uid": "r-1",
        }
    ]
    assert owner_keys_for_change("Experiment", experiment) == ["Rollout/default/shop"]


def test_template_objects_are_observed_by_template_and_queue_the_experiment(
    store: SqliteStore,
) -> None:
    raw = create_experiment(store)
    replica_set = store.create(
        observing.template_replica_set(
            act.CreateExperimentReplicaSet(
                name="shop-abc-2-1-canary",
                template_name="canary",
                pod_template_hash="h1",
                template={
                    "metadata": {"labels": {"app": "shop", "rollouts-pod-template-hash": "h1"}}
                },
                selector={"matchLabels": {"app": "shop", "rollouts-pod-template-hash": "h1"}},
                replicas=0,
                min_ready_seconds=5,
            ),
            raw,
        )
    )
    assert replica_set["metadata"]["labels"] == {"rollouts-pod-template-hash": "h1"}
    assert replica_set["spec"]["minReadySeconds"] == 5
    assert owner_keys_for_change("ReplicaSet", replica_set) == ["Experiment/default/shop-abc-2-1"]
    store.create(
        observing.template_service(
            act.CreateService(
                name="shop-abc-2-1-canary",
                selector={"rollouts-pod-template-hash": "h1"},
                annotations={
                    "experiment.argoproj.io/name": "shop-abc-2-1",
                    "experiment.argoproj.io/template-name": "canary",
                },
            ),
            raw,
        )
    )
    observed = observing.observe_experiment(store, Experiment.model_validate(raw))
    assert observed.replica_sets["canary"].pod_template_hash == "h1"
    assert observed.services == {"canary": "shop-abc-2-1-canary"}
    assert observed.missing_templates == frozenset({(False, "missing")})


def test_deleting_an_experiment_takes_what_it_owns(store: SqliteStore) -> None:
    raw = create_experiment(store)
    owner = owner_reference(raw)
    for kind in observing.EXPERIMENT_OWNED_KINDS:
        store.create(
            {"kind": kind, "metadata": {"name": f"x-{kind.lower()}", "ownerReferences": [owner]}}
        )
    store.create({"kind": "Service", "metadata": {"name": "someone-else"}})
    experiments.delete_experiment(store, "default", "shop-abc-2-1")
    assert store.get("Experiment", "shop-abc-2-1") is None
    assert [s["metadata"]["name"] for s in store.list("Service", None)] == ["someone-else"]
    assert store.list("ReplicaSet", None) == []
    assert store.list("AnalysisRun", None) == []
