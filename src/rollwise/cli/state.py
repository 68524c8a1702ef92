"""Where a CLI command acts: the global options, and the store they lead to.

Who calls it: every verb of `rollwise.cli.main`. It owns the rules common to all of them: which
store a context means (a local home's `SqliteStore`, or a cluster's `KubeCliStore` for
`--context kubernetes`), that a read never creates a home that does not exist, that a
read-modify-write is retried when a cluster reports a conflict, and that the objects drawn under
a rollout are read in one place. Both stores are imported lazily, so `rollwise --help` never
loads SQLite, and no local path ever loads the Kubernetes client (most of a second).
"""

from __future__ import annotations

import builtins
import dataclasses
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rollwise.api.errors import ConflictError, NotFoundError, UserError

if TYPE_CHECKING:
    from rollwise.platforms.kubernetes.cli_store import KubeCliStore
    from rollwise.platforms.local.store import SqliteStore

Raw = dict[str, Any]
T = TypeVar("T")

CONTEXTS = ("local", "kubernetes")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # a DNS label, as Kubernetes wants
DEFAULT_NAMESPACE = "default"
CONFLICT_ATTEMPTS = 5  # client-go's retry.DefaultRetry, which Argo's CLI uses, tries 5 times


class Store(Protocol):
    """What the verbs call on a store: `SqliteStore` (local) and `KubeCliStore` (a cluster)."""

    def get(self, kind: str, name: str, namespace: str = ...) -> Raw | None: ...

    def list(
        self,
        kind: str,
        namespace: str | None = ...,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> builtins.list[Raw]: ...

    def create(self, obj: Raw) -> Raw: ...

    def update(self, obj: Raw) -> Raw: ...

    def update_status(self, obj: Raw) -> Raw: ...

    def patch(
        self,
        kind: str,
        name: str,
        namespace: str = ...,
        *,
        merge: Mapping[str, Any],
        status: bool = False,
    ) -> Raw: ...

    def apply(self, obj: Raw) -> tuple[Raw, str]: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def revision(self) -> int: ...


class ClusterSession:
    """The connection to a cluster one invocation opens at most once (closed with the command)."""

    def __init__(self) -> None:
        self.store: KubeCliStore | None = None

    def open(self, *, kubeconfig: str | None, context: str | None) -> KubeCliStore:
        if self.store is None:
            from rollwise.platforms.kubernetes.cli_store import KubeCliStore

            self.store = KubeCliStore.open(kubeconfig=kubeconfig, context=context)
        return self.store

    def close(self) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            store.close()


@dataclass(frozen=True)
class Settings:
    """The global options of one invocation."""

    home: Path
    namespace_option: str | None
    context: str
    kubeconfig: str | None = None
    kube_context: str | None = None
    cluster: ClusterSession = field(default_factory=ClusterSession, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.context not in CONTEXTS:
            raise UserError(
                f"unknown context '{self.context}': expected one of {', '.join(CONTEXTS)}"
            )
        namespace = self.namespace_option
        if namespace and (len(namespace) > 63 or not _NAMESPACE.fullmatch(namespace)):
            # Kubernetes refuses such a namespace; locally it would hold objects no cluster could
            shown = namespace if len(namespace) <= 40 else namespace[:37] + "..."
            raise UserError(
                f"invalid namespace {shown!r}: at most 63 lowercase letters, digits and '-',"
                " starting and ending with a letter or digit"
            )

    @property
    def on_cluster(self) -> bool:
        return self.context == "kubernetes"

    @property
    def namespace(self) -> str:
        """`-n`, else `default` locally, else the namespace of the kubeconfig context."""
        if self.namespace_option:
            return self.namespace_option
        if self.on_cluster:
            return self.cluster_store().namespace
        return DEFAULT_NAMESPACE

    def with_options(self, **options: str) -> Settings:
        """These settings with global options given after the verb (`get rollout x -n shop`)."""
        return dataclasses.replace(self, **options)  # type: ignore[arg-type]

    def cluster_store(self) -> KubeCliStore:
        return self.cluster.open(kubeconfig=self.kubeconfig, context=self.kube_context)

    def require_local(self, what: str) -> None:
        """Refuse, in one line, a command that only acts on a local home."""
        if self.on_cluster:
            raise UserError(
                f"{what} acts on a local rollwise home only, not on a cluster; "
                "run it as `rollwise --context local ...`"
            )

    @property
    def state_file(self) -> Path:
        from rollwise.platforms.local.store import STATE_FILE

        return self.home / STATE_FILE


@contextmanager
def open_local_store(settings: Settings, *, create: bool) -> Iterator[SqliteStore | None]:
    """The local store, or None when reading a home that holds no state yet."""
    if not create and not settings.state_file.exists():
        yield None
        return
    from rollwise.platforms.local.store import SqliteStore

    store = SqliteStore.open_home(settings.home)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def open_store(settings: Settings, *, create: bool) -> Iterator[Store | None]:
    """The store of the context: a cluster's (never None; closed when the command ends), or
    the local home's (None when reading a home that holds no state yet)."""
    if settings.on_cluster:
        yield settings.cluster_store()
        return
    with open_local_store(settings, create=create) as store:
        yield store


def read_modify_write(store: Store, change: Callable[[], T]) -> T:
    """Run `change` (reads, then writes based on them) as one unit: one transaction of a local
    store; on a cluster, writes carry the resourceVersions read, and a conflict (someone wrote
    in between) runs `change` again from fresh reads, as `kubectl argo rollouts` does."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            with store.transaction():
                return change()
        except ConflictError:
            if attempt == CONFLICT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def missing_rollout(name: str, namespace: str) -> NotFoundError:
    return NotFoundError(f"rollout '{name}' not found in namespace '{namespace}'")


def read_rollout(store: Store | None, name: str, namespace: str) -> Raw:
    rollout = store.get("Rollout", name, namespace) if store is not None else None
    if rollout is None:
        raise missing_rollout(name, namespace)
    return rollout


@dataclass(frozen=True)
class RolloutTree:
    """A rollout and the objects drawn under it (the lists may hold other rollouts' too)."""

    rollout: Raw
    replica_sets: list[Raw]
    pods: list[Raw]
    analysis_runs: list[Raw]
    experiments: list[Raw] = field(default_factory=list)


def read_tree(store: Store | None, name: str, namespace: str) -> RolloutTree:
    rollout = read_rollout(store, name, namespace)
    assert store is not None  # read_rollout found the rollout in it
    cluster = cluster_store(store)
    if cluster is not None:
        from rollwise.cli.cluster import read_tree_by_labels

        return read_tree_by_labels(cluster, rollout, namespace)
    # Selecting by the rollout's labels would miss nothing today, but ownership is what the
    # view draws, and one namespace of a local home is small: read it and let render filter.
    return RolloutTree(
        rollout=rollout,
        replica_sets=store.list("ReplicaSet", namespace),
        pods=store.list("Pod", namespace),
        analysis_runs=store.list("AnalysisRun", namespace),
        experiments=store.list("Experiment", namespace),
    )


def rollout_replica_sets(store: Store, rollout: Raw, namespace: str) -> list[Raw]:
    """The ReplicaSets a rollout owns (on a cluster, read by its selector)."""
    from rollwise.views.info import owned_by

    cluster = cluster_store(store)
    if cluster is not None:
        from rollwise.cli.cluster import rollout_selector

        selector = rollout_selector(cluster, rollout, namespace)
        found = cluster.list("ReplicaSet", namespace, selector=selector)
    else:
        found = store.list("ReplicaSet", namespace)
    return [rs for rs in found if owned_by(rs, rollout, kind="Rollout")]


def cluster_store(store: Store | None) -> KubeCliStore | None:
    """`store` as a cluster's store, or None for a local one. Looked up in `sys.modules`: if
    the cluster store's module was never imported, no store can be one, and a local command
    must not pay for importing it."""
    module = sys.modules.get("rollwise.platforms.kubernetes.cli_store")
    if module is not None and isinstance(store, module.KubeCliStore):
        found: KubeCliStore = store
        return found
    return None


def use_color(no_color: bool) -> bool:
    """Colour only on a terminal that can show it (`--no-color`, NO_COLOR, TERM=dumb)."""
    if no_color or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stdout.isatty()


def resource_label(obj: Mapping[str, Any]) -> str:
    """How kubectl names an object in its messages: `rollout.argoproj.io/myapp`, `service/x`."""
    kind = str(obj.get("kind", "")).lower()
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    name = (obj.get("metadata") or {}).get("name", "")
    return f"{kind}.{group}/{name}" if group else f"{kind}/{name}"


def template_names(
    store: Store | None, namespace: str | None = None
) -> tuple[list[str], list[str]]:
    """The (Cluster)AnalysisTemplates a store holds, as validation takes them: namespaced ones
    as `namespace/name` (all namespaces, or one), cluster ones by name."""
    if store is None:
        return [], []
    namespaced = [
        f"{(t.get('metadata') or {}).get('namespace') or 'default'}/{t['metadata']['name']}"
        for t in store.list("AnalysisTemplate", namespace)
    ]
    cluster = [t["metadata"]["name"] for t in store.list("ClusterAnalysisTemplate", None)]
    return namespaced, cluster


_POLL_SECONDS = 0.1
_MIN_REDRAW_SECONDS = 0.2
_REFRESH_SECONDS = 1.0
_CLEAR = "\033[H\033[2J\033[0;0H"


def watch(store: Store, draw: Callable[[bool], str], *, timeout_seconds: int = 0) -> None:
    """`-w`: redraw in place when the store changes (at most every 0.2 s) and every second (so
    ages stay current), until `timeout_seconds` (0: until Ctrl-C). `draw(changed)` returns the
    text, re-reading its objects when `changed`."""
    deadline = time.monotonic() + timeout_seconds if timeout_seconds > 0 else None
    seen_revision, drawn_at = -1, float("-inf")
    try:
        while deadline is None or time.monotonic() < deadline:
            revision = store.revision()
            since = time.monotonic() - drawn_at
            changed = revision != seen_revision
            if (changed and since >= _MIN_REDRAW_SECONDS) or since >= _REFRESH_SECONDS:
                sys.stdout.write(_CLEAR + draw(changed))
                sys.stdout.flush()
                seen_revision, drawn_at = revision, time.monotonic()
            time.sleep(_POLL_SECONDS)
    except KeyboardInterrupt:
        pass
