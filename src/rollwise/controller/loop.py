"""The reconcile loop both controllers share: keys in, one reconcile task per due key out.

Who uses it: `rollwise.controller.local.LocalController` and
`rollwise.controller.kubernetes.KubeController`; each feeds keys (`Kind/namespace/name`) from
its own watch (the SQLite change log, the informers) and calls `reconcile_due()` on each turn.
Keys of one object never run concurrently: a key that falls due while its reconcile runs goes
again once it ends. Different objects run concurrently, at most `workers[kind]` of a kind at a
time when a limit is given (Argo's `--rollout-threads`, `--analysis-threads`...). A reconcile
that raises is retried with the work queue's capped back-off and counted in `/metrics`; a
TransientError (the store locked or full, the proxy away) or ClusterAccessError (RBAC, expired
credentials) is logged in one line, anything else with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from rollwise.api.errors import ClusterAccessError, TransientError
from rollwise.controller.metrics import ControllerMetrics
from rollwise.controller.reconciler import Outcome
from rollwise.controller.workqueue import WorkQueue

log = logging.getLogger("rollwise.controller")


class Reconciler(Protocol):
    async def reconcile(self, namespace: str, name: str) -> Outcome: ...


def object_key(kind: str, namespace: str | None, name: str) -> str:
    """The work-queue key of an object: `Kind/namespace/name`."""
    return f"{kind}/{namespace or 'default'}/{name}"


class ReconcileLoop:
    def __init__(
        self,
        reconcilers: Mapping[str, Reconciler],
        *,
        metrics: ControllerMetrics,
        workers: Mapping[str, int] | None = None,
    ) -> None:
        self.reconcilers = dict(reconcilers)
        self.metrics = metrics
        self.queue = WorkQueue()
        self.wake = asyncio.Event()
        self.running: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._slots = {kind: asyncio.Semaphore(count) for kind, count in (workers or {}).items()}

    def add(self, key: str) -> None:
        self.queue.add(key)
        self.wake.set()

    def busy(self, key: str) -> bool:
        return key in self.running

    def reconcile_due(self, now: float) -> None:
        """Start a reconcile task for every key that is due."""
        for key in self.queue.pop_ready(now=now):
            if key in self.running:
                self._dirty.add(key)
                continue
            self.running[key] = asyncio.create_task(self._reconcile(key))

    async def _reconcile(self, key: str) -> None:
        kind, namespace, name = key.split("/", 2)
        slot = self._slots.get(kind)
        try:
            async with slot if slot is not None else contextlib.nullcontext():
                started = time.perf_counter()
                try:
                    outcome = await self.reconcilers[kind].reconcile(namespace, name)
                except Exception as error:
                    self.metrics.observe_reconcile(
                        kind, namespace, name, seconds=time.perf_counter() - started, failed=True
                    )
                    delay = self.queue.fail(key, now=time.monotonic())
                    if isinstance(error, TransientError | ClusterAccessError):
                        # Expected (a store lock held, a full disk, the proxy away, the
                        # account's rights or credentials): one line.
                        log.error(
                            "reconcile of %s failed; retrying in %.2fs: %s", key, delay, error
                        )
                    else:
                        log.exception("reconcile of %s failed; retrying in %.2fs", key, delay)
                else:
                    self.metrics.observe_reconcile(
                        kind, namespace, name, seconds=time.perf_counter() - started, failed=False
                    )
                    self.queue.succeed(key)
                    if outcome.requeue_after is not None:
                        self.queue.add_after(key, outcome.requeue_after, now=time.monotonic())
        finally:
            del self.running[key]
            if key in self._dirty:
                self._dirty.discard(key)
                self.queue.add(key)
            self.wake.set()

    def sleep_for(self, tick: float) -> float:
        due = self.queue.next_due()
        if due is None:
            return tick
        return max(0.0, min(tick, due - time.monotonic()))

    async def wait(self, tick: float) -> None:
        """Sleep until a key is due, something woke the loop, or `tick` passed."""
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), self.sleep_for(tick))

    async def finish(self, *, grace_seconds: float | None = None) -> None:
        """Stop: let the reconciles in flight finish their writes (for `grace_seconds`, None:
        cancel them at once), then cancel what is left."""
        tasks = list(self.running.values())
        if grace_seconds and tasks:
            await asyncio.wait(tasks, timeout=grace_seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
