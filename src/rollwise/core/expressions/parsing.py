"""From text to a checked syntax tree: lark's LALR parse, then expr's compile-time rules.

Who calls it: `evaluation.compile_expression`. The parser is built once, lazily (importing the
package stays cheap for the CLI), and builds `nodes` directly while it parses (lark's inline
transformer), so no parse tree is kept and nothing recurses while parsing. Then, with the depth
known to be bounded, one recursive pass applies what expr checks when it compiles: `#` only
inside a predicate, closures only as predicate arguments, the number of arguments of builtins,
and it collects the free names the environment must provide.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from rollwise.core.expressions.builtins import BUILTINS, PREDICATES
from rollwise.core.expressions.errors import ExpressionError
from rollwise.core.expressions.grammar import GRAMMAR
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
from rollwise.core.expressions.values import INT_MAX, Fault

if TYPE_CHECKING:
    from lark import Lark, Token

MAX_LENGTH = 4096  # characters of expression text
MAX_DEPTH = 100  # nesting of the syntax tree

COMPARISONS = frozenset(
    ["==", "!=", "<", ">", "<=", ">=", "in", "matches", "contains", "startsWith", "endsWith"]
)
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


@dataclass(frozen=True, slots=True)
class Parsed:
    node: Node
    names: Mapping[str, int]  # names the environment must provide -> first position


def parse_expression(text: str) -> Parsed:
    """Parse and check `text`; every failure is an ExpressionError with the 0-based position."""
    try:
        if len(text) > MAX_LENGTH:
            raise Fault(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH)
        node = _parse(text)
        _check_depth(node)
        names: dict[str, int] = {}
        checked = _check(node, (), names)
        return Parsed(checked, names)
    except Fault as fault:
        raise ExpressionError(fault.detail, expression=text, position=fault.pos) from None
    except RecursionError:
        raise ExpressionError(
            "expression nested too deeply", expression=text, position=None
        ) from None


# -- the parser --------------------------------------------------------------------------------

_lock = threading.Lock()
_parser: Lark | None = None


def _get_parser() -> Lark:
    global _parser
    with _lock:
        if _parser is None:
            from lark import Lark

            _parser = Lark(GRAMMAR, parser="lalr", transformer=_Builder(), maybe_placeholders=True)
        return _parser


def _parse(text: str) -> Node:
    from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

    try:
        node = cast(Node, _get_parser().parse(text))
    except UnexpectedToken as error:
        token = error.token
        if token.type == "$END":
            raise Fault("unexpected end of input", len(text)) from None
        if text.startswith("/*", _at(token)):
            raise Fault("unclosed comment", _at(token)) from None
        raise Fault(f"unexpected token {_quote(str(token))}", _at(token)) from None
    except UnexpectedCharacters as error:
        if error.pos_in_stream is None:
            raise Fault("syntax error") from None
        char = text[error.pos_in_stream]
        if char in "\"'`":
            raise Fault("unterminated string literal", error.pos_in_stream) from None
        if text.startswith("/*", error.pos_in_stream):
            raise Fault("unclosed comment", error.pos_in_stream) from None
        raise Fault(f"unexpected character {_quote(char)}", error.pos_in_stream) from None
    except UnexpectedInput as error:
        raise Fault("syntax error", getattr(error, "pos_in_stream", None)) from None
    return node


def _at(token: Token) -> int:
    """Where a token starts (lark types the position as optional; ours always have one)."""
    return token.start_pos or 0


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unescape(token: Token) -> str:
    body = str(token)[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        where = _at(token) + 1 + index
        kind = body[index + 1]
        if kind in _ESCAPES:
            out.append(_ESCAPES[kind])
            index += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}.get(kind)
        if width is not None:
            digits = body[index + 2 : index + 2 + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise Fault("invalid escape sequence in string", where)
            code = int(digits, 16)
            index += 2 + width
        elif kind in "01234567":
            digits = body[index + 1 : index + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits):
                raise Fault("invalid escape sequence in string", where)
            code = int(digits, 8)
            index += 4
            if code > 255:
                raise Fault("octal escape value > 255 in string", where)
        else:
            raise Fault(f"invalid escape sequence \\{kind} in string", where)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise Fault("escape sequence is invalid Unicode code point", where)
        out.append(chr(code))
    return "".join(out)


def _number(token: Token) -> Literal:
    raw = str(token)
    text = raw.replace("_", "")
    lowered = text.lower()
    try:
        if lowered.startswith(("0x", "0o", "0b")):
            value: int | float = int(text, 0)
        elif "." in lowered or "e" in lowered:
            value = float(text)
            if value == float("inf"):
                raise Fault("float literal is too large", _at(token))
        else:
            value = int(text, 10)
    except ValueError:
        raise Fault(f"invalid number literal {raw}", _at(token)) from None
    if isinstance(value, int) and value > INT_MAX:
        raise Fault("integer literal is too large", _at(token))
    return Literal(_at(token), value, raw)


def _no_coalesce_left(left: Node, op: Token) -> None:
    """expr refuses `a ?? b + c`: a `??` may not be the left operand of another operator."""
    if isinstance(left, Binary) and left.op == "??":
        raise Fault(
            f"Operator ({op}) and coalesce expressions (??) cannot be mixed. "
            "Wrap either by parentheses.",
            _at(op),
        )


def _member_on(obj: Node, make: Any) -> Node:
    """A member access continues an optional chain: `a?.b.c` is nil as a whole when a is nil."""
    if isinstance(obj, Chain):
        return Chain(obj.pos, make(obj.inner))
    return make(obj)  # type: ignore[no-any-return]


def _map_key(key: Node) -> Node:
    if isinstance(key, Paren):
        return key.inner
    if isinstance(key, Name):
        return Literal(key.pos, key.name)
    if isinstance(key, Literal) and isinstance(key.value, str):
        return key
    if isinstance(key, Literal) and key.raw:
        return Literal(key.pos, key.raw)
    raise Fault(
        "a map key must be a quoted string, a number, a identifier, "
        "or an expression enclosed in parentheses",
        key.pos,
    )


def _piped(value: Node, target: Node) -> Node:
    """`value | f(args) <rest>`: `f(value, args) <rest>`, with f the leftmost operand of target."""
    path: list[Node] = []
    node = target
    while isinstance(node, Binary | Member | Slice | Chain) and not (
        isinstance(node, Binary) and node.chained
    ):
        path.append(node)
        node = (
            node.inner
            if isinstance(node, Chain)
            else node.left
            if isinstance(node, Binary)
            else node.obj
        )
    if not isinstance(node, Call):
        raise Fault("a pipe must be followed by a function call", node.pos)
    rebuilt: Node = Call(node.pos, node.name, (value, *node.args))
    for outer in reversed(path):
        if isinstance(outer, Binary):
            rebuilt = Binary(outer.pos, outer.op, rebuilt, outer.right)
        elif isinstance(outer, Member):
            rebuilt = Member(outer.pos, rebuilt, outer.key, outer.optional)
        elif isinstance(outer, Slice):
            rebuilt = Slice(outer.pos, rebuilt, outer.start, outer.end)
        else:
            rebuilt = Chain(outer.pos, rebuilt)
    return rebuilt


def _items(children: list[Any]) -> tuple[Any, ...]:
    from lark import Token

    return tuple(c for c in children if c is not None and not isinstance(c, Token))


class _Builder:
    """lark's inline transformer: one method per rule alias, called as the parser reduces."""

    def start(self, c: list[Any]) -> Node:
        return c[0]  # type: ignore[no-any-return]

    def ternary(self, c: list[Any]) -> Node:
        return Conditional(_at(c[1]), c[0], c[2], c[4])

    def elvis(self, c: list[Any]) -> Node:
        return Conditional(_at(c[1]), c[0], c[0], c[3])

    def pipe(self, c: list[Any]) -> Node:
        return _piped(c[0], c[2])

    def logic(self, c: list[Any]) -> Node:
        _no_coalesce_left(c[0], c[1])
        op = "or" if str(c[1]) in ("or", "||") else "and"
        return Binary(_at(c[1]), op, c[0], c[2])

    def compare(self, c: list[Any]) -> Node:
        left, op, right = c
        _no_coalesce_left(left, op)
        # expr chains comparisons: `a < b < c` is `a < b && b < c`.
        if isinstance(left, Binary) and left.op in COMPARISONS:
            return Binary(_at(op), "and", left, Binary(_at(op), str(op), left.right, right), True)
        if isinstance(left, Binary) and left.chained:
            middle = left.right.right  # type: ignore[attr-defined]
            return Binary(_at(op), "and", left, Binary(_at(op), str(op), middle, right), True)
        return Binary(_at(op), str(op), left, right)

    def compare_not(self, c: list[Any]) -> Node:
        left, negation, op, right = c
        _no_coalesce_left(left, negation)
        return Unary(_at(negation), "!", Binary(_at(op), str(op), left, right))

    def binary(self, c: list[Any]) -> Node:
        left, op, right = c
        _no_coalesce_left(left, op)
        name = "**" if str(op) == "^" else str(op)
        return Binary(_at(op), name, left, right)

    def coalesce(self, c: list[Any]) -> Node:
        return Binary(_at(c[1]), "??", c[0], c[2])

    def member(self, c: list[Any]) -> Node:
        prop = c[2]
        key = Literal(_at(prop), str(prop))
        return _member_on(c[0], lambda obj: Member(_at(prop), obj, key, False))

    def opt_member(self, c: list[Any]) -> Node:
        prop = c[2]
        key = Literal(_at(prop), str(prop))
        return _member_on(c[0], lambda obj: Chain(obj.pos, Member(_at(prop), obj, key, True)))

    def index(self, c: list[Any]) -> Node:
        return Member(_at(c[1]), c[0], c[2], False)

    def opt_index(self, c: list[Any]) -> Node:
        return _member_on(c[0], lambda obj: Chain(obj.pos, Member(_at(c[2]), obj, c[3], True)))

    def slice(self, c: list[Any]) -> Node:
        return Slice(_at(c[1]), c[0], c[2], c[4])

    def number(self, c: list[Any]) -> Node:
        return _number(c[0])

    def string(self, c: list[Any]) -> Node:
        return Literal(_at(c[0]), _unescape(c[0]))

    def raw_string(self, c: list[Any]) -> Node:
        return Literal(_at(c[0]), str(c[0])[1:-1])

    def name(self, c: list[Any]) -> Node:
        token = c[0]
        text = str(token)
        if text in ("true", "false", "nil"):
            return Literal(_at(token), {"true": True, "false": False, "nil": None}[text], text)
        return Name(_at(token), text)

    def call(self, c: list[Any]) -> Node:
        return Call(_at(c[0]), str(c[0]), c[2] if c[2] is not None else ())

    def paren(self, c: list[Any]) -> Node:
        return Paren(_at(c[0]), c[1])

    def array(self, c: list[Any]) -> Node:
        return ArrayLit(_at(c[0]), c[1] if c[1] is not None else ())

    def map(self, c: list[Any]) -> Node:
        return MapLit(_at(c[0]), c[1] if c[1] is not None else ())

    def closure(self, c: list[Any]) -> Node:
        return Closure(_at(c[0]), c[1])

    def pointer(self, c: list[Any]) -> Node:
        return Pointer(_at(c[0]), str(c[0])[1:])

    def pointer_member(self, c: list[Any]) -> Node:
        prop = c[1]
        return Member(_at(prop), Pointer(_at(c[0]), ""), Literal(_at(prop), str(prop)), False)

    def unary(self, c: list[Any]) -> Node:
        op = str(c[0])
        return Unary(_at(c[0]), "!" if op in ("not", "!") else op, c[1])

    def args(self, c: list[Any]) -> tuple[Node, ...]:
        return _items(c)

    def pairs(self, c: list[Any]) -> tuple[tuple[Node, Node], ...]:
        return tuple(c for c in c if isinstance(c, tuple))

    def pair(self, c: list[Any]) -> tuple[Node, Node]:
        return (_map_key(c[0]), c[2])


