"""Reference 2.1 and 2.9: `{{args.x}}` over the whole metric, arg values, template merging,
secret masking."""

from __future__ import annotations

from typing import Any

import pytest

from rollwise.api.errors import UserError
from rollwise.api.models import AnalysisTemplate, Argument, DryRun, MeasurementRetention, Metric
from rollwise.core.analysis.args import (
    SECRET_PLACEHOLDER,
    mask,
    merge_args,
    merge_templates,
    resolve_args,
    substitute,
    substitute_text,
)
from rollwise.core.analysis.settings import effective_count, failure_limit, interval_seconds

from .runs_world import metric


def _metric(**fields: Any) -> Metric:
    return Metric.model_validate(metric(**fields))


def _args(*pairs: tuple[str, str | None]) -> list[Argument]:
    return [Argument(name=name, value=value) for name, value in pairs]


# --- substitution ------------------------------------------------------------------------------


def test_every_string_field_is_templated() -> None:
    m = _metric(
        successCondition="result[0] >= {{args.threshold}}",
        provider={
            "prometheus": {
                "address": "{{args.address}}",
                "query": 'sum(rate(x{service="{{ args.service }}"}[1m]))',
                "headers": [{"key": "X-Scope", "value": "{{args.service}}"}],
            }
        },
    )
    args = {"threshold": "0.95", "address": "http://prom:9090", "service": "canary"}
    resolved = substitute(m, args).to_raw()
    assert resolved["successCondition"] == "result[0] >= 0.95"
    prometheus = resolved["provider"]["prometheus"]
    assert prometheus["address"] == "http://prom:9090"
    assert prometheus["query"] == 'sum(rate(x{service="canary"}[1m]))'  # whitespace trimmed
    assert prometheus["headers"] == [{"key": "X-Scope", "value": "canary"}]


def test_int_or_string_fields_take_templated_strings() -> None:
    m = _metric(
        count="{{args.count}}",
        failureLimit="{{args.limit}}",
        interval="{{args.interval}}",
    )
    resolved = substitute(m, {"count": "3", "limit": "1", "interval": "30s"})
    assert effective_count(resolved) == 3
    assert failure_limit(resolved) == 1
    assert interval_seconds(resolved) == 30.0


def test_junk_in_an_int_or_string_field_reads_as_zero() -> None:
    resolved = substitute(_metric(failureLimit="{{args.limit}}"), {"limit": "two"})
    assert failure_limit(resolved) == 0


def test_values_are_json_escaped() -> None:
    value = 'say "hi"\nand\ttab \\ {brace}'
    resolved = substitute(_metric(successCondition="{{args.x}}"), {"x": value})
    assert resolved.success_condition == value


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("{{args.nope}}", {}, "failed to resolve {{args.nope}}"),
        ("{{ args.nope }}", {"x": "1"}, "failed to resolve {{ args.nope }}"),
        ("{{inputs.x}}", {"x": "1"}, "failed to resolve {{inputs.x}}"),
        ("{{x}}", {"x": "1"}, "failed to resolve {{x}}"),
        ('label_replace(up, "a", "{{}}", "", "")', {}, "failed to resolve {{}}"),
        # Over the metric's JSON an unclosed tag runs into the JSON's own braces, as in Argo.
        ("sum(x) by ({{args.x}", {"x": "1"}, 'failed to resolve {{args.x}"}}'),
        ("{{args.declared}}", {"declared": None}, 'argument "declared" was not supplied'),
    ],
)
def test_bad_tags_are_errors(text: str, args: dict[str, str | None], message: str) -> None:
    m = _metric(provider={"prometheus": {"query": text}})
    with pytest.raises(UserError) as caught:
        substitute(m, args)
    assert str(caught.value).startswith(message)


def test_an_unclosed_tag_in_text() -> None:
    with pytest.raises(UserError, match=r'^Cannot find end tag="}}" starting from "args\.x"$'):
        substitute_text("test-{{args.x", {"x": "1"}, escape=False)


def test_a_metric_without_tags_is_returned_as_is() -> None:
    m = _metric(successCondition="result > 1")
    assert substitute(m, {}) is m


def test_an_unused_unsupplied_arg_is_fine() -> None:
    m = _metric(successCondition="result > {{args.a}}")
    assert substitute(m, {"a": "1", "unused": None}).success_condition == "result > 1"


# --- arg values --------------------------------------------------------------------------------


def test_caller_args_override_template_args_and_undeclared_ones_are_ignored() -> None:
    template = [
        Argument(name="service"),
        Argument(name="threshold", value="0.95"),
        Argument(name="token", value_from={"secretKeyRef": {"name": "s", "key": "k"}}),
    ]
    caller = _args(("service", "canary"), ("threshold", "0.99"), ("ignored", "x"))
    merged = merge_args(template, caller)
    assert [(a.name, a.value) for a in merged] == [
        ("service", "canary"),
        ("threshold", "0.99"),
        ("token", None),
    ]
    assert merged[2].value_from is not None


def test_a_required_arg_left_empty_is_not_resolved() -> None:
    with pytest.raises(UserError, match=r"^args\.service was not resolved$"):
        merge_args([Argument(name="service")], _args(("other", "x")))


