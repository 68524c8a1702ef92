"""The notifier against a real local store: events in, rendered deliveries out, retries with
back-off on a manual clock, counts, and restarts that neither lose nor repeat a notification."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.notify.objects import ABORT_MESSAGE, rollout, runs
from tests.notify.receiving import Receiver

from rollwise.core.timestamps import ManualClock
from rollwise.notify.config import SECRET_NAME, parse_config
from rollwise.notify.delivery import (
    HttpRequest,
    MemoryTransport,
    NetworkTransport,
    RetryPolicy,
    SendOutcome,
    Transport,
)
from rollwise.notify.service import FileConfig, Notifier, SendCounts, StaticConfig
from rollwise.notify.state import JsonStateFile, MemoryState, NotifierState
from rollwise.platforms.local.store import SqliteStore

T0 = datetime(2026, 1, 2, tzinfo=UTC)
SUBSCRIBED = {
    "notifications.argoproj.io/subscribe.on-rollout-aborted.hook": "",
    "notifications.argoproj.io/subscribe.on-rollout-step-completed.hook": "",
    "notifications.argoproj.io/subscribe.on-rollout-resumed.hook": "",
}
CONFIG = {"service.webhook.hook": "url: http://127.0.0.1:9/hook"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "state.db", clock=clock) as opened:
        raw = opened.create({**rollout(annotations=SUBSCRIBED), "status": None})
        # Half-way: the first step completed, the analysis of the second one running.
        opened.update_status({**raw, "status": rollout(aborted=False)["status"]})
        for run in runs():
            opened.create(run)
        yield opened


def record(store: SqliteStore, reason: str, message: str = "", *, kind: str = "Rollout") -> None:
    store.record_event(
        kind=kind,
        name="shop",
        namespace="default",
        type="Warning" if reason == "RolloutAborted" else "Normal",
        reason=reason,
        message=message or reason,
        at=T0,
    )


def notifier(
    store: SqliteStore,
    clock: ManualClock,
    *,
    transport: Transport,
    state: NotifierState | None = None,
    metrics: SendCounts | None = None,
    config: dict[str, Any] | None = None,
) -> Notifier:
    return Notifier(
        feed=store,
        objects=store,
        config=StaticConfig(parse_config(CONFIG if config is None else config)),
        state=state or MemoryState(),
        transport=transport,
        clock=clock,
        metrics=metrics,
        retry=RetryPolicy(attempts=3, first=1.0, cap=60.0),
    )


def bodies(transport: MemoryTransport) -> list[str]:
    return [m.body for m in transport.sent if isinstance(m, HttpRequest)]


def test_the_store_feeds_every_recording_once_by_its_counter(store: SqliteStore) -> None:
    start = store.event_counter()
    record(store, "RolloutPaused")
    record(store, "RolloutResumed")
    record(store, "RolloutPaused")  # a repeat moves the event forward
    feed = store.events_since(start)
    assert [(event["reason"], event["count"]) for _, event in feed] == [
        ("RolloutResumed", 1),
        ("RolloutPaused", 2),
    ]
    counters = [counter for counter, _ in feed]
    assert counters == sorted(counters)
    assert counters[-1] == store.event_counter()
    assert store.events_since(counters[-1]) == []


async def test_events_become_deliveries_for_each_subscribed_trigger(
    store: SqliteStore, clock: ManualClock
) -> None:
    transport = MemoryTransport()
    subject = notifier(store, clock, transport=transport)
    record(store, "RolloutUpdated")  # before the first start: history, never sent
    subject.start()
    record(store, "RolloutStepCompleted")
    record(store, "RolloutAborted", ABORT_MESSAGE)
    record(store, "RolloutResumed")  # subscribed, but no trigger.on-rollout-resumed: not sent
    record(store, "RolloutPaused")  # not subscribed
    record(store, "RolloutAborted", kind="AnalysisRun")  # not about a Rollout
    queued = subject.collect()
    assert [d.trigger for d in queued] == ["on-rollout-step-completed", "on-rollout-aborted"]
    for delivery in subject.due(clock.now()):
        assert (await subject.attempt(delivery)).outcome.ok
    assert bodies(transport) == [
        "Rollout shop step number 1/3 has been completed.",
        "Rollout shop has been aborted.",
    ]
    assert subject.pending == {}
    assert subject.collect() == []


def test_events_wait_while_their_rollouts_reconcile_runs(
    store: SqliteStore, clock: ManualClock
) -> None:
    reconciling = {("default", "shop")}
    subject = notifier(store, clock, transport=MemoryTransport())
    subject.busy = lambda namespace, name: (namespace, name) in reconciling
    subject.start()
    record(store, "RolloutStepCompleted")
    record(store, "RolloutAborted")
    assert subject.collect() == [], "the status those events lead to is not written yet"
    reconciling.clear()
    assert [d.trigger for d in subject.collect()] == [
        "on-rollout-step-completed",
        "on-rollout-aborted",
    ]


async def test_a_failed_delivery_is_retried_with_back_off_and_counted(
    store: SqliteStore, clock: ManualClock
) -> None:
    transport = MemoryTransport()
    transport.fail_next([SendOutcome(False, "503"), SendOutcome(False, "timeout")])
    counts = SendCounts()
    subject = notifier(store, clock, transport=transport, metrics=counts)
    subject.start()
    record(store, "RolloutAborted", ABORT_MESSAGE)
    subject.collect()
    (delivery,) = subject.due(clock.now())
    assert not (await subject.attempt(delivery)).outcome.ok
    assert subject.due(clock.now()) == [], "not again before the back-off"
    clock.advance(0.9)
    assert subject.due(clock.now()) == []
    clock.advance(0.1)
    (again,) = subject.due(clock.now())
    assert not (await subject.attempt(again)).outcome.ok
    clock.advance(1.9)
    assert subject.due(clock.now()) == [], "the second wait is twice the first"
    clock.advance(0.1)
    (last,) = subject.due(clock.now())
    assert (await subject.attempt(last)).outcome.ok
    assert subject.pending == {}
    assert len(transport.sent) == 3
    key = ("default", "shop", "Warning", "RolloutAborted")
    assert (counts.error, counts.success) == ({key: 2}, {key: 1})


async def test_a_delivery_is_given_up_when_it_cannot_succeed_or_after_its_attempts(
    store: SqliteStore, clock: ManualClock
) -> None:
    transport = MemoryTransport()
    transport.fail_next([SendOutcome(False, "404", retryable=False)])
    transport.fail_next([SendOutcome(False, "500")] * 3)
    subject = notifier(store, clock, transport=transport)
    subject.start()
    record(store, "RolloutStepCompleted")
    subject.collect()
    (delivery,) = subject.due(clock.now())
    assert (await subject.attempt(delivery)).gave_up
    record(store, "RolloutAborted")
    subject.collect()
    results = []
    for _ in range(3):
        (delivery,) = subject.due(clock.now())
        results.append(await subject.attempt(delivery))
        clock.advance(60)
    assert [r.gave_up for r in results] == [False, False, True]
    assert subject.pending == {}


async def test_an_unknown_service_is_given_up_at_once(
    store: SqliteStore, clock: ManualClock
) -> None:
    subject = notifier(store, clock, transport=MemoryTransport(), config={})
    subject.start()
    record(store, "RolloutAborted")
    (delivery,) = subject.collect()
    attempted = await subject.attempt(delivery)
    assert attempted.gave_up
    assert "no service 'hook' is configured" in attempted.outcome.detail


async def test_a_restart_neither_loses_nor_repeats_a_notification(
    store: SqliteStore, clock: ManualClock, tmp_path: Path
) -> None:
    state = JsonStateFile(tmp_path / "notifier-state.json")
    first_transport = MemoryTransport()
    first = notifier(store, clock, transport=first_transport, state=state)
    first.start()
    record(store, "RolloutStepCompleted", "step 1")
    record(store, "RolloutAborted", ABORT_MESSAGE)
    first.collect()
    step, abort = first.due(clock.now())
    assert (await first.attempt(step)).outcome.ok
    first_transport.fail_next([SendOutcome(False, "503")])
    assert not (await first.attempt(abort)).outcome.ok
    # The process dies here. Meanwhile the controller records more.
    record(store, "RolloutStepCompleted", "step 2")

    second_transport = MemoryTransport()
    second = notifier(store, clock, transport=second_transport, state=state)
    second.start()
    assert [d.trigger for d in second.pending.values()] == ["on-rollout-aborted"]
    second.collect()
    clock.advance(1)
    for delivery in second.due(clock.now()):
        assert (await second.attempt(delivery)).outcome.ok
    assert bodies(second_transport) == [
        "Rollout shop has been aborted.",
        "Rollout shop step number 1/3 has been completed.",
    ]
    assert bodies(first_transport) == [
        "Rollout shop step number 1/3 has been completed.",
        "Rollout shop has been aborted.",
    ]
    saved = json.loads((tmp_path / "notifier-state.json").read_text())
    assert saved["cursor"] == store.event_counter()
    assert saved["pending"] == []

    third_transport = MemoryTransport()
    third = notifier(store, clock, transport=third_transport, state=state)
    third.start()
    assert third.collect() == []
    assert third.due(clock.now()) == []


async def test_the_configuration_file_is_read_again_when_it_changes(
    store: SqliteStore, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "notifications.yaml"
    source = FileConfig(path)
    assert source.current() is None
    path.write_text("service.webhook.hook: 'url: http://127.0.0.1:9/a'\n")
    first = source.current()
    assert first is not None
    assert first.services["hook"].options["url"].endswith("/a")
    path.write_text("service.webhook.hook: 'url: http://127.0.0.1:9/bb'\n")
    second = source.current()
    assert second is not None
    assert second.services["hook"].options["url"].endswith("/bb")
    assert source.current() is second, "unchanged: not read again"


async def test_the_slack_message_of_an_abort_reaches_slacks_api_with_the_secret_token(
    store: SqliteStore, clock: ManualClock, receiver: Receiver
) -> None:
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": "default"},
            "stringData": {"slack-token": "xoxb-secret"},
        }
    )
    raw = store.require("Rollout", "shop")
    raw = store.update(
        {
            **raw,
            "metadata": {
                **raw["metadata"],
                "annotations": {
                    "notifications.argoproj.io/subscribe.on-rollout-aborted.slack": "#deploys"
                },
            },
        }
    )
    store.update_status({**raw, "status": rollout()["status"]})  # aborted by the analysis
    config = {
        "service.slack": f"token: $slack-token\napiURL: {receiver.url}/api/\nusername: rollwise"
    }
    transport = NetworkTransport()
    subject = notifier(store, clock, transport=transport, config=config)
    subject.start()
    record(store, "RolloutAborted", ABORT_MESSAGE)
    try:
        (delivery,) = subject.collect()
        attempted = await subject.attempt(delivery)
    finally:
        await transport.close()
    assert attempted.outcome.ok, attempted.outcome.detail
    (got,) = receiver.requests
    assert got.path == "/api/chat.postMessage"
    assert got.headers["Authorization"] == "Bearer xoxb-secret"
    body = got.json()
    assert (body["channel"], body["text"], body["username"]) == (
        "#deploys",
        "Rollout shop has been aborted.",
        "rollwise",
    )
    fields = {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}
    assert fields["Step"] == "2/3 (analysis)"
    assert fields["Weights"] == "canary 0%, stable 100%"
    assert fields["Failed metric: success-rate"] == "Failed, value 0.5"
    saved = json.dumps([p.notification for p in subject.pending.values()])
    assert "xoxb-secret" not in saved


async def test_run_sends_on_its_own_until_cancelled(store: SqliteStore, receiver: Receiver) -> None:
    from rollwise.core.timestamps import SystemClock

    transport = NetworkTransport()
    subject = Notifier(
        feed=store,
        objects=store,
        config=StaticConfig(parse_config({"service.webhook.hook": f"url: {receiver.url}/hook"})),
        state=MemoryState(),
        transport=transport,
        clock=SystemClock(),
    )
    subject.start()
    task = asyncio.create_task(subject.run(poll_interval=0.01))
    try:
        record(store, "RolloutAborted", ABORT_MESSAGE)
        await asyncio.to_thread(receiver.wait_for, 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await transport.close()
    assert [r.body for r in receiver.requests] == ["Rollout shop has been aborted."]
