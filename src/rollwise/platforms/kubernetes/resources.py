"""Where each Kubernetes kind lives on the API server: (apiVersion, kind) -> plural and scope.

Where it sits: `rollwise.platforms.kubernetes.client.KubeClient` builds every request path from
here, so the rest of rollwise names objects by apiVersion and kind, as they appear in manifests.
The table holds the kinds rollwise reads or writes (Argo's, the built-ins a rollout touches, and
those of the traffic routers); any other kind falls back to Kubernetes' own guess of the plural
(`UnsafeGuessKindToResource`: lower case, then `s`, `es` after s/x/z/ch/sh, `ies` after a
consonant and y), namespaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    """One kind's place on the server."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def base_path(self) -> str:
        return f"/apis/{self.api_version}" if self.group else f"/api/{self.api_version}"

    @property
    def display(self) -> str:
        """How Kubernetes names the resource in messages: `replicasets.apps`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def collection_path(self, namespace: str | None) -> str:
        """The list/create/watch path; `namespace` None lists across all namespaces."""
        if self.namespaced and namespace is not None:
            return f"{self.base_path}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{self.base_path}/{self.plural}"

    def object_path(self, name: str, namespace: str | None, subresource: str | None = None) -> str:
        path = f"{self.collection_path(namespace)}/{quote(name, safe='')}"
        return f"{path}/{subresource}" if subresource else path


_CLUSTER_SCOPED = False

# (apiVersion, kind) -> (plural, namespaced)
KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Pod"): ("pods", True),
    ("v1", "Service"): ("services", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Event"): ("events", True),
    ("v1", "Endpoints"): ("endpoints", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "PodTemplate"): ("podtemplates", True),
    ("v1", "Namespace"): ("namespaces", _CLUSTER_SCOPED),
    ("apps/v1", "ReplicaSet"): ("replicasets", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("coordination.k8s.io/v1", "Lease"): ("leases", True),
    ("autoscaling/v1", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("autoscaling/v1", "Scale"): ("scale", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("events.k8s.io/v1", "Event"): ("events", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): (
        "customresourcedefinitions",
        _CLUSTER_SCOPED,
    ),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", _CLUSTER_SCOPED),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): (
        "clusterrolebindings",
        _CLUSTER_SCOPED,
    ),
    ("argoproj.io/v1alpha1", "Rollout"): ("rollouts", True),
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): ("analysistemplates", True),
    ("argoproj.io/v1alpha1", "ClusterAnalysisTemplate"): (
        "clusteranalysistemplates",
        _CLUSTER_SCOPED,
    ),
    ("argoproj.io/v1alpha1", "AnalysisRun"): ("analysisruns", True),
    ("argoproj.io/v1alpha1", "Experiment"): ("experiments", True),
    ("networking.istio.io/v1beta1", "VirtualService"): ("virtualservices", True),
    ("networking.istio.io/v1alpha3", "VirtualService"): ("virtualservices", True),
    ("networking.istio.io/v1", "VirtualService"): ("virtualservices", True),
    ("networking.istio.io/v1beta1", "DestinationRule"): ("destinationrules", True),
    ("networking.istio.io/v1alpha3", "DestinationRule"): ("destinationrules", True),
    ("networking.istio.io/v1", "DestinationRule"): ("destinationrules", True),
    ("traefik.io/v1alpha1", "TraefikService"): ("traefikservices", True),
    ("traefik.containo.us/v1alpha1", "TraefikService"): ("traefikservices", True),
    ("split.smi-spec.io/v1alpha1", "TrafficSplit"): ("trafficsplits", True),
    ("split.smi-spec.io/v1alpha2", "TrafficSplit"): ("trafficsplits", True),
    ("split.smi-spec.io/v1alpha3", "TrafficSplit"): ("trafficsplits", True),
    ("split.smi-spec.io/v1alpha4", "TrafficSplit"): ("trafficsplits", True),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("httproutes", True),
    ("gateway.networking.k8s.io/v1beta1", "HTTPRoute"): ("httproutes", True),
    ("gateway.networking.k8s.io/v1", "GRPCRoute"): ("grpcroutes", True),
    ("gateway.networking.k8s.io/v1", "Gateway"): ("gateways", True),
}


def guess_plural(kind: str) -> str:
    """Kubernetes' `UnsafeGuessKindToResource`: how it pluralises a kind it does not know."""
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def resource_for(api_version: str, kind: str) -> Resource:
    """The place of `kind` in `api_version`; unknown kinds are guessed (namespaced)."""
    plural, namespaced = KINDS.get((api_version, kind), (guess_plural(kind), True))
    return Resource(api_version, kind, plural, namespaced)
