"""What the notifier must not forget across a restart: how far it has read the events, and the
deliveries it has rendered but not yet sent.

Where it sits: `rollwise.notify`; the notifier saves a `NotifierSnapshot` after every change and
loads it when it starts. In local mode it lives in `<home>/notifier-state.json` (`JsonStateFile`,
replaced atomically by a rename, so a kill -9 leaves the old or the new file, never half of
one). A delivery is saved rendered, so a retry after a restart sends what the event said, not
what the Rollout says by then. Secrets are never saved: a delivery names its service, whose
options and secrets are read again when it is sent.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

STATE_FILE = "notifier-state.json"
_VERSION = 1

log = logging.getLogger("rollwise.notify")


@dataclass
class PendingDelivery:
    """One notification for one destination, rendered, waiting to be sent (again)."""

    id: str
    namespace: str
    name: str
    event_type: str
    reason: str
    trigger: str
    service: str
    recipient: str
    notification: dict[str, Any]
    attempts: int = 0
    next_at: str = ""
    """When the next attempt is due (ISO 8601); empty: now."""
    last_error: str = ""

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> PendingDelivery:
        known = {key: raw[key] for key in cls.__dataclass_fields__ if key in raw}
        return cls(**known)


@dataclass
class NotifierSnapshot:
    cursor: int
    """The event counter of the last event read."""
    pending: list[PendingDelivery] = field(default_factory=list)


class NotifierState(Protocol):
    def load(self) -> NotifierSnapshot | None: ...
    def save(self, snapshot: NotifierSnapshot) -> None: ...


class JsonStateFile:
    """The snapshot as a JSON file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> NotifierSnapshot | None:
        try:
            raw = json.loads(self.path.read_text())
            return NotifierSnapshot(
                cursor=int(raw["cursor"]),
                pending=[PendingDelivery.from_raw(item) for item in raw.get("pending") or []],
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            # Starting over from the newest event loses what was pending, but a notifier that
            # cannot start loses everything after it too.
            log.error(
                "cannot read %s (%s); notifications start from the next event", self.path, error
            )
            return None

    def save(self, snapshot: NotifierSnapshot) -> None:
        data = {
            "version": _VERSION,
            "cursor": snapshot.cursor,
            "pending": [asdict(item) for item in snapshot.pending],
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(data, indent=1))
        os.replace(temporary, self.path)


@dataclass
class MemoryState:
    """The snapshot in memory (tests, `rollwise notifications test`); keeps a copy on save."""

    snapshot: NotifierSnapshot | None = None
    saves: int = 0

    def load(self) -> NotifierSnapshot | None:
        if self.snapshot is None:
            return None
        return _copy(self.snapshot)

    def save(self, snapshot: NotifierSnapshot) -> None:
        self.snapshot = _copy(snapshot)
        self.saves += 1


def _copy(snapshot: NotifierSnapshot) -> NotifierSnapshot:
    return NotifierSnapshot(
        cursor=snapshot.cursor,
        pending=[
            PendingDelivery.from_raw(json.loads(json.dumps(asdict(p)))) for p in snapshot.pending
        ],
    )
