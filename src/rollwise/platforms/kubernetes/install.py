"""What `rollwise install` puts on a cluster: CRDs, RBAC, ServiceAccount, Deployment, Service.

Where this sits: the Kubernetes platform, but pure (no client, no I/O): `rollwise.cli.install`
prints these objects (`--dry-run`) or applies them, and the files in `deploy/` are their
rendering (a test fails when they drift; `make manifests` regenerates them).

Two layouts, as Argo's `install.yaml` and `namespace-install.yaml`:
- cluster-wide (default): Namespace, the five CRDs, a ClusterRole bound to the controller's
  ServiceAccount, the Deployment and the metrics Service;
- `namespaced=True`: a Role and RoleBinding in one namespace and the controller started with
  `--namespaced`; no Namespace and no CRDs, which are cluster-scoped and installed once by a
  cluster admin (`rollwise install --crds-only`), as Argo's namespace install requires.

RBAC is least privilege: `CONTROLLER_PERMISSIONS` lists every (group, resource, verbs) the
controller uses, each with why; the roles are rendered from that table and nothing else. Code
that makes the controller call the API in a new way adds its row here (tests check the rendered
roles grant exactly the table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from rollwise import __version__
from rollwise.api.crds import custom_resource_definitions

RawObject = dict[str, Any]

NAME = "rollwise"
DEFAULT_NAMESPACE = "rollwise"
DEFAULT_IMAGE = f"ghcr.io/rollwise/rollwise:{__version__}"
METRICS_PORT = 8090
HEALTHZ_PORT = 8080
REPLICAS = 2  # one leader acts, one waits on the Lease (HA)
FIELD_MANAGER = "rollwise-install"

# The controller's command line after the image's entrypoint (`rollwise`). The Dockerfile's CMD
# is the same first two words (a test keeps them equal); the Deployment adds the rest.
CONTROLLER_COMMAND = ("controller", "--kubernetes")

LABELS = {
    "app.kubernetes.io/name": NAME,
    "app.kubernetes.io/component": "controller",
    "app.kubernetes.io/part-of": NAME,
}
SELECTOR = {"app.kubernetes.io/name": NAME}


@dataclass(frozen=True)
class Permission:
    """One RBAC rule the controller needs: an API group, resources in it, verbs, and why."""

    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    cluster_scoped: bool = False
    """Resources a Role cannot grant (namespaced installs leave the rule out)."""


CONTROLLER_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "argoproj.io",
        ("rollouts",),
        ("get", "list", "watch", "update", "patch"),
        "reconcile Rollouts; annotate them (workload generation) and write spec.paused",
    ),
    Permission(
        "argoproj.io",
        ("rollouts/status",),
        ("update", "patch"),
        "Rollout status lives in the status subresource",
    ),
    Permission(
        "argoproj.io",
        ("rollouts/finalizers", "analysisruns/finalizers", "experiments/finalizers"),
        ("update",),
        "owner references with blockOwnerDeletion on ReplicaSets, AnalysisRuns, Jobs and "
        "Services need update on the owner's finalizers (OwnerReferencesPermissionEnforcement)",
    ),
    Permission(
        "argoproj.io",
        ("analysisruns", "experiments"),
        ("create", "get", "list", "watch", "update", "patch", "delete"),
        "run analyses and experiments for steps; write their status (no subresource, as "
        "Argo); terminate them; delete old ones beyond the history limits",
    ),
    Permission(
        "argoproj.io",
        ("analysistemplates",),
        ("get", "list", "watch"),
        "read the templates AnalysisRuns are made from",
    ),
    Permission(
        "argoproj.io",
        ("clusteranalysistemplates",),
        ("get", "list", "watch"),
        "read cluster-wide templates (clusterScope: true)",
        cluster_scoped=True,
    ),
    Permission(
        "apps",
        ("replicasets",),
        ("create", "get", "list", "watch", "update", "patch", "delete"),
        "one ReplicaSet per revision: create, scale, annotate, adopt, delete beyond "
        "revisionHistoryLimit",
    ),
    Permission(
        "apps",
        ("deployments",),
        ("get", "list", "watch", "update", "patch"),
        "workloadRef: read the Deployment's template; scaleDown onsuccess/progressively",
    ),
    Permission(
        "apps",
        ("deployments/scale",),
        ("get", "patch"),
        "workloadRef scaleDown through the Deployment's scale subresource",
    ),
    Permission(
        "",
        ("podtemplates",),
        ("get", "list", "watch"),
        "workloadRef to a core PodTemplate",
    ),
    Permission(
        "",
        ("pods",),
        ("get", "list", "watch", "patch", "delete"),
        "ephemeral canary/stable metadata is patched onto running pods; restartAt replaces pods",
    ),
    Permission(
        "",
        ("pods/eviction",),
        ("create",),
        "restartAt evicts pods through the Eviction API (respects PodDisruptionBudgets)",
    ),
    Permission(
        "",
        ("services",),
        ("get", "list", "watch", "create", "patch", "delete"),
        "point canary/stable/active/preview selectors at a pod-template hash; create and "
        "delete the Services of experiment templates",
    ),
    Permission(
        "",
        ("secrets", "configmaps"),
        ("get", "list", "watch"),
        "secretKeyRef arguments of analyses; the notification ConfigMap and Secret",
    ),
    Permission(
        "",
        ("events",),
        ("create", "patch"),
        "Events with Argo's reasons (patch: repeated events are counted, not duplicated)",
    ),
    Permission(
        "batch",
        ("jobs",),
        ("create", "get", "list", "watch", "delete"),
        "the Job metric provider runs a Job per measurement and deletes finished ones",
    ),
    Permission(
        "coordination.k8s.io",
        ("leases",),
        ("get", "create", "update"),
        "leader election: only the replica holding the Lease acts",
    ),
    Permission(
        "networking.k8s.io",
        ("ingresses",),
        ("get", "list", "watch", "create", "update", "patch"),
        "NGINX: create the canary Ingress from the stable one and set its canary annotations",
    ),
    Permission(
        "networking.istio.io",
        ("virtualservices", "destinationrules"),
        ("get", "list", "watch", "update", "patch"),
        "Istio: route weights, header and mirror routes, DestinationRule subsets",
    ),
    Permission(
        "traefik.io",
        ("traefikservices",),
        ("get", "update", "patch"),
        "Traefik v3: weights of the weighted TraefikService",
    ),
    Permission(
        "traefik.containo.us",
        ("traefikservices",),
        ("get", "update", "patch"),
        "Traefik v2 (the API group Argo uses by default)",
    ),
    Permission(
        "split.smi-spec.io",
        ("trafficsplits",),
        ("create", "get", "update", "patch"),
        "SMI: create and weight the TrafficSplit",
    ),
    Permission(
        "gateway.networking.k8s.io",
        ("httproutes",),
        ("get", "list", "watch", "update", "patch"),
        "Gateway API: backendRef weights, header-match rules and mirror filters",
    ),
)
# Deliberately absent: horizontalpodautoscalers (an HPA scales a Rollout through the Rollout's
# scale subresource; the controller never reads HPAs), customresourcedefinitions, namespaces,
# nodes, and the routers rollwise does not drive yet (ALB, Ambassador, APISIX, App Mesh).


def install_manifests(
    *,
    namespace: str = DEFAULT_NAMESPACE,
    namespaced: bool = False,
    image: str = DEFAULT_IMAGE,
    instance_id: str | None = None,
) -> list[RawObject]:
    """Every object of an install, in the order `kubectl apply` should create them."""
    objects: list[RawObject] = []
    if not namespaced:
        objects.append(_namespace(namespace))
        objects.extend(custom_resource_definitions())
    objects.append(_service_account(namespace))
    objects.extend(_rbac(namespace, namespaced=namespaced))
    objects.append(_metrics_service(namespace))
    objects.append(
        _deployment(namespace, image=image, namespaced=namespaced, instance_id=instance_id)
    )
    return objects


def controller_args(
    *, namespace: str = DEFAULT_NAMESPACE, namespaced: bool = False, instance_id: str | None = None
) -> list[str]:
    """The arguments the controller container runs with (after the `rollwise` entrypoint)."""
    # a namespaced controller watches the global --namespace, which must precede the verb
    scope = [f"--namespace={namespace}"] if namespaced else []
    args = [
        *scope,
        *CONTROLLER_COMMAND,
        "--leader-elect",
        f"--metrics-port={METRICS_PORT}",
        f"--healthz-port={HEALTHZ_PORT}",
    ]
    if namespaced:
        args.append("--namespaced")
    if instance_id:
        args.append(f"--instance-id={instance_id}")
    return args


def policy_rules(*, namespaced: bool = False) -> list[RawObject]:
    """The RBAC rules of `CONTROLLER_PERMISSIONS` (without the cluster-scoped ones for a Role)."""
    return [
        {
            "apiGroups": [permission.group],
            "resources": list(permission.resources),
            "verbs": list(permission.verbs),
        }
        for permission in CONTROLLER_PERMISSIONS
        if not (namespaced and permission.cluster_scoped)
    ]


def manifests_yaml(objects: list[RawObject]) -> str:
    """Multi-document YAML, keys in the order the objects were built (kind first)."""
    header = f"# rollwise {__version__}: generated by `rollwise install`; do not edit.\n"
    return header + yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True, width=100)


def cluster_name(namespace: str) -> str:
    """Name of the cluster-scoped objects (ClusterRole/Binding): one pair per install namespace."""
    return NAME if namespace == DEFAULT_NAMESPACE else f"{NAME}-{namespace}"


# --- the objects ---------------------------------------------------------------------------------


def _metadata(name: str, namespace: str | None = None) -> RawObject:
    metadata: RawObject = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = dict(LABELS)
    return metadata


def _namespace(namespace: str) -> RawObject:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _metadata(namespace)}


def _service_account(namespace: str) -> RawObject:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(NAME, namespace)}


def _rbac(namespace: str, *, namespaced: bool) -> list[RawObject]:
    group = "rbac.authorization.k8s.io"
    subject = {"kind": "ServiceAccount", "name": NAME, "namespace": namespace}
    if namespaced:
        role = {
            "apiVersion": f"{group}/v1",
            "kind": "Role",
            "metadata": _metadata(NAME, namespace),
            "rules": policy_rules(namespaced=True),
        }
        binding = {
            "apiVersion": f"{group}/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(NAME, namespace),
            "roleRef": {"apiGroup": group, "kind": "Role", "name": NAME},
            "subjects": [subject],
        }
        return [role, binding]
    name = cluster_name(namespace)
    role = {
        "apiVersion": f"{group}/v1",
        "kind": "ClusterRole",
        "metadata": _metadata(name),
        "rules": policy_rules(),
    }
    binding = {
        "apiVersion": f"{group}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _metadata(name),
        "roleRef": {"apiGroup": group, "kind": "ClusterRole", "name": name},
        "subjects": [subject],
    }
    return [role, binding]


def _metrics_service(namespace: str) -> RawObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(f"{NAME}-metrics", namespace),
        "spec": {
            "selector": dict(SELECTOR),
            "ports": [
                {
                    "name": "metrics",
                    "port": METRICS_PORT,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                }
            ],
        },
    }


def _field_env(name: str, field_path: str) -> RawObject:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _deployment(
    namespace: str, *, image: str, namespaced: bool, instance_id: str | None
) -> RawObject:
    probe = {"httpGet": {"path": "/healthz", "port": "healthz"}, "timeoutSeconds": 5}
    container: RawObject = {
        "name": NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": controller_args(
            namespace=namespace, namespaced=namespaced, instance_id=instance_id
        ),
        "env": [
            # the Lease and the namespaced mode live in the pod's namespace; the pod's name is
            # its identity as a leader candidate
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("POD_NAME", "metadata.name"),
        ],
        "ports": [
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            {"name": "healthz", "containerPort": HEALTHZ_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": {
            **probe,
            "initialDelaySeconds": 30,
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "readinessProbe": {**probe, "initialDelaySeconds": 5, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        # the root filesystem is read-only; Python's tempfile and the --home default go here
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(NAME, namespace),
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": dict(SELECTOR)},
            "strategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
