"""`rollwise install`: put the controller on a Kubernetes cluster, or print what it would apply.

Who calls it: `rollwise.cli.main` registers `install`. The objects come from
`rollwise.platforms.kubernetes.install` (pure); `--dry-run` prints them as multi-document YAML
(`rollwise install --dry-run | kubectl apply -f -`), otherwise each object is applied in order
to the cluster of the kubeconfig through `KubeClient.apply` (server-side apply). The platform
and the Kubernetes client are imported inside the command: they are slow to import and the
other verbs do not need them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rollwise.api.errors import UserError


def install(
    namespaced: Annotated[
        bool,
        typer.Option(
            "--namespaced",
            help="Install into one namespace with a Role, no CRDs (a cluster admin installs "
            "them once: `rollwise install --crds-only`).",
        ),
    ] = False,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Namespace of the controller.")
    ] = "rollwise",
    image: Annotated[
        str | None, typer.Option("--image", help="Controller image (default: this version's).")
    ] = None,
    instance_id: Annotated[
        str | None,
        typer.Option(
            "--instance-id",
            help="Only act on objects labelled argo-rollouts.argoproj.io/controller-instance-id "
            "with this value (one controller or another per namespace).",
        ),
    ] = None,
    crds_only: Annotated[
        bool, typer.Option("--crds-only", help="Only the five CustomResourceDefinitions.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the manifests as YAML instead of applying them."),
    ] = False,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig",
            help="Kubeconfig file to apply with (default: KUBECONFIG, ~/.kube/config).",
        ),
    ] = None,
    kube_context: Annotated[
        str | None, typer.Option("--kube-context", help="Kubeconfig context to apply with.")
    ] = None,
) -> None:
    """Install the CRDs, RBAC and the controller Deployment (like Argo's install.yaml)."""
    from rollwise.api.crds import custom_resource_definitions
    from rollwise.platforms.kubernetes import install as manifests

    if crds_only and namespaced:
        raise UserError("--crds-only and --namespaced exclude each other")
    if crds_only:
        objects = custom_resource_definitions()
    else:
        objects = manifests.install_manifests(
            namespace=namespace,
            namespaced=namespaced,
            image=image or manifests.DEFAULT_IMAGE,
            instance_id=instance_id,
        )
    if dry_run:
        typer.echo(manifests.manifests_yaml(objects), nl=False)
        return
    import asyncio  # here: asyncio alone costs ~15 ms of every command's start

    for line in asyncio.run(_apply(objects, kubeconfig=kubeconfig, context=kube_context)):
        typer.echo(line)


async def _apply(
    objects: list[dict[str, Any]], *, kubeconfig: str | None, context: str | None
) -> list[str]:
    """Apply each object in order (Namespace and CRDs first); one line per object."""
    from rollwise.platforms.kubernetes.client import KubeClient
    from rollwise.platforms.kubernetes.install import FIELD_MANAGER

    client = await KubeClient.connect(kubeconfig=kubeconfig, context=context)
    applied = []
    try:
        for obj in objects:
            await client.apply(obj, field_manager=FIELD_MANAGER)
            metadata = obj["metadata"]
            where = f" in {metadata['namespace']}" if "namespace" in metadata else ""
            applied.append(f"{obj['kind']} {metadata['name']}{where} applied")
    finally:
        await client.close()
    return applied
