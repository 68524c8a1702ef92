"""Notifications in Kubernetes mode, end to end through real HTTP: Argo's ConfigMap and Secret on
the API server, a Rollout subscribed by annotations goes through a canary with the Kubernetes
controller, its analysis (a Job the stand-in kube-controller-manager fails) aborts it, and a
webhook receiver on loopback gets every rendered notification - and the Slack message of the
abort, through Slack's API path pointed at the receiver."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.kubernetes.apiserver import KubeApi, KubeControllerManager
from tests.kubernetes.test_controller_metrics_scrape import free_port, scrape, value
from tests.kubernetes.world import (
    ARGO,
    SEED_ROLLOUT,
    SEED_SERVICE,
    rollout,
    running_controller,
    seed,
    set_image,
    status,
)
from tests.notify.receiving import Received, Receiver, running_receiver

from rollwise.core.commands import promote_patch
from rollwise.notify.config import CONFIG_MAP_NAME, SECRET_NAME

pytestmark = pytest.mark.timeout(60)

RawObject = dict[str, Any]
SUBSCRIBE = "notifications.argoproj.io/subscribe"
TRIGGERS = (
    "on-rollout-updated",
    "on-rollout-step-completed",
    "on-rollout-paused",
    "on-analysis-run-failed",
    "on-rollout-aborted",
    "on-rollout-completed",
)

SMOKE_TEMPLATE: RawObject = {
    "apiVersion": ARGO,
    "kind": "AnalysisTemplate",
    "metadata": {"name": "smoke", "namespace": "default"},
    "spec": {
        "metrics": [
            {
                "name": "smoke",
                "provider": {
                    "job": {
                        "spec": {
                            "backoffLimit": 0,
                            "template": {
                                # The stand-in kube-controller-manager fails this Job.
                                "metadata": {"labels": {"test.rollwise.io/job-result": "Failed"}},
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [
                                        {"name": "smoke", "image": "busybox", "command": ["false"]}
                                    ],
                                },
                            },
                        }
                    }
                },
            }
        ]
    },
}


def subscribed_rollout() -> RawObject:
    """The seed's Rollout, subscribed to the catalog's triggers (webhook) and to the abort (Slack),
    with a manual pause and an analysis that fails."""
    manifest = copy.deepcopy(SEED_ROLLOUT)
    annotations = {f"{SUBSCRIBE}.{trigger}.receiver": "" for trigger in TRIGGERS}
    annotations[f"{SUBSCRIBE}.on-rollout-aborted.slack"] = "#deploys"
    manifest["metadata"]["annotations"] = annotations
    manifest["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 20},
        {"pause": {}},
        {"setWeight": 40},
        {"analysis": {"templates": [{"templateName": "smoke"}]}},
        {"setWeight": 100},
    ]
    return manifest


def config_map(receiver: Receiver, *, path: str = "/hooks") -> RawObject:
    """Argo's ConfigMap keys, as a user writes them: YAML text values, `$key` secrets."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP_NAME, "namespace": "default"},
        "data": {
            "service.webhook.receiver": (
                f"url: {receiver.url}{path}\nheaders:\n- name: X-Token\n  value: $receiver-token\n"
            ),
            "service.slack": f"token: $slack-token\napiURL: {receiver.url}/api/\n",
        },
    }


def secret(**values: str) -> RawObject:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": "default"},
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as started:
        yield started


def promote(kube_api: KubeApi) -> None:
    """What `rollwise promote` writes (the status subresource's fields)."""
    patch = promote_patch(rollout(kube_api), full=False).status_patch
    kube_api.patch(ARGO, "Rollout", "myapp", "default", {"status": dict(patch)})


