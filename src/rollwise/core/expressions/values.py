"""Go's view of Python values: type names, `%v` formatting, equality, ordering and arithmetic.

Who calls it: `evaluation` (operators) and `builtins`. The rules are those of expr's runtime
(vm/runtime): ints are Go's 64-bit `int` (wrapping on overflow), `/` always divides as floats
(so `1/0` is +Inf), `%` takes ints only and fails on zero, `**` is `math.Pow`, numbers of both
kinds compare with each other, nil equals only nil, and ordering a nil, a bool or a string
against a number is an error. Every failure raises `Fault` without a position: the closure that
called the operator adds its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import cast

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_STRING = 1_000_000  # characters in a string built by an expression


class Fault(Exception):
    """An evaluation failure; `pos` is filled in by the innermost closure that knows its node."""

    def __init__(self, detail: str, pos: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pos = pos


# -- kinds -------------------------------------------------------------------------------------


def is_number(value: object) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_array(value: object) -> bool:
    kind = type(value)
    if kind is list or kind is tuple:
        return True
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def is_map(value: object) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def as_list(value: object) -> list[object]:
    """A copy of an array value (call only after `is_array`)."""
    return list(cast("Iterable[object]", value))


def as_map(value: object) -> dict[object, object]:
    """A copy of a map value (call only after `is_map`)."""
    return dict(cast("Mapping[object, object]", value))


def type_name(value: object) -> str:
    """The Go type expr would report (`%T`) for a value of this Python type."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "time.Time"
    if isinstance(value, timedelta):
        return "time.Duration"
    if is_map(value):
        return "map[string]interface {}"
    if is_array(value):
        return "[]interface {}"
    if callable(value):
        return "func"
    return type(value).__name__


def mismatch(op: str, left: object, right: object) -> Fault:
    return Fault(
        f"invalid operation: {op} (mismatched types {type_name(left)} and {type_name(right)})"
    )


def wrap_int(value: int) -> int:
    """Go's int64 two's-complement wrap-around."""
    if INT_MIN <= value <= INT_MAX:
        return value
    return ((value - INT_MIN) % 2**64) + INT_MIN


def to_index(value: object, what: str) -> int:
    """expr's `ToInt` for indexes and slice bounds: ints as they are, floats truncated."""
    if type(value) is int:
        return value
    if is_number(value):
        number = float(value)  # type: ignore[arg-type]
        if math.isnan(number) or math.isinf(number):
            raise Fault(f"invalid {what}: {brief(value)}")
        return int(number)
    raise Fault(f"invalid {what} (type {type_name(value)})")


# -- formatting (Go's %v) ----------------------------------------------------------------------


def shortest_digits(number: float) -> tuple[str, int]:
    """Shortest decimal digits of a positive finite float and the position of the point."""
    text = repr(number)
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = whole + fraction
    stripped = raw.lstrip("0")
    point = len(whole) + (int(exponent) if exponent else 0) - (len(raw) - len(stripped))
    digits = stripped.rstrip("0")
    return (digits or "0"), point


def format_int(number: int) -> str:
    """An integer's digits. Go's are 64 bits; one from the environment (a JSON result) can be
    longer, and past ~4300 digits Python refuses to print it: that is a fault, not a crash."""
    try:
        return str(number)
    except ValueError:
        raise Fault("integer too large to format (more than 4300 digits)") from None


def format_float(number: float) -> str:
    """Go's `%v` of a float64: strconv's 'g', shortest digits (`1e+06`, `0.0001`, `1e-05`)."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    sign = "-" if number < 0 else ""
    digits, point = shortest_digits(abs(number))
    exponent = point - 1
    if exponent < -4 or exponent >= 6:  # strconv uses precision 6 for this choice
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return sign + plain_decimal(digits, point)


def plain_decimal(digits: str, point: int) -> str:
    """Digits with the decimal point at `point`, written without an exponent."""
    if point <= 0:
        return f"0.{'0' * -point}{digits}"
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return f"{digits[:point]}.{digits[point:]}"


def format_duration(value: timedelta) -> str:
    """Go's `time.Duration.String()`, e.g. `1h30m0s`, `1.5s`, `300ms`."""
    nanos = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1000
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim_fraction(nanos, size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim_fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _trim_fraction(amount: int, unit: int) -> str:
    whole, fraction = divmod(amount, unit)
    if not fraction:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}.{str(fraction).rjust(width, '0').rstrip('0')}"


