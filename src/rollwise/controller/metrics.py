"""The controller's Prometheus metrics: Argo Rollouts' series with Argo's names and labels, and
the few Argo users ask for and Argo lacks.

Who calls it: the controller loop (`observe_reconcile` after every reconcile), the notification
sender (`observe_notification` after every delivery attempt), and the controller's HTTP server
(`render` on `GET /metrics`, see `rollwise.controller.http`).

Theory of operation:
- Object series (`rollout_info`, `rollout_info_replicas_*`, `analysis_run_*`, `experiment_info`,
  the canary weight...) are computed from the objects in the store at every scrape, as Argo's
  collectors read its informers' listers: there is nothing to keep in sync, and a value is
  never older than the scrape.
- Process series (`rollout_reconcile`, `*_reconcile_error`, `notification_send*`) live in
  memory, as in Argo: a restarted controller starts them from zero, which Prometheus' `rate()`
  reads as a counter reset.
- `rollout_events_total` is counted from the store's events table (every `record_event` bumps a
  row's count): it starts from the counts already recorded, so a restart does not reset it,
  and it also counts events recorded by another process sharing the store. Rows the store trims
  (it keeps the last 5,000 events) never make it go down.
- A deleted object keeps every series it had (its last values) for `deleted_grace_seconds`
  (65 s, Argo's metric cleanup delay) after the first scrape that misses it, so the final state
  is scraped at least once; then all of them are dropped.
- Argo's counters have no `_total` suffix (`rollout_reconcile_error`), which prometheus_client's
  writer would add; `render` writes the text format itself so the names stay exactly Argo's.
"""

from __future__ import annotations

import builtins
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from rollwise import __version__
from rollwise.controller.metric_series import (
    FAMILIES,
    NS_NAME,
    Family,
    ObjectKey,
    RawObject,
    Sample,
    analysis_run_samples,
    analysis_template_samples,
    experiment_samples,
    object_key,
    rollout_samples,
)

DELETED_GRACE_SECONDS = 65.0
RECONCILE_BUCKETS = (0.01, 0.15, 0.25, 0.5, 1.0)
"""Argo's buckets for `rollout_reconcile`, `analysis_run_reconcile`, `experiment_reconcile` and
`notification_send` (seconds)."""

RECONCILE_FAMILIES = {
    "Rollout": ("rollout_reconcile", "rollout_reconcile_error"),
    "AnalysisRun": ("analysis_run_reconcile", "analysis_run_reconcile_error"),
    "Experiment": ("experiment_reconcile", "experiment_reconcile_error"),
}

_PROCESS_FAMILIES = (
    Family("rollout_reconcile", "histogram", "Rollout reconciliation performance."),
    Family("rollout_reconcile_error", "counter", "Error occurring during the rollout"),
    Family(
        "rollout_events_total",
        "counter",
        "Count of rollout events",
        (*NS_NAME, "type", "reason"),
    ),
    Family("analysis_run_reconcile", "histogram", "Analysis Run reconciliation performance."),
    Family("analysis_run_reconcile_error", "counter", "Error occurring during the analysis run"),
    Family("experiment_reconcile", "histogram", "Experiments reconciliation performance."),
    Family("experiment_reconcile_error", "counter", "Error occurring during the experiment"),
    Family(
        "notification_send_success",
        "counter",
        "Notification send success.",
        (*NS_NAME, "type", "reason"),
    ),
    Family(
        "notification_send_error",
        "counter",
        "Error sending the notification",
        (*NS_NAME, "type", "reason"),
    ),
    Family("notification_send", "histogram", "Notification send performance."),
)
PROCESS_FAMILIES = {family.name: family for family in _PROCESS_FAMILIES}


class MetricsStore(Protocol):
    """What the collectors read: the objects, and the events recorded about them."""

    def list(
        self, kind: str, namespace: str | None = "default", *, owner: str | None = None
    ) -> builtins.list[RawObject]: ...

    def events(
        self,
        *,
        kind: str | None = None,
        name: str | None = None,
        namespace: str | None = "default",
        limit: int = 200,
    ) -> builtins.list[RawObject]: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass
