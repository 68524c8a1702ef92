"""What a validation rule sees: a report for the object it checks, and the other objects.

Where this sits: shared by the rule modules (`rollout_rules`, `analysis_rules`) that
`rollwise.api.validation.validate` runs over a set of loaded manifests. `Report` turns a field
path and a sentence into a located `Problem`; `Catalog` answers "is there an AnalysisTemplate
(or VirtualService, Ingress...) of that name in these files or among the names we were told
exist elsewhere".
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from rollwise.api.manifests import FieldPath, Loaded, PathKey, Problem, Severity
from rollwise.api.models import AnalysisTemplateSpec, Resource


def _related(path: FieldPath, other: FieldPath) -> bool:
    shorter = min(len(path), len(other))
    return path[:shorter] == other[:shorter]


@dataclass
class Report:
    """Collects the problems of one loaded object.

    Fields that did not fit the model were reported when the object was parsed and left out of
    the model; a rule that then finds them "missing" would only repeat that, so problems at,
    above or below a pruned field are dropped.
    """

    loaded: Loaded
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: Sequence[PathKey], text: str, *, severity: Severity = "error") -> None:
        key = tuple(path)
        if any(_related(key, pruned) for pruned in self.loaded.pruned):
            return
        self.problems.append(self.loaded.document.problem(key, text, severity=severity))

    def error(self, path: Sequence[PathKey], text: str) -> None:
        self.add(path, text)

    def warning(self, path: Sequence[PathKey], text: str) -> None:
        self.add(path, text, severity="warning")


def same_namespace(first: str | None, second: str | None) -> bool:
    """Objects that do not name a namespace land in whichever one they are applied to."""
    return first is None or second is None or first == second


@dataclass(frozen=True)
class TemplateFound:
    """An analysis template a reference resolved to; `spec` is None when only its name is known
    (listed as existing elsewhere, or its document did not parse), so its contents cannot be
    checked."""

    kind: str
    name: str
    spec: AnalysisTemplateSpec | None


class Catalog:
    """The objects of one lint/apply set, indexed for the rules that look across documents."""

    def __init__(
        self,
        loaded: Sequence[Loaded],
        *,
        known_templates: Collection[str] = (),
        known_cluster_templates: Collection[str] = (),
    ) -> None:
        self.loaded = list(loaded)
        self.known_templates = frozenset(known_templates)
        self.known_cluster_templates = frozenset(known_cluster_templates)
        self.files = list(dict.fromkeys(item.document.file for item in self.loaded))

    def find(self, kind: str, name: str, *, namespace: str | None = None) -> Loaded | None:
        """The first object of that kind and name (cluster-scoped kinds ignore namespaces)."""
        for item in self.loaded:
            document = item.document
            if document.kind != kind or document.name != name:
                continue
            if kind.startswith("Cluster") or same_namespace(document.namespace, namespace):
                return item
        return None

    def find_template(
        self, name: str, *, cluster: bool, namespace: str | None
    ) -> TemplateFound | None:
        kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
        item = self.find(kind, name, namespace=namespace)
        if item is not None:
            resource = item.resource
            spec = getattr(resource, "spec", None) if isinstance(resource, Resource) else None
            if item.pruned or not isinstance(spec, AnalysisTemplateSpec):
                spec = None
            return TemplateFound(kind, name, spec)
        known = self.known_cluster_templates if cluster else self.known_templates
        if name in known:
            return TemplateFound(kind, name, None)
        if not cluster:
            # `namespace/name` entries: a reference from an object that names no namespace
            # resolves in whichever namespace it will be applied to.
            for entry in known:
                entry_namespace, _, entry_name = entry.rpartition("/")
                if entry_name == name and same_namespace(entry_namespace, namespace):
                    return TemplateFound(kind, name, None)
        return None

    def where_looked(self, *, cluster: bool, namespace: str | None) -> str:
        kind = "ClusterAnalysisTemplates" if cluster else "AnalysisTemplates"
        files = ", ".join(self.files) or "no files"
        scope = "" if cluster else f" (namespace {namespace or 'default'})"
        known = self.known_cluster_templates if cluster else self.known_templates
        elsewhere = (
            f"among the {len(known)} known {kind}" if known else f"no known {kind} were given"
        )
        return f"looked in {files}{scope}; {elsewhere}"


__all__ = ["Catalog", "Report", "TemplateFound", "same_namespace"]