# -- checks ------------------------------------------------------------------------------------


def children(node: Node) -> Iterator[Node]:
    """The direct sub-nodes of a node, in source order."""
    if isinstance(node, Paren | Chain):
        yield node.inner
    elif isinstance(node, Unary):
        yield node.operand
    elif isinstance(node, Binary):
        yield node.left
        yield node.right
    elif isinstance(node, Conditional):
        yield node.cond
        yield node.then
        yield node.otherwise
    elif isinstance(node, Member):
        yield node.obj
        yield node.key
    elif isinstance(node, Slice):
        yield node.obj
        if node.start is not None:
            yield node.start
        if node.end is not None:
            yield node.end
    elif isinstance(node, Call):
        yield from node.args
    elif isinstance(node, Closure):
        yield node.body
    elif isinstance(node, ArrayLit):
        yield from node.items
    elif isinstance(node, MapLit):
        for key, value in node.pairs:
            yield key
            yield value


def _check_depth(root: Node) -> None:
    """Refuse trees deeper than MAX_DEPTH before anything walks them recursively."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Fault(f"expression nested too deeply (more than {MAX_DEPTH} levels)", node.pos)
        stack.extend((child, depth + 1) for child in children(node))


def _arity(name: str, count: int, low: int, high: int, pos: int) -> None:
    if low <= count <= high:
        return
    expected = (
        str(low) if low == high else f"{low} to {high}" if high < 1_000 else f"at least {low}"
    )
    raise Fault(f"invalid number of arguments for {name} (expected {expected}, got {count})", pos)


def _check(node: Node, scopes: tuple[str, ...], names: dict[str, int]) -> Node:
    """expr's compile-time rules; returns the node with predicate arguments made closures."""
    if isinstance(node, Name):
        names.setdefault(node.name, node.pos)
        return node
    if isinstance(node, Pointer):
        if not scopes:
            raise Fault("cannot use pointer accessor outside predicate", node.pos)
        if node.name not in ("", "index", "acc"):
            raise Fault(f"unknown pointer #{node.name}", node.pos)
        if node.name == "acc" and scopes[-1] != "reduce":
            raise Fault("#acc can only be used inside reduce", node.pos)
        return node
    if isinstance(node, Closure):
        raise Fault("a closure {...} can only be a predicate argument", node.pos)
    if isinstance(node, Call):
        return _check_call(node, scopes, names)
    if isinstance(node, Literal):
        return node
    return _rebuild(node, [_check(child, scopes, names) for child in children(node)])


