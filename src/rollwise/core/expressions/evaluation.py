"""Compiled expressions: the checked syntax tree turned into nested Python closures.

Who calls it: `compile_expression` is the entry point of the package; `conditions` builds Argo's
environment on top of it. Each node becomes one closure `run(context) -> value`, so evaluating
is a handful of Python calls with no tree walking, no `eval`, no `exec`. Operators take a fast
path for the common types (floats and ints) and fall back to `values` for expr's full rules.
Constant sub-expressions are evaluated once at compile time, so a type error between literals
is reported when compiling, as expr's checker does. Failures carry the position of the node that
failed; work that can grow (predicate loops, ranges, builtins over arrays) is charged to the
context's budget so that no expression runs unbounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from rollwise.core.expressions import regexes, values
from rollwise.core.expressions.builtins import BUILTINS, PREDICATES, sort_values
from rollwise.core.expressions.context import Context
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
from rollwise.core.expressions.values import Fault, type_name

Run = Callable[[Context], object]

MAX_RANGE = 1_000_000  # elements in `a..b`
_FOLDABLE_RESULTS = (type(None), bool, int, float, str, datetime, timedelta)


class _NilChain(BaseException):
    """`?.` met a nil: the enclosing optional chain evaluates to nil.

    A BaseException so that the `except Exception` conversions on the way up leave it alone.
    """


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
        except _NilChain:
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


def describe(error: BaseException) -> str:
    if isinstance(error, OverflowError):
        return "numeric overflow"
    if isinstance(error, RecursionError):
        return "value nested too deeply"
    if isinstance(error, MemoryError):
        return "out of memory"
    return f"{type(error).__name__}: {error}"


def _located(fault: Fault, pos: int) -> Fault:
    if fault.pos is None:
        fault.pos = pos
    return fault


def _truth(value: object, what: str) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, bool):
        return bool(value)
    raise Fault(f"non-bool value (type {type_name(value)}) used as {what}")


def _size(node: Node) -> int:
    return 1 + sum(_size(child) for child in children(node))


def _items(value: object) -> Sequence[object]:
    if type(value) is list or type(value) is tuple:
        return value
    if values.is_array(value):
        return values.as_list(value)
    raise Fault(f"cannot iterate {type_name(value)}")


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
            return _name(node), False
        if isinstance(node, Pointer):
            return _pointer(node), False
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
            raise _located(fault, node.pos) from None
        except _NilChain:
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
            return _binary(node, parts[0], parts[1])
        if isinstance(node, Unary):
            return _unary(node, parts[0])
        if isinstance(node, Member):
            return _member(node, parts[0], parts[1])
        if isinstance(node, Conditional):
            return _conditional(node, *parts)
        if isinstance(node, Chain):
            return _chain(parts[0])
        if isinstance(node, Slice):
            return _slice(node, parts)
        if isinstance(node, ArrayLit):
            return _array(parts)
        if isinstance(node, MapLit):
            return _map(node, parts)
        raise Fault(f"unexpected {type(node).__name__}", node.pos)

    def call(self, node: Call) -> tuple[Run, bool]:
        if node.name in PREDICATES:
            return self.predicate(node)
        parts = [self.compile(arg) for arg in node.args]
        runs = [run for run, _ in parts]
        builtin = BUILTINS.get(node.name)
        if builtin is None:
            return _env_call(node, runs), False
        constant = builtin.pure and all(is_constant for _, is_constant in parts)
        return _builtin_call(node, builtin.function, runs), constant

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
        return _predicate_call(node, array, body, cost, extra), False


# -- leaves ------------------------------------------------------------------------------------


def _name(node: Name) -> Run:
    name = node.name
    pos = node.pos

    def run(context: Context) -> object:
        try:
            return context.env[name]
        except KeyError:
            raise Fault(f"unknown name {name}", pos) from None

    return run


def _pointer(node: Pointer) -> Run:
    if node.name == "index":
        return lambda context: context.index
    if node.name == "acc":
        return lambda context: context.acc
    return lambda context: context.pointer


# -- operators ---------------------------------------------------------------------------------


def _unary(node: Unary, operand: Run) -> Run:
    pos = node.pos
    if node.op == "!":

        def run_not(context: Context) -> object:
            value = operand(context)
            if value is True:
                return False
            if value is False:
                return True
            raise Fault(f"invalid operation: ! {type_name(value)}", pos)

        return run_not
    apply = values.negate if node.op == "-" else values.plus

    def run(context: Context) -> object:
        value = operand(context)
        if type(value) is float and node.op == "-":
            return -value
        try:
            return apply(value)
        except Fault as fault:
            raise _located(fault, pos) from None

    return run


def _logic(node: Binary, left: Run, right: Run) -> Run:
    pos = node.pos
    is_and = node.op == "and"

    def run(context: Context) -> object:
        first = left(context)
        if first is not True and first is not False:
            raise Fault(f"invalid operation: {node.op} on {type_name(first)} (expected bool)", pos)
        if first is not is_and:  # false and ... / true or ...
            return first
        second = right(context)
        if second is not True and second is not False:
            raise Fault(f"invalid operation: {node.op} on {type_name(second)} (expected bool)", pos)
        return second

    return run


_ORDER: dict[str, Callable[[object, object], bool]] = {
    "<": values.less,
    ">": values.greater,
    "<=": values.less_equal,
    ">=": values.greater_equal,
}
_ARITHMETIC: dict[str, Callable[[object, object], object]] = {
    "+": values.add,
    "-": values.subtract,
    "*": values.multiply,
    "/": values.divide,
    "%": values.modulo,
    "**": values.power,
}
_FAST_ORDER: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _binary(node: Binary, left: Run, right: Run) -> Run:
    op = node.op
    if op in ("and", "or"):
        return _logic(node, left, right)
    if op == "??":
        return lambda context: _coalesce(left(context), right, context)
    if op in _ORDER:
        return _ordering(node, left, right)
    if op in ("==", "!="):
        return _equality(node, left, right)
    if op in _ARITHMETIC:
        return _arithmetic(node, left, right)
    return _general(node, left, right)


def _coalesce(value: object, right: Run, context: Context) -> object:
    return right(context) if value is None else value


def _ordering(node: Binary, left: Run, right: Run) -> Run:
    pos = node.pos
    slow = _ORDER[node.op]
    # One closure per operator so that the fast path is a plain Python comparison.
    if node.op == ">=":

        def run_ge(context: Context) -> object:
            a = left(context)
            b = right(context)
            ta = type(a)
            tb = type(b)
            if (ta is float or ta is int) and (tb is float or tb is int):
                return a >= b  # type: ignore[operator]
            return _slow_order(slow, a, b, pos)

        return run_ge
    if node.op == "<=":

        def run_le(context: Context) -> object:
            a = left(context)
            b = right(context)
            ta = type(a)
            tb = type(b)
            if (ta is float or ta is int) and (tb is float or tb is int):
                return a <= b  # type: ignore[operator]
            return _slow_order(slow, a, b, pos)

        return run_le
    fast = _FAST_ORDER[node.op]

    def run(context: Context) -> object:
        a = left(context)
        b = right(context)
        ta = type(a)
        tb = type(b)
        if (ta is float or ta is int) and (tb is float or tb is int):
            return fast(a, b)  # type: ignore[arg-type]
        return _slow_order(slow, a, b, pos)

    return run


def _slow_order(compare: Callable[[object, object], bool], a: object, b: object, pos: int) -> bool:
    try:
        return compare(a, b)
    except Fault as fault:
        raise _located(fault, pos) from None
    except TypeError as error:
        raise Fault(describe(error), pos) from None


def _equality(node: Binary, left: Run, right: Run) -> Run:
    negated = node.op == "!="
    pos = node.pos

    def run(context: Context) -> object:
        a = left(context)
        b = right(context)
        ta = type(a)
        if ta is type(b) and (ta is str or ta is float or ta is int or ta is bool):
            return (a != b) if negated else (a == b)
        if isinstance(a, list | tuple | dict):
            context.spend(1 + len(a))
        try:
            same = values.equal(a, b)
        except RecursionError:
            raise Fault("value nested too deeply to compare", pos) from None
        return not same if negated else same

    return run


def _arithmetic(node: Binary, left: Run, right: Run) -> Run:
    pos = node.pos
    slow = _ARITHMETIC[node.op]
    if node.op in ("+", "-", "*"):
        fast = {"+": float.__add__, "-": float.__sub__, "*": float.__mul__}[node.op]

        def run_float(context: Context) -> object:
            a = left(context)
            b = right(context)
            if type(a) is float and type(b) is float:
                return fast(a, b)
            try:
                result = slow(a, b)
            except Fault as fault:
                raise _located(fault, pos) from None
            except (OverflowError, TypeError, ValueError) as error:
                raise Fault(describe(error), pos) from None
            if type(result) is str:
                context.spend(1 + len(result) // 64)
            return result

        return run_float

    def run(context: Context) -> object:
        a = left(context)
        b = right(context)
        try:
            return slow(a, b)
        except Fault as fault:
            raise _located(fault, pos) from None
        except (OverflowError, TypeError, ValueError) as error:
            raise Fault(describe(error), pos) from None

    return run


def _general(node: Binary, left: Run, right: Run) -> Run:
    """`in`, `..`, `matches`, `contains`, `startsWith`, `endsWith`."""
    pos = node.pos
    op = node.op

    def apply(context: Context, a: object, b: object) -> object:
        if op == "in":
            if isinstance(b, list | tuple):
                context.spend(1 + len(b))
            return values.contained(a, b)
        if op == "..":
            return _range(context, a, b)
        if op == "matches":
            if isinstance(a, str):
                context.spend(1 + len(a) // 16)
            return regexes.matches(a, b)
        text, part = values.strings(op, a, b)
        context.spend(1 + len(text) // 64)
        if op == "contains":
            return part in text
        if op == "startsWith":
            return text.startswith(part)
        return text.endswith(part)

    def run(context: Context) -> object:
        a = left(context)
        b = right(context)
        try:
            return apply(context, a, b)
        except Fault as fault:
            raise _located(fault, pos) from None
        except (TypeError, ValueError, RecursionError) as error:
            raise Fault(describe(error), pos) from None

    return run


def _range(context: Context, low: object, high: object) -> list[int]:
    if not (type(low) is int and type(high) is int):
        raise values.mismatch("..", low, high)
    count = high - low + 1
    if count > MAX_RANGE:
        raise Fault(f"range {low}..{high} too large (more than {MAX_RANGE} elements)")
    if count <= 0:
        return []
    context.spend(count)
    return list(range(low, high + 1))


def _conditional(node: Conditional, cond: Run, then: Run, otherwise: Run) -> Run:
    pos = node.pos

    def run(context: Context) -> object:
        test = cond(context)
        if test is True:
            return then(context)
        if test is False:
            return otherwise(context)
        raise Fault(f"non-bool expression (type {type_name(test)}) used as condition", pos)

    return run


# -- access ------------------------------------------------------------------------------------


def _member(node: Member, obj: Run, key: Run) -> Run:
    pos = node.pos
    optional = node.optional
    constant = node.key.value if isinstance(node.key, Literal) else None

    if isinstance(constant, str):

        def run_property(context: Context) -> object:
            target = obj(context)
            if type(target) is dict:
                return target.get(constant)
            if target is None and optional:
                raise _NilChain
            try:
                return values.fetch(target, constant)
            except Fault as fault:
                raise _located(fault, pos) from None

        return run_property

    if type(constant) is int:

        def run_index(context: Context) -> object:
            target = obj(context)
            if type(target) is list:
                try:
                    return target[constant]
                except IndexError:
                    pass  # fetch() words the error as expr does
            if target is None and optional:
                raise _NilChain
            try:
                return values.fetch(target, constant)
            except Fault as fault:
                raise _located(fault, pos) from None

        return run_index

    def run(context: Context) -> object:
        target = obj(context)
        if target is None and optional:
            raise _NilChain
        index = key(context)
        try:
            return values.fetch(target, index)
        except Fault as fault:
            raise _located(fault, pos) from None

    return run


def _chain(inner: Run) -> Run:
    def run(context: Context) -> object:
        try:
            return inner(context)
        except _NilChain:
            return None

    return run


def _slice(node: Slice, parts: list[Run]) -> Run:
    obj = parts[0]
    rest = iter(parts[1:])
    start = next(rest) if node.start is not None else None
    end = next(rest) if node.end is not None else None
    pos = node.pos

    def run(context: Context) -> object:
        target = obj(context)
        low = start(context) if start is not None else None
        high = end(context) if end is not None else None
        try:
            result = values.slice_of(target, low, high)
        except Fault as fault:
            raise _located(fault, pos) from None
        context.spend(1 + values.size(result))
        return result

    return run


def _array(items: list[Run]) -> Run:
    return lambda context: [item(context) for item in items]


def _map(node: MapLit, parts: list[Run]) -> Run:
    pairs = list(zip(parts[0::2], parts[1::2], strict=True))
    pos = node.pos

    def run(context: Context) -> object:
        out: dict[object, object] = {}
        for key, value in pairs:
            name = key(context)
            try:
                out[name] = value(context)
            except TypeError:
                raise Fault(f"cannot use {type_name(name)} as a map key", pos) from None
        return out

    return run


# -- calls -------------------------------------------------------------------------------------


def _builtin_call(
    node: Call, function: Callable[[Context, Sequence[object]], object], args: list[Run]
) -> Run:
    pos = node.pos
    if len(args) == 1:  # the common `len(result)`: no list to build
        only = args[0]

        def run_one(context: Context) -> object:
            argument = only(context)
            try:
                return function(context, (argument,))
            except Fault as fault:
                raise _located(fault, pos) from None
            except (OverflowError, TypeError, ValueError, RecursionError) as error:
                raise Fault(f"{node.name}: {describe(error)}", pos) from None

        return run_one

    def run(context: Context) -> object:
        arguments = [arg(context) for arg in args]
        try:
            return function(context, arguments)
        except Fault as fault:
            raise _located(fault, pos) from None
        except (OverflowError, TypeError, ValueError, RecursionError) as error:
            raise Fault(f"{node.name}: {describe(error)}", pos) from None

    return run


def _env_call(node: Call, args: list[Run]) -> Run:
    name = node.name
    pos = node.pos

    def run(context: Context) -> object:
        try:
            function = context.env[name]
        except KeyError:
            raise Fault(f"unknown name {name}", pos) from None
        if not callable(function):
            raise Fault(f"{name} is not a function (type {type_name(function)})", pos)
        arguments = [arg(context) for arg in args]
        try:
            return function(*arguments)
        except Fault as fault:
            raise _located(fault, pos) from None
        except Exception as error:
            raise Fault(f"{name}: {describe(error)}", pos) from error

    return run


def _results(
    context: Context, items: Sequence[object], body: Run, cost: int
) -> Iterator[tuple[int, object, object]]:
    for index, item in enumerate(items):
        context.spend(cost)
        context.pointer = item
        context.index = index
        yield index, item, body(context)


def _predicate_call(node: Call, array: Run, body: Run | None, cost: int, extra: list[Run]) -> Run:
    name = node.name
    pos = node.pos
    what = f"the predicate of {name}"

    def apply(context: Context, items: Sequence[object]) -> object:
        if body is None:  # count(array) / sum(array)
            context.spend(1 + len(items))
            if name == "count":
                return sum(1 for item in items if _truth(item, f"an element counted by {name}"))
            return _sum(items)
        results = _results(context, items, body, cost)
        if name == "all":
            return all(_truth(result, what) for _, _, result in results)
        if name == "any":
            return any(_truth(result, what) for _, _, result in results)
        if name == "none":
            return not any(_truth(result, what) for _, _, result in results)
        if name == "one":
            return sum(1 for _, _, result in results if _truth(result, what)) == 1
        if name == "count":
            return sum(1 for _, _, result in results if _truth(result, what))
        if name == "filter":
            return [item for _, item, result in results if _truth(result, what)]
        if name == "map":
            return [result for _, _, result in results]
        if name == "sum":
            return _sum([result for _, _, result in results])
        if name in ("find", "findIndex"):
            for index, item, result in results:
                if _truth(result, what):
                    return item if name == "find" else index
            return None if name == "find" else -1
        if name in ("findLast", "findLastIndex"):
            found: tuple[int, object] | None = None
            for index, item, result in results:
                if _truth(result, what):
                    found = (index, item)
            if found is None:
                return None if name == "findLast" else -1
            return found[1] if name == "findLast" else found[0]
        if name == "groupBy":
            groups: dict[object, list[object]] = {}
            for _, item, result in results:
                try:
                    groups.setdefault(result, []).append(item)
                except TypeError:
                    raise Fault(f"cannot group by a {type_name(result)}") from None
            return groups
        if name == "sortBy":
            keyed = [(result, item) for _, item, result in results]
            descending = False
            if extra:
                order = extra[0](context)
                if order not in ("asc", "desc"):
                    raise Fault(f"invalid order {values.brief(order)}, expected asc or desc")
                descending = order == "desc"
            context.spend(1 + len(keyed) * max(1, len(keyed).bit_length()))
            ordered = sort_values(keyed, descending, key=lambda pair: pair[0])
            return [pair[1] for pair in ordered]
        if name == "reduce":
            return _reduce(context, items, body, cost, extra)
        raise Fault(f"unknown predicate {name}")

    def run(context: Context) -> object:
        saved = (context.pointer, context.index, context.acc)
        try:
            return apply(context, _items(array(context)))
        except Fault as fault:
            raise _located(fault, pos) from None
        except (OverflowError, TypeError, ValueError) as error:
            raise Fault(f"{name}: {describe(error)}", pos) from None
        finally:
            context.pointer, context.index, context.acc = saved

    return run


def _reduce(
    context: Context, items: Sequence[object], body: Run, cost: int, extra: list[Run]
) -> object:
    if extra:
        accumulator = extra[0](context)
        start = 0
    elif items:
        accumulator = items[0]
        start = 1
    else:
        raise Fault("reduce of empty array with no initial value")
    for index in range(start, len(items)):
        context.spend(cost)
        context.pointer = items[index]
        context.index = index
        context.acc = accumulator
        accumulator = body(context)
    return accumulator


def _sum(items: Sequence[object]) -> object:
    total: int | float = 0
    for item in items:
        if type(item) is int and type(total) is int:
            total = values.wrap_int(total + item)
        elif values.is_number(item):
            total = float(total) + float(item)  # type: ignore[arg-type]
        else:
            raise Fault(f"invalid argument for sum (type {type_name(item)})")
    return total


def is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)
