"""The notifier: reads the events the controller records and tells the subscribers, on its own.

Where it sits: the top of `rollwise.notify`. The local controller starts `Notifier.run()` as a
task of its loop (`rollwise.controller.local`); `rollwise notifications test` uses `prepare` and
`attempt` to send one notification at once.

Theory of operation. The controller records events in its store (Argo's reasons); it never
waits for a notification. The notifier follows them by the store's event counter:

    collect   events after the cursor -> trigger `on-<reason>` -> destinations (subscriptions)
              -> templates (the trigger's) rendered for each destination -> pending deliveries;
              the cursor and the new deliveries are saved together. An event about a Rollout
              whose reconcile is still running (`busy`) waits: the reconcile records events
              before it writes the status, and the templates should see that status. Where the
              feed keeps the Rollout as that reconcile wrote it (`as_written`, Kubernetes mode),
              the event is rendered with it as soon as it is written, even when later
              reconciles have moved the Rollout on (steps that follow each other quickly).
    attempt   one pending delivery -> the service's message -> the transport -> an outcome;
              sent: forgotten; failed: tried again after a back-off (1 s doubling, capped at
              60 s), given up after 6 attempts or at once when it cannot succeed (4xx, bad URL,
              unknown service)

Each attempt runs in its own task, at most `concurrency` at a time, so a slow or dead service
delays only its own messages. Because the cursor and the pending deliveries are saved before
anything is sent, a restart loses nothing, and sends again only what was being sent when the
process died (an attempt cut off before it could be recorded: at least once, as no sender can
do better over HTTP). Every HTTP delivery (webhook, Slack) carries the same `Idempotency-Key`
header in each of its attempts, so a receiver can drop such a repeat.

Sends are counted through `SendMetrics` (Argo's `notification_send_success`,
`notification_send_error`, and the `notification_send` duration), labelled by the Rollout and
the event's type and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from rollwise.api.errors import ManifestError, TransientError
from rollwise.core.analysis.args import mask
from rollwise.core.timestamps import Clock
from rollwise.notify.config import (
    CONFIG_FILE,
    SECRET_NAME,
    NotificationConfig,
    load_config_file,
    referenced_secrets,
    secret_values,
)
from rollwise.notify.delivery import (
    HttpRequest,
    NetworkTransport,
    RetryPolicy,
    SendOutcome,
    Transport,
    close_transport,
)
from rollwise.notify.services import build_message
from rollwise.notify.state import (
    STATE_FILE,
    JsonStateFile,
    NotifierSnapshot,
    NotifierState,
    PendingDelivery,
)
from rollwise.notify.subscriptions import Destination
from rollwise.notify.templates import render_notification
from rollwise.notify.triggers import templates_to_send, trigger_for_reason
from rollwise.notify.variables import notification_variables

RawObject = dict[str, Any]
log = logging.getLogger("rollwise.notify")
DELIVERY_KEY_HEADER = "Idempotency-Key"

COLLECT_BACKOFF_CAP_SECONDS = 10.0


class EventFeed(Protocol):
    """Where events come from (the local store): a counter and the events after a value."""

    def event_counter(self) -> int: ...
    def events_since(self, counter: int, *, limit: int = ...) -> list[tuple[int, RawObject]]: ...


class Objects(Protocol):
    """Read access to the Rollouts, their AnalysisRuns and the notification Secret."""

    def get(self, kind: str, name: str, namespace: str = ...) -> RawObject | None: ...


class OwnedObjects(Objects, Protocol):
    def list(
        self, kind: str, namespace: str | None = ..., *, owner: str | None = ...
    ) -> list[RawObject]: ...


class ConfigSource(Protocol):
    def current(self) -> NotificationConfig | None: ...


class SendMetrics(Protocol):
    """Where attempts are counted: the controller's metrics (`ControllerMetrics` has this
    method) or `SendCounts`. One call per attempt."""

    def observe_notification(
        self,
        namespace: str,
        name: str,
        *,
        event_type: str,
        reason: str,
        seconds: float,
        succeeded: bool,
        kind: str = "Rollout",
    ) -> None: ...


@dataclass
class SendCounts:
    """`SendMetrics` in memory: attempts by (namespace, name, type, reason) and outcome."""

    success: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    error: dict[tuple[str, str, str, str], int] = field(default_factory=dict)

    def observe_notification(
        self,
        namespace: str,
        name: str,
        *,
        event_type: str,
        reason: str,
        seconds: float,
        succeeded: bool,
        kind: str = "Rollout",
    ) -> None:
        counts = self.success if succeeded else self.error
        key = (namespace, name, event_type, reason)
        counts[key] = counts.get(key, 0) + 1


@dataclass(frozen=True)
class StaticConfig:
    """A configuration read once (tests, `rollwise notifications test`)."""

    config: NotificationConfig | None

    def current(self) -> NotificationConfig | None:
        return self.config


class FileConfig:
    """The configuration file of a home, read again whenever it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._seen: tuple[float, int] | None = None
        self._config: NotificationConfig | None = None

    def current(self) -> NotificationConfig | None:
        try:
            stat = self.path.stat()
            signature: tuple[float, int] | None = (stat.st_mtime, stat.st_size)
        except FileNotFoundError:
            signature = None
        if signature != self._seen:
            self._seen = signature
            self._config = self._load()
        return self._config

    def _load(self) -> NotificationConfig | None:
        try:
            config = load_config_file(self.path)
        except ManifestError as error:
            log.error("notifications are off: %s", error)
            return None
        for problem in config.problems if config else ():
            log.error("notification configuration %s: %s", self.path, problem)
        return config


