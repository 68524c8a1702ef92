"""The Kubernetes controller end to end, through real HTTP: the seed's Part 3 canary on the API
server, with a stand-in kube-controller-manager making ReplicaSets' pods ready. What a user
does is what the test does: apply, set image, wait, promote, abort."""

from __future__ import annotations

from tests.kubernetes.apiserver import KubeApi, KubeControllerManager
from tests.kubernetes.world import (
    SEED_ROLLOUT,
    SEED_SERVICE,
    promote,
    replica_sets,
    rollout,
    running_controller,
    seed,
    set_image,
    status,
    status_patch,
)

from rollwise.core.commands import abort_patch


async def test_the_seed_canary_goes_through_its_steps_on_the_api_server(kube_api: KubeApi) -> None:
    seed(kube_api, SEED_SERVICE, SEED_ROLLOUT)
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        (stable_hash,) = replica_sets(kube_api)
        first = replica_sets(kube_api)[stable_hash]
        assert first["spec"]["replicas"] == 5
        assert first["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "1"
        assert first["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
        assert status(kube_api)["stableRS"] == stable_hash

        set_image(kube_api, "argoproj/rollouts-demo:yellow")
        await kube_api.wait_for(
            lambda: (
                status(kube_api).get("phase") == "Paused"
                and status(kube_api).get("currentStepIndex") == 1
            ),
            timeout=20,
        )
        sets = replica_sets(kube_api)
        (canary_hash,) = set(sets) - {stable_hash}
        assert sets[canary_hash]["spec"]["replicas"] == 1  # 20% of 5
        assert sets[stable_hash]["spec"]["replicas"] == 4  # Argo's arithmetic: 5 - 1
        assert sets[canary_hash]["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "2"
        assert status(kube_api)["message"] == "CanaryPauseStep"

        await promote(kube_api, full=False)
        await kube_api.wait_for(lambda: status(kube_api).get("currentStepIndex") == 3, timeout=20)
        assert replica_sets(kube_api)[canary_hash]["spec"]["replicas"] == 2  # 40% of 5

        await promote(kube_api, full=True)
        await kube_api.wait_for(
            lambda: (
                status(kube_api).get("phase") == "Healthy"
                and status(kube_api).get("stableRS") == canary_hash
            ),
            timeout=30,
        )
        sets = replica_sets(kube_api)
        assert sets[canary_hash]["spec"]["replicas"] == 5
        # The old revision is scaled down after Argo's 30 s delay: it carries the deadline.
        annotations = sets[stable_hash]["metadata"].get("annotations") or {}
        assert "scale-down-deadline" in annotations or sets[stable_hash]["spec"]["replicas"] == 0

    reasons = [event["reason"] for event in kube_api.objects("Event", namespace="default")]
    for reason in ("RolloutUpdated", "NewReplicaSetCreated", "ScalingReplicaSet", "RolloutPaused"):
        assert reason in reasons
    patches = kube_api.requests_to(method="PATCH")
    assert patches
    assert {request.content_type for request in patches} == {"application/merge-patch+json"}


async def test_an_aborted_canary_goes_back_to_stable(kube_api: KubeApi) -> None:
    seed(kube_api, SEED_SERVICE, SEED_ROLLOUT)
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        (stable_hash,) = replica_sets(kube_api)
        set_image(kube_api, "argoproj/rollouts-demo:red")
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Paused", timeout=20)
        await status_patch(kube_api, abort_patch(rollout(kube_api)).status_patch)
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Degraded", timeout=20)
        assert status(kube_api)["stableRS"] == stable_hash
        assert "RolloutAborted" in status(kube_api)["message"]
        sets = replica_sets(kube_api)
        (canary_hash,) = set(sets) - {stable_hash}
        await kube_api.wait_for(
            lambda: replica_sets(kube_api)[canary_hash]["spec"]["replicas"] == 0, timeout=20
        )
        assert replica_sets(kube_api)[stable_hash]["spec"]["replicas"] == 5


async def test_events_the_api_server_refuses_do_not_hold_the_rollout(kube_api: KubeApi) -> None:
    seed(kube_api, SEED_SERVICE, SEED_ROLLOUT)
    kube_api.fail("POST", "/api/v1/namespaces/default/events", status=500, times=None)
    async with KubeControllerManager(kube_api), running_controller(kube_api) as controller:
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        set_image(kube_api, "argoproj/rollouts-demo:yellow")
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Paused", 20)
        assert kube_api.objects("Event", namespace="default") == []
        # The controller's own record still has them (metrics, notifications).
        reasons = {event["reason"] for event in controller.store.events(kind="Rollout")}
        assert {"RolloutUpdated", "RolloutPaused"} <= reasons


async def test_a_request_the_controllers_account_may_not_make_does_not_mark_the_rollout_invalid(
    kube_api: KubeApi,
) -> None:
    # RBAC without the right to create ReplicaSets (or an expired token): the account must
    # change, not the Rollout. Argo logs and retries; so does rollwise, and it goes on once
    # the right is granted.
    seed(kube_api, SEED_SERVICE, SEED_ROLLOUT)
    replica_sets_path = "/apis/apps/v1/namespaces/default/replicasets"
    kube_api.fail("POST", replica_sets_path, status=403, times=None)
    async with KubeControllerManager(kube_api), running_controller(kube_api):
        await kube_api.wait_for(
            lambda: len(kube_api.requests_to("POST", replica_sets_path)) >= 2, timeout=20
        )
        conditions = {c["type"] for c in status(kube_api).get("conditions") or []}
        assert "InvalidSpec" not in conditions
        assert status(kube_api).get("phase") != "Degraded"
        kube_api.clear_faults()
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=30)
