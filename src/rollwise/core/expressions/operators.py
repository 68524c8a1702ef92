"""The closures of leaves, operators and member access: one small function per node kind.

Who calls it: `evaluation._Compiler`, which hands each function the node and the closures of its
children. Operators take a fast path for the common types (floats and ints compared or added)
and fall back to `values` for expr's full rules; every failure is located at the node.
"""

from __future__ import annotations

from collections.abc import Callable

from rollwise.core.expressions import regexes, values
from rollwise.core.expressions.context import Context, NilChain, Run, describe, located
from rollwise.core.expressions.nodes import (
    Binary,
    Conditional,
    Literal,
    MapLit,
    Member,
    Name,
    Pointer,
    Slice,
    Unary,
)
from rollwise.core.expressions.values import Fault, type_name

MAX_RANGE = 1_000_000  # elements in `a..b`


# -- leaves ------------------------------------------------------------------------------------


def name(node: Name) -> Run:
    name = node.name
    pos = node.pos

    def run(context: Context) -> object:
        try:
            return context.env[name]
        except KeyError:
            raise Fault(f"unknown name {name}", pos) from None

    return run


def pointer(node: Pointer) -> Run:
    if node.name == "index":
        return lambda context: context.index
    if node.name == "acc":
        return lambda context: context.acc
    return lambda context: context.pointer


# -- operators ---------------------------------------------------------------------------------


def unary(node: Unary, operand: Run) -> Run:
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
            raise located(fault, pos) from None

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


def binary(node: Binary, left: Run, right: Run) -> Run:
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
        raise located(fault, pos) from None
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
        if values.is_array(a) or values.is_map(a):
            context.spend_on(a)  # equal() walks arrays and maps element by element, at any depth
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
                raise located(fault, pos) from None
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
            raise located(fault, pos) from None
        except (OverflowError, TypeError, ValueError) as error:
            raise Fault(describe(error), pos) from None

    return run


def _general(node: Binary, left: Run, right: Run) -> Run:
    """`in`, `..`, `matches`, `contains`, `startsWith`, `endsWith`."""
    pos = node.pos
    op = node.op

    def apply(context: Context, a: object, b: object) -> object:
        if op == "in":
            if values.is_array(b):
                context.spend_on(b)  # each element is compared with equal(), at any depth
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
            raise located(fault, pos) from None
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


def conditional(node: Conditional, cond: Run, then: Run, otherwise: Run) -> Run:
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


def member(node: Member, obj: Run, key: Run) -> Run:
    pos = node.pos
    optional = node.optional
    constant = node.key.value if isinstance(node.key, Literal) else None

    if isinstance(constant, str):

        def run_property(context: Context) -> object:
            target = obj(context)
            if type(target) is dict:
                return target.get(constant)
            if target is None and optional:
                raise NilChain
            try:
                return values.fetch(target, constant)
            except Fault as fault:
                raise located(fault, pos) from None

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
                raise NilChain
            try:
                return values.fetch(target, constant)
            except Fault as fault:
                raise located(fault, pos) from None

        return run_index

    def run(context: Context) -> object:
        target = obj(context)
        if target is None and optional:
            raise NilChain
        index = key(context)
        try:
            return values.fetch(target, index)
        except Fault as fault:
            raise located(fault, pos) from None

    return run


def chain(inner: Run) -> Run:
    def run(context: Context) -> object:
        try:
            return inner(context)
        except NilChain:
            return None

    return run


def slice_(node: Slice, parts: list[Run]) -> Run:
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
            raise located(fault, pos) from None
        context.spend(1 + values.size(result))
        return result

    return run


def array(items: list[Run]) -> Run:
    return lambda context: [item(context) for item in items]


def map_(node: MapLit, parts: list[Run]) -> Run:
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