def _check_call(node: Call, scopes: tuple[str, ...], names: dict[str, int]) -> Node:
    if node.name in PREDICATES:
        low, high = PREDICATES[node.name]
        _arity(node.name, len(node.args), low, high, node.pos)
        args = [_check(node.args[0], scopes, names)]
        if len(node.args) > 1:
            predicate = node.args[1]
            body = predicate.body if isinstance(predicate, Closure) else predicate
            args.append(Closure(predicate.pos, _check(body, (*scopes, node.name), names)))
        args.extend(_check(arg, scopes, names) for arg in node.args[2:])
        return Call(node.pos, node.name, tuple(args))
    builtin = BUILTINS.get(node.name)
    if builtin is not None:
        _arity(node.name, len(node.args), builtin.min_args, builtin.max_args, node.pos)
    else:
        names.setdefault(node.name, node.pos)
    return Call(node.pos, node.name, tuple(_check(arg, scopes, names) for arg in node.args))


def _rebuild(node: Node, parts: list[Node]) -> Node:
    """The same node over checked children (in the order `children` yields them)."""
    if isinstance(node, Paren):
        return Paren(node.pos, parts[0])
    if isinstance(node, Chain):
        return Chain(node.pos, parts[0])
    if isinstance(node, Unary):
        return Unary(node.pos, node.op, parts[0])
    if isinstance(node, Binary):
        return Binary(node.pos, node.op, parts[0], parts[1], node.chained)
    if isinstance(node, Conditional):
        return Conditional(node.pos, parts[0], parts[1], parts[2])
    if isinstance(node, Member):
        return Member(node.pos, parts[0], parts[1], node.optional)
    if isinstance(node, Slice):
        rest = iter(parts[1:])
        start = next(rest) if node.start is not None else None
        end = next(rest) if node.end is not None else None
        return Slice(node.pos, parts[0], start, end)
    if isinstance(node, ArrayLit):
        return ArrayLit(node.pos, tuple(parts))
    if isinstance(node, MapLit):
        return MapLit(node.pos, tuple(zip(parts[0::2], parts[1::2], strict=True)))
    return node
