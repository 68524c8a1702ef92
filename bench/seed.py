"""The seed rollout (`examples/rollout.yaml`), simulated in memory until it is settled.

Who uses it: `bench.core` times `decide` on the states built here. It works like the core tests'
fake world: each decision's actions are applied at once to raw ReplicaSets (pods are ready as
soon as they are asked for) and time moves only when told to. Only the package's public
functions are used: `decide`, the `Observed` builders and the action types.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from rollwise.api.models import Rollout
from rollwise.core import actions as act
from rollwise.core.decisions import Decision
from rollwise.core.hashing import HASH_LABEL
from rollwise.core.observed import (
    REVISION_ANNOTATION,
    SCALE_DOWN_DEADLINE_ANNOTATION,
    Observed,
    replica_set_view_from_raw,
)
from rollwise.core.rollouts import decide
from rollwise.core.timestamps import format_time

Raw = dict[str, Any]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rollout.yaml"
START = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def seed_objects() -> list[Raw]:
    """The documents of `examples/rollout.yaml` (a Service and the Rollout), as raw dicts."""
    return [doc for doc in yaml.safe_load_all(EXAMPLE.read_text()) if doc]


def seed_rollout_raw() -> Raw:
    raw = next(doc for doc in seed_objects() if doc["kind"] == "Rollout")
    raw["metadata"].setdefault("namespace", "default")
    raw["metadata"]["generation"] = 1
    return raw


@dataclass
class SeedWorld:
    """One Rollout and its ReplicaSets; `settle` reconciles until nothing changes."""

    rollout: Rollout
    now: datetime = START
    replica_sets: dict[str, Raw] = field(default_factory=dict)
    decisions: int = 0

    def observe(self) -> Observed:
        return Observed(
            replica_sets=tuple(replica_set_view_from_raw(r) for r in self.replica_sets.values())
        )

    def _resize(self, raw: Raw, replicas: int) -> None:
        raw["spec"]["replicas"] = replicas
        raw["status"] = {
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }

    def apply(self, action: act.Action) -> None:
        match action:
            case act.CreateReplicaSet() if action.name not in self.replica_sets:
                raw: Raw = {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": action.name,
                        "labels": {HASH_LABEL: action.pod_template_hash},
                        "annotations": {REVISION_ANNOTATION: str(action.revision)},
                        "creationTimestamp": format_time(self.now),
                    },
                    "spec": {"replicas": 0, "template": copy.deepcopy(dict(action.template))},
                }
                self._resize(raw, action.replicas)
                self.replica_sets[action.name] = raw
            case act.ScaleReplicaSet():
                raw = self.replica_sets[action.name]
                annotations = raw["metadata"]["annotations"]
                if action.scale_down_deadline is None:
                    annotations.pop(SCALE_DOWN_DEADLINE_ANNOTATION, None)
                else:
                    annotations[SCALE_DOWN_DEADLINE_ANNOTATION] = format_time(
                        action.scale_down_deadline
                    )
                self._resize(raw, action.replicas)
            case act.SetReplicaSetRevision():
                annotations = self.replica_sets[action.name]["metadata"]["annotations"]
                annotations[REVISION_ANNOTATION] = str(action.revision)
            case act.DeleteReplicaSet():
                del self.replica_sets[action.name]
            case _:
                pass  # events; the seed rollout asks for no routing or analysis

    def reconcile(self) -> Decision:
        decision = decide(self.rollout, self.observe(), self.now)
        self.decisions += 1
        for action in decision.actions:
            self.apply(action)
        self.rollout = self.rollout.model_copy(update={"status": decision.status})
        return decision

    def settle(self, rounds: int = 60) -> None:
        for _ in range(rounds):
            before = self.rollout.status
            decision = self.reconcile()
            if not decision.actions and self.rollout.status == before:
                return
        raise RuntimeError(f"the seed rollout did not settle in {rounds} decisions")

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def set_image(self, image: str) -> None:
        raw = self.rollout.to_raw()
        raw["spec"]["template"]["spec"]["containers"][0]["image"] = image
        raw["metadata"]["generation"] = int(raw["metadata"].get("generation") or 1) + 1
        self.rollout = Rollout.model_validate(raw)

    @property
    def phase(self) -> str:
        return (self.rollout.status.phase if self.rollout.status else None) or ""


def deployed() -> SeedWorld:
    """Revision 1 (blue) deployed and Healthy: the first deploy skips the steps."""
    world = SeedWorld(Rollout.model_validate(seed_rollout_raw()))
    world.settle()
    return world


def paused_mid_canary() -> SeedWorld:
    """blue -> yellow, paused in step 2 (the first `pause: 2m`) with 20% on yellow."""
    world = deployed()
    world.set_image("argoproj/rollouts-demo:yellow")
    world.settle()
    world.advance(30)
    return world


def promoted() -> SeedWorld:
    """blue -> yellow through every step and pause: Healthy on yellow, blue scaled down."""
    world = paused_mid_canary()
    for _ in range(8):  # each pause is 2 minutes; a few extra turns cost nothing when done
        world.advance(121)
        world.settle()
    if world.phase != "Healthy":
        raise RuntimeError(f"the seed rollout ended {world.phase}, not Healthy")
    return world