def received(
    receiver: Receiver, check: Callable[[list[Received]], bool], *, within: float = 15.0
) -> list[Received]:
    """The receiver's requests once `check` holds for them (blocks: run it in a thread)."""
    with receiver.arrived:
        if not receiver.arrived.wait_for(lambda: check(list(receiver.requests)), within):
            got = [(request.path, request.body[:80]) for request in receiver.requests]
            raise AssertionError(f"the receiver did not get what was expected: {got}")
        return list(receiver.requests)


def messages(requests: list[Received], path: str = "/hooks") -> Counter[str]:
    return Counter(request.body for request in requests if request.path == path)


async def test_a_canary_aborted_by_its_analysis_notifies_every_subscriber(
    kube_api: KubeApi, receiver: Receiver
) -> None:
    seed(
        kube_api,
        config_map(receiver),
        secret(**{"receiver-token": "t0k", "slack-token": "xoxb-test"}),
        SMOKE_TEMPLATE,
        SEED_SERVICE,
        subscribed_rollout(),
    )
    async with KubeControllerManager(kube_api), running_controller(kube_api) as controller:
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        set_image(kube_api, "argoproj/rollouts-demo:yellow")
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Paused", timeout=20)
        promote(kube_api)
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Degraded", timeout=20)
        assert "RolloutAborted" in status(kube_api)["message"]

        expected = Counter(
            {
                "Rollout myapp has been updated.": 2,  # revision 1, then revision 2
                "Rollout myapp has been completed.": 1,  # revision 1
                "Rollout myapp step number 1/5 has been completed.": 1,
                "Rollout myapp has been paused.": 1,
                "Rollout myapp step number 2/5 has been completed.": 1,
                "Rollout myapp step number 3/5 has been completed.": 1,
                "Rollout myapp's analysis run failed.": 1,
                "Rollout myapp has been aborted.": 1,
            }
        )
        requests = await asyncio.to_thread(
            received,
            receiver,
            lambda got: (
                messages(got) >= expected and messages(got, "/api/chat.postMessage").total() == 1
            ),
        )
        await kube_api.wait_for(lambda: controller.notifications.notifier.pending == {})

    assert messages(requests) == expected, "each once"
    hooks = [request for request in requests if request.path == "/hooks"]
    assert {request.headers["X-Token"] for request in hooks} == {"t0k"}  # from the Secret
    assert {request.method for request in hooks} == {"GET"}  # no webhook section: the message

    # The abort's Slack message: the rollout, the step it stopped at, the weights, the failure.
    (slack,) = [request for request in requests if request.path == "/api/chat.postMessage"]
    assert slack.headers["Authorization"] == "Bearer xoxb-test"
    body = slack.json()
    assert (body["channel"], body["text"]) == ("#deploys", "Rollout myapp has been aborted.")
    (attachment,) = body["attachments"]
    fields = {field["title"]: field["value"] for field in attachment["fields"]}
    assert attachment["title"] == "myapp"
    assert fields["Step"] == "4/5 (analysis)"
    assert fields["Weights"] == "-"  # a canary by replica counts: no traffic weights
    assert fields["Failed metric: smoke"].startswith("Failed")
    assert fields["myapp"] == "argoproj/rollouts-demo:yellow"