@dataclass(frozen=True)
class Attempted:
    delivery: PendingDelivery
    outcome: SendOutcome
    gave_up: bool = False


class Notifier:
    def __init__(
        self,
        *,
        feed: EventFeed,
        objects: OwnedObjects,
        config: ConfigSource,
        state: NotifierState,
        transport: Transport,
        clock: Clock,
        metrics: SendMetrics | None = None,
        retry: RetryPolicy | None = None,
        secret_namespace: str = "default",
        batch: int = 200,
        busy: Callable[[str, str], bool] | None = None,
        as_written: Callable[[int], RawObject | None] | None = None,
    ) -> None:
        self.feed = feed
        self.objects = objects
        self.config = config
        self.state = state
        self.transport = transport
        self.clock = clock
        self.metrics = metrics
        self.retry = retry or RetryPolicy()
        self.secret_namespace = secret_namespace
        self.batch = batch
        self.busy = busy
        self.as_written = as_written
        self.cursor: int | None = None
        self.pending: dict[str, PendingDelivery] = {}
        self._unconfigured: set[str] = set()

    # --- reading events --------------------------------------------------------------------

    def start(self) -> None:
        """Load the saved cursor and deliveries; the first time, start after the newest event
        (what happened before the notifier ever ran is history, not news)."""
        snapshot = self.state.load()
        if snapshot is None:
            snapshot = NotifierSnapshot(cursor=self.feed.event_counter())
            self.state.save(snapshot)
        self.cursor = snapshot.cursor
        self.pending = {item.id: item for item in snapshot.pending}

    def collect(self) -> list[PendingDelivery]:
        """Read the events after the cursor; queue (and save) their deliveries."""
        if self.cursor is None:
            self.start()
        assert self.cursor is not None
        events = self.feed.events_since(self.cursor, limit=self.batch)
        if not events:
            return []
        config = self.config.current()
        queued: list[PendingDelivery] = []
        for counter, event in events:
            if self._rollout_as_written(counter) is None and self._in_reconcile(event):
                break  # read again next time, in order, once its status is written
            self.cursor = counter
            if config is not None:
                queued.extend(self.prepare(config, event, counter=counter))
        for delivery in queued:
            self.pending[delivery.id] = delivery
        self._save()
        return queued

    def _rollout_as_written(self, counter: int) -> RawObject | None:
        return None if self.as_written is None else self.as_written(counter)

    def _in_reconcile(self, event: RawObject) -> bool:
        if self.busy is None:
            return False
        involved = event.get("involvedObject") or {}
        return self.busy(str(involved.get("namespace") or "default"), str(involved.get("name")))

    def prepare(
        self,
        config: NotificationConfig,
        event: RawObject,
        *,
        counter: int,
        only: Destination | None = None,
    ) -> list[PendingDelivery]:
        """The rendered deliveries one event makes (all its subscribers, or `only` one)."""
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != "Rollout":
            return []
        namespace = involved.get("namespace") or "default"
        name = str(involved.get("name"))
        reason = str(event.get("reason") or "")
        trigger = trigger_for_reason(reason)
        rollout = (
            self._rollout_as_written(counter)
            or self.objects.get("Rollout", name, namespace)
            or {"metadata": {"name": name, "namespace": namespace}}
        )
        destinations = [only] if only else config.destinations(rollout).get(trigger, [])
        if not destinations:
            return []
        conditions = config.triggers.get(trigger)
        if conditions is None:
            if trigger not in self._unconfigured:
                self._unconfigured.add(trigger)
                log.warning(
                    "%s/%s subscribes to %s, which no trigger.%s defines; nothing is sent",
                    namespace,
                    name,
                    trigger,
                    trigger,
                )
            return []
        runs = self.objects.list("AnalysisRun", namespace, owner=name)
        secrets = self._secrets()
        deliveries: list[PendingDelivery] = []
        for destination in destinations:
            variables = notification_variables(
                rollout=rollout,
                analysis_runs=runs,
                event=event,
                trigger=trigger,
                recipient=destination.recipient,
                secrets=secrets,
                now=self.clock.now(),
            )
            names = templates_to_send(conditions, variables, evaluate=config.evaluate_conditions)
            if not names:
                continue
            try:
                notification = render_notification(
                    [self._template(config, template) for template in names], variables
                )
            except ManifestError as error:
                log.error("%s for %s/%s to %s: %s", trigger, namespace, name, destination, error)
                self._count(False, namespace, name, event, 0.0)
                continue
            deliveries.append(
                PendingDelivery(
                    id=f"{counter}/{trigger}/{destination.service}/{destination.recipient}",
                    namespace=namespace,
                    name=name,
                    event_type=str(event.get("type") or "Normal"),
                    reason=reason,
                    trigger=trigger,
                    service=destination.service,
                    recipient=destination.recipient,
                    notification=notification,
                )
            )
        return deliveries

    @staticmethod
    def _template(config: NotificationConfig, name: str) -> Any:
        template = config.templates.get(name)
        if template is None:
            raise ManifestError(f"template.{name} is not defined")
        return template

    def _secrets(self) -> dict[str, str]:
        secret = self.objects.get("Secret", SECRET_NAME, self.secret_namespace)
        return secret_values(secret) if secret else {}

    # --- sending -----------------------------------------------------------------------------

    def due(self, now: datetime) -> list[PendingDelivery]:
        """Pending deliveries whose attempt is due, oldest first."""
        return [
            item
            for item in self.pending.values()
            if not item.next_at or datetime.fromisoformat(item.next_at) <= now
        ]

    async def attempt(self, delivery: PendingDelivery) -> Attempted:
        """One attempt at one delivery; the outcome is recorded and saved."""
        started = time.perf_counter()
        outcome = await self._send(delivery)
        seconds = time.perf_counter() - started
        self._count(outcome.ok, delivery.namespace, delivery.name, delivery, seconds)
        where = f"{delivery.trigger} of {delivery.namespace}/{delivery.name} to {delivery.service}"
        if delivery.recipient:
            where += f":{delivery.recipient}"
        if outcome.ok:
            log.info("sent %s", where)
            self.pending.pop(delivery.id, None)
            self._save()
            return Attempted(delivery, outcome)
        delivery.attempts += 1
        delivery.last_error = outcome.detail
        delay = self.retry.delay_after(delivery.attempts) if outcome.retryable else None
        if delay is None:
            log.error(
                "gave up %s after %d attempt(s): %s", where, delivery.attempts, outcome.detail
            )
            self.pending.pop(delivery.id, None)
            self._save()
            return Attempted(delivery, outcome, gave_up=True)
        delivery.next_at = (self.clock.now() + timedelta(seconds=delay)).isoformat()
        log.warning("could not send %s (%s); retrying in %.0fs", where, outcome.detail, delay)
        if delivery.id in self.pending:
            self._save()
        return Attempted(delivery, outcome)

    async def send_now(self, delivery: PendingDelivery) -> SendOutcome:
        """One attempt, nothing recorded (`rollwise notifications test`)."""
        return await self._send(delivery)

    async def _send(self, delivery: PendingDelivery) -> SendOutcome:
        config = self.config.current()
        service = None if config is None else config.services.get(delivery.service)
        if service is None:
            return SendOutcome(
                False, f"no service '{delivery.service}' is configured", retryable=False
            )
        secrets = self._secrets()
        # A failed send quotes the URL and the server's answer, either of which may hold a value
        # a `$key` took from the Secret; the outcome is logged and saved, so it is masked.
        sensitive = referenced_secrets(service.options, secrets)
        try:
            message = build_message(
                service.type,
                service.name,
                options=service.resolved(secrets),
                destination=Destination(delivery.service, delivery.recipient),
                notification=delivery.notification,
                notify_type="warning" if delivery.event_type == "Warning" else "info",
            )
        except ManifestError as error:
            return SendOutcome(False, mask(str(error), sensitive), retryable=False)
        if isinstance(message, HttpRequest) and not any(
            name.lower() == DELIVERY_KEY_HEADER.lower() for name, _ in message.headers
        ):
            key = (DELIVERY_KEY_HEADER, delivery_key(delivery))
            message = dataclasses.replace(message, headers=(*message.headers, key))
        outcome = await self.transport.send(message)
        return dataclasses.replace(outcome, detail=mask(outcome.detail, sensitive))

    async def run(self, *, poll_interval: float = 0.1, concurrency: int = 4) -> None:
        """Collect and send until cancelled, then close the transport. Nothing here raises: a
        store that is busy or a bug in one delivery is logged, and the loop goes on."""
        in_flight: dict[str, asyncio.Task[Attempted]] = {}
        failures = 0
        try:
            while True:
                wait = poll_interval
                try:
                    self.collect()
                except Exception as error:
                    # A store locked or full, a state file that cannot be written: one line,
                    # and a capped back-off rather than a traceback every poll.
                    failures += 1
                    wait = min(poll_interval * 2.0**failures, COLLECT_BACKOFF_CAP_SECONDS)
                    if isinstance(error, TransientError | OSError):
                        log.error(
                            "reading events for notifications failed; retrying in %.2fs: %s",
                            wait,
                            error,
                        )
                    else:
                        log.exception("reading events for notifications failed; retrying")
                else:
                    failures = 0
                for key in [key for key, task in in_flight.items() if task.done()]:
                    task = in_flight.pop(key)
                    if not task.cancelled() and task.exception() is not None:
                        log.error("notification %s failed: %r", key, task.exception())
                        self.pending.pop(key, None)
                for delivery in self.due(self.clock.now()):
                    if len(in_flight) >= concurrency:
                        break
                    if delivery.id not in in_flight:
                        in_flight[delivery.id] = asyncio.create_task(self.attempt(delivery))
                await asyncio.sleep(wait)
        finally:
            for task in in_flight.values():
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*in_flight.values(), return_exceptions=True)
            await close_transport(self.transport)

    # --- bookkeeping -------------------------------------------------------------------------

    def _save(self) -> None:
        assert self.cursor is not None
        self.state.save(NotifierSnapshot(cursor=self.cursor, pending=list(self.pending.values())))

    def _count(
        self,
        ok: bool,
        namespace: str,
        name: str,
        source: Mapping[str, Any] | PendingDelivery,
        seconds: float,
    ) -> None:
        if self.metrics is None:
            return
        if isinstance(source, PendingDelivery):
            event_type, reason = source.event_type, source.reason
        else:
            event_type, reason = (
                str(source.get("type") or "Normal"),
                str(source.get("reason") or ""),
            )
        try:
            self.metrics.observe_notification(
                namespace,
                name,
                event_type=event_type,
                reason=reason,
                seconds=seconds,
                succeeded=ok,
            )
        except Exception:  # metrics must never stop a notification
            log.exception("counting a notification failed")


def delivery_key(delivery: PendingDelivery) -> str:
    """The `Idempotency-Key` of a delivery: the same for every attempt, in every process."""
    return f"{delivery.namespace}/{delivery.name}/{delivery.id}"


class NotifierStore(EventFeed, OwnedObjects, Protocol):
    """A store that is both the feed and the objects (the local `SqliteStore`)."""


def local_notifier(
    home: Path,
    store: NotifierStore,
    *,
    clock: Clock,
    metrics: SendMetrics | None = None,
    busy: Callable[[str, str], bool] | None = None,
) -> Notifier:
    """The notifier of a local home: `<home>/notifications.yaml`, its state in
    `<home>/notifier-state.json`, the Secret in the `default` namespace, the real network;
    `busy(namespace, name)` says whether a Rollout's reconcile is running."""
    return Notifier(
        busy=busy,
        feed=store,
        objects=store,
        config=FileConfig(home / CONFIG_FILE),
        state=JsonStateFile(home / STATE_FILE),
        transport=NetworkTransport(),
        clock=clock,
        metrics=metrics,
    )
