"""expr's builtin functions (builtin/builtin.go), as functions of (context, arguments).

Who calls it: `evaluation`, which checks the number of arguments at compile time from `BUILTINS`
and calls `function(context, args)`. The predicate builtins (`all`, `map`, `filter`, ...) take a
closure and are compiled as special forms in `evaluation`; only their arities live here
(`PREDICATES`). Work proportional to the size of an argument is charged to the context's budget.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from rollwise.core.expressions import times
from rollwise.core.expressions.context import Context
from rollwise.core.expressions.values import (
    INT_MAX,
    INT_MIN,
    MAX_STRING,
    Fault,
    as_list,
    as_map,
    brief,
    equal,
    fetch,
    format_float,
    format_int,
    format_value,
    is_array,
    is_map,
    is_number,
    less,
    plain_decimal,
    shortest_digits,
    type_name,
    weight,
    wrap_int,
)

Function = Callable[[Context, Sequence[object]], object]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Builtin:
    function: Function
    min_args: int
    max_args: int
    pure: bool = True  # same arguments, same result: may be folded at compile time


# name -> (min, max) arguments; the second argument is the predicate.
PREDICATES: dict[str, tuple[int, int]] = {
    "all": (2, 2),
    "none": (2, 2),
    "any": (2, 2),
    "one": (2, 2),
    "filter": (2, 2),
    "map": (2, 2),
    "count": (1, 2),
    "sum": (1, 2),
    "find": (2, 2),
    "findIndex": (2, 2),
    "findLast": (2, 2),
    "findLastIndex": (2, 2),
    "groupBy": (2, 2),
    "sortBy": (2, 3),
    "reduce": (2, 3),
}

_INT_TEXT = re.compile(r"[+-]?\d+")
# One way only to read each digit (`\d+\.?\d*` backtracks quadratically on a long non-number).
_FLOAT_TEXT = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE
)


def _invalid(name: str, value: object) -> Fault:
    return Fault(f"invalid argument for {name} (type {type_name(value)})")


def _text(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    raise _invalid(name, value)


def _int(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _invalid(name, value)


def _array(name: str, value: object) -> list[object]:
    if is_array(value):
        return as_list(value)
    raise _invalid(name, value)


def _checked(text: str) -> str:
    if len(text) > MAX_STRING:
        raise Fault(f"memory budget exceeded (a string of more than {MAX_STRING} characters)")
    return text


def _charge_text(context: Context, value: object) -> None:
    """Charge for writing `value` out as text (`string`, `toJSON`): a step per element at every
    depth and per 64 characters of its strings, as `Context.spend_on` weighs a walk, and refuse
    what would be too long before writing any of it (a thousand references to one long string
    are cheap to make, not to write)."""
    stack = [value]
    length = 0
    while stack:
        item = stack.pop()
        context.spend(1)
        if isinstance(item, str):
            length += len(item)
            context.spend(len(item) // 64)
            if length > MAX_STRING:
                raise Fault(
                    f"memory budget exceeded (a string of more than {MAX_STRING} characters)"
                )
        elif is_map(item):
            stack.extend(item.items())  # type: ignore[attr-defined]
        elif is_array(item):
            stack.extend(item)  # type: ignore[arg-type]


def _charge(context: Context, value: object) -> None:
    if isinstance(value, str):
        context.spend(1 + len(value) // 64)
    elif isinstance(value, list | tuple | dict):
        context.spend(1 + len(value))


# -- numbers -----------------------------------------------------------------------------------


def _len(context: Context, args: Sequence[object]) -> object:
    value = args[0]
    if isinstance(value, str | list | tuple | dict) or is_array(value) or is_map(value):
        return len(value)  # type: ignore[arg-type]
    raise Fault(f"invalid argument for len (type {type_name(value)})")


def _type(context: Context, args: Sequence[object]) -> object:
    value = args[0]
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if is_map(value):
        return "map"
    if is_array(value):
        return "array"
    if callable(value):
        return "func"
    name = type_name(value)
    return name if "." in name else "unknown"


def _abs(context: Context, args: Sequence[object]) -> object:
    value = args[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return wrap_int(abs(value))
    if isinstance(value, float):
        return abs(value)
    raise _invalid("abs", value)


def _rounding(name: str, how: Callable[[float], float]) -> Function:
    def run(context: Context, args: Sequence[object]) -> object:
        value = args[0]
        if isinstance(value, float):
            return value if math.isnan(value) or math.isinf(value) else float(how(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise _invalid(name, value)

    return run


def _round_half_away(value: float) -> float:
    """Go's math.Round: halves away from zero (Python's round() goes to even)."""
    whole = math.trunc(value)
    if abs(value - whole) >= 0.5:
        whole += int(math.copysign(1, value))
    return float(whole)


def _to_int(context: Context, args: Sequence[object]) -> object:
    value = args[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise Fault(f"invalid operation: int({format_float(value)})")
        return wrap_int(int(value))
    if isinstance(value, str):
        # an int64 has at most 19 digits: longer text is out of range (and slow to convert)
        if len(value) <= 20 and _INT_TEXT.fullmatch(value) and INT_MIN <= int(value) <= INT_MAX:
            return int(value)
        raise Fault(f"invalid operation: int({brief(value)})")
    raise Fault(f"invalid operation: int({type_name(value)})")


def _to_float(context: Context, args: Sequence[object]) -> object:
    value = args[0]
    if is_number(value):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        if _FLOAT_TEXT.fullmatch(value):
            return float(value)
        raise Fault(f"invalid operation: float({brief(value)})")
    raise Fault(f"invalid operation: float({type_name(value)})")


def _string(context: Context, args: Sequence[object]) -> object:
    _charge_text(context, args[0])
    return _checked(format_value(args[0]))


def _numbers(name: str, values: Sequence[object], context: Context) -> list[int | float]:
    """The numbers of the arguments, arrays flattened (expr's min/max/mean/median)."""
    out: list[int | float] = []
    for value in values:
        if is_array(value):
            context.spend(1 + len(value))  # type: ignore[arg-type]
            out.extend(_numbers(name, list(value), context))  # type: ignore[call-overload]
        elif is_number(value):
            out.append(value)  # type: ignore[arg-type]
        else:
            raise _invalid(name, value)
    return out


def _extreme(name: str, better: Callable[[object, object], bool]) -> Function:
    def run(context: Context, args: Sequence[object]) -> object:
        if len(args) == 1 and not is_array(args[0]) and not is_number(args[0]):
            return args[0]  # expr hands a single non-number back unchanged
        best: object = None
        for number in _numbers(name, args, context):
            if best is None or better(best, number):
                best = number
        return best

    return run


def _mean(context: Context, args: Sequence[object]) -> object:
    numbers = _numbers("mean", args, context)
    return math.fsum(numbers) / len(numbers) if numbers else 0.0


def _median(context: Context, args: Sequence[object]) -> object:
    numbers = sorted(float(n) for n in _numbers("median", args, context))
    if not numbers:
        return 0.0
    middle = len(numbers) // 2
    if len(numbers) % 2:
        return numbers[middle]
    return (numbers[middle - 1] + numbers[middle]) / 2


def _bits(name: str, how: Callable[[int, int], int]) -> Function:
    def run(context: Context, args: Sequence[object]) -> object:
        left, right = args
        if not (type(left) is int and type(right) is int):
            raise Fault(f"invalid operation: {name}({type_name(left)}, {type_name(right)})")
        if name in ("bitshl", "bitshr", "bitushr") and right < 0:
            raise Fault(f"invalid operation: negative shift count {right} (type int)")
        return wrap_int(how(left, min(right, 64) if name.startswith("bitsh") else right))

    return run


def _bitnot(context: Context, args: Sequence[object]) -> object:
    if type(args[0]) is not int:
        raise _invalid("bitnot", args[0])
    return ~args[0]


# -- strings -----------------------------------------------------------------------------------


def _trim(context: Context, args: Sequence[object]) -> object:
    text = _text("trim", args[0])
    if len(args) == 2:
        return text.strip(_text("trim", args[1]))
    return text.strip()


def _trim_affix(name: str, prefix: bool) -> Function:
    def run(context: Context, args: Sequence[object]) -> object:
        text = _text(name, args[0])
        affix = _text(name, args[1]) if len(args) == 2 else " "
        return text.removeprefix(affix) if prefix else text.removesuffix(affix)

    return run


def _case(name: str, upper: bool) -> Function:
    def run(context: Context, args: Sequence[object]) -> object:
        text = _text(name, args[0])
        _charge(context, text)
        return _checked(text.upper() if upper else text.lower())  # ß is SS: text can grow

    return run


def _split_parts(text: str, separator: str, limit: int, keep: bool) -> list[str]:
    """Go's strings.SplitN / SplitAfterN (limit < 0: all, 0: none)."""
    if limit == 0:
        return []
    if separator == "":
        chars = list(text)
        if 0 < limit < len(chars):
            chars = [*chars[: limit - 1], "".join(chars[limit - 1 :])]
        return chars
    pieces = text.split(separator, limit - 1) if limit > 0 else text.split(separator)
    if keep:
        return [p + separator for p in pieces[:-1]] + pieces[-1:]
    return pieces


def _splitter(name: str, keep: bool) -> Function:
    def run(context: Context, args: Sequence[object]) -> object:
        text = _text(name, args[0])
        separator = _text(name, args[1])
        limit = _int(name, args[2]) if len(args) == 3 else -1
        _charge(context, text)
        # Every part is an object of its own: charged before they are made.
        count = len(text) if separator == "" else text.count(separator) + 1
        context.spend(count if limit < 0 else min(count, limit))
        parts: list[object] = list(_split_parts(text, separator, limit, keep))
        return parts

    return run


def _replace(context: Context, args: Sequence[object]) -> object:
    text, old, new = (_text("replace", a) for a in args[:3])
    count = _int("replace", args[3]) if len(args) == 4 else -1
    _charge(context, text)
    # The length of the result, known before it is built (it can be a million times the text).
    found = len(text) + 1 if old == "" else text.count(old)
    if count >= 0:
        found = min(found, count)
    if len(text) + found * (len(new) - len(old)) > MAX_STRING:
        raise Fault("memory budget exceeded")
    result = text.replace(old, new, count)
    _charge(context, result)
    return _checked(result)


def _repeat(context: Context, args: Sequence[object]) -> object:
    text = _text("repeat", args[0])
    times_ = _int("repeat", args[1])
    if times_ < 0:
        raise Fault(f"invalid argument for repeat (expected positive integer, got {times_})")
    if len(text) * times_ > MAX_STRING:
        raise Fault("memory budget exceeded")
    result = text * times_
    _charge(context, result)
    return result


def _join(context: Context, args: Sequence[object]) -> object:
    items = _array("join", args[0])
    glue = _text("join", args[1]) if len(args) == 2 else ""
    context.spend(1 + len(items))
    texts = [item for item in items if isinstance(item, str)]
    if len(texts) != len(items):
        bad = next(item for item in items if not isinstance(item, str))
        raise Fault(f"invalid argument for join: element of type {type_name(bad)}")
    # The length is known before joining: a million references to one long string is cheap
    # to make but not to join.
    length = sum(len(text) for text in texts) + len(glue) * max(len(texts) - 1, 0)
    if length > MAX_STRING:
        raise Fault(f"memory budget exceeded (a string of more than {MAX_STRING} characters)")
    context.spend(length // 64)
    return glue.join(texts)


def _index_of(name: str, last: bool) -> Function:
    def run(context: Context, args: Sequence[object]) -> object:
        text = _text(name, args[0])
        part = _text(name, args[1])
        return text.rfind(part) if last else text.find(part)

    return run


def _affix_test(name: str, prefix: bool) -> Function:
    def run(context: Context, args: Sequence[object]) -> object:
        text = _text(name, args[0])
        affix = _text(name, args[1])
        return text.startswith(affix) if prefix else text.endswith(affix)

    return run


# -- encodings ---------------------------------------------------------------------------------


def _json_float(number: float) -> str:
    """encoding/json's float64: plain decimals, an exponent only below 1e-6 or from 1e21."""
    if math.isnan(number) or math.isinf(number):
        raise Fault(f"json: unsupported value: {format_float(number)}")
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    sign = "-" if number < 0 else ""
    digits, point = shortest_digits(abs(number))
    if 1e-6 <= abs(number) < 1e21:
        return sign + plain_decimal(digits, point)
    exponent = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    written = f"{abs(exponent):02d}"
    if exponent < 0:  # Go cleans e-07 up to e-7 (and only the negative ones)
        written = written.lstrip("0") or "0"
    return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{written}"


def _json_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(char, escape)
    return encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _to_json_text(value: object, indent: str, context: Context) -> str:
    """Go's json.MarshalIndent(value, "", "  "): sorted keys, HTML-safe strings."""
    context.spend(1)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return format_int(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, str):
        return _json_string(value)
    inner = indent + "  "
    if is_map(value):
        items = sorted((str(k), v) for k, v in value.items())  # type: ignore[attr-defined]
        if not items:
            return "{}"
        body = ",\n".join(
            f"{inner}{_json_string(k)}: {_to_json_text(v, inner, context)}" for k, v in items
        )
        return "{\n" + body + "\n" + indent + "}"
    if is_array(value):
        elements = list(value)  # type: ignore[call-overload]
        if not elements:
            return "[]"
        body = ",\n".join(inner + _to_json_text(v, inner, context) for v in elements)
        return "[\n" + body + "\n" + indent + "]"
    raise Fault(f"json: unsupported type: {type_name(value)}")


def _to_json(context: Context, args: Sequence[object]) -> object:
    _charge_text(context, args[0])
    return _checked(_to_json_text(args[0], "", context))


def _no_constant(name: str) -> object:
    raise ValueError(f"invalid character in JSON: {name}")


def _from_json(context: Context, args: Sequence[object]) -> object:
    text = _text("fromJSON", args[0])
    _charge(context, text)
    try:
        # encoding/json decodes every number into a float64 and knows no NaN or Infinity.
        return json.loads(text, parse_int=float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise Fault(f"fromJSON: {error}") from None


def _to_base64(context: Context, args: Sequence[object]) -> object:
    text = _text("toBase64", args[0])
    _charge(context, text)
    return _checked(base64.b64encode(text.encode()).decode())


def _from_base64(context: Context, args: Sequence[object]) -> object:
    text = _text("fromBase64", args[0])
    _charge(context, text)
    try:
        return base64.b64decode(text.encode(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError) as error:
        raise Fault(f"illegal base64 data: {error}") from None


# -- time --------------------------------------------------------------------------------------


def _now(context: Context, args: Sequence[object]) -> object:
    if context.now is None:
        raise Fault("now() needs the current time, and none was given to this evaluation")
    return context.now


def _duration(context: Context, args: Sequence[object]) -> object:
    return times.parse_duration(_text("duration", args[0]))


def _date(context: Context, args: Sequence[object]) -> object:
    text = _text("date", args[0])
    layout = _text("date", args[1]) if len(args) > 1 else None
    zone = _text("date", args[2]) if len(args) > 2 else None
    return times.parse_date(text, layout, zone)


# -- collections -------------------------------------------------------------------------------


def _quiet_fetch(index: int) -> Function:
    def run(context: Context, args: Sequence[object]) -> object:
        try:
            return fetch(args[0], index)
        except Fault:
            return None  # expr's first()/last() recover from any failure with nil

    return run


def _get(context: Context, args: Sequence[object]) -> object:
    try:
        return fetch(args[0], args[1])
    except Fault:
        return None


def _take(context: Context, args: Sequence[object]) -> object:
    items = _array("take", args[0])
    count = args[1]
    if not (isinstance(count, int) and not isinstance(count, bool)):
        raise Fault(f"cannot take {type_name(count)} elements")
    context.spend(1 + len(items))
    return items[: max(count, 0)]


def _map_arg(name: str, value: object) -> dict[object, object]:
    if is_map(value):
        return as_map(value)
    raise Fault(f"cannot get {name} from {type_name(value)}")


def _keys(context: Context, args: Sequence[object]) -> object:
    mapping = _map_arg("keys", args[0])
    context.spend(1 + len(mapping))
    return list(mapping)


def _values(context: Context, args: Sequence[object]) -> object:
    mapping = _map_arg("values", args[0])
    context.spend(1 + len(mapping))
    return list(mapping.values())


def _to_pairs(context: Context, args: Sequence[object]) -> object:
    mapping = _map_arg("pairs", args[0])
    context.spend(1 + len(mapping))
    return [[k, v] for k, v in mapping.items()]


def _from_pairs(context: Context, args: Sequence[object]) -> object:
    out: dict[object, object] = {}
    for pair in _array("fromPairs", args[0]):
        items = as_list(pair) if is_array(pair) else []
        if len(items) != 2:
            raise Fault(f"invalid pair {brief(pair)}")
        key, value = items
        try:
            out[key] = value
        except TypeError:
            raise Fault(f"cannot use {type_name(key)} as a map key") from None
    context.spend(1 + len(out))
    return out


def _reverse(context: Context, args: Sequence[object]) -> object:
    items = _array("reverse", args[0])
    context.spend(1 + len(items))
    return items[::-1]


def _uniq(context: Context, args: Sequence[object]) -> object:
    out: list[object] = []
    for item in _array("uniq", args[0]):
        # Each comparison may walk the whole item (arrays and maps compare element-wise).
        context.spend((1 + len(out)) * weight(item, max(context.steps, 0) + 1))
        if not any(equal(item, seen) for seen in out):
            out.append(item)
    return out


def _concat(context: Context, args: Sequence[object]) -> object:
    out: list[object] = []
    for value in args:
        items = _array("concat", value)
        context.spend(1 + len(items))
        out.extend(items)
    return out


def _flatten_into(out: list[object], items: Sequence[object], context: Context) -> None:
    for item in items:
        context.spend(1)
        if is_array(item):
            _flatten_into(out, item, context)  # type: ignore[arg-type]
        else:
            out.append(item)


def _flatten(context: Context, args: Sequence[object]) -> object:
    out: list[object] = []
    _flatten_into(out, _array("flatten", args[0]), context)
    return out


def _order(value: object) -> bool:
    if value == "asc":
        return False
    if value == "desc":
        return True
    raise Fault(f"invalid order {brief(value)}, expected asc or desc")


def sort_values(
    items: Sequence[T], descending: bool, key: Callable[[T], object] | None = None
) -> list[T]:
    """Sorted by expr's ordering (numbers, strings, times); stable, also when descending."""

    def compare(first: T, second: T) -> int:
        left: object = first if key is None else key(first)
        right: object = second if key is None else key(second)
        if less(left, right):
            return -1
        return 1 if less(right, left) else 0

    return sorted(items, key=functools.cmp_to_key(compare), reverse=descending)


def _sort(context: Context, args: Sequence[object]) -> object:
    items = _array("sort", args[0])
    descending = _order(args[1]) if len(args) == 2 else False
    context.spend(1 + len(items) * max(1, len(items).bit_length()))
    return sort_values(items, descending)


BUILTINS: dict[str, Builtin] = {
    "len": Builtin(_len, 1, 1),
    "type": Builtin(_type, 1, 1),
    "abs": Builtin(_abs, 1, 1),
    "ceil": Builtin(_rounding("ceil", math.ceil), 1, 1),
    "floor": Builtin(_rounding("floor", math.floor), 1, 1),
    "round": Builtin(_rounding("round", _round_half_away), 1, 1),
    "int": Builtin(_to_int, 1, 1),
    "float": Builtin(_to_float, 1, 1),
    "string": Builtin(_string, 1, 1),
    "trim": Builtin(_trim, 1, 2),
    "trimPrefix": Builtin(_trim_affix("trimPrefix", True), 1, 2),
    "trimSuffix": Builtin(_trim_affix("trimSuffix", False), 1, 2),
    "upper": Builtin(_case("upper", True), 1, 1),
    "lower": Builtin(_case("lower", False), 1, 1),
    "split": Builtin(_splitter("split", False), 2, 3),
    "splitAfter": Builtin(_splitter("splitAfter", True), 2, 3),
    "replace": Builtin(_replace, 3, 4),
    "repeat": Builtin(_repeat, 2, 2),
    "join": Builtin(_join, 1, 2),
    "indexOf": Builtin(_index_of("indexOf", False), 2, 2),
    "lastIndexOf": Builtin(_index_of("lastIndexOf", True), 2, 2),
    "hasPrefix": Builtin(_affix_test("hasPrefix", True), 2, 2),
    "hasSuffix": Builtin(_affix_test("hasSuffix", False), 2, 2),
    "max": Builtin(_extreme("max", lambda best, other: less(best, other)), 1, 1_000),
    "min": Builtin(_extreme("min", lambda best, other: less(other, best)), 1, 1_000),
    "mean": Builtin(_mean, 1, 1_000),
    "median": Builtin(_median, 1, 1_000),
    "toJSON": Builtin(_to_json, 1, 1),
    "fromJSON": Builtin(_from_json, 1, 1),
    "toBase64": Builtin(_to_base64, 1, 1),
    "fromBase64": Builtin(_from_base64, 1, 1),
    "now": Builtin(_now, 0, 0, pure=False),
    "duration": Builtin(_duration, 1, 1),
    "date": Builtin(_date, 1, 3),
    "first": Builtin(_quiet_fetch(0), 1, 1),
    "last": Builtin(_quiet_fetch(-1), 1, 1),
    "get": Builtin(_get, 2, 2),
    "take": Builtin(_take, 2, 2),
    "keys": Builtin(_keys, 1, 1),
    "values": Builtin(_values, 1, 1),
    "toPairs": Builtin(_to_pairs, 1, 1),
    "fromPairs": Builtin(_from_pairs, 1, 1),
    "reverse": Builtin(_reverse, 1, 1),
    "uniq": Builtin(_uniq, 1, 1),
    "concat": Builtin(_concat, 1, 1_000),
    "flatten": Builtin(_flatten, 1, 1),
    "sort": Builtin(_sort, 1, 2),
    "bitand": Builtin(_bits("bitand", lambda a, b: a & b), 2, 2),
    "bitor": Builtin(_bits("bitor", lambda a, b: a | b), 2, 2),
    "bitxor": Builtin(_bits("bitxor", lambda a, b: a ^ b), 2, 2),
    "bitnand": Builtin(_bits("bitnand", lambda a, b: a & ~b), 2, 2),
    "bitshl": Builtin(_bits("bitshl", lambda a, b: a << b), 2, 2),
    "bitshr": Builtin(_bits("bitshr", lambda a, b: a >> b), 2, 2),
    "bitushr": Builtin(_bits("bitushr", lambda a, b: (a % 2**64) >> b), 2, 2),
    "bitnot": Builtin(_bitnot, 1, 1),
}