def test_caller_field_refs_are_read_with_the_lookup() -> None:
    caller = [Argument(name="app", value_from={"fieldRef": {"fieldPath": "metadata.name"}})]
    fields: dict[str, str] = {"metadata.name": "shop"}
    merged = merge_args([Argument(name="app")], caller, field_lookup=fields.get)
    assert merged[0].value == "shop"
    with pytest.raises(UserError, match=r"fieldRef 'metadata\.name' does not resolve"):
        merge_args([Argument(name="app")], caller, field_lookup=lambda path: None)


def test_secret_args_read_through_the_lookup_and_are_remembered_for_masking() -> None:
    args = [
        Argument(name="service", value="canary"),
        Argument(name="token", value_from={"secretKeyRef": {"name": "dd", "key": "api-key"}}),
    ]
    store = {("dd", "api-key"): "s3cr3t"}
    resolved = resolve_args(args, secret_lookup=lambda name, key: store.get((name, key)))
    assert resolved.values == {"service": "canary", "token": "s3cr3t"}
    assert resolved.secrets == frozenset({"s3cr3t"})
    without = resolve_args(args)
    assert without.values["token"] == SECRET_PLACEHOLDER
    assert without.secrets == frozenset()
    with pytest.raises(UserError, match="key 'api-key' does not exist in secret 'dd'"):
        resolve_args(args, secret_lookup=lambda name, key: None)


def test_run_args_without_value_read_as_unsupplied() -> None:
    resolved = resolve_args([Argument(name="a")])
    assert resolved.values == {"a": None}


def test_mask_replaces_every_secret_longest_first() -> None:
    text = "GET https://api?key=abc123&other=abc failed: abc123 rejected"
    assert mask(text, {"abc", "abc123"}) == (
        "GET https://api?key=*****&other=***** failed: ***** rejected"
    )
    assert mask("nothing here", {""}) == "nothing here"


# --- merging templates -------------------------------------------------------------------------


def _template(name: str, **spec: Any) -> AnalysisTemplate:
    annotations = spec.pop("annotations", None)
    raw: dict[str, Any] = {"metadata": {"name": name}, "spec": spec}
    if annotations:
        raw["metadata"]["annotations"] = annotations
    return AnalysisTemplate.model_validate(raw)


def test_templates_flatten_into_one_run_spec() -> None:
    first = _template(
        "success-rate",
        metrics=[metric("success-rate")],
        args=[{"name": "service"}, {"name": "threshold", "value": "0.95"}],
        dryRun=[{"metricName": "success"}],
        annotations={"rollwise.io/no-data-policy.success-rate": "fail", "other": "x"},
    )
    second = _template(
        "latency",
        metrics=[metric("latency")],
        args=[{"name": "service", "value": "default-svc"}, {"name": "threshold", "value": "0.95"}],
        measurementRetention=[{"metricName": "lat", "limit": 20}],
    )
    merged = merge_templates(
        [first, second],
        args=_args(("service", "canary")),
        dry_run=[DryRun(metric_name="latency")],
    )
    assert [m.name for m in merged.metrics] == ["success-rate", "latency"]
    assert [(a.name, a.value) for a in merged.args] == [
        ("service", "canary"),
        ("threshold", "0.95"),
    ]
    assert [rule.metric_name for rule in merged.dry_run] == ["latency", "success"]
    assert [rule.metric_name for rule in merged.measurement_retention] == ["lat"]
    assert merged.annotations == {"rollwise.io/no-data-policy.success-rate": "fail"}


def test_a_later_template_fills_an_arg_an_earlier_one_left_empty() -> None:
    merged = merge_templates(
        [
            _template("a", metrics=[metric("a")], args=[{"name": "x"}]),
            _template("b", metrics=[metric("b")], args=[{"name": "x", "value": "1"}]),
        ]
    )
    assert [(a.name, a.value) for a in merged.args] == [("x", "1")]


@pytest.mark.parametrize(
    ("templates", "caller", "message"),
    [
        (
            [_template("a", metrics=[metric("m")]), _template("b", metrics=[metric("m")])],
            {},
            "two metrics have the same name 'm'",
        ),
        (
            [
                _template("a", metrics=[metric("a")], args=[{"name": "x", "value": "1"}]),
                _template("b", metrics=[metric("b")], args=[{"name": "x", "value": "2"}]),
            ],
            {},
            "Argument `x` specified multiple times with different values: '1', '2'",
        ),
        (
            [_template("a", metrics=[metric("a")], args=[{"name": "service"}])],
            {},
            "args.service was not resolved",
        ),
        (
            [_template("a", metrics=[metric("a")], dryRun=[{"metricName": "a"}])],
            {"dry_run": [DryRun(metric_name="a")]},
            "two Dry-Run metric rules have the same name 'a'",
        ),
        (
            [
                _template(
                    "a",
                    metrics=[metric("a")],
                    measurementRetention=[{"metricName": "a", "limit": 1}],
                )
            ],
            {"measurement_retention": [MeasurementRetention(metric_name="a", limit=2)]},
            "two Measurement Retention metric rules have the same name 'a'",
        ),
        (
            [
                _template(
                    "a",
                    metrics=[metric("a")],
                    annotations={"rollwise.io/no-data-policy": "fail"},
                ),
                _template(
                    "b",
                    metrics=[metric("b")],
                    annotations={"rollwise.io/no-data-policy": "succeed"},
                ),
            ],
            {},
            "annotation rollwise.io/no-data-policy is 'fail' in one template and 'succeed'",
        ),
    ],
)
def test_merge_errors(
    templates: list[AnalysisTemplate], caller: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserError) as caught:
        merge_templates(templates, **caller)
    assert str(caught.value).startswith(message)
