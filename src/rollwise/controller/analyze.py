"""`rollwise analyze`'s loop: one AnalysisRun driven to completion in-process, in real time.

Who calls it: the CLI verb `rollwise analyze` (and tests). It is the controller's own
`AnalysisRunReconciler.step` - the same plan, providers and record - called in a loop instead
of from the work queue: step, apply the new status, stop once the run is completed
(Successful, Failed, Error, Inconclusive), otherwise sleep until the core's next due time
(`requeue_after`, capped so a long interval still shows the loop alive) and step again. So
count, interval, initialDelay, the 10 s retry after an Error and every limit behave exactly as
they do under the controller; nothing is written anywhere.

Two things differ from the controller, both on purpose:
- A run that can never finish is refused (`UserError`) instead of measured forever: any metric
  whose effective count is unbounded (an `interval` without `count`) keeps the run Running
  until it is terminated or another metric breaks a limit - dry-run metrics included, since a
  run stays Running while any of its metrics does (reference 2.7).
- `once=True` rewrites every metric (`once_metrics`) to take one measurement now and let that
  measurement decide: `count: 1`, no `interval` or `initialDelay`, `failureLimit: 0`,
  `inconclusiveLimit: 0`, `consecutiveErrorLimit: 0`, no `consecutiveSuccessLimit`. A metric's
  phase is then its measurement's phase, and the run's the worst of them (Successful < Running
  < Pending < Inconclusive < Error < Failed). Argo's fail-fast still applies: an asynchronous
  measurement (a Job) still running when another metric has already failed is stopped and
  counts as Inconclusive "Metric Terminated"; it cannot make the run's phase better.

Cancelling `analyze` (Ctrl-C) terminates the run first (`spec.terminate`, one more step, bounded
in time), so a Job it started does not outlive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rollwise.api import models as api
from rollwise.api.errors import TransientError, UserError
from rollwise.api.models import AnalysisRun, Argument, DryRun, Metric, RawObject
from rollwise.controller.analysis import AnalysisRunReconciler
from rollwise.core.analysis.args import merge_templates, resolve_args, substitute
from rollwise.core.analysis.creation import Template, TemplateLookup, expand_templates
from rollwise.core.analysis.settings import effective_count
from rollwise.core.timestamps import format_time
from rollwise.providers.base import ProviderServices

COMPLETED_PHASES = frozenset({"Successful", "Failed", "Error", "Inconclusive"})
MAX_SLEEP_SECONDS = 10.0
"""Longest single sleep: the loop wakes at least this often (the core's next due time is exact;
waking early only plans again and finds nothing due)."""
TERMINATE_TIMEOUT_SECONDS = 10.0
_STALL_STEPS = 3


def completed(run: AnalysisRun) -> bool:
    return run.status is not None and run.status.phase in COMPLETED_PHASES


# --- the two rewrites of the run -------------------------------------------------------------


def once_metrics(metrics: Sequence[Metric]) -> list[Metric]:
    """Each metric rewritten to take one measurement now and take its outcome as the metric's
    (see the module docstring). Other fields ({{args.x}} placeholders too) are kept."""
    rewritten = []
    for metric in metrics:
        raw = metric.to_raw()
        for key in ("interval", "initialDelay", "consecutiveSuccessLimit"):
            raw.pop(key, None)
        raw.update(count=1, failureLimit=0, inconclusiveLimit=0, consecutiveErrorLimit=0)
        rewritten.append(Metric.model_validate(raw))
    return rewritten


def as_once(run: AnalysisRun) -> AnalysisRun:
    """The run with `once_metrics` applied."""
    spec = run.spec.model_copy(update={"metrics": once_metrics(run.spec.metrics)})
    return run.model_copy(update={"spec": spec})


def _dry_run_matches(rules: Sequence[DryRun], name: str) -> bool:
    for rule in rules:
        try:
            if re.search(rule.metric_name, name):
                return True
        except re.error:
            continue  # an invalid regex matches nothing (the run will say so)
    return False


def unbounded_metrics(run: AnalysisRun) -> list[str]:
    """Names of the metrics that measure until terminated (interval without count), read after
    the run's args are substituted; a metric whose args do not resolve is left to the run
    (which ends Error saying why)."""
    try:
        values = resolve_args(run.spec.args).values
    except UserError:
        return []
    found = []
    for metric in run.spec.metrics:
        try:
            resolved = substitute(metric, values)
        except UserError:
            continue
        if effective_count(resolved) is None:
            found.append(metric.name)
    return found


def refuse_unbounded(run: AnalysisRun) -> None:
    """UserError explaining why the run would never finish, if it would not."""
    names = unbounded_metrics(run)
    if not names:
        return
    dry = [n for n in names if _dry_run_matches(run.spec.dry_run or (), n)]
    listed = ", ".join(f"'{n}'" for n in names)
    which = "metric" if len(names) == 1 else "metrics"
    note = " (a dry-run metric too: the run stays Running while any metric does)" if dry else ""
    raise UserError(
        f"{which} {listed} of analysis run '{run.name}' would never finish: an interval"
        f" without a count measures until the run is terminated{note}. Give it a count, or"
        " use --once to take one measurement of each metric now"
    )


# --- the loop --------------------------------------------------------------------------------


async def analyze(
    run: AnalysisRun,
    *,
    reconciler: AnalysisRunReconciler,
    secrets: Mapping[str, str],
    once: bool,
    on_update: Callable[[AnalysisRun], None] | None = None,
) -> AnalysisRun:
    """Drive `run` to completion with `reconciler` and return it with its final status.

    `on_update` sees the run after every step that changed its status. Raises UserError before
    measuring anything when the run can never finish (unless `once`).
    """
    if not completed(run):
        if once:
            run = as_once(run)
        else:
            refuse_unbounded(run)
    idle_steps = 0
    try:
        while not completed(run):
            status, requeue_after, measured = await reconciler.step(run, secrets)
            changed = run.status is None or status.to_raw() != run.status.to_raw()
            run = run.model_copy(update={"status": status})
            if changed and on_update is not None:
                on_update(run)
            if completed(run):
                break
            if requeue_after is None:
                # Nothing will fall due and yet the run is not over: never spin or hang.
                idle_steps = 0 if (measured or changed) else idle_steps + 1
                if idle_steps >= _STALL_STEPS:
                    raise TransientError(
                        f"analysis run '{run.name}' is {status.phase} with nothing left to"
                        " measure; giving up"
                    )
                await asyncio.sleep(0)
                continue
            idle_steps = 0
            if requeue_after > 0:
                await asyncio.sleep(min(requeue_after, MAX_SLEEP_SECONDS))
    except asyncio.CancelledError:
        await _terminate(run, reconciler=reconciler, secrets=secrets)
        raise
    return run


async def _terminate(
    run: AnalysisRun, *, reconciler: AnalysisRunReconciler, secrets: Mapping[str, str]
) -> None:
    """Stop what the run still has in flight (a Job's process), as the controller would."""
    if completed(run):
        return
    spec = run.spec.model_copy(update={"terminate": True})
    with contextlib.suppress(Exception):
        async with asyncio.timeout(TERMINATE_TIMEOUT_SECONDS):
            await reconciler.step(run.model_copy(update={"spec": spec}), secrets)


# --- what the reconciler reads instead of a store ---------------------------------------------


class SecretsOnly:
    """A read-only stand-in for the store `AnalysisRunReconciler` takes: `rollwise analyze`
    writes nothing and reads only Secrets (given here, from the local store if there is one)."""

    def __init__(self, secrets: Sequence[RawObject] = ()) -> None:
        self._secrets = [dict(secret) for secret in secrets]

    def get(self, kind: str, name: str, namespace: str = "default") -> RawObject | None:
        return None

    def list(self, kind: str, namespace: str | None = "default") -> list[RawObject]:
        if kind != "Secret":
            return []
        return [
            secret
            for secret in self._secrets
            if namespace is None
            or ((secret.get("metadata") or {}).get("namespace") or "default") == namespace
        ]

    async def write_status(self, obj: RawObject) -> RawObject:
        raise TransientError("rollwise analyze writes no status to a store")


def exit_code(run: AnalysisRun) -> int:
    """`rollwise analyze`'s exit code: 0 Successful, 1 Failed, 2 Error, 3 Inconclusive."""
    phase = run.status.phase if run.status else None
    codes: dict[str | None, int] = {"Successful": 0, "Failed": 1, "Error": 2, "Inconclusive": 3}
    return codes.get(phase, 2)


# --- the run `rollwise analyze` measures -----------------------------------------------------


@dataclass(frozen=True)
class PreparedRun:
    run: AnalysisRun
    ignored_args: tuple[str, ...] = ()
    """`-a` names nothing in the run declares (Argo ignores such caller args silently)."""


def _error_run(raw: RawObject, message: str, now: datetime) -> AnalysisRun:
    when = format_time(now)
    status = {"phase": "Error", "message": message, "startedAt": when, "completedAt": when}
    return AnalysisRun.model_validate({**raw, "status": status})


def run_from_templates(
    templates: Sequence[Template],
    *,
    args: Sequence[Argument],
    name: str,
    namespace: str,
    lookup: TemplateLookup,
    now: datetime,
) -> PreparedRun:
    """The AnalysisRun a Rollout step naming every template of `templates` would create (Argo's
    `NewAnalysisRunFromTemplates`). The templates are taken namespaced first, then cluster ones,
    as Argo orders them; nested `templates[]` are found among `templates` first, then through
    `lookup` (for `rollwise analyze`: the local store). Metrics, args, dryRun and
    measurementRetention are merged, `args` acting as the caller's. A run that cannot be built
    this way (duplicate metric, an arg nobody gave, a missing nested template) is returned in
    phase Error with the reason, as the controller creates it, so it is reported like any run."""
    ordered: list[Template] = [
        t for t in templates if not isinstance(t, api.ClusterAnalysisTemplate)
    ]
    ordered += [t for t in templates if isinstance(t, api.ClusterAnalysisTemplate)]
    refs = [
        api.AnalysisTemplateRef(
            template_name=template.name,
            cluster_scope=True if isinstance(template, api.ClusterAnalysisTemplate) else None,
        )
        for template in ordered
    ]
    raw: RawObject = {
        "apiVersion": api.API_VERSION,
        "kind": "AnalysisRun",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": format_time(now)},
        "spec": {"metrics": []},
    }
    given = {(isinstance(t, api.ClusterAnalysisTemplate), t.name): t for t in templates}

    def find(ref: api.AnalysisTemplateRef) -> Template | None:
        found = given.get((bool(ref.cluster_scope), ref.template_name))
        return found if found is not None else lookup(ref)

    try:
        expanded = expand_templates(refs, find)
        declared = {a.name for t in expanded for a in t.spec.args or ()}
        merged = merge_templates(expanded, args=args)
    except UserError as error:
        message = f"Unable to create the AnalysisRun: {error}"
        missing = re.fullmatch(r"args\.(.+) was not resolved", str(error))
        if missing:
            message += f" (give it with -a {missing.group(1)}=VALUE)"
        return PreparedRun(_error_run(raw, message, now))
    raw["spec"] = {"metrics": [metric.to_raw() for metric in merged.metrics]}
    if merged.args:
        raw["spec"]["args"] = [argument.to_raw() for argument in merged.args]
    if merged.dry_run:
        raw["spec"]["dryRun"] = [rule.to_raw() for rule in merged.dry_run]
    if merged.measurement_retention:
        raw["spec"]["measurementRetention"] = [r.to_raw() for r in merged.measurement_retention]
    if merged.annotations:
        raw["metadata"]["annotations"] = dict(merged.annotations)
    ignored = tuple(a.name for a in args if a.name not in declared)
    return PreparedRun(AnalysisRun.model_validate(raw), ignored)


def run_from_run(
    run: AnalysisRun, *, args: Sequence[Argument], name: str, namespace: str, now: datetime
) -> PreparedRun:
    """An AnalysisRun from a file, to measure afresh: its status dropped, `args` replacing the
    values of the args it declares (the others are reported as ignored)."""
    spec = run.spec.model_copy(deep=True)
    declared = {argument.name: index for index, argument in enumerate(spec.args or ())}
    ignored = []
    for argument in args:
        index = declared.get(argument.name)
        if index is None or spec.args is None:
            ignored.append(argument.name)
            continue
        spec.args[index] = Argument(name=argument.name, value=argument.value)
    metadata = run.metadata.model_copy(deep=True)
    metadata.name = name
    metadata.namespace = namespace
    metadata.creation_timestamp = format_time(now)
    fresh = AnalysisRun(metadata=metadata, spec=spec)
    # Round trip: the copy's fields count as set, so `to_raw()` shows all of them.
    return PreparedRun(AnalysisRun.model_validate(fresh.to_raw()), tuple(ignored))


# --- what the providers may use locally -------------------------------------------------------


def traefik_metrics_source(home: Path) -> Callable[[], Awaitable[str]]:
    """Reads `/metrics` of the Traefik the local controller of `home` runs (found through
    `<home>/traefik/state.json`, checked to be that very process); when none runs, the reader
    fails with a message that says so, which the builtin provider reports as an Error."""
    from rollwise.platforms.local.traefik import TraefikState, pid_alive, process_start_time

    state: TraefikState | None = None
    try:
        state = TraefikState.from_raw(json.loads((home / "traefik" / "state.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        state = None
    running = False
    if state is not None and state.pid is not None:
        started = process_start_time(state.pid)
        running = started == state.started if started is not None else pid_alive(state.pid)

    async def read() -> str:
        if state is None or not running:
            raise TransientError(
                f"no Traefik runs for {home} (start `rollwise --home {home} controller`)"
            )
        import aiohttp

        url = f"http://127.0.0.1:{state.api_port}/metrics"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0)) as session,
            session.get(url) as response,
        ):
            response.raise_for_status()
            return await response.text()

    return read


def local_services(home: Path) -> ProviderServices:
    """What `rollwise analyze` hands the providers: the home's Traefik metrics and a local
    JobRunner (Jobs run as processes logged under `<home>/logs`)."""
    from rollwise.platforms.local.jobs import LocalJobRunner

    return ProviderServices(
        traefik_metrics=traefik_metrics_source(home), job_runner=LocalJobRunner(home)
    )


def parse_args(assignments: Sequence[str]) -> list[Argument]:
    """`-a name=value` options as caller args; UserError for one without `=`."""
    found: list[Argument] = []
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name.strip():
            raise UserError(f"-a expects NAME=VALUE, got '{assignment}'")
        found.append(Argument(name=name.strip(), value=value))
    return found
