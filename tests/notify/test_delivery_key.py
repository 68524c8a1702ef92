"""Every attempt of an HTTP delivery carries the same `Idempotency-Key`, also when a restarted
notifier sends again what a killed one had sent without recording it (at least once: found by
the kill -9 reliability test), so a receiver can drop the repeat."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.notify.objects import ABORT_MESSAGE, rollout

from rollwise.core.timestamps import ManualClock
from rollwise.notify.config import parse_config
from rollwise.notify.delivery import HttpRequest, MemoryTransport
from rollwise.notify.service import DELIVERY_KEY_HEADER, Notifier, StaticConfig
from rollwise.notify.state import JsonStateFile
from rollwise.platforms.local.store import SqliteStore

T0 = datetime(2026, 1, 2, tzinfo=UTC)
SUBSCRIBED = {
    "notifications.argoproj.io/subscribe.on-rollout-aborted.hook": "",
    "notifications.argoproj.io/subscribe.on-rollout-step-completed.hook": "",
}


def notifier(store: SqliteStore, state: JsonStateFile, transport: MemoryTransport) -> Notifier:
    config = {
        "service.webhook.hook": "url: http://127.0.0.1:9/hook\nheaders:\n- {name: X-A, value: b}"
    }
    return Notifier(
        feed=store,
        objects=store,
        config=StaticConfig(parse_config(config)),
        state=state,
        transport=transport,
        clock=ManualClock(T0),
    )


def keys(transport: MemoryTransport) -> list[str]:
    found = []
    for message in transport.sent:
        assert isinstance(message, HttpRequest)
        assert ("X-A", "b") in message.headers
        found += [value for name, value in message.headers if name == DELIVERY_KEY_HEADER]
    return found


async def test_a_delivery_sent_again_after_a_restart_has_the_same_key(tmp_path: Path) -> None:
    state = JsonStateFile(tmp_path / "notifier-state.json")
    with SqliteStore(tmp_path / "state.db") as store:
        store.create(rollout(annotations=SUBSCRIBED))
        first = notifier(store, state, first_transport := MemoryTransport())
        first.start()
        for reason, message in (
            ("RolloutStepCompleted", "step 1"),
            ("RolloutAborted", ABORT_MESSAGE),
        ):
            store.record_event(
                kind="Rollout",
                name="shop",
                namespace="default",
                type="Normal",
                reason=reason,
                message=message,
                at=T0,
            )
        first.collect()
        for delivery in first.due(T0):
            # Sent, and the process dies before it can record it.
            await first.send_now(delivery)

        second = notifier(store, state, second_transport := MemoryTransport())
        second.start()
        for delivery in second.due(T0):
            assert (await second.attempt(delivery)).outcome.ok

    sent_first, sent_again = keys(first_transport), keys(second_transport)
    assert len(sent_first) == len(set(sent_first)) == 2
    assert sent_again == sent_first
    assert all(key.startswith("default/shop/") for key in sent_first)