def format_time(value: datetime) -> str:
    """Go's `time.Time.String()` without the monotonic part."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset()
    if offset is None:
        return text + " +0000 UTC"
    zone = value.tzname() or ""
    zone = "UTC" if zone in ("UTC", "UTC+00:00") and not offset else zone
    return f"{text} {value.strftime('%z')} {zone}"


def weight(value: object, limit: int) -> int:
    """The work of walking `value` as `==`, `in`, `string()` or an error message do: one per
    element at every depth (an element held twice is walked twice), one more per 64 characters
    of a string. Counting stops past `limit`, so weighing costs at most `limit` steps even for
    a value built to be huge when walked (`reduce(1..40, {[#acc, #acc]}, [0])`)."""
    total = 0
    pending: list[Iterator[object]] = [iter((value,))]
    while pending:
        item = next(pending[-1], _DONE)
        if item is _DONE:
            pending.pop()
            continue
        total += 1 + (len(item) // 64 if isinstance(item, str) else 0)
        if total > limit:
            break
        if is_map(item):  # its (key, value) pairs, each walked as a pair
            pending.append(iter(cast("Mapping[object, object]", item).items()))
        elif is_array(item):
            pending.append(iter(cast("Iterable[object]", item)))
    return total


_DONE = object()


def brief(value: object, limit: int = 60) -> str:
    """A value as error messages show it: `%v`, cut short, never failing on deep data."""
    if (is_array(value) or is_map(value)) and (
        len(value) > limit  # type: ignore[arg-type]
        or weight(value, 4 * limit) > 4 * limit
    ):
        return f"<{type_name(value)} of {len(value)} elements>"  # type: ignore[arg-type]
    try:
        text = format_value(value)
    except (RecursionError, Fault):
        return f"<{type_name(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_value(value: object) -> str:
    """Go's `%v`, as expr's `string()` builtin and its error messages print values."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return format_int(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if is_map(value):
        pairs = sorted(value.items(), key=lambda item: str(item[0]))  # type: ignore[attr-defined]
        return "map[" + " ".join(f"{format_value(k)}:{format_value(v)}" for k, v in pairs) + "]"
    if is_array(value):
        return "[" + " ".join(format_value(item) for item in value) + "]"  # type: ignore[attr-defined]
    # A function of the environment (or any other object): its kind, never Python's repr, which
    # names the function and its address (Go prints an address; nothing to match there).
    return f"<{type_name(value)}>"


# -- comparison --------------------------------------------------------------------------------


def equal(left: object, right: object) -> bool:
    """expr's `runtime.Equal`: numbers across int/float, arrays element-wise, nil only to nil."""
    kind = type(left)
    if kind is type(right) and (kind is str or kind is float or kind is int or kind is bool):
        return left == right
    if is_number(left) and is_number(right):
        return left == right
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if is_array(left) and is_array(right):
        items = list(left)  # type: ignore[call-overload]
        others = list(right)  # type: ignore[call-overload]
        return len(items) == len(others) and all(map(equal, items, others))
    if is_map(left) and is_map(right):
        mine: Mapping[object, object] = left  # type: ignore[assignment]
        theirs: Mapping[object, object] = right  # type: ignore[assignment]
        return mine.keys() == theirs.keys() and all(equal(mine[k], theirs[k]) for k in mine)
    if isinstance(left, datetime) and isinstance(right, datetime):
        return left == right
    if isinstance(left, timedelta) and isinstance(right, timedelta):
        return left == right
    return False


def _orderable(op: str, left: object, right: object) -> None:
    """Raise unless expr can order these two values (numbers, strings, times, durations)."""
    if is_number(left) and is_number(right):
        return
    if isinstance(left, datetime) and isinstance(right, datetime):
        if (left.utcoffset() is None) != (right.utcoffset() is None):
            raise Fault("cannot compare a time with a zone to one without")
        return
    if isinstance(left, str | timedelta) and type(left) is type(right):
        return
    raise mismatch(op, left, right)


def less(left: object, right: object) -> bool:
    _orderable("<", left, right)
    return left < right  # type: ignore[operator,no-any-return]


def greater(left: object, right: object) -> bool:
    _orderable(">", left, right)
    return left > right  # type: ignore[operator,no-any-return]


def less_equal(left: object, right: object) -> bool:
    _orderable("<=", left, right)
    return left <= right  # type: ignore[operator,no-any-return]


def greater_equal(left: object, right: object) -> bool:
    _orderable(">=", left, right)
    return left >= right  # type: ignore[operator,no-any-return]


# -- arithmetic --------------------------------------------------------------------------------


def _checked_string(text: str) -> str:
    if len(text) > MAX_STRING:
        raise Fault(f"string too long (more than {MAX_STRING} characters)")
    return text


def add(left: object, right: object) -> object:
    if type(left) is int and type(right) is int:
        return wrap_int(left + right)
    if is_number(left) and is_number(right):
        return float(left) + float(right)  # type: ignore[arg-type]
    if isinstance(left, str) and isinstance(right, str):
        return _checked_string(left + right)
    if isinstance(left, datetime) and isinstance(right, timedelta):
        return left + right
    if isinstance(left, timedelta) and isinstance(right, datetime | timedelta):
        return right + left
    raise mismatch("+", left, right)


def subtract(left: object, right: object) -> object:
    if type(left) is int and type(right) is int:
        return wrap_int(left - right)
    if is_number(left) and is_number(right):
        return float(left) - float(right)  # type: ignore[arg-type]
    if isinstance(left, datetime) and isinstance(right, datetime):
        _orderable("-", left, right)
        return left - right
    if isinstance(left, datetime | timedelta) and isinstance(right, timedelta):
        return left - right
    raise mismatch("-", left, right)


