"""Helpers of the metrics tests: read `/metrics` text back into series, build objects."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_series(text: str) -> Series:
    """Every sample of an exposition, keyed by (name as written, labels). prometheus_client's
    parser renames a counter sample without `_total` (Argo's `rollout_reconcile_error`) to
    `..._total`; the name written in the text is the one kept here."""
    written = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    found: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name not in written and name.endswith("_total") and name[:-6] in written:
                name = name[:-6]
            found[(name, frozenset(sample.labels.items()))] = float(sample.value)
    return found


def value(series: Series, metric: str, /, **labels: str) -> float | None:
    """The value of the one series `metric{labels}` (exact label set), or None."""
    return series.get((metric, frozenset(labels.items())))


def matching(
    series: Series, metric: str, /, **labels: str
) -> dict[frozenset[tuple[str, str]], float]:
    """Every series of `metric` whose labels include `labels`."""
    wanted = set(labels.items())
    return {
        found_labels: found
        for (found_name, found_labels), found in series.items()
        if found_name == metric and wanted <= found_labels
    }


def names(series: Series) -> set[str]:
    return {name for name, _ in series}


def owner(kind: str, name: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "name": name, "uid": "u-" + name}]


def rollout(
    name: str,
    *,
    status: Mapping[str, Any] | None = None,
    canary: Mapping[str, Any] | None = None,
    strategy: Mapping[str, Any] | None = None,
    replicas: int | None = 4,
    namespace: str = "default",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": "argoproj/rollouts-demo:blue"}]},
        },
        "strategy": dict(strategy) if strategy is not None else {"canary": dict(canary or {})},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    obj: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    if status is not None:
        obj["status"] = dict(status)
    return obj


def analysis_run() -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "shop-c4n4ry-2-1", "ownerReferences": owner("Rollout", "shop")},
        "spec": {
            "metrics": [
                {"name": "success-rate", "provider": {"prometheus": {"query": "q"}}},
                {"name": "latency", "provider": {"web": {"url": "http://x"}}},
                {"name": "smoke", "provider": {"job": {"spec": {}}}},
                {"name": "pending", "provider": {"newRelic": {"query": "q"}}},
            ],
            "dryRun": [{"metricName": "late.*"}],
        },
        "status": {
            "phase": "Running",
            "metricResults": [
                {
                    "name": "success-rate",
                    "phase": "Successful",
                    "measurements": [
                        {"phase": "Successful", "value": "[0.91]"},
                        {"phase": "Successful", "value": "[0.97]"},
                    ],
                },
                {
                    "name": "latency",
                    "phase": "Failed",
                    "dryRun": True,
                    "measurements": [{"phase": "Failed", "value": "0.42"}],
                },
                {
                    "name": "smoke",
                    "phase": "Running",
                    "measurements": [{"phase": "Running"}],
                },
            ],
        },
    }


def require_binary(name: str) -> str:
    """Debian's `prometheus` package binaries (`prometheus`, `promtool`): skip locally without
    them, fail under CI (whose `make test` installs them)."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (apt-get install prometheus; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found
