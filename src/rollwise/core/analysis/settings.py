"""A metric's settings read the way Argo Rollouts reads them, and Argo's `ValidateMetric`.

Where this sits: used by `rollwise.core.analysis.runs` (scheduling and assessment) on metrics
whose `{{args.*}}` are already substituted. The lint-time rules in `rollwise.api.metric_rules`
report the same problems before anything runs; these are the run-time rules that turn a bad
metric into an `Error` run with Argo's message ("Analysis spec invalid: metrics[0]: ...").

Reading rules (reference 2.3), kept on purpose because YAML written for Argo relies on them:
- int-or-string fields (`count`, the limits) accept numeric strings such as `"3"` (what a
  substituted `{{args.n}}` gives); any other string reads as 0, silently, like Go's
  `intstr.IntValue`;
- durations follow Go's `time.ParseDuration`: a unit is required (`"30s"`, `"1m30s"`), except
  for `"0"`;
- `count` unset or 0 means one measurement when there is no `interval`, and "until terminated"
  when there is one (`effective_count` returns None for that).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rollwise.api.models import Metric, MetricProvider

DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
ERROR_RETRY_SECONDS = 10.0
"""After an Error measurement the next one is due this long after it, whatever the interval."""

_GO_INT = re.compile(r"[+-]?\d+")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go accepts both micro signs
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_NUMBER = re.compile(r"(\d*)(\.\d*)?")
_GO_UNIT = re.compile(r"[^\d.]*")

PROVIDER_KEYS: tuple[str, ...] = tuple(
    info.alias or name for name, info in MetricProvider.model_fields.items()
)


def int_or_string(value: int | str | None, *, default: int = 0) -> int:
    """An int-or-string field as Go's `IntValue` reads it: `"3"` is 3, junk is 0."""
    if value is None:
        return default
    if isinstance(value, bool):  # YAML `true` is not a number in Go either
        return 0
    if isinstance(value, int):
        return value
    text = value
    return int(text) if _GO_INT.fullmatch(text) else 0


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string; ValueError with Go's own message otherwise."""
    quoted = f'"{text}"'
    rest = text
    sign = 1.0
    if rest[:1] in ("+", "-"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while rest:
        number = _GO_NUMBER.match(rest)
        assert number is not None  # the pattern matches the empty string
        whole, fraction = number.group(1), number.group(2) or ""
        if not whole and fraction in ("", "."):
            raise ValueError(f"time: invalid duration {quoted}")
        rest = rest[number.end() :]
        unit_match = _GO_UNIT.match(rest)
        unit = unit_match.group(0) if unit_match else ""
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _GO_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        total += float((whole or "0") + fraction) * _GO_UNITS[unit]
        rest = rest[len(unit) :]
    return sign * total


def interval_seconds(metric: Metric) -> float | None:
    """The metric's interval in seconds, None when it has none (or it does not parse)."""
    if not metric.interval:
        return None
    try:
        return parse_go_duration(metric.interval)
    except ValueError:
        return None


def initial_delay_seconds(metric: Metric) -> float | None:
    if not metric.initial_delay:
        return None
    try:
        return parse_go_duration(metric.initial_delay)
    except ValueError:
        return None


def effective_count(metric: Metric) -> int | None:
    """How many non-error measurements end the metric; None: unbounded (until terminated)."""
    count = int_or_string(metric.count)
    if count == 0:
        return None if metric.interval else 1
    return count


def failure_limit(metric: Metric) -> int:
    """-1 turns the failure check off."""
    return int_or_string(metric.failure_limit)


def inconclusive_limit(metric: Metric) -> int:
    return int_or_string(metric.inconclusive_limit)


def consecutive_error_limit(metric: Metric) -> int:
    return int_or_string(metric.consecutive_error_limit, default=DEFAULT_CONSECUTIVE_ERROR_LIMIT)


def consecutive_success_limit(metric: Metric) -> int:
    """0 (the default) turns the consecutive-success rule off."""
    return int_or_string(metric.consecutive_success_limit)


def _provider_count(provider: MetricProvider | None) -> int:
    if provider is None:
        return 0
    raw = provider.to_raw()
    found = 0
    for key in PROVIDER_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        # A plugin map names one plugin per entry; Argo counts each as a provider.
        found += len(value) if key == "plugin" and isinstance(value, dict) else 1
    return found


def metric_problem(metric: Metric) -> str | None:
    """The first rule of Argo's `ValidateMetric` the metric breaks, in Argo's words."""
    count = int_or_string(metric.count)
    failure = failure_limit(metric)
    inconclusive = inconclusive_limit(metric)
    success = consecutive_success_limit(metric)
    if count > 0:
        if failure >= 0 and success >= 0 and count < failure + success:
            if success == 0:
                return "count must be >= failureLimit"
            return "count must be >= failureLimit + consecutiveSuccessLimit"
        if count < inconclusive:
            return "count must be >= inconclusiveLimit"
    if count > 1 and not metric.interval:
        return "interval must be specified when count > 1"
    if metric.interval:
        try:
            parse_go_duration(metric.interval)
        except ValueError as error:
            return f"invalid interval string: {error}"
    if metric.initial_delay:
        try:
            parse_go_duration(metric.initial_delay)
        except ValueError as error:
            return f"invalid startDelay string: {error}"
    if failure < -1:
        return "failureLimit must be >= 0, or -1 to turn the failure check off"
    if failure == -1 and success <= 0:
        return "consecutiveSuccessLimit must be > 0 when failureLimit is -1"
    if inconclusive < 0:
        return "inconclusiveLimit must be >= 0"
    if metric.consecutive_error_limit is not None and consecutive_error_limit(metric) < 0:
        return "consecutiveErrorLimit must be >= 0"
    if success < 0:
        return "consecutiveSuccessLimit must be >= 0"
    providers = _provider_count(metric.provider)
    if providers == 0:
        return "no provider specified"
    if providers > 1:
        return "multiple providers specified"
    return None


def metrics_problem(metrics: Sequence[Metric]) -> str | None:
    """Argo's `ValidateMetrics`: the first problem as `metrics[i]: ...`, or None."""
    if not metrics:
        return "no metrics specified"
    seen: set[str] = set()
    for index, metric in enumerate(metrics):
        if metric.name in seen:
            return f"metrics[{index}]: duplicate name '{metric.name}'"
        seen.add(metric.name)
        problem = metric_problem(metric)
        if problem is not None:
            return f"metrics[{index}]: {problem}"
    return None
