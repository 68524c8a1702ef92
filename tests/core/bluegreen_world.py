"""Blue-green rollouts for core tests, on the canary tests' fake world (`canary_world.World`):
it applies a decision's actions at once (Services switch, ReplicaSets get their pods, runs are
created Running) and lets the test move time and play the person at the CLI."""

from __future__ import annotations

from typing import Any

from tests.core.canary_world import T0, Raw, World, rollout_from, seed_rollout

ACTIVE = "myapp-active"
PREVIEW = "myapp-preview"
BLUE = "argoproj/rollouts-demo:blue"
YELLOW = "argoproj/rollouts-demo:yellow"
RED = "argoproj/rollouts-demo:red"


def blue_green_rollout(*, replicas: int = 3, preview: bool = True, **blue_green: Any) -> Raw:
    """The seed's Rollout with a blue-green strategy (active + preview Services)."""
    raw = seed_rollout(BLUE)
    raw["spec"]["replicas"] = replicas
    strategy: Raw = {"activeService": ACTIVE}
    if preview:
        strategy["previewService"] = PREVIEW
    strategy.update(blue_green)
    raw["spec"]["strategy"] = {"blueGreen": strategy}
    return raw


def fresh(raw: Raw, **world: Any) -> World:
    """A world where the Rollout was just applied: its Services exist, nothing else."""
    strategy = raw["spec"]["strategy"]["blueGreen"]
    services: dict[str, str | None] = {
        name: None
        for name in (strategy.get("activeService"), strategy.get("previewService"))
        if name
    }
    return World(rollout_from(raw), now=T0, services=services, **world)


def deployed(raw: Raw, **world: Any) -> World:
    """A world where revision 1 (blue) of `raw` is deployed and Healthy."""
    w = fresh(raw, **world)
    w.settle()
    assert w.status["phase"] == "Healthy", w.status
    w.events.clear()
    w.log.clear()
    return w


def hash_of(world: World, image: str) -> str:
    """The pod-template hash of the ReplicaSet running `image` (its tag, e.g. "yellow")."""
    for raw in world.replica_sets.values():
        if raw["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{image}"):
            return str(raw["metadata"]["labels"]["rollouts-pod-template-hash"])
    raise AssertionError(f"no ReplicaSet runs {image}: {list(world.replica_sets)}")


def serving(world: World, service: str) -> str | None:
    """Which color a Service sends its requests to (None: no pods behind it)."""
    selected = world.services.get(service)
    for raw in world.replica_sets.values():
        labels = raw["metadata"]["labels"]
        ready = (raw.get("status") or {}).get("availableReplicas", 0)
        if labels["rollouts-pod-template-hash"] == selected and ready:
            image = raw["spec"]["template"]["spec"]["containers"][0]["image"]
            return str(image.rsplit(":", 1)[-1])
    return None


def run_named(world: World, suffix: str) -> str:
    """The name of the newest AnalysisRun ending in `suffix` ("-pre", "-post")."""
    names = [name for name in world.runs if name.endswith(suffix) or f"{suffix}." in name]
    assert names, f"no run ending in {suffix}: {list(world.runs)}"
    return sorted(names)[-1]
