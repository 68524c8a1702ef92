"""The state of one evaluation: the environment, the time given, the work budget, the pointers.

Who uses it: the closures built by `evaluation` and the functions of `builtins`. The budget is
charged only where work can grow beyond the size of the expression (predicate loops, ranges,
builtins over arrays and strings), so a plain comparison never touches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from rollwise.core.expressions.values import Fault

MAX_STEPS = 1_000_000


class Context:
    __slots__ = ("acc", "env", "index", "now", "pointer", "steps")

    def __init__(self, env: Mapping[str, object], now: datetime | None) -> None:
        self.env = env
        self.now = now
        self.steps = MAX_STEPS
        self.pointer: object = None  # `#`, the element a predicate is looking at
        self.index = 0  # `#index`
        self.acc: object = None  # `#acc`, reduce's accumulator

    def spend(self, amount: int) -> None:
        self.steps -= amount
        if self.steps < 0:
            raise Fault(f"evaluation exceeded its budget of {MAX_STEPS} steps")
