"""Rules for label selectors and pod templates, shared by Rollouts and Experiments.

Where this sits: called by `rollwise.api.rollout_rules` and `rollwise.api.validation`. Pod
templates are raw dicts in the models (passed through untouched), so these rules read the raw
shape; they check only what rollwise needs to run a revision (a container with a name and an
image) and what Kubernetes would reject anyway (a selector that does not select the pods).
"""

from __future__ import annotations

from typing import Any

from rollwise.api.context import Report
from rollwise.api.manifests import FieldPath
from rollwise.api.models import LabelSelector, RawObject

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def _labels_text(labels: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in labels.items()) or "none"


def selector_matches(selector: LabelSelector, labels: dict[str, Any]) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every expression."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.match_expressions or []:
        present = requirement.key in labels
        values = requirement.values or []
        if requirement.operator == "In" and (not present or labels[requirement.key] not in values):
            return False
        if requirement.operator == "NotIn" and present and labels[requirement.key] in values:
            return False
        if requirement.operator == "Exists" and not present:
            return False
        if requirement.operator == "DoesNotExist" and present:
            return False
    return True


def check_selector(report: Report, selector: LabelSelector | None, path: FieldPath) -> bool:
    """A selector must exist and select something; True when it can be matched against labels."""
    if selector is None:
        report.error(path, "selector is required (e.g. matchLabels: {app: myapp})")
        return False
    if not selector.match_labels and not selector.match_expressions:
        report.error(path, "selector is empty; it would select every pod in the namespace")
        return False
    usable = True
    for index, requirement in enumerate(selector.match_expressions or []):
        where = (*path, "matchExpressions", index)
        if requirement.operator not in _OPERATORS:
            expected = ", ".join(_OPERATORS)
            report.error(
                (*where, "operator"),
                f"unknown operator {requirement.operator!r}; expected one of {expected}",
            )
            usable = False
        elif requirement.operator in ("In", "NotIn") and not requirement.values:
            report.error(where, f"operator {requirement.operator} needs values")
            usable = False
        elif requirement.operator in ("Exists", "DoesNotExist") and requirement.values:
            report.error((*where, "values"), f"operator {requirement.operator} takes no values")
    return usable


def check_pod_template(report: Report, template: RawObject | None, path: FieldPath) -> None:
    """A pod template rollwise can run: at least one container, each with a name and an image."""
    if not template:
        report.error(path, "template is required: the pod template of the revisions to run")
        return
    metadata = template.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    if isinstance(labels, dict):
        for key, value in labels.items():
            if not isinstance(value, str):
                report.error(
                    (*path, "metadata", "labels", key),
                    f"label values must be strings; quote {value!r}",
                )
    spec = template.get("spec")
    if not isinstance(spec, dict):
        report.error((*path, "spec"), "template.spec is required (it holds the containers)")
        return
    containers = spec.get("containers")
    where = (*path, "spec", "containers")
    if not isinstance(containers, list) or not containers:
        report.error(where, "at least one container is required")
        return
    names: set[str] = set()
    for index, container in enumerate(containers):
        if not isinstance(container, dict):
            report.error((*where, index), "a container must be a mapping with name and image")
            continue
        name = container.get("name")
        if not isinstance(name, str) or not name:
            report.error((*where, index, "name"), "container needs a name")
        elif name in names:
            report.error((*where, index, "name"), f"container name {name!r} is used twice")
        else:
            names.add(name)
        image = container.get("image")
        if not isinstance(image, str) or not image:
            label = f"container {name!r}" if isinstance(name, str) and name else "container"
            report.error((*where, index, "image"), f"{label} has no image")


def template_labels(template: RawObject | None) -> dict[str, Any] | None:
    if not isinstance(template, dict):
        return None
    metadata = template.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return labels if isinstance(labels, dict) else None


def check_selector_and_template(
    report: Report,
    selector: LabelSelector | None,
    template: RawObject | None,
    path: FieldPath,
) -> None:
    """`path` is where selector and template live (e.g. `spec`)."""
    usable = check_selector(report, selector, (*path, "selector"))
    check_pod_template(report, template, (*path, "template"))
    if not usable or selector is None or not template:
        return
    labels = template_labels(template) or {}
    if not selector_matches(selector, labels):
        report.error(
            (*path, "selector"),
            f"selector does not match the template labels ({_labels_text(labels)});"
            " the selector must select the pods of its own template",
        )
