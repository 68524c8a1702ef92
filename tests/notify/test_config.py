"""Reading the configuration: Argo's ConfigMap keys, secrets by `$key`, problems reported."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from rollwise.api.errors import ManifestError
from rollwise.notify.config import (
    SECRET_NAME,
    load_config_file,
    parse_config,
    read_config_data,
    resolve_secrets,
    secret_values,
)

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: argo-rollouts-notification-configmap
data:
  service.slack: |
    token: $slack-token
    username: rollwise
  service.webhook.receiver: |
    url: http://127.0.0.1:9/hooks
    headers:
    - name: Authorization
      value: Bearer $hook_token
    - name: X-Port
      value: $port
  template.my-template: |
    message: Rollout {{ rollout.metadata.name }} did {{ event.reason }}
    webhook:
      receiver:
        method: POST
        body: '{"rollout": {{ rollout.metadata.name | tojson }}}'
  trigger.on-rollout-resumed: |
    - send: [my-template]
  defaultTriggers: |
    - on-rollout-aborted
  defaultTriggers.receiver: |
    - on-rollout-resumed
"""


def test_a_configmap_pasted_whole_is_read_with_argo_keys(tmp_path: Path) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(CONFIG_MAP)
    config = load_config_file(path)
    assert config is not None
    assert config.problems == ()
    assert {name: s.type for name, s in config.services.items()} == {
        "slack": "slack",
        "receiver": "webhook",
    }
    assert config.triggers["on-rollout-resumed"][0].send == ("my-template",)
    assert "rollout-aborted" in config.templates, "the built-in catalog is still there"
    assert config.default_triggers == ("on-rollout-aborted",)
    assert config.service_default_triggers == {"receiver": ("on-rollout-resumed",)}
    assert not config.evaluate_conditions


def test_only_the_data_keys_may_be_given_too_and_values_may_be_yaml_structure() -> None:
    data = read_config_data(
        "service.webhook.hook:\n  url: json://127.0.0.1:9\nrollwise.triggerConditions: evaluate\n"
    )
    config = parse_config(data)
    assert config.services["hook"].options == {"url": "json://127.0.0.1:9"}
    assert config.evaluate_conditions


def test_no_file_means_no_configuration(tmp_path: Path) -> None:
    assert load_config_file(tmp_path / "absent.yaml") is None


@pytest.mark.parametrize("text", ["[a, b]", "key: [unclosed", "kind: ConfigMap\ndata: [x]"])
def test_a_file_that_is_not_a_mapping_is_refused(text: str) -> None:
    with pytest.raises(ManifestError, match=r"notifications\.yaml"):
        read_config_data(text)


def test_bad_entries_are_left_out_and_reported_the_others_kept() -> None:
    config = parse_config(
        {
            "service.a.b.c": "url: x",
            "template.broken": "message: '{% if %}'",
            "trigger.on-x": "send: [a]",
            "service.webhook.ok": "url: http://127.0.0.1:9",
            "rollwise.triggerConditions": "sometimes",
        }
    )
    assert "ok" in config.services
    assert "broken" not in config.templates
    assert "on-x" not in config.triggers
    problems = "\n".join(config.problems)
    assert "expected 'service.<type>(.<name>)' but got service.a.b.c" in problems
    assert "template.broken.message: line 1" in problems
    assert "trigger.on-x: expected a list of conditions" in problems
    assert "rollwise.triggerConditions: expected 'compatible' or 'evaluate'" in problems


def test_secret_references_are_replaced_in_every_string_of_a_service() -> None:
    data = read_config_data(CONFIG_MAP)
    config = parse_config(data)
    secrets = {"slack-token": "xoxb-123", "hook_token": "abc", "port": "8080"}
    assert config.services["slack"].resolved(secrets) == {
        "token": "xoxb-123",
        "username": "rollwise",
    }
    assert config.services["receiver"].resolved(secrets)["headers"] == [
        {"name": "Authorization", "value": "Bearer abc"},
        {"name": "X-Port", "value": "8080"},
    ]
    # Unknown keys stay as written (Argo logs a warning and does the same).
    assert resolve_secrets({"a": ["$nope", 3]}, secrets) == {"a": ["$nope", 3]}


def test_the_secret_is_read_from_data_and_string_data() -> None:
    secret = {
        "metadata": {"name": SECRET_NAME},
        "data": {"slack-token": base64.b64encode(b"xoxb-9").decode(), "bad": "%%%"},
        "stringData": {"plain": "p"},
    }
    assert secret_values(secret) == {"slack-token": "xoxb-9", "plain": "p"}