def multiply(left: object, right: object) -> object:
    if type(left) is int and type(right) is int:
        return wrap_int(left * right)
    if is_number(left) and is_number(right):
        return float(left) * float(right)  # type: ignore[arg-type]
    if isinstance(left, timedelta) and type(right) is int:
        return left * right
    if type(left) is int and isinstance(right, timedelta):
        return right * left
    raise mismatch("*", left, right)


def divide(left: object, right: object) -> float:
    if not (is_number(left) and is_number(right)):
        raise mismatch("/", left, right)
    dividend = float(left)  # type: ignore[arg-type]
    divisor = float(right)  # type: ignore[arg-type]
    if divisor == 0.0:
        # Go's IEEE division: x/0 is ±Inf, 0/0 is NaN; Python would raise.
        if dividend == 0.0 or math.isnan(dividend):
            return math.nan
        return math.copysign(math.inf, dividend) * math.copysign(1.0, divisor)
    return dividend / divisor


def modulo(left: object, right: object) -> int:
    if not (isinstance(left, int) and isinstance(right, int)) or bool in (type(left), type(right)):
        raise mismatch("%", left, right)
    dividend = int(left)
    divisor = int(right)
    if divisor == 0:
        raise Fault("integer divide by zero")
    remainder = abs(dividend) % abs(divisor)  # Go truncates: the sign follows the dividend
    return wrap_int(-remainder if dividend < 0 else remainder)


def power(left: object, right: object) -> float:
    if not (is_number(left) and is_number(right)):
        raise mismatch("**", left, right)
    base = float(left)  # type: ignore[arg-type]
    exponent = float(right)  # type: ignore[arg-type]
    odd = exponent.is_integer() and int(exponent) % 2 == 1
    try:
        return math.pow(base, exponent)
    except OverflowError:
        return -math.inf if base < 0 and odd else math.inf
    except ValueError:  # Go's math.Pow: 0**-n is ±Inf, a negative base to a fraction is NaN
        if base == 0.0:
            return -math.inf if math.copysign(1.0, base) < 0 and odd else math.inf
        return math.nan


def negate(value: object) -> object:
    if type(value) is int:
        return wrap_int(-value)
    if type(value) is float:
        return -value
    if is_number(value):
        return -value  # type: ignore[operator]
    if isinstance(value, timedelta):
        return -value
    raise Fault(f"invalid operation: - {type_name(value)}")


def plus(value: object) -> object:
    if is_number(value) or isinstance(value, timedelta):
        return value
    raise Fault(f"invalid operation: + {type_name(value)}")


# -- membership and strings --------------------------------------------------------------------


def contained(needle: object, haystack: object) -> bool:
    """expr's `in`: an element of an array (by `equal`), a key of a map; nil holds nothing."""
    if haystack is None:
        return False
    if is_map(haystack):
        try:
            return needle in haystack  # type: ignore[operator]
        except TypeError:
            raise Fault(f"cannot use {type_name(needle)} as a map key") from None
    if is_array(haystack):
        return any(equal(item, needle) for item in haystack)  # type: ignore[attr-defined]
    raise Fault(f'operator "in" not defined on {type_name(haystack)}')


def strings(op: str, left: object, right: object) -> tuple[str, str]:
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    raise mismatch(op, left, right)


def size(value: object) -> int:
    """How many elements or characters a value holds (0 for scalars): used to charge work."""
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    return 0


def fetch(obj: object, key: object) -> object:
    """expr's `runtime.Fetch`: `obj.key` / `obj[key]`.

    A missing map key reads as nil (Go's zero value of `interface{}`); an array index may be
    negative (counted from the end) but must fall inside the array; anything else is an error.
    A string index yields the character (Go would yield the byte).
    """
    if type(obj) is dict:
        try:
            return obj.get(key)
        except TypeError:
            raise Fault(f"cannot use {type_name(key)} as a map key") from None
    if isinstance(obj, str) or is_array(obj):
        if not is_number(key):
            raise Fault(f"cannot fetch {brief(key)} from {type_name(obj)}")
        sequence: Sequence[object] = obj  # type: ignore[assignment]
        index = to_index(key, "index")
        length = len(sequence)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise Fault(f"index out of range: {index} (array length is {length})")
        return sequence[index]
    if is_map(obj):
        try:
            return obj.get(key)  # type: ignore[attr-defined]
        except TypeError:
            raise Fault(f"cannot use {type_name(key)} as a map key") from None
    raise Fault(f"cannot fetch {brief(key)} from {type_name(obj)}")


def slice_of(obj: object, start: object, end: object) -> object:
    """expr's `runtime.Slice`: Go-style bounds, clamped rather than failing."""
    if not (isinstance(obj, str) or is_array(obj)):
        raise Fault(f"cannot slice {type_name(obj)}")
    sequence: Sequence[object] = obj  # type: ignore[assignment]
    length = len(sequence)
    low = 0 if start is None else to_index(start, "slice index")
    high = length if end is None else to_index(end, "slice index")
    if low < 0:
        low = max(length + low, 0)
    if high < 0:
        high = max(length + high, 0)
    high = min(high, length)
    low = min(low, high)
    return sequence[low:high]
