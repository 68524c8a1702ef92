"""The state of one evaluation (environment, time given, work budget, pointers) and the helpers
every compiled closure shares (`Run`, `NilChain`, `located`, `describe`).

Who uses it: the closures built by `operators` and `calls`, and the functions of `builtins`.
The budget is charged only where work can grow beyond the size of the expression (predicate
loops, ranges, builtins over arrays and strings), so a plain comparison never touches it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from rollwise.core.expressions.values import Fault, weight

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

    def spend_on(self, value: object) -> None:
        """Charge a walk over the whole of `value` (every element at every depth) before it is
        made: weighing stops as soon as the budget is exceeded."""
        self.spend(weight(value, max(self.steps, 0) + 1))


Run = Callable[[Context], object]  # a compiled node


class NilChain(BaseException):
    """`?.` met a nil: the enclosing optional chain evaluates to nil.

    A BaseException so that the `except Exception` conversions on the way up leave it alone.
    """


def describe(error: BaseException) -> str:
    """A Python exception met while evaluating, worded for the person who wrote the expression."""
    if isinstance(error, OverflowError):
        return "numeric overflow"
    if isinstance(error, RecursionError):
        return "value nested too deeply"
    if isinstance(error, MemoryError):
        return "out of memory"
    return f"{type(error).__name__}: {error}"


def located(fault: Fault, pos: int) -> Fault:
    """The fault, placed at `pos` unless an inner node already placed it."""
    if fault.pos is None:
        fault.pos = pos
    return fault
