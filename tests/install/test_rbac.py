"""RBAC: the roles grant exactly what `CONTROLLER_PERMISSIONS` says the controller uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rbac import Attributes, allows, request_attributes

from rollwise.api.crds import CUSTOM_KINDS
from rollwise.platforms.kubernetes import install
from rollwise.platforms.kubernetes.install import CONTROLLER_PERMISSIONS, policy_rules

STANDARD_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
SUBRESOURCE_VERBS = {
    "status": {"get", "update", "patch"},
    "scale": {"get", "update", "patch"},
    "finalizers": {"update"},  # a virtual resource: checked by OwnerReferencesPermissionEnforcement
    "eviction": {"create"},
}


def role(kind: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def uses(*, namespaced: bool = False) -> set[tuple[str, str, str]]:
    return {
        (permission.group, resource, verb)
        for permission in CONTROLLER_PERMISSIONS
        if not (namespaced and permission.cluster_scoped)
        for resource in permission.resources
        for verb in permission.verbs
    }


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_cluster_role_allows_every_use_and_nothing_else() -> None:
    rules = role("ClusterRole", install.install_manifests())["rules"]
    for group, resource, verb in uses():
        assert allows(rules, group=group, resource=resource, verb=verb)
    assert granted(rules) == uses()


def test_the_namespaced_role_leaves_out_only_cluster_scoped_resources() -> None:
    rules = role("Role", install.install_manifests(namespaced=True))["rules"]
    assert granted(rules) == uses(namespaced=True)
    assert not allows(rules, group="argoproj.io", resource="clusteranalysistemplates", verb="get")
    assert allows(rules, group="argoproj.io", resource="analysistemplates", verb="get")


def test_no_wildcards_and_only_verbs_the_resource_has() -> None:
    for rule in policy_rules():
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
        for resource in rule["resources"]:
            _, _, subresource = resource.partition("/")
            allowed = SUBRESOURCE_VERBS[subresource] if subresource else STANDARD_VERBS
            assert set(rule["verbs"]) <= allowed, (resource, rule["verbs"])


def test_every_permission_says_why() -> None:
    for permission in CONTROLLER_PERMISSIONS:
        assert len(permission.why) > 20, permission


def test_no_cluster_wide_writes_nobody_needs() -> None:
    """Least privilege in the large: no RBAC, CRD, node or namespace rights, no secret writes."""
    rules = policy_rules()
    for group, resource in [
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "nodes"),
        ("", "namespaces"),
        ("autoscaling", "horizontalpodautoscalers"),
    ]:
        assert not any(
            allows(rules, group=group, resource=resource, verb=verb) for verb in STANDARD_VERBS
        )
    for verb in ("create", "update", "patch", "delete"):
        assert not allows(rules, group="", resource="secrets", verb=verb)
    assert not allows(rules, group="argoproj.io", resource="rollouts", verb="delete")


def test_the_argo_kinds_are_covered() -> None:
    rules = policy_rules()
    for custom in CUSTOM_KINDS:
        for verb in ("get", "list", "watch"):
            assert allows(rules, group="argoproj.io", resource=custom.plural, verb=verb)
        if custom.status_subresource:
            assert allows(
                rules, group="argoproj.io", resource=f"{custom.plural}/status", verb="patch"
            )


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/apis/argoproj.io/v1alpha1/rollouts", {}, ("argoproj.io", "rollouts", "list")),
        (
            "GET",
            "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts",
            {"watch": "true"},
            ("argoproj.io", "rollouts", "watch"),
        ),
        (
            "PATCH",
            "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/myapp/status",
            {},
            ("argoproj.io", "rollouts/status", "patch"),
        ),
        ("GET", "/api/v1/namespaces/default/pods/p", {}, ("", "pods", "get")),
        ("POST", "/api/v1/namespaces/d/pods/p/eviction", {}, ("", "pods/eviction", "create")),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/d/replicasets",
            {},
            ("apps", "replicasets", "deletecollection"),
        ),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/d/leases/l",
            {},
            ("coordination.k8s.io", "leases", "update"),
        ),
        ("GET", "/api/v1/namespaces/rollwise", {}, ("", "namespaces", "get")),
        ("PUT", "/api/v1/namespaces/x/finalize", {}, ("", "namespaces/finalize", "update")),
    ],
)
def test_requests_map_to_rbac_attributes(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str, str]
) -> None:
    assert request_attributes(method, path, query) == Attributes(*expected)


def test_the_evaluator_understands_wildcards() -> None:
    rules = [{"apiGroups": ["apps"], "resources": ["replicasets/*"], "verbs": ["*"]}]
    assert allows(rules, group="apps", resource="replicasets/scale", verb="patch")
    assert not allows(rules, group="apps", resource="replicasets", verb="patch")
    assert not allows(rules, group="", resource="replicasets/scale", verb="patch")


def test_the_rbac_table_in_the_docs_is_the_code_table() -> None:
    text = (Path(__file__).parents[2] / "docs" / "kubernetes.md").read_text()
    section = text.split("## RBAC", 1)[1]
    documented = set()
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("API group", "---"):
            continue
        for group in cells[0].split(", "):
            group = "" if group == "core" else group.strip("`")
            for resource in cells[1].split(", "):
                for verb in cells[2].split(", "):
                    documented.add((group, resource, verb))
    assert documented == uses()