def updated_only() -> RawObject:
    """The seed's Rollout, subscribed to on-rollout-updated and on-rollout-completed."""
    manifest = copy.deepcopy(SEED_ROLLOUT)
    manifest["metadata"]["annotations"] = {
        f"{SUBSCRIBE}.on-rollout-updated.receiver": "",
        f"{SUBSCRIBE}.on-rollout-completed.receiver": "",
    }
    manifest["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 20}, {"pause": {}}]
    return manifest


async def test_the_configmap_and_the_secret_are_read_again_when_they_change(
    kube_api: KubeApi, receiver: Receiver
) -> None:
    seed(kube_api, SEED_SERVICE, updated_only())
    async with KubeControllerManager(kube_api), running_controller(kube_api) as controller:
        notifications = controller.notifications

        def cached(kind: str, name: str) -> RawObject | None:
            if kind == "ConfigMap":
                return notifications.config_maps.get(name, "default")
            return controller.store.get(kind, name, "default")

        def caught_up(kind: str, name: str) -> bool:
            on_server = kube_api.get("v1", kind, name, "default")
            held = cached(kind, name)
            return bool(on_server and held) and (
                on_server["metadata"]["resourceVersion"] == held["metadata"]["resourceVersion"]
            )

        # No ConfigMap yet: notifications are off, and the rollout does not wait for them.
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        await kube_api.wait_for(
            lambda: notifications.notifier.cursor == controller.store.event_counter()
        )

        seed(kube_api, config_map(receiver, path="/first"), secret(**{"receiver-token": "one"}))
        await kube_api.wait_for(
            lambda: caught_up("ConfigMap", CONFIG_MAP_NAME) and caught_up("Secret", SECRET_NAME)
        )
        set_image(kube_api, "argoproj/rollouts-demo:yellow")
        first = await asyncio.to_thread(
            received, receiver, lambda got: messages(got, "/first").total() >= 1
        )

        kube_api.replace({**config_map(receiver, path="/second")})
        kube_api.patch("v1", "Secret", SECRET_NAME, "default", secret(**{"receiver-token": "two"}))
        await kube_api.wait_for(
            lambda: caught_up("ConfigMap", CONFIG_MAP_NAME) and caught_up("Secret", SECRET_NAME)
        )
        set_image(kube_api, "argoproj/rollouts-demo:green")
        second = await asyncio.to_thread(
            received, receiver, lambda got: messages(got, "/second").total() >= 1
        )

    assert messages(first, "/first") == Counter({"Rollout myapp has been updated.": 1})
    assert [r.headers["X-Token"] for r in first if r.path == "/first"] == ["one"]
    assert messages(second, "/second") == Counter({"Rollout myapp has been updated.": 1})
    assert [r.headers["X-Token"] for r in second if r.path == "/second"] == ["two"]
    assert messages(second, "/first") == messages(first, "/first"), "nothing more to the old URL"
    # Only Argo's ConfigMap is listed and watched, not every ConfigMap of the namespace.
    reads = kube_api.requests_to(method="GET", path_prefix="/api/v1/namespaces/default/configmaps")
    assert reads
    assert {r.query.get("fieldSelector") for r in reads} == {f"metadata.name={CONFIG_MAP_NAME}"}


async def test_a_failed_delivery_is_retried_and_counted_in_the_metrics(
    kube_api: KubeApi, receiver: Receiver
) -> None:
    receiver.answer((503, "try later"))
    seed(kube_api, config_map(receiver), secret(), SEED_SERVICE, updated_only())
    metrics_port = free_port()
    async with (
        KubeControllerManager(kube_api),
        running_controller(kube_api, metrics_port=metrics_port, host="127.0.0.1") as controller,
    ):
        await kube_api.wait_for(lambda: status(kube_api).get("phase") == "Healthy", timeout=20)
        reasons = {
            "Rollout myapp has been updated.": "RolloutUpdated",
            "Rollout myapp has been completed.": "RolloutCompleted",
        }
        requests = await asyncio.to_thread(
            received,
            receiver,
            lambda got: len(got) == 3 and messages(got[1:]) == Counter(reasons.keys()),
        )
        await kube_api.wait_for(lambda: controller.notifications.notifier.pending == {})
        series = await scrape(f"http://127.0.0.1:{metrics_port}/metrics")

    # The first request was answered 503; its notification was sent again, after a back-off,
    # beside the other one: each arrived once, and the failure is counted.
    failed = requests[0]
    ids = {"namespace": "default", "name": "myapp", "type": "Normal"}
    assert value(series, "notification_send_error", **ids, reason=reasons[failed.body]) == 1
    for reason in reasons.values():
        assert value(series, "notification_send_success", **ids, reason=reason) == 1
    assert value(series, "notification_send_count", namespace="default", name="myapp") == 3
