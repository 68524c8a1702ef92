"""Triggers: which event fires which trigger, and which templates a trigger sends.

Where it sits: `rollwise.notify`, called by the notifier for every event it reads and by
`rollwise notifications test`. As in Argo Rollouts (`utils/record/record.go`), every event reason
is a trigger: `RolloutStepCompleted` fires `on-rollout-step-completed`, `AnalysisRunFailed`
fires `on-analysis-run-failed`, with Argo's two regular expressions, so names match Argo's even
for reasons with acronyms.

A trigger definition (`trigger.<name>` in the configuration) is a list of conditions
`{when, send, oncePer}`. Argo Rollouts sends the templates of the *first* condition whenever the
event is recorded and never evaluates `when` (nor `oncePer`); rollwise does the same by default
(`compatible`). With `evaluate=True` (configuration key `rollwise.triggerConditions: evaluate`),
every condition whose `when` holds sends its templates, `when` written in Argo's condition
language (`rollwise.core.expressions`) over the notification's variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from rollwise.api.errors import ManifestError
from rollwise.core.expressions import ExpressionError, compile_expression

TRIGGER_PREFIX = "on-"

# Argo's translateReasonToTrigger: first split before a capital that starts a lower-case word,
# then between a lower-case letter or digit and a capital.
_FIRST_CAP = re.compile(r"(.)([A-Z][a-z]+)")
_ALL_CAP = re.compile(r"([a-z0-9])([A-Z])")


def trigger_for_reason(reason: str) -> str:
    """`RolloutStepCompleted` -> `on-rollout-step-completed` (Argo's translation)."""
    words = _FIRST_CAP.sub(r"\1-\2", reason)
    words = _ALL_CAP.sub(r"\1-\2", words)
    return TRIGGER_PREFIX + words.lower()


def reason_for_trigger(trigger: str) -> str:
    """`on-rollout-aborted` -> `RolloutAborted`: the event reason a trigger stands for (used to
    make a test event; reasons with acronyms do not survive the round trip)."""
    name = trigger.removeprefix(TRIGGER_PREFIX)
    return "".join(part[:1].upper() + part[1:] for part in name.split("-") if part)


@dataclass(frozen=True)
class Condition:
    """One condition of a trigger: send `send` (template names) when `when` holds."""

    send: tuple[str, ...]
    when: str = ""
    once_per: str = ""


def parse_trigger(name: str, text: str | Sequence[Any]) -> tuple[Condition, ...]:
    """A `trigger.<name>` value (YAML text, or already parsed) as conditions."""
    raw: Any = yaml.safe_load(text) if isinstance(text, str) else text
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ManifestError(f"trigger.{name}: expected a list of conditions {{when, send}}")
    conditions: list[Condition] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ManifestError(f"trigger.{name}[{index}]: expected a mapping with 'send'")
        send = item.get("send") or []
        if isinstance(send, str) or not all(isinstance(s, str) for s in send):
            raise ManifestError(f"trigger.{name}[{index}].send: expected a list of template names")
        when = str(item.get("when") or "")
        if when:
            try:
                compile_expression(when)
            except ExpressionError as error:
                raise ManifestError(f"trigger.{name}[{index}].when: {error}") from error
        conditions.append(
            Condition(send=tuple(send), when=when, once_per=str(item.get("oncePer") or ""))
        )
    return tuple(conditions)


def templates_to_send(
    conditions: Sequence[Condition],
    variables: Mapping[str, Any],
    *,
    evaluate: bool = False,
) -> tuple[str, ...]:
    """The template names a trigger sends for one event.

    Compatible (default): the first condition's templates, `when` ignored, as Argo Rollouts.
    `evaluate`: the templates of every condition whose `when` is true or absent; a `when` that
    fails to evaluate counts as false (Argo CD's notifications do the same)."""
    if not conditions:
        return ()
    if not evaluate:
        return conditions[0].send
    names: list[str] = []
    for condition in conditions:
        if condition.when and not _holds(condition.when, variables):
            continue
        names.extend(name for name in condition.send if name not in names)
    return tuple(names)


def _holds(when: str, variables: Mapping[str, Any]) -> bool:
    try:
        return compile_expression(when).evaluate(dict(variables)) is True
    except ExpressionError:
        return False
