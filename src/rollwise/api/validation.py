"""Validation of a set of loaded manifests: every problem, each at the field that is wrong.

Where this sits: after `rollwise.api.manifests.load_files` (which reports what does not parse
or does not fit the models), before anything is stored. `rollwise lint` prints what this
returns; `rollwise apply` refuses to apply when it holds an error.

It runs the rules of each kind (a registry keyed by model class: `rollout_rules`,
`analysis_rules`, and the Experiment and Service rules below) with a `Catalog` of all the
objects in the set, so a Rollout's analysis can be checked against the templates next to it.
Objects of kinds rollwise does not model (VirtualService, Ingress, ConfigMap...) are not
checked themselves; the rules only read them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

from pydantic import BaseModel

from rollwise.api.analysis_rules import check_run_spec, check_template_spec
from rollwise.api.context import Catalog, Report
from rollwise.api.manifests import FieldPath, Loaded, Problem
from rollwise.api.metric_rules import check_duration, check_metric_rules
from rollwise.api.models import (
    API_VERSION,
    AnalysisRun,
    AnalysisTemplate,
    CanaryStep,
    ClusterAnalysisTemplate,
    Experiment,
    MetricProvider,
    Resource,
    Rollout,
    Service,
    TrafficRouting,
)
from rollwise.api.pod_rules import check_selector_and_template
from rollwise.api.rollout_rules import check_experiment_analyses, check_rollout

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_API_VERSION = re.compile(rf"({_SUBDOMAIN.pattern}/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?")

# Models whose unknown keys another rule already reports with a better message.
_EXTRAS_REPORTED_ELSEWHERE = (CanaryStep, MetricProvider, TrafficRouting)


def _check_name(report: Report, resource: Resource) -> None:
    name, where = resource.metadata.name, ("metadata", "name")
    generated = resource.metadata.generate_name and resource.kind in ("AnalysisRun", "Experiment")
    if not name:
        if not generated:
            report.error(where, "a name is required")
        return
    if isinstance(resource, Service):
        if len(name) > 63 or not _LABEL.fullmatch(name):
            report.error(
                where,
                f"{name!r} is not a valid Service name: at most 63 lowercase letters, digits and"
                " '-', starting with a letter",
            )
    elif len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        report.error(
            where,
            f"{name!r} is not a valid name: lowercase letters, digits, '-' and '.', starting and"
            " ending with a letter or digit",
        )


def _check_identity(item: Loaded) -> list[Problem]:
    """What every object needs to be stored, whatever its kind: a kind and an apiVersion
    Kubernetes could serve, a name (checked by kind for the kinds rollwise models), and a
    namespace that is a DNS label."""
    document = item.document
    problems: list[Problem] = []
    if len(document.kind) > 63 or not _KIND.fullmatch(document.kind):
        shown = document.kind if len(document.kind) <= 40 else document.kind[:37] + "..."
        problems.append(document.problem(("kind",), f"{shown!r} is not a kind: letters and digits"))
    if len(document.api_version) > 253 or not _API_VERSION.fullmatch(document.api_version):
        text = document.api_version[:40]
        problems.append(
            document.problem(("apiVersion",), f"{text!r} is not an apiVersion (v1, group/v1)")
        )
    metadata = document.raw.get("metadata")
    if not isinstance(metadata, dict):
        if not isinstance(item.resource, Resource):  # the models report their own
            what = "required" if metadata is None else "a mapping with the name"
            problems.append(document.problem(("metadata",), f"metadata is {what}"))
        return problems
    namespace = metadata.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not _NAMESPACE.fullmatch(namespace)
    ):
        problems.append(
            document.problem(
                ("metadata", "namespace"),
                f"{str(namespace)[:40]!r} is not a namespace: at most 63 lowercase letters,"
                " digits and '-'",
            )
        )
    if not isinstance(item.resource, Resource):
        name = metadata.get("name") or metadata.get("generateName")
        if not isinstance(name, str) or not name:
            problems.append(document.problem(("metadata", "name"), "a name is required"))
        elif len(name) > 253 or name in (".", "..") or "/" in name or "%" in name:
            problems.append(
                document.problem(
                    ("metadata", "name"),
                    f"{name[:40]!r} is not a name: at most 253 characters, no '/' or '%'",
                )
            )
    return problems


def _check_unknown_fields(report: Report, model: BaseModel, path: FieldPath) -> None:
    """Argo's own lint rejects unknown fields; a misspelt `successCondition` silently makes
    a metric always pass, so say so - as a warning, because the models keep such fields."""
    known = [info.alias or name for name, info in type(model).model_fields.items()]
    if not isinstance(model, _EXTRAS_REPORTED_ELSEWHERE):
        for key in model.model_extra or {}:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            report.warning(
                (*path, key),
                f"unknown field {key!r}{hint}; rollwise keeps it but nothing reads it",
            )
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        child = (*path, info.alias or name)
        if isinstance(value, BaseModel):
            _check_unknown_fields(report, value, child)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    _check_unknown_fields(report, item, (*child, index))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    _check_unknown_fields(report, item, (*child, key))


def _check_argo_fields(report: Report, resource: Resource) -> None:
    spec = getattr(resource, "spec", None)
    if isinstance(spec, BaseModel):
        _check_unknown_fields(report, spec, ("spec",))


def _check_rollout(report: Report, resource: Any, catalog: Catalog) -> None:
    check_rollout(report, resource, catalog=catalog)


def _check_template(report: Report, resource: Any, catalog: Catalog) -> None:
    check_template_spec(
        report, resource.spec, catalog=catalog, namespace=resource.metadata.namespace
    )


def _check_run(report: Report, resource: Any, catalog: Catalog) -> None:
    spec = resource.spec
    check_run_spec(report, spec.metrics, spec.args or [], spec.dry_run or [])
    names = [metric.name for metric in spec.metrics]
    check_metric_rules(
        report,
        spec.measurement_retention or [],
        ("spec", "measurementRetention"),
        metric_names=names,
    )


def _check_experiment(report: Report, resource: Any, catalog: Catalog) -> None:
    experiment: Experiment = resource
    spec = experiment.spec
    if not spec.templates:
        report.error(("spec", "templates"), "an Experiment needs at least one template")
    names: set[str] = set()
    for index, template in enumerate(spec.templates):
        where = ("spec", "templates", index)
        if template.name in names:
            report.error((*where, "name"), f"template name {template.name!r} is used twice")
        names.add(template.name)
        if template.replicas is not None and template.replicas < 0:
            report.error((*where, "replicas"), f"must be 0 or more, got {template.replicas}")
        check_selector_and_template(report, template.selector, template.template, where)
    check_duration(report, ("spec", "duration"), spec.duration)
    check_experiment_analyses(
        report,
        spec.analyses or [],
        ("spec", "analyses"),
        catalog=catalog,
        owner=report.loaded.document.raw,
        namespace=experiment.metadata.namespace,
        rollout=False,
    )


def _check_service(report: Report, resource: Any, catalog: Catalog) -> None:
    service: Service = resource
    spec = service.spec
    if spec.type == "ExternalName":
        return
    ports = spec.ports or []
    if not ports:
        report.error(("spec", "ports"), "a Service needs at least one port")
    names: set[str] = set()
    for index, port in enumerate(ports):
        where = ("spec", "ports", index)
        if not 1 <= port.port <= 65535:
            report.error((*where, "port"), f"port {port.port} is outside 1..65535")
        target = port.target_port
        if isinstance(target, int) and not 1 <= target <= 65535:
            report.error((*where, "targetPort"), f"targetPort {target} is outside 1..65535")
        elif isinstance(target, str) and not target:
            report.error((*where, "targetPort"), "targetPort is empty")
        if port.protocol is not None and port.protocol not in _PROTOCOLS:
            report.error(
                (*where, "protocol"),
                f"protocol {port.protocol!r} is not one of {', '.join(_PROTOCOLS)}",
            )
        if len(ports) > 1 and not port.name:
            report.error(where, "each port needs a name when a Service has several ports")
        elif port.name in names:
            report.error((*where, "name"), f"port name {port.name!r} is used twice")
        if port.name:
            names.add(port.name)


Rule = Callable[[Report, Any, Catalog], None]

RULES: dict[type[Resource], Rule] = {
    Rollout: _check_rollout,
    AnalysisTemplate: _check_template,
    ClusterAnalysisTemplate: _check_template,
    AnalysisRun: _check_run,
    Experiment: _check_experiment,
    Service: _check_service,
}
"""The rules of each modelled kind; a kind not here is only read by the others."""


def _check_duplicates(loaded: Sequence[Loaded]) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[tuple[str, str, str, str], Loaded] = {}
    for item in loaded:
        document = item.document
        if not document.name:
            continue
        group = document.api_version.rsplit("/", 1)[0] if "/" in document.api_version else ""
        namespace = "" if document.kind.startswith("Cluster") else document.namespace or "default"
        key = (group, document.kind, namespace, document.name)
        first = seen.setdefault(key, item)
        if first is item:
            continue
        other = first.document
        problems.append(
            document.problem(
                ("metadata", "name"),
                f"{document.kind} {document.name!r} is also defined at"
                f" {other.file}:{other.position(('metadata', 'name'))[0]};"
                " applying both would keep only the last",
            )
        )
    return problems


def validate(
    loaded: Sequence[Loaded],
    *,
    known_templates: Collection[str] = (),
    known_cluster_templates: Collection[str] = (),
) -> list[Problem]:
    """Every problem of every object, in document order.

    `known_templates` / `known_cluster_templates` name (Cluster)AnalysisTemplates that exist
    outside these files (in the store or cluster): a reference to one of them is not an error,
    though its args and metrics cannot be checked. An AnalysisTemplate name may be qualified
    with its namespace (`shop/success-rate`).
    """
    catalog = Catalog(
        loaded, known_templates=known_templates, known_cluster_templates=known_cluster_templates
    )
    problems: list[Problem] = []
    for item in loaded:
        resource = item.resource
        problems.extend(_check_identity(item))
        if not isinstance(resource, Resource):
            continue  # a kind rollwise does not model, or one that did not parse at all
        report = Report(item)
        _check_name(report, resource)
        if item.document.api_version == API_VERSION:
            _check_argo_fields(report, resource)
        rule = RULES.get(type(resource))
        if rule is not None:
            rule(report, resource, catalog)
        problems.extend(report.problems)
    problems.extend(_check_duplicates(loaded))
    return problems
