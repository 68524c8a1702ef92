"""Compiled expressions: the checked syntax tree turned into nested Python closures.

Who calls it: `compile_expression` is the entry point of the package; `conditions` builds Argo's
environment on top of it. Each node becomes one closure `run(context) -> value` (made by
`operators` and `calls`), so evaluating is a handful of Python calls with no tree walking, no
`eval`, no `exec`. Constant sub-expressions are evaluated once at compile time, so a type error
between literals is reported when compiling, as expr's checker does. Failures carry the
position of the node that failed; work that can grow (predicate loops, ranges, builtins over
arrays) is charged to the context's budget so that no expression runs unbounded.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from datetime import datetime, timedelta
from functools import lru_cache

from rollwise.core.expressions import calls, operators
from rollwise.core.expressions.builtins import BUILTINS, PREDICATES
from rollwise.core.expressions.context import Context, NilChain, Run, describe, located
from rollwise.core.expressions.errors import ExpressionError
from rollwise.core.expressions.nodes import (
    ArrayLit,
    Binary,
    Call,
    Chain,
    Closure,
    Conditional,
    Literal,
    MapLit,
    Member,
    Name,
    Node,
    Paren,
    Pointer,
    Slice,
    Unary,
)
from rollwise.core.expressions.parsing import children, parse_expression
from rollwise.core.expressions.values import Fault

_FOLDABLE_RESULTS = (type(None), bool, int, float, str, datetime, timedelta)


class Expression:
    """A compiled expression: evaluate it as often as needed, with different environments."""

    __slots__ = ("_positions", "_run", "names", "text")

    def __init__(self, text: str, run: Run, positions: Mapping[str, int]) -> None:
        self.text = text
        self.names = frozenset(positions)  # what the environment must provide
        self._positions = dict(positions)
        self._run = run

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def evaluate(self, env: Mapping[str, object], *, now: datetime | None = None) -> object:
        """The value of the expression in `env`; `now` is what `now()` returns (none if None)."""
        context = Context(env, now)
        try:
            return self._run(context)
        except Fault as fault:
            raise self._error(fault.detail, fault.pos) from None
        except NilChain:
            return None
        except RecursionError:
            raise self._error("expression nested too deeply", None) from None
        except Exception as error:  # a bug of ours: still an ExpressionError for the caller
            raise self._error(f"internal error: {describe(error)}", None) from error

    def check_names(self, available: Container[str]) -> None:
        """Refuse, as expr does at compile time, a name the environment will not provide."""
        for name, pos in self._positions.items():
            if name not in available:
                raise ExpressionError(f"unknown name {name}", expression=self.text, position=pos)

    def _error(self, detail: str, pos: int | None) -> ExpressionError:
        return ExpressionError(
            detail, expression=self.text, position=pos, kind="cannot evaluate expression"
        )


@lru_cache(maxsize=1024)
def compile_expression(text: str) -> Expression:
    """Parse, check and compile `text` (cached by text); raises ExpressionError."""
    parsed = parse_expression(text)
    try:
        run, _ = _Compiler(text).compile(parsed.node)
    except Fault as fault:
        raise ExpressionError(fault.detail, expression=text, position=fault.pos) from None
    except RecursionError:
        raise ExpressionError(
            "expression nested too deeply", expression=text, position=None
        ) from None
    return Expression(text, run, parsed.names)


def _size(node: Node) -> int:
    return 1 + sum(_size(child) for child in children(node))


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text

    def compile(self, node: Node) -> tuple[Run, bool]:
        """The closure for `node` and whether it is a constant (no names, pointers or clock)."""
        if isinstance(node, Literal):
            value = node.value
            return (lambda context: value), True
        if isinstance(node, Paren):
            return self.compile(node.inner)
        if isinstance(node, Name):
            return operators.name(node), False
        if isinstance(node, Pointer):
            return operators.pointer(node), False
        if isinstance(node, Call):
            run, constant = self.call(node)
        else:
            parts = [self.compile(child) for child in children(node)]
            run = self.compound(node, [part for part, _ in parts])
            constant = all(is_constant for _, is_constant in parts)
        if constant:
            return self.fold(run, node), True
        return run, False

    def fold(self, run: Run, node: Node) -> Run:
        """Evaluate a constant once: errors surface at compile time, scalars become literals."""
        try:
            value = run(Context({}, None))
        except Fault as fault:
            raise located(fault, node.pos) from None
        except NilChain:
            value = None
        except RecursionError:
            raise
        except Exception as error:
            raise Fault(describe(error), node.pos) from error
        if isinstance(value, _FOLDABLE_RESULTS):
            return lambda context: value
        return run  # arrays and maps are built afresh: callers may mutate what they get

    def compound(self, node: Node, parts: list[Run]) -> Run:
        if isinstance(node, Binary):
            return operators.binary(node, parts[0], parts[1])
        if isinstance(node, Unary):
            return operators.unary(node, parts[0])
        if isinstance(node, Member):
            return operators.member(node, parts[0], parts[1])
        if isinstance(node, Conditional):
            return operators.conditional(node, *parts)
        if isinstance(node, Chain):
            return operators.chain(parts[0])
        if isinstance(node, Slice):
            return operators.slice_(node, parts)
        if isinstance(node, ArrayLit):
            return operators.array(parts)
        if isinstance(node, MapLit):
            return operators.map_(node, parts)
        raise Fault(f"unexpected {type(node).__name__}", node.pos)

    def call(self, node: Call) -> tuple[Run, bool]:
        if node.name in PREDICATES:
            return self.predicate(node)
        parts = [self.compile(arg) for arg in node.args]
        runs = [run for run, _ in parts]
        builtin = BUILTINS.get(node.name)
        if builtin is None:
            return calls.env_call(node, runs), False
        constant = builtin.pure and all(is_constant for _, is_constant in parts)
        return calls.builtin_call(node, builtin.function, runs), constant

    def predicate(self, node: Call) -> tuple[Run, bool]:
        array, _ = self.compile(node.args[0])
        body: Run | None = None
        cost = 1
        if len(node.args) > 1:
            closure = node.args[1]
            assert isinstance(closure, Closure)
            body, _ = self.compile(closure.body)
            cost = _size(closure.body)
        extra = [self.compile(arg)[0] for arg in node.args[2:]]
        return calls.predicate_call(node, array, body, cost, extra), False
