"""The install manifests: valid Kubernetes objects that fit together, kubectl accepts them, the
test API server registers the CRDs, and `deploy/` holds what the generator makes now."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.kubernetes.apiserver import KubeApi
from typed_models import typed_errors

from rollwise.api.crds import custom_resource_definitions
from rollwise.api.models import Rollout
from rollwise.platforms.kubernetes import install
from rollwise.platforms.kubernetes.install import install_manifests, manifests_yaml

ROOT = Path(__file__).parents[2]
LAYOUTS: dict[str, dict[str, Any]] = {
    "cluster": {},
    "namespaced": {"namespaced": True, "namespace": "team-a"},
    "instance": {"namespace": "rollwise-b", "instance_id": "b", "image": "registry.local/rw:dev"},
}
# deploy/<file>: the `rollwise install` options that render it (as `make manifests` runs them)
DEPLOY_FILES = {
    "install.yaml": (),
    "namespace-install.yaml": ("--namespaced",),
    "crds.yaml": ("--crds-only",),
}


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects if obj["kind"] != "CustomResourceDefinition"}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_object_is_a_valid_typed_kubernetes_object(layout: str) -> None:
    for obj in install_manifests(**LAYOUTS[layout]):
        assert typed_errors(obj) == [], obj["kind"]


def test_the_typed_check_catches_unknown_and_mistyped_fields() -> None:
    deployment = by_kind(install_manifests())["Deployment"]
    deployment["spec"]["replica"] = 2
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8090"
    del deployment["spec"]["selector"]
    assert typed_errors(deployment) == [
        "Deployment.spec.replica: unknown field of V1DeploymentSpec",
        "Deployment.spec: Invalid value for `selector`, must not be `None`",
        "Deployment.spec.template.spec.containers[0].ports[0].containerPort: '8090' is not a int",
    ]
    crd = custom_resource_definitions()[0]
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["const"] = 1
    assert typed_errors(crd) == [
        "CustomResourceDefinition.spec.versions[0].schema.openAPIV3Schema.properties.spec.const: "
        "unknown field of V1JSONSchemaProps"
    ]


def test_cluster_layout_order_and_kinds() -> None:
    kinds = [obj["kind"] for obj in install_manifests()]
    assert kinds == [
        "Namespace",
        *["CustomResourceDefinition"] * 5,
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    ]


def test_namespaced_layout_has_no_cluster_scoped_object() -> None:
    objects = install_manifests(namespaced=True, namespace="team-a")
    assert [obj["kind"] for obj in objects] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
    ]
    assert {obj["metadata"]["namespace"] for obj in objects} == {"team-a"}
    assert (
        "--namespaced"
        in by_kind(objects)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    )


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_pieces_refer_to_each_other(layout: str) -> None:
    options = LAYOUTS[layout]
    namespace = options.get("namespace", "rollwise")
    objects = by_kind(install_manifests(**options))
    account = objects["ServiceAccount"]
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    role_kind = "Role" if options.get("namespaced") else "ClusterRole"
    binding = objects[f"{role_kind}Binding"]
    # the binding gives the role to the pod's service account
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": role_kind,
        "name": objects[role_kind]["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": namespace}
    ]
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
    # the selectors select the pods
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = objects["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    # the ports the args name are the ports the container declares, probes and Service use them
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": install.METRICS_PORT, "healthz": install.HEALTHZ_PORT}
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    assert f"--healthz-port={ports['healthz']}" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert service["spec"]["ports"][0]["targetPort"] in ports
    # every mount has its volume
    volumes = {volume["name"] for volume in pod["spec"]["volumes"]}
    assert {mount["name"] for mount in container["volumeMounts"]} <= volumes
    if options.get("instance_id"):
        assert f"--instance-id={options['instance_id']}" in container["args"]
        assert container["image"] == options["image"]


def test_the_controller_runs_highly_available_and_locked_down() -> None:
    deployment = by_kind(install_manifests())["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert container["args"][:3] == ["controller", "--kubernetes", "--leader-elect"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}


def test_cluster_scoped_names_differ_per_install_namespace() -> None:
    first = by_kind(install_manifests())
    second = by_kind(install_manifests(namespace="rollwise-b"))
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        assert first[kind]["metadata"]["name"] != second[kind]["metadata"]["name"]


def run_install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollwise", "install", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("file", "args"), list(DEPLOY_FILES.items()))
def test_deploy_files_are_what_the_generator_makes_now(file: str, args: tuple[str, ...]) -> None:
    result = run_install("--dry-run", *args)
    assert result.returncode == 0, result.stderr
    command = " ".join(["uv run rollwise install --dry-run", *args])
    assert (ROOT / "deploy" / file).read_text() == result.stdout, (
        f"deploy/{file} is stale: regenerate with `make manifests` (or `{command} > deploy/{file}`)"
    )


def test_install_dry_run_prints_the_manifests_as_yaml() -> None:
    result = run_install("--dry-run", "--namespaced", "-n", "team-a", "--instance-id", "b")
    assert result.returncode == 0, result.stderr
    printed = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
    assert printed == install_manifests(namespaced=True, namespace="team-a", instance_id="b")
    crds = run_install("--dry-run", "--crds-only")
    assert list(yaml.safe_load_all(crds.stdout)) == custom_resource_definitions()


def test_crds_only_and_namespaced_exclude_each_other() -> None:
    result = run_install("--dry-run", "--crds-only", "--namespaced")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Error: --crds-only and --namespaced exclude each other\n"


async def kubectl(kube_api: KubeApi, home: Path, *args: str, stdin: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        *args,
        env={
            "KUBECONFIG": str(kube_api.kubeconfig_path),
            "HOME": str(home),  # kubectl's discovery cache: one per test
            "PATH": os.environ["PATH"],
        },
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("layout", list(LAYOUTS))
async def test_kubectl_client_dry_run_accepts_the_manifests(
    kube_api: KubeApi, tmp_path: Path, layout: str
) -> None:
    objects = install_manifests(**LAYOUTS[layout])
    code, out, err = await kubectl(
        kube_api,
        tmp_path,
        "apply",
        "--dry-run=client",
        "--validate=false",
        "-f",
        "-",
        stdin=manifests_yaml(objects),
    )
    assert code == 0, err
    assert out.count("(dry run)") == len(objects), out
    assert kube_api.requests_to(method="POST") == []


async def test_kubectl_apply_creates_every_object_and_the_server_registers_the_crds(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    """The test API server refuses a CRD whose schema is not structural (pydantic's own schema
    is refused below): the five generated ones go in, and a Rollout is then served."""
    objects = install_manifests()
    code, _, err = await kubectl(
        kube_api, tmp_path, "apply", "--server-side", "-f", "-", stdin=manifests_yaml(objects)
    )
    assert code == 0, err
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        found = kube_api.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], namespace)
        assert found is not None, obj["kind"]
    example = (ROOT / "examples" / "rollout.yaml").read_text()
    code, _, err = await kubectl(kube_api, tmp_path, "apply", "-f", "-", stdin=example)
    assert code == 0, err
    code, out, err = await kubectl(kube_api, tmp_path, "get", "ro", "-o", "name", stdin="")
    assert (code, out) == (0, "rollout.argoproj.io/myapp\n"), err

    raw = custom_resource_definitions()[0]
    raw["metadata"]["name"] = "widgets.argoproj.io"
    raw["spec"]["names"] = {"kind": "Widget", "plural": "widgets", "singular": "widget"}
    raw["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = Rollout.model_json_schema(
        by_alias=True
    )
    code, _, err = await kubectl(
        kube_api, tmp_path, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(raw)
    )
    assert code != 0
    assert "$ref is not allowed" in err, err


async def rollwise_install(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rollwise",
        "install",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("layout", ["cluster", "namespaced"])
async def test_install_applies_every_object_with_server_side_apply(
    kube_api: KubeApi, layout: str
) -> None:
    options = LAYOUTS[layout]
    args = ["--kubeconfig", str(kube_api.kubeconfig_path)]
    if options.get("namespaced"):
        args += ["--namespaced", "--namespace", options["namespace"]]
    objects = install_manifests(**options)
    for _ in range(2):  # applying again changes nothing and succeeds
        code, out, err = await rollwise_install(*args)
        assert (code, err) == (0, "")
        assert len(out.splitlines()) == len(objects)
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        found = kube_api.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], namespace)
        assert found is not None, obj["kind"]
        assert {key: found[key] for key in obj if key != "metadata"} == {
            key: value for key, value in obj.items() if key != "metadata"
        }
    writes = [request for request in kube_api.requests if request.method != "GET"]
    assert len(writes) == 2 * len(objects)
    for request in writes:
        assert (request.method, request.content_type) == ("PATCH", "application/apply-patch+yaml")
        assert request.query["fieldManager"] == install.FIELD_MANAGER


async def test_install_without_a_cluster_fails_in_one_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    code, out, err = await rollwise_install("--kubeconfig", str(kubeconfig))
    assert (code, out) == (1, "")
    assert err.startswith("Error: "), err
    assert "127.0.0.1:1" in err, err
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_controller_command_line_accepts_the_deployments_args(layout: str) -> None:
    """Parsed by the real CLI (without running it): a renamed flag fails here, not in a pod."""
    import typer.main

    from rollwise.cli.main import app

    options = LAYOUTS[layout]
    deployment = by_kind(install_manifests(**options))["Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    verb = args.index("controller")
    root = typer.main.get_command(app)
    with root.make_context("rollwise", args[: verb + 1]) as context:
        command = root.get_command(context, "controller")
        assert command is not None
        with command.make_context("controller", args[verb + 1 :], parent=context) as sub:
            params = sub.params
    assert params["local"] is False
    assert params["leader_elect"] is True
    assert (params["metrics_port"], params["healthz_port"]) == (8090, 8080)
    assert params["namespaced"] is bool(options.get("namespaced"))
    assert params["instance_id"] == options.get("instance_id")
    if options.get("namespaced"):
        assert context.params["namespace"] == options["namespace"]
