"""Every Argo-kind example rollwise ships or must accept is valid under the generated CRDs.

Sources: the seed module's YAML (its copies under `tests/api/fixtures/seed/`, which
`tests/api/test_seed.py` keeps equal to the seed) and `examples/` (Argo's examples rewritten for
local mode). Valid means what the API server would do with them: no type or required-field
error, and no field pruned (a pruned field would be silently lost on the cluster). Statuses the
core writes are checked the same way, since the API server validates status too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from schema_validation import schema_errors
from tests.core.canary_world import deployed, routed_rollout

from rollwise.api.crds import custom_resource_definitions
from rollwise.api.models import Rollout
from rollwise.core.observed import Observed
from rollwise.core.rollouts import decide

ROOT = Path(__file__).parents[2]
SOURCES = sorted(
    [
        *(ROOT / "tests" / "api" / "fixtures" / "seed").glob("*.yaml"),
        *(ROOT / "examples").rglob("*.yaml"),
    ]
)
SCHEMAS = {
    crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for crd in custom_resource_definitions()
}
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def argo_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in SOURCES:
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(document, dict) and document.get("apiVersion", "").startswith(
                "argoproj.io/"
            ):
                name = document.get("metadata", {}).get("name", index)
                found.append((f"{path.relative_to(ROOT)}:{document['kind']}/{name}", document))
    return found


DOCUMENTS = argo_documents()


def test_the_sources_hold_every_kind() -> None:
    kinds = {document["kind"] for _, document in DOCUMENTS}
    assert kinds == set(SCHEMAS) - {"AnalysisRun"}
    assert len(DOCUMENTS) >= 20


@pytest.mark.parametrize(("where", "document"), DOCUMENTS, ids=[w for w, _ in DOCUMENTS])
def test_example_is_valid_under_its_crd(where: str, document: dict[str, Any]) -> None:
    assert schema_errors(document, SCHEMAS[document["kind"]]) == []


ROLLOUTS = [(where, document) for where, document in DOCUMENTS if document["kind"] == "Rollout"]


@pytest.mark.parametrize(("where", "document"), ROLLOUTS, ids=[w for w, _ in ROLLOUTS])
def test_the_status_the_core_writes_is_valid(where: str, document: dict[str, Any]) -> None:
    rollout = Rollout.model_validate(document)
    decision = decide(rollout, Observed(), NOW)
    status = decision.status.to_raw()
    assert status  # the core always writes something (phase, conditions...)
    assert schema_errors({**document, "status": status}, SCHEMAS["Rollout"]) == []


def test_statuses_through_a_whole_canary_are_valid() -> None:
    """A routed canary with header routes and an experiment, walked by the core tests' fake
    world: every status it writes and every Experiment it creates is valid under the CRDs."""
    steps: list[dict[str, Any]] = [
        {"setWeight": 20},
        {
            "setHeaderRoute": {
                "name": "beta",
                "match": [{"headerName": "x", "headerValue": {"exact": "1"}}],
            }
        },
        {"pause": {"duration": 30}},
        {
            "experiment": {
                "duration": "1m",
                "templates": [{"name": "canary", "specRef": "canary"}],
            }
        },
        {"setWeight": 60},
        {"pause": {}},
    ]
    world = deployed(
        routed_rollout(
            steps,
            trafficRouting={
                "traefik": {"weightedTraefikServiceName": "myapp"},
                "managedRoutes": [{"name": "beta"}],
            },
        )
    )
    world.router_answer = True
    world.set_image("argoproj/rollouts-demo:yellow")
    statuses = [world.status]
    experiments: list[dict[str, Any]] = []
    for _ in range(12):
        world.settle()
        statuses.append(world.status)
        for name, experiment in world.experiments.items():
            experiments.append(experiment)
            world.set_experiment_phase(name, "Successful")
        world.advance(61)
    world.patch_status(abort=True)
    world.settle()
    statuses.append(world.status)
    assert {status.get("phase") for status in statuses} >= {"Healthy", "Paused", "Degraded"}
    assert experiments
    rollout = world.rollout.to_raw()
    for status in statuses:
        assert schema_errors({**rollout, "status": status}, SCHEMAS["Rollout"]) == []
    for experiment in experiments:
        assert schema_errors(experiment, SCHEMAS["Experiment"]) == []
