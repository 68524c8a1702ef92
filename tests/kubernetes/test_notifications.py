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
        assert controller.notifications.notifier.pending == {}

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
