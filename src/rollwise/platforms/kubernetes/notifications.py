"""Notifications in Kubernetes mode: Argo's ConfigMap and Secret, the events this controller
records, and the same `Notifier` as local mode.

Where it sits: `rollwise.platforms.kubernetes`; the Kubernetes controller
(`rollwise.controller.kubernetes`) builds one `KubeNotifications` next to its store and runs it
as a task beside the reconcile loop, so a slow or dead service never holds a rollout.

Theory of operation:
- configuration: `argo-rollouts-notification-configmap` in the controller's namespace (Argo's
  keys, the same as local mode's `notifications.yaml`), followed by an informer of that
  namespace's ConfigMaps (what Argo's notification controller watches), parsed again whenever
  its resourceVersion changes; no ConfigMap, no notifications;
- secrets: `argo-rollouts-notification-secret` in that namespace, read from the store's Secret
  cache at send time, so a changed token is used by the next attempt;
- feed: the events this controller records (`KubeStore.events_since`), each rendered with the
  Rollout as the status write after it left it (`KubeStore.rollout_as_written`: the status of
  the reconcile that recorded it, even when the next steps followed within milliseconds); an
  event whose reconcile wrote no status waits until that reconcile ends and renders with the
  cached Rollout;
- delivery: `rollwise.notify.service.Notifier` - one task per attempt, back-off on failures,
  Argo's `notification_send_*` series in the controller's `/metrics`.

The cursor and the pending deliveries live in memory (`MemoryState`), which is Argo's
behaviour: its notifications are sent from the in-process event recorder, so a crash or a
change of leader loses what was not sent yet, and a new leader never repeats what the old one
sent. Saving the cursor (in a ConfigMap, say) would promise more than it keeps: the events it
counts are this process's, and a new process starts counting again. Only the leader records
events, so only the leader sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from rollwise.core.timestamps import Clock
from rollwise.notify.config import (
    CONFIG_MAP_NAME,
    NotificationConfig,
    parse_config,
)
from rollwise.notify.delivery import NetworkTransport, Transport
from rollwise.notify.service import Notifier, SendMetrics
from rollwise.notify.state import MemoryState
from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.platforms.kubernetes.informer import Informer
from rollwise.platforms.kubernetes.store import KubeStore

RawObject = dict[str, Any]
log = logging.getLogger("rollwise.notify")

CONFIG_SYNC_SECONDS = 10.0
"""How long the notifier waits for the ConfigMap's first list before it reads events anyway."""


class ConfigMapConfig:
    """The notification configuration of a ConfigMap in an informer's cache, parsed again
    when the ConfigMap changes (its resourceVersion), None while there is none."""

    def __init__(self, informer: Informer, *, name: str = CONFIG_MAP_NAME) -> None:
        self.informer = informer
        self.name = name
        self._seen: str | None = None
        self._config: NotificationConfig | None = None

    def current(self) -> NotificationConfig | None:
        config_map = self.informer.get(self.name, self.informer.namespace)
        version = None if config_map is None else _resource_version(config_map)
        if version != self._seen:
            self._seen = version
            self._config = None if config_map is None else self._parse(config_map)
        return self._config

    def _parse(self, config_map: RawObject) -> NotificationConfig:
        where = f"ConfigMap {self.informer.namespace}/{self.name}"
        data = config_map.get("data") or {}
        config = parse_config({str(key): value for key, value in data.items()})
        for problem in config.problems:
            log.error("notification configuration in %s: %s", where, problem)
        log.info("notification configuration read from %s", where)
        return config


class KubeNotifications:
    """The notifier of a Kubernetes controller and the informer its configuration comes from."""

    def __init__(self, notifier: Notifier, config_maps: Informer) -> None:
        self.notifier = notifier
        self.config_maps = config_maps

    async def run(self, *, poll_interval: float = 0.1) -> None:
        """Follow the ConfigMap and send notifications until cancelled."""
        # The cursor is taken now, so events recorded while the ConfigMap is being listed
        # are sent once it is.
        self.notifier.start()
        informer = asyncio.create_task(self.config_maps.run(), name="notification-configmap")
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CONFIG_SYNC_SECONDS):
                    await self.config_maps.synced.wait()
            await self.notifier.run(poll_interval=poll_interval)
        finally:
            informer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await informer


def kube_notifications(
    store: KubeStore,
    client: KubeClient,
    *,
    namespace: str,
    clock: Clock,
    metrics: SendMetrics | None = None,
    busy: Callable[[str, str], bool] | None = None,
    transport: Transport | None = None,
) -> KubeNotifications:
    """The notifications of a Kubernetes controller: Argo's ConfigMap and Secret in
    `namespace` (the controller's), the events `store` keeps, the real network.
    `busy(namespace, name)` says whether a Rollout's reconcile is running."""

    def waiting(rollout_namespace: str, name: str) -> bool:
        if busy is not None and busy(rollout_namespace, name):
            return True
        return store.status_pending("Rollout", rollout_namespace, name)

    # Only Argo's ConfigMap, not every ConfigMap of the namespace.
    config_maps = Informer(
        client, "v1", "ConfigMap", namespace, field_selector=f"metadata.name={CONFIG_MAP_NAME}"
    )
    notifier = Notifier(
        feed=store,
        objects=store,
        config=ConfigMapConfig(config_maps),
        state=MemoryState(),
        transport=transport or NetworkTransport(),
        clock=clock,
        metrics=metrics,
        secret_namespace=namespace,
        busy=waiting,
        as_written=store.rollout_as_written,
    )
    return KubeNotifications(notifier, config_maps)


def _resource_version(obj: RawObject) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
