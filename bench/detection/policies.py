"""The policies the benchmark compares, in the order the report shows them.

Who uses it: `runner` (each policy judges every cell's streams) and `report` (names, how each
policy promotes). Each policy is a function from a cell's `Streams` to `Outcomes`; the
modules named in `module` hold the details and the references they follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.detection import argo, flagger, kayenta, rollwise_judge
from bench.detection.outcomes import Outcomes
from bench.detection.streams import Streams


@dataclass(frozen=True, slots=True)
class Policy:
    key: str
    name: str
    decide: Callable[[Streams], Outcomes]
    checks: str
    """What it measures and when, in a few words."""
    promotes: str
    """How (whether) it promotes a healthy canary."""


def _argo_seed(streams: Streams) -> Outcomes:
    return argo.decide(streams, failure_limit=3)


def _argo_defaults(streams: Streams) -> Outcomes:
    return argo.decide(streams, failure_limit=0)


def _argo_canary_only(streams: Streams) -> Outcomes:
    return argo.decide(streams, failure_limit=3, scope="canary")


POLICIES: tuple[Policy, ...] = (
    Policy(
        "argo-seed",
        "Argo, seed template",
        _argo_seed,
        "whole-service success rate ≥ 0.95 and p95 ≤ 500 ms over [5m], every 1m after the "
        "seed's 1m pause; failureLimit 3",
        "never: `count` is unset, so the step's run is unbounded and the rollout waits in it",
    ),
    Policy(
        "argo-defaults",
        "Argo defaults",
        _argo_defaults,
        "the same queries and schedule, failureLimit 0 (Argo's default): the first failed "
        "measurement aborts",
        "never (unbounded run, as above)",
    ),
    Policy(
        "argo-canary",
        "Argo, seed thresholds on the canary only (variant)",
        _argo_canary_only,
        "the seed's thresholds and schedule, but the queries select the canary's requests "
        "only (not in the seed; shows what the thresholds do when they see the canary)",
        "never (unbounded run, as above)",
    ),
    Policy(
        "flagger",
        "Flagger builtin",
        flagger.decide,
        "canary-only request-success-rate ≥ 99% and request-duration p99 ≤ 500 ms over [1m], "
        "every 1m; rollback at the tick after the 5th failed check",
        "at the 5th passing check (stepWeight 10 up to maxWeight 50): 5 min at best",
    ),
    Policy(
        "kayenta",
        "Kayenta",
        kayenta.decide,
        "Mann-Whitney (98%) on per-minute error % and p99 of canary vs baseline, judged at 10, "
        "20 and 30 min; interim < 75 fails, final < 95 fails",
        "at the end of its 30-minute lifetime, if the last judgement scores ≥ 95",
    ),
    Policy(
        "rollwise",
        "rollwise judge",
        rollwise_judge.decide,
        "anytime-valid tests of the canary's error share and share of requests slower than "
        "the baseline's p99 bucket, every 10 s (alpha 0.01 in total)",
        "as soon as both tests pass (time-uniform bounds under the non-inferiority margins)",
    ),
)
