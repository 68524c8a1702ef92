"""One reconcile of one Rollout: read, observe, decide, act, write the status.

Who calls it: the controller loop (`rollwise.controller.local`), for each key the work queue
hands out. The decision comes from `rollwise.core.rollouts.decide`; this module only moves data
between the store, the platform's executor and the core, in the order the core's contract asks:
execute every action first, and write the status only if all of them succeeded (so a failed
action is asked for again by the next decision, made from the same status). The decision's
events are recorded with the status, in one store transaction: a controller killed between the
two would leave events of a decision whose status was never written, which the next controller
makes again (and its notifier sends twice). A status equal to the stored one is not written.
A stale write (someone patched the Rollout meanwhile, e.g. the CLI's abort) is not an error: the
key is reconciled again at once from the fresh object.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from rollwise.api.errors import ClusterAccessError, ConflictError, NotFoundError, UserError
from rollwise.api.models import Rollout, RolloutStatus
from rollwise.core import actions as act
from rollwise.core.observed import Observed
from rollwise.core.rollouts import decide
from rollwise.core.timestamps import Clock, format_time

RawObject = dict[str, Any]

# After a weight change the proxy needs a moment (Traefik reloads in ~0.1 s) before the split
# can be verified; ask again this soon rather than waiting for the core's next timer.
VERIFY_AGAIN_SECONDS = 0.2
USER_ERROR_RETRY_SECONDS = 30.0


class Store(Protocol):
    def get(self, kind: str, name: str, namespace: str = "default") -> RawObject | None: ...
    async def write_status(self, obj: RawObject) -> RawObject: ...
    def transaction(self) -> AbstractContextManager[None]:
        """Writes inside are atomic where the store can make them so."""
        ...


class Executor(Protocol):
    def observe(self, rollout: Rollout) -> Observed: ...
    async def execute(
        self, rollout_raw: RawObject, rollout: Rollout, action: act.Action
    ) -> None: ...
    def forget(self, namespace: str, name: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What the loop should do next with this key."""

    requeue_after: float | None
    status_written: bool = False
    actions: int = 0


class RolloutReconciler:
    def __init__(self, store: Store, executor: Executor, *, clock: Clock) -> None:
        self.store = store
        self.executor = executor
        self.clock = clock

    async def reconcile(self, namespace: str, name: str) -> Outcome:
        raw = self.store.get("Rollout", name, namespace)
        if raw is None:
            self.executor.forget(namespace, name)
            return Outcome(requeue_after=None)
        try:
            rollout = Rollout.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            return Outcome(requeue_after=None, status_written=await self._invalid(raw, problems))
        decision = decide(rollout, self.executor.observe(rollout), self.clock.now())
        events = [a for a in decision.actions if isinstance(a, act.EmitEvent)]
        try:
            for action in decision.actions:
                if not isinstance(action, act.EmitEvent):
                    await self.executor.execute(raw, rollout, action)
        except UserError as error:
            if isinstance(error, NotFoundError | ClusterAccessError):
                # An object went away meanwhile, or the controller's own account may not do
                # this (RBAC, expired credentials): not the Rollout's fault, retried with back-off.
                raise
            # The spec asks for something that cannot work (an unsupported traffic router, a
            # route missing from the VirtualService): say so where the user looks, and retry
            # at the error interval in case what was missing appears.
            invalid = await self._invalid(raw, str(error))
            return Outcome(requeue_after=USER_ERROR_RETRY_SECONDS, status_written=invalid)
        requeue = decision.requeue_after
        if any(isinstance(a, act.SetWeight | act.VerifyWeight) for a in decision.actions):
            requeue = (
                VERIFY_AGAIN_SECONDS if requeue is None else min(requeue, VERIFY_AGAIN_SECONDS)
            )
        written = await self._write_status(raw, rollout, decision.status, events)
        if written is None:
            return Outcome(requeue_after=0.0, actions=len(decision.actions))
        return Outcome(requeue_after=requeue, status_written=written, actions=len(decision.actions))

    async def _write_status(
        self, raw: RawObject, rollout: Rollout, status: RolloutStatus, events: list[act.EmitEvent]
    ) -> bool | None:
        """Record `events` and write the status, together: True if written, False if
        unchanged, None if the object changed under us (then the events are not recorded
        either: the next decision makes them again)."""
        new = status.to_raw()
        unchanged = new == (raw.get("status") or {})
        try:
            with self.store.transaction():
                for event in events:
                    await self.executor.execute(raw, rollout, event)
                if not unchanged:
                    await self.store.write_status({**raw, "status": new})
        except ConflictError:
            return None
        return not unchanged

    async def _invalid(self, raw: RawObject, problems: str) -> bool:
        """A Rollout the models cannot read (written to the store by other means than `apply`,
        which validates) or whose spec cannot work here: Argo's InvalidSpec condition and
        Degraded phase."""
        now = format_time(self.clock.now())
        status = dict(raw.get("status") or {})
        status.update(
            phase="Degraded",
            message=f'InvalidSpec: The Rollout "{raw["metadata"]["name"]}" is invalid: {problems}',
            conditions=[
                {
                    "type": "InvalidSpec",
                    "status": "True",
                    "reason": "InvalidSpec",
                    "message": problems,
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                }
            ],
        )
        if status == raw.get("status"):
            return False
        try:
            await self.store.write_status({**raw, "status": status})
        except ConflictError:
            return False
        return True
