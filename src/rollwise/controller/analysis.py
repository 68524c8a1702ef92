"""One reconcile of one AnalysisRun: plan, measure through the providers, record, write.

Who calls it: the controller loop (key `AnalysisRun/<ns>/<name>`), and `rollwise analyze`, which
drives the same reconciler in-process until the run completes. The semantics are the core's
(`rollwise.core.analysis.runs`: what is due, how measurements fold into metric and run phases);
this module only fetches what the core asks for. Every due metric of a run is measured
concurrently; a provider failure is an Error measurement, never an exception, so a metrics
server that is down can fail a release but never crash the controller or pass a release.

Secrets: a run's `secretKeyRef` args and the providers' credentials (`<secret>/<key>`) come from
Secret objects in the run's namespace, read at measurement time only; their values are masked
as `*****` in every message, value and metadata the run stores.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from rollwise.api.errors import ConflictError
from rollwise.api.models import AnalysisRun, AnalysisRunStatus, Measurement
from rollwise.controller.reconciler import Outcome
from rollwise.core.analysis.runs import Plan, plan, record
from rollwise.core.timestamps import Clock
from rollwise.providers import base as providers
from rollwise.providers.base import ProviderContext, ProviderServices

RawObject = dict[str, Any]
RESOLVED_QUERY = "ResolvedPrometheusQuery"


class Store(Protocol):
    def get(self, kind: str, name: str, namespace: str = "default") -> RawObject | None: ...
    def list(self, kind: str, namespace: str | None = "default") -> list[RawObject]: ...
    async def write_status(self, obj: RawObject) -> RawObject: ...


def secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's keys and values: `data` (base64, as Kubernetes stores it) and `stringData`."""
    values: dict[str, str] = {}
    for key, encoded in (secret.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue  # not base64 text: not a value a metric could use
    values.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return values


class AnalysisRunReconciler:
    def __init__(self, store: Store, *, clock: Clock, services: ProviderServices) -> None:
        self.store = store
        self.clock = clock
        self.services = services

    def secrets(self, namespace: str) -> dict[str, str]:
        """Every secret value of the namespace, keyed `<secret>/<key>` as providers read them."""
        found: dict[str, str] = {}
        for secret in self.store.list("Secret", namespace):
            name = secret["metadata"]["name"]
            for key, value in secret_values(secret).items():
                found[f"{name}/{key}"] = value
        return found

    async def reconcile(self, namespace: str, name: str) -> Outcome:
        raw = self.store.get("AnalysisRun", name, namespace)
        if raw is None:
            return Outcome(requeue_after=None)
        try:
            run = AnalysisRun.model_validate(raw)
        except ValidationError as error:
            status = AnalysisRunStatus(phase="Error", message=f"Analysis spec invalid: {error}")
            return Outcome(requeue_after=None, status_written=await self._write(raw, status))
        status, requeue_after, measured = await self.step(run, self.secrets(namespace))
        written = await self._write(raw, status)
        return Outcome(requeue_after=requeue_after, status_written=written, actions=measured)

    async def step(
        self, run: AnalysisRun, secrets: Mapping[str, str]
    ) -> tuple[AnalysisRunStatus, float | None, int]:
        """One reconcile of `run` without the store: its new status, when to come back, and how
        many measurements were taken (also what `rollwise analyze` loops over)."""
        first = plan(
            run, self.clock.now(), secret_lookup=lambda secret, key: secrets.get(f"{secret}/{key}")
        )
        if first.idle:
            return first.status, first.requeue_after, 0
        results = await self.measure(run, first, secrets)
        planned = run.model_copy(update={"status": first.status})
        status = record(
            planned,
            results,
            self.clock.now(),
            secrets=first.secrets,
            metric_metadata=_metric_metadata(results),
        )
        # Plan again for the next due time (another metric, the next interval, a resume).
        after = plan(run.model_copy(update={"status": status}), self.clock.now())
        return status, 0.0 if not after.idle else after.requeue_after, len(results)

    async def measure(
        self, run: AnalysisRun, due: Plan, secrets: Mapping[str, str]
    ) -> dict[str, Measurement]:
        """Take, resume and terminate every due measurement of `run` concurrently."""
        context = ProviderContext(
            clock=self.clock,
            namespace=run.namespace,
            run_name=run.name,
            secrets=secrets,
            services=self.services,
            masked_values=due.secrets,
        )
        last = _last_measurements(due.status)
        calls: dict[str, Any] = {}
        for metric_name in due.to_run:
            calls[metric_name] = providers.measure(due.metrics[metric_name], context)
        for metric_name in due.to_resume:
            calls[metric_name] = providers.resume(
                due.metrics[metric_name], last[metric_name], context
            )
        for metric_name in due.to_terminate:
            calls[metric_name] = providers.terminate(
                due.metrics[metric_name], last[metric_name], context
            )
        measured = await asyncio.gather(*calls.values())
        return dict(zip(calls, measured, strict=True))

    async def _write(self, raw: RawObject, status: AnalysisRunStatus) -> bool:
        new = status.to_raw()
        if new == (raw.get("status") or {}):
            return False
        try:
            await self.store.write_status({**raw, "status": new})
        except ConflictError:
            return False  # changed meanwhile (e.g. terminated): the change requeues the run
        return True


def _last_measurements(status: AnalysisRunStatus) -> dict[str, Measurement]:
    return {
        result.name: result.measurements[-1]
        for result in status.metric_results or ()
        if result.measurements
    }


def _metric_metadata(results: Mapping[str, Measurement]) -> dict[str, dict[str, str]]:
    """Argo keeps the resolved Prometheus query on the metric result, not the measurement."""
    return {
        name: {RESOLVED_QUERY: m.metadata[RESOLVED_QUERY]}
        for name, m in results.items()
        if m.metadata and RESOLVED_QUERY in m.metadata
    }
