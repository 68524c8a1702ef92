"""Finding the cluster: a kubeconfig (path, $KUBECONFIG, ~/.kube/config) or the service account.

Where it sits: `KubeClient.connect` calls `load_configuration`, which returns a
kubernetes_asyncio `Configuration` (server, TLS, credentials) and the namespace of the chosen
context. kubernetes_asyncio is imported here, inside the function, because importing it costs
most of a second and the CLI's other commands should not pay for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollwise.api.errors import UserError

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class ClusterConfig:
    configuration: Any  # kubernetes_asyncio.client.Configuration
    namespace: str
    source: str  # where it came from, for messages: a kubeconfig path or "in-cluster"


async def load_configuration(
    *, kubeconfig: str | None = None, context: str | None = None
) -> ClusterConfig:
    """The kubeconfig at `kubeconfig`, else $KUBECONFIG, else ~/.kube/config, else in-cluster.

    UserError when none of them can be loaded (naming what was tried).
    """
    from kubernetes_asyncio import client, config

    # A fresh Configuration: `Configuration()` would copy a process-wide default.
    configuration = type.__call__(client.Configuration)
    path = _kubeconfig_path(kubeconfig)
    if path:
        try:
            loader = await config.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (config.ConfigException, OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"cannot load the kubeconfig {path}: {error}") from error
        current = loader.current_context or {}
        namespace = (current.get("context") or {}).get("namespace") or "default"
        return ClusterConfig(configuration, namespace, path)
    if context:
        raise UserError(f"context {context!r} asked for, but no kubeconfig was found")
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException as error:
        raise UserError(
            "no kubeconfig found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not running "
            f"in a cluster: {error}"
        ) from error
    return ClusterConfig(configuration, _in_cluster_namespace(), "in-cluster")


def _kubeconfig_path(kubeconfig: str | None) -> str | None:
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path and os.pathsep not in path and not Path(path).is_file():
        # Said here in one line: the library would log a warning of its own first.
        raise UserError(
            f"cannot load the kubeconfig {path}: no such file; give --kubeconfig PATH "
            "or set KUBECONFIG"
        )
    default = Path("~/.kube/config").expanduser()
    if not path and default.exists():
        path = str(default)
    return path


def _in_cluster_namespace() -> str:
    if "POD_NAMESPACE" in os.environ:
        return os.environ["POD_NAMESPACE"]
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    return "default"
