"""Subscriptions: annotations on a Rollout and the configuration's global subscriptions."""

from __future__ import annotations

from rollwise.notify.config import parse_config
from rollwise.notify.subscriptions import (
    Destination,
    annotation_destinations,
    global_destinations,
    parse_subscriptions,
    subscription_key,
)

PREFIX = "notifications.argoproj.io/"


def test_a_trigger_and_service_annotation_subscribes_each_recipient() -> None:
    annotations = {
        PREFIX + "subscribe.on-rollout-aborted.slack": "alerts; deploys;; ",
        PREFIX + "subscribe.on-rollout-completed.webhook": "",
        "unrelated.io/x": "y",
    }
    assert annotation_destinations(annotations) == {
        "on-rollout-aborted": [Destination("slack", "alerts"), Destination("slack", "deploys")],
        # An empty value is one recipient with no name: a webhook needs none.
        "on-rollout-completed": [Destination("webhook", "")],
    }


def test_a_service_annotation_without_trigger_uses_the_default_triggers() -> None:
    annotations = {PREFIX + "subscribe.slack": "alerts", PREFIX + "subscribe.teams": "ops"}
    assert annotation_destinations(
        annotations,
        default_triggers=["on-rollout-aborted", "on-rollout-completed"],
        service_default_triggers={"teams": ["on-rollout-paused"]},
    ) == {
        "on-rollout-aborted": [Destination("slack", "alerts")],
        "on-rollout-completed": [Destination("slack", "alerts")],
        "on-rollout-paused": [Destination("teams", "ops")],
    }


def test_subscribe_yaml_says_the_same_in_yaml() -> None:
    annotations = {
        PREFIX + "subscribe_yaml": (
            "- trigger: [on-rollout-aborted, on-analysis-run-failed]\n"
            "  destinations:\n"
            "  - service: slack\n"
            "    recipients: [alerts, oncall]\n"
        )
    }
    found = annotation_destinations(annotations)
    assert found["on-rollout-aborted"] == [
        Destination("slack", "alerts"),
        Destination("slack", "oncall"),
    ]
    assert found["on-analysis-run-failed"] == found["on-rollout-aborted"]


def test_an_unreadable_subscribe_yaml_is_ignored() -> None:
    assert annotation_destinations({PREFIX + "subscribe_yaml": "[: nope"}) == {}


def test_the_key_helper_writes_the_annotation_argo_reads() -> None:
    key = subscription_key("on-rollout-aborted", "slack")
    assert key == "notifications.argoproj.io/subscribe.on-rollout-aborted.slack"
    assert annotation_destinations({key: "x"}) == {
        "on-rollout-aborted": [Destination("slack", "x")]
    }


def test_global_subscriptions_match_labels_with_a_selector() -> None:
    subscriptions = parse_subscriptions(
        "- recipients: ['slack:alerts', 'webhook']\n"
        "  triggers: [on-rollout-aborted]\n"
        "  selector: env=prod,team!=qa\n"
        "- recipients: ['slack:all']\n"
    )
    prod = global_destinations(
        subscriptions, {"env": "prod", "team": "shop"}, default_triggers=["on-rollout-completed"]
    )
    assert prod == {
        "on-rollout-aborted": [Destination("slack", "alerts"), Destination("webhook")],
        "on-rollout-completed": [Destination("slack", "all")],
    }
    qa = global_destinations(subscriptions, {"env": "prod", "team": "qa"})
    assert qa == {}, "no default triggers and the first subscription's selector excludes qa"


def test_a_rollout_gets_global_and_annotation_destinations_once_each() -> None:
    config = parse_config(
        {
            "subscriptions": "- recipients: ['slack:alerts']\n  triggers: [on-rollout-aborted]\n",
            "defaultTriggers": "[on-rollout-completed]",
        }
    )
    rollout = {
        "metadata": {
            "name": "shop",
            "labels": {"app": "shop"},
            "annotations": {
                PREFIX + "subscribe.on-rollout-aborted.slack": "alerts;oncall",
                PREFIX + "subscribe.webhook": "",
            },
        }
    }
    assert config.destinations(rollout) == {
        "on-rollout-aborted": [Destination("slack", "alerts"), Destination("slack", "oncall")],
        "on-rollout-completed": [Destination("webhook")],
    }
