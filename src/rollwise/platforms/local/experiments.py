"""Experiments in the local store: removing one with what it owns.

Who calls it: the local executor (`rollwise.platforms.local.executor`) for a Rollout's
`DeleteExperiment` action. The objects an Experiment owns are built by
`rollwise.core.observing` (the same for both platforms); what is local is the clean-up: a deleted
Experiment takes its ReplicaSets (whose pods then stop), Services and AnalysisRuns with it here,
as Kubernetes' garbage collector does in a cluster.
"""

from __future__ import annotations

from rollwise.core.observing import EXPERIMENT_OWNED_KINDS, owned_objects
from rollwise.platforms.local.store import SqliteStore


def delete_experiment(store: SqliteStore, namespace: str, name: str) -> None:
    """Delete an Experiment and everything it owns (what Kubernetes' GC would do)."""
    with store.transaction():
        for kind in EXPERIMENT_OWNED_KINDS:
            for obj in owned_objects(store, kind, namespace, owner_kind="Experiment", owner=name):
                store.delete(kind, obj["metadata"]["name"], namespace)
        store.delete("Experiment", name, namespace)
