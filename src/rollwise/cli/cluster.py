"""How the CLI reads a cluster: the objects under a rollout or an experiment, by label selector.

Who calls it: `rollwise.cli.state.read_tree` (`get rollout`, `undo`), `rollwise.cli.experiments`
and `apply`/`lint` (the analysis templates a manifest may refer to) in the kubernetes context.
In a local home, reading a whole namespace is one cheap query and `rollwise.views` keeps what
is owned; a cluster's namespace may hold thousands of ReplicaSets and Pods, so every list here
names what it wants and the views still filter by ownership:

- a rollout's ReplicaSets and Pods: its `spec.selector` (they carry the pod template's labels;
  with a `workloadRef`, the Deployment's selector);
- its AnalysisRuns and Experiments: `rollouts-pod-template-hash in (...)` over the hashes of
  its ReplicaSets, the label both carry (Argo's and rollwise's alike);
- an experiment's ReplicaSets and Pods: each template's selector; its AnalysisRuns carry no
  label of their own (nor do Argo's), so they are listed from the namespace, and only when the
  experiment declares analyses.

Only cheap modules are imported: this runs on the path of `get rollout`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rollwise.cli.state import RolloutTree
from rollwise.views.info import HASH_LABEL, owned_by

if TYPE_CHECKING:
    from rollwise.api.manifests import Loaded
    from rollwise.platforms.kubernetes.cli_store import KubeCliStore

Raw = dict[str, Any]

_OPERATORS = {"In": "in", "NotIn": "notin"}


def selector_text(selector: Mapping[str, Any] | None) -> str | None:
    """A LabelSelector (`matchLabels`, `matchExpressions`) in the syntax of `?labelSelector=`;
    None for an empty or absent one (it selects everything)."""
    if not selector:
        return None
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(str(v) for v in expression.get("values") or [])
        if operator in _OPERATORS:
            terms.append(f"{key} {_OPERATORS[operator]} ({values})")
        elif operator == "Exists":
            terms.append(str(key))
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms) or None


def _hash_selector(objects: Iterable[Raw]) -> str | None:
    hashes = sorted(
        {
            str(labels[HASH_LABEL])
            for obj in objects
            if HASH_LABEL in (labels := (obj.get("metadata") or {}).get("labels") or {})
        }
    )
    return f"{HASH_LABEL} in ({','.join(hashes)})" if hashes else None


def _merge(*groups: Sequence[Raw]) -> list[Raw]:
    """The objects of several lists once each (by namespace and name), in their first order."""
    found: dict[tuple[str, str], Raw] = {}
    for group in groups:
        for obj in group:
            metadata = obj.get("metadata") or {}
            found.setdefault((metadata.get("namespace") or "", metadata.get("name") or ""), obj)
    return list(found.values())


def rollout_selector(store: KubeCliStore, rollout: Raw, namespace: str) -> str:
    """The selector of a rollout's ReplicaSets and Pods; with a `workloadRef` and no selector of
    its own, the Deployment's; failing both, every ReplicaSet and Pod a rollout made."""
    spec = rollout.get("spec") or {}
    text = selector_text(spec.get("selector"))
    ref = spec.get("workloadRef") or {}
    if text is None and ref.get("name"):
        workload = store.get(str(ref.get("kind") or "Deployment"), str(ref["name"]), namespace)
        text = selector_text(((workload or {}).get("spec") or {}).get("selector"))
    return text or HASH_LABEL


def read_tree_by_labels(store: KubeCliStore, rollout: Raw, namespace: str) -> RolloutTree:
    """A rollout and what is drawn under it, each kind read by label selector."""
    selector = rollout_selector(store, rollout, namespace)
    replica_sets = store.list("ReplicaSet", namespace, selector=selector)
    pods = store.list("Pod", namespace, selector=selector)
    runs: list[Raw] = []
    experiments: list[Raw] = []
    hashes = _hash_selector(rs for rs in replica_sets if owned_by(rs, rollout, kind="Rollout"))
    if hashes is not None:
        runs = store.list("AnalysisRun", namespace, selector=hashes)
        experiments = store.list("Experiment", namespace, selector=hashes)
    for experiment in experiments:
        if owned_by(experiment, rollout, kind="Rollout"):
            more_sets, more_pods, more_runs = experiment_children(store, experiment, namespace)
            replica_sets = _merge(replica_sets, more_sets)
            pods = _merge(pods, more_pods)
            runs = _merge(runs, more_runs)
    return RolloutTree(
        rollout=rollout,
        replica_sets=replica_sets,
        pods=pods,
        analysis_runs=runs,
        experiments=experiments,
    )


def experiment_children(
    store: KubeCliStore, experiment: Raw, namespace: str
) -> tuple[list[Raw], list[Raw], list[Raw]]:
    """The ReplicaSets, Pods and AnalysisRuns drawn under an experiment (others may be among
    them: the views keep what the experiment owns)."""
    spec = experiment.get("spec") or {}
    selectors = dict.fromkeys(
        text
        for template in spec.get("templates") or []
        if (text := selector_text(template.get("selector"))) is not None
    )
    replica_sets: list[Raw] = []
    pods: list[Raw] = []
    for text in selectors:
        replica_sets = _merge(replica_sets, store.list("ReplicaSet", namespace, selector=text))
        pods = _merge(pods, store.list("Pod", namespace, selector=text))
    runs = store.list("AnalysisRun", namespace) if spec.get("analyses") else []
    return replica_sets, pods, runs


def _refers_to_cluster_templates(value: Any) -> bool:
    if isinstance(value, Mapping):
        if value.get("clusterScope") is True:
            return True
        return any(_refers_to_cluster_templates(v) for v in value.values())
    if isinstance(value, list):
        return any(_refers_to_cluster_templates(v) for v in value)
    return False


def cluster_template_names(
    store: KubeCliStore, loaded: Sequence[Loaded], namespace: str
) -> tuple[list[str], list[str]]:
    """The analysis templates manifests may refer to, as validation takes them: the
    AnalysisTemplates of the namespaces the objects go to (`namespace/name`), and the
    ClusterAnalysisTemplates (by name) only when some object refers to one, so that an account
    without cluster-wide rights can apply namespaced objects."""
    namespaces = {namespace}
    for item in loaded:
        namespaces.add((item.document.raw.get("metadata") or {}).get("namespace") or namespace)
    namespaced = [
        f"{ns}/{template['metadata']['name']}"
        for ns in sorted(namespaces)
        for template in store.list("AnalysisTemplate", ns)
    ]
    cluster: list[str] = []
    if any(_refers_to_cluster_templates(item.document.raw) for item in loaded):
        cluster = [t["metadata"]["name"] for t in store.list("ClusterAnalysisTemplate", None)]
    return namespaced, cluster
