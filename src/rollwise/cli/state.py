"""Where a CLI command acts: the global options, and the store they lead to.

Who calls it: every verb of `rollwise.cli.main`. It owns the rules common to all of them: the
`kubernetes` context is refused with one clear line (for now), a read never creates a home that
does not exist, and the objects drawn under a rollout are read in one place. The store is
imported here lazily, so `rollwise --help` never loads SQLite.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollwise.api.errors import NotFoundError, UserError

if TYPE_CHECKING:
    from rollwise.platforms.local.store import SqliteStore

Raw = dict[str, Any]

CONTEXTS = ("local", "kubernetes")


@dataclass(frozen=True)
class Settings:
    """The global options of one invocation."""

    home: Path
    namespace: str
    context: str

    def require_local(self) -> None:
        if self.context == "kubernetes":
            raise UserError(
                "the kubernetes context is not available yet in this version of rollwise; "
                "use --context local (or unset ROLLWISE_CONTEXT)"
            )
        if self.context not in CONTEXTS:
            raise UserError(f"unknown context '{self.context}': expected one of local, kubernetes")

    @property
    def state_file(self) -> Path:
        from rollwise.platforms.local.store import STATE_FILE

        return self.home / STATE_FILE


@contextmanager
def open_store(settings: Settings, *, create: bool) -> Iterator[SqliteStore | None]:
    """The local store, or None when reading a home that holds no state yet."""
    settings.require_local()
    if not create and not settings.state_file.exists():
        yield None
        return
    from rollwise.platforms.local.store import SqliteStore

    store = SqliteStore.open_home(settings.home)
    try:
        yield store
    finally:
        store.close()


def missing_rollout(name: str, namespace: str) -> NotFoundError:
    return NotFoundError(f"rollout '{name}' not found in namespace '{namespace}'")


def read_rollout(store: SqliteStore | None, name: str, namespace: str) -> Raw:
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


def read_tree(store: SqliteStore | None, name: str, namespace: str) -> RolloutTree:
    rollout = read_rollout(store, name, namespace)
    assert store is not None  # read_rollout found the rollout in it
    # Selecting by the rollout's labels would miss nothing today, but ownership is what the
    # view draws, and one namespace of a local home is small: read it and let render filter.
    return RolloutTree(
        rollout=rollout,
        replica_sets=store.list("ReplicaSet", namespace),
        pods=store.list("Pod", namespace),
        analysis_runs=store.list("AnalysisRun", namespace),
        experiments=store.list("Experiment", namespace),
    )


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
    store: SqliteStore | None, namespace: str | None = None
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


def watch(store: SqliteStore, draw: Callable[[bool], str], *, timeout_seconds: int = 0) -> None:
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
