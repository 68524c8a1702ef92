"""The closures of calls: builtins, functions of the environment, and the predicate builtins.

Who calls it: `evaluation._Compiler`. A predicate (`all`, `map`, `filter`, `reduce`, ...) runs
its closure once per element with `#`, `#index` and `#acc` set on the context (and restored
afterwards, so predicates nest), charging the closure's size to the budget at each step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from rollwise.core.expressions import values
from rollwise.core.expressions.builtins import sort_values
from rollwise.core.expressions.context import Context, Run, describe, located
from rollwise.core.expressions.nodes import Call
from rollwise.core.expressions.values import Fault, type_name


def _truth(value: object, what: str) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, bool):
        return bool(value)
    raise Fault(f"non-bool value (type {type_name(value)}) used as {what}")


def _items(value: object) -> Sequence[object]:
    if type(value) is list or type(value) is tuple:
        return value
    if values.is_array(value):
        return values.as_list(value)
    raise Fault(f"cannot iterate {type_name(value)}")


def _charge_strings(context: Context, arguments: Sequence[object]) -> None:
    """Charge a call for the text it is given: most functions read all of it (trim, indexOf,
    parsing numbers and dates), and a constant string folded at compile time costs nothing
    to produce, so without this `map(1..100000, {trim(#)})` over one long string could run
    for minutes within its budget."""
    for argument in arguments:
        if type(argument) is str and len(argument) > 64:
            context.spend(len(argument) // 64)


def builtin_call(
    node: Call, function: Callable[[Context, Sequence[object]], object], args: list[Run]
) -> Run:
    pos = node.pos
    if len(args) == 1:  # the common `len(result)`: no list to build
        only = args[0]

        def run_one(context: Context) -> object:
            argument = only(context)
            try:
                if type(argument) is str and len(argument) > 64:
                    context.spend(len(argument) // 64)
                return function(context, (argument,))
            except Fault as fault:
                raise located(fault, pos) from None
            except (OverflowError, TypeError, ValueError, RecursionError) as error:
                raise Fault(f"{node.name}: {describe(error)}", pos) from None

        return run_one

    def run(context: Context) -> object:
        arguments = [arg(context) for arg in args]
        try:
            _charge_strings(context, arguments)
            return function(context, arguments)
        except Fault as fault:
            raise located(fault, pos) from None
        except (OverflowError, TypeError, ValueError, RecursionError) as error:
            raise Fault(f"{node.name}: {describe(error)}", pos) from None

    return run


def env_call(node: Call, args: list[Run]) -> Run:
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
            _charge_strings(context, arguments)
            return function(*arguments)
        except Fault as fault:
            raise located(fault, pos) from None
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


def predicate_call(node: Call, array: Run, body: Run | None, cost: int, extra: list[Run]) -> Run:
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
            raise located(fault, pos) from None
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
