"""One reconcile of one Experiment: read, observe, decide, act, write the status.

Who calls it: the controller loop (`rollwise.controller.local`), for each `Experiment/<ns>/<name>`
key the work queue hands out - queued when the Experiment changes, when a ReplicaSet or
AnalysisRun it owns changes, and when the core asks for a timer (duration, progress deadline,
scale-down delay). The decision is `rollwise.core.experiments.decide_experiment`; this module
moves data between the store, the platform's executor and the core in the order the core's
contract asks: every action first, then the status, and only if all actions succeeded. A status
equal to the stored one is not written; a stale write is retried at once from the fresh object.
The AnalysisRuns an Experiment creates are measured by the AnalysisRun reconciler like any run.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError

from rollwise.api.errors import ConflictError
from rollwise.api.models import Experiment, ExperimentStatus
from rollwise.controller.reconciler import Outcome
from rollwise.core import actions as act
from rollwise.core.experiments import ExperimentObserved, decide_experiment
from rollwise.core.timestamps import Clock, format_time

RawObject = dict[str, Any]


class Store(Protocol):
    def get(self, kind: str, name: str, namespace: str = "default") -> RawObject | None: ...
    async def write_status(self, obj: RawObject) -> RawObject: ...


class Executor(Protocol):
    def observe_experiment(self, experiment: Experiment) -> ExperimentObserved: ...
    async def execute_for_experiment(
        self, experiment_raw: RawObject, action: act.Action
    ) -> None: ...


class ExperimentReconciler:
    def __init__(self, store: Store, executor: Executor, *, clock: Clock) -> None:
        self.store = store
        self.executor = executor
        self.clock = clock

    async def reconcile(self, namespace: str, name: str) -> Outcome:
        raw = self.store.get("Experiment", name, namespace)
        if raw is None:
            return Outcome(requeue_after=None)
        if (raw.get("metadata") or {}).get("deletionTimestamp"):
            return Outcome(requeue_after=None)
        try:
            experiment = Experiment.model_validate(raw)
        except ValidationError as error:
            return Outcome(requeue_after=None, status_written=await self._invalid(raw, error))
        decision = decide_experiment(
            experiment, self.executor.observe_experiment(experiment), self.clock.now()
        )
        for action in decision.actions:
            await self.executor.execute_for_experiment(raw, action)
        written = await self._write_status(raw, decision.status)
        if written is None:
            return Outcome(requeue_after=0.0, actions=len(decision.actions))
        return Outcome(
            requeue_after=decision.requeue_after,
            status_written=written,
            actions=len(decision.actions),
        )

    async def _write_status(self, raw: RawObject, status: ExperimentStatus) -> bool | None:
        """True if written, False if unchanged, None if the object changed under us."""
        new = status.to_raw()
        if new == (raw.get("status") or {}):
            return False
        try:
            await self.store.write_status({**raw, "status": new})
        except ConflictError:
            return None
        return True

    async def _invalid(self, raw: RawObject, error: ValidationError) -> bool:
        """An Experiment the models cannot read (stored by other means than `apply`): an
        InvalidSpec condition, as Argo's controller writes for a spec it cannot run."""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        now = format_time(self.clock.now())
        status = dict(raw.get("status") or {})
        status["conditions"] = [
            {
                "type": "InvalidSpec",
                "status": "True",
                "reason": "InvalidSpec",
                "message": problems,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }
        ]
        if status == raw.get("status"):
            return False
        try:
            await self.store.write_status({**raw, "status": status})
        except ConflictError:
            return False
        return True