class Histogram:
    """Observations of one labelled histogram (cumulative buckets are made when rendering)."""

    buckets: tuple[float, ...] = RECONCILE_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * len(RECONCILE_BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1
                break
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0
        pairs: list[tuple[str, float]] = []
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            pairs.append((_go_float(bound), float(running)))
        pairs.append(("+Inf", float(self.count)))
        return pairs


@dataclass
class _Tracked:
    """The last series of an object, and since when it is missing from the store."""

    samples: list[Sample]
    gone_since: datetime | None = None


EventKey = tuple[str, str, str, str]
"""(namespace, name, type, reason): the labels of `rollout_events_total`."""


class ControllerMetrics:
    """Every series of `/metrics`. Thread-safe: the loop observes while a scrape renders."""

    def __init__(
        self,
        store: MetricsStore,
        *,
        clock: Clock,
        deleted_grace_seconds: float = DELETED_GRACE_SECONDS,
        mode: str = "local",
        version: str = __version__,
        process_metrics: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock
        self.deleted_grace_seconds = deleted_grace_seconds
        self.mode = mode
        self.version = version
        self._lock = threading.Lock()
        self._objects: dict[ObjectKey, _Tracked] = {}
        self._reconciles: dict[ObjectKey, Histogram] = {}
        self._reconcile_errors: dict[ObjectKey, int] = {}
        self._sends: dict[ObjectKey, Histogram] = {}
        self._send_results: dict[tuple[ObjectKey, str, str, bool], int] = {}
        self._events: dict[EventKey, float] = {}
        # The count last seen of each events-table row (its labels and message).
        self._event_rows: dict[tuple[str, str, str, str, str], int] = {}
        # Python's process and runtime series, where Argo has Go's (a registry of our own:
        # prometheus_client's global one is shared by everything in the process).
        self._runtime = CollectorRegistry()
        if process_metrics:
            ProcessCollector(registry=self._runtime)
            PlatformCollector(registry=self._runtime)
            GCCollector(registry=self._runtime)

    # --- what the loop and the notifier report ------------------------------------------------

    def observe_reconcile(
        self, kind: str, namespace: str, name: str, *, seconds: float, failed: bool
    ) -> None:
        """One reconcile of an object of `kind` took `seconds`; `failed`: it raised."""
        if kind not in RECONCILE_FAMILIES:
            return
        key = (kind, namespace, name)
        with self._lock:
            self._reconciles.setdefault(key, Histogram()).observe(seconds)
            if failed:
                self._reconcile_errors[key] = self._reconcile_errors.get(key, 0) + 1

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
        """One delivery attempt of a notification about `kind` `namespace/name`, triggered by an
        event of `event_type` (Normal/Warning) and `reason`, took `seconds`."""
        key = (kind, namespace, name)
        with self._lock:
            self._sends.setdefault(key, Histogram()).observe(seconds)
            result = (key, event_type, reason, succeeded)
            self._send_results[result] = self._send_results.get(result, 0) + 1

    # --- scraping -----------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every series."""
        return render_text(self.collect())

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's Collector protocol (so a registry can hold this object too)."""
        present = self._read_objects()
        rows = self.store.events(kind="Rollout", namespace=None, limit=1_000_000)
        now = self.clock.now()
        with self._lock:
            for key, samples in present.items():
                self._objects[key] = _Tracked(samples)
            self._count_events(rows)
            self._expire(present, now)
            families = self._families()
        yield from families
        yield from self._runtime.collect()

    def _read_objects(self) -> dict[ObjectKey, list[Sample]]:
        present: dict[ObjectKey, list[Sample]] = {}
        for rollout in self.store.list("Rollout", None):
            present[object_key("Rollout", rollout)] = rollout_samples(rollout, self.store)
        for run in self.store.list("AnalysisRun", None):
            present[object_key("AnalysisRun", run)] = analysis_run_samples(run)
        for kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
            for template in self.store.list(kind, None):
                present[object_key(kind, template)] = analysis_template_samples(template)
        for experiment in self.store.list("Experiment", None):
            present[object_key("Experiment", experiment)] = experiment_samples(experiment)
        return present

    def _count_events(self, rows: Sequence[RawObject]) -> None:
        """Add what each row's count grew by since the last scrape. At the first scrape the
        counts already recorded are the starting values (of objects that still exist)."""
        seen: dict[tuple[str, str, str, str, str], int] = {}
        for row in rows:
            involved = row.get("involvedObject") or {}
            namespace = str(involved.get("namespace") or "")
            name = str(involved.get("name") or "")
            labels = (namespace, name, str(row.get("type") or ""), str(row.get("reason") or ""))
            row_key = (*labels, str(row.get("message") or ""))
            count = int(row.get("count") or 0)
            before = self._event_rows.get(row_key, 0)
            # A smaller count than before: the row was trimmed and recorded anew.
            added = count - before if count >= before else count
            seen[row_key] = count
            if added and ("Rollout", namespace, name) in self._objects:
                self._events[labels] = self._events.get(labels, 0.0) + added
        self._event_rows = seen

    def _expire(self, present: Mapping[ObjectKey, list[Sample]], now: datetime) -> None:
        """Start the grace period of objects missing from the store; drop the expired ones."""
        known = set(self._objects) | set(self._reconciles) | set(self._sends)
        known.update(("Rollout", ns, name) for ns, name, _, _ in self._events)
        for key in known - set(present):
            tracked = self._objects.setdefault(key, _Tracked([]))
            if tracked.gone_since is None:
                tracked.gone_since = now
            if (now - tracked.gone_since).total_seconds() >= self.deleted_grace_seconds:
                self._forget(key)

    def _forget(self, key: ObjectKey) -> None:
        kind, namespace, name = key
        self._objects.pop(key, None)
        self._reconciles.pop(key, None)
        self._reconcile_errors.pop(key, None)
        self._sends.pop(key, None)
        for result in [r for r in self._send_results if r[0] == key]:
            del self._send_results[result]
        if kind == "Rollout":
            for labels in [e for e in self._events if e[:2] == (namespace, name)]:
                del self._events[labels]

    def _families(self) -> list[Metric]:
        gauges = {
            name: GaugeMetricFamily(name, family.help, labels=list(family.labels))
            for name, family in FAMILIES.items()
        }
        for _, tracked in sorted(self._objects.items()):
            for family_name, values, value in tracked.samples:
                gauges[family_name].add_metric(list(values), value)
        families: list[Metric] = list(gauges.values())

        for kind, (histogram_name, error_name) in RECONCILE_FAMILIES.items():
            histogram = _new_family(PROCESS_FAMILIES[histogram_name])
            errors = _new_family(PROCESS_FAMILIES[error_name])
            for key, observed in sorted(self._reconciles.items()):
                if key[0] == kind:
                    _add_histogram(histogram, [key[1], key[2]], observed)
            for key, count in sorted(self._reconcile_errors.items()):
                if key[0] == kind:
                    errors.add_sample(error_name, _labels(error_name, key[1:]), float(count))
            families += [histogram, errors]

        events = _new_family(PROCESS_FAMILIES["rollout_events_total"])
        for labels, total in sorted(self._events.items()):
            events.add_sample(
                "rollout_events_total", _labels("rollout_events_total", labels), total
            )
        families.append(events)

        success = _new_family(PROCESS_FAMILIES["notification_send_success"])
        error = _new_family(PROCESS_FAMILIES["notification_send_error"])
        for (key, event_type, reason, ok), count in sorted(self._send_results.items()):
            target, target_name = (
                (success, "notification_send_success") if ok else (error, "notification_send_error")
            )
            values = (key[1], key[2], event_type, reason)
            target.add_sample(target_name, _labels(target_name, values), float(count))
        sends = _new_family(PROCESS_FAMILIES["notification_send"])
        for key, observed in sorted(self._sends.items()):
            _add_histogram(sends, [key[1], key[2]], observed)
        families += [success, error, sends]

        argo = GaugeMetricFamily(
            "argo_rollouts_controller_info", "Running Argo-rollouts version", labels=["version"]
        )
        argo.add_metric([self.version], 1.0)
        own = GaugeMetricFamily(
            "rollwise_controller_info",
            "Running rollwise version and where it runs (local or kubernetes).",
            labels=["version", "mode"],
        )
        own.add_metric([self.version, self.mode], 1.0)
        return [*families, argo, own]


def _new_family(family: Family) -> Metric:
    if family.type == "histogram":
        return HistogramMetricFamily(family.name, family.help, labels=list(family.labels))
    if family.type == "gauge":
        return GaugeMetricFamily(family.name, family.help, labels=list(family.labels))
    # A plain Metric keeps the counter's name as given: Argo's have no `_total` suffix.
    return Metric(family.name, family.help, "counter")


def _labels(family_name: str, values: Sequence[str]) -> dict[str, str]:
    family = PROCESS_FAMILIES[family_name]
    return dict(zip(family.labels, values, strict=True))


def _add_histogram(metric: Metric, values: list[str], observed: Histogram) -> None:
    assert isinstance(metric, HistogramMetricFamily)
    metric.add_metric(values, observed.cumulative(), observed.total)


# --- the text format ------------------------------------------------------------------------------


def _go_float(value: float) -> str:
    """A number as Go's client writes it (`1`, not `1.0`; `+Inf`, `NaN`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_text(families: Iterable[Metric]) -> bytes:
    """Prometheus' text format 0.0.4, with each family's name as its samples carry it (Argo's
    counters keep their names; prometheus_client's own counters keep their `_total`). Families
    without samples are left out, as Go's client does; `_created` samples too."""
    lines: list[str] = []
    for family in families:
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        if not samples:
            continue
        header = family.name
        if family.type == "counter":
            header = samples[0].name
        kind = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}.get(
            family.type, family.type
        )
        text = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {header} {text}")
        lines.append(f"# TYPE {header} {kind}")
        for sample in samples:
            labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(sample.labels.items()))
            braces = f"{{{labels}}}" if labels else ""
            lines.append(f"{sample.name}{braces} {_go_float(sample.value)}")
    return ("\n".join(lines) + "\n").encode() if lines else b""
