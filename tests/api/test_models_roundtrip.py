"""Models keep every field they do not know and write back exactly what the user wrote."""

from rollwise.api.models import Rollout


def test_unknown_fields_survive_a_round_trip() -> None:
    raw = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "myapp", "annotations": {"team": "shop"}},
        "spec": {
            "replicas": 5,
            "notAnArgoField": {"kept": True},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "2m"}}]}},
            "template": {"spec": {"containers": [{"name": "a", "image": "x", "extra": [1]}]}},
        },
    }
    rollout = Rollout.model_validate(raw)
    assert rollout.to_raw() == raw


def test_status_uses_argo_spelling() -> None:
    rollout = Rollout.model_validate({"kind": "Rollout", "metadata": {"name": "a"}})
    updated = rollout.copy_with(status={"HPAReplicas": 3, "stableRS": "abc"})
    assert updated.to_raw()["status"] == {"HPAReplicas": 3, "stableRS": "abc"}
