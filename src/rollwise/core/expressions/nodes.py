"""The syntax tree of a parsed expression: small frozen values, each with its 0-based position.

Who builds it: `parsing`. Who reads it: `evaluation`, which turns it into closures. `pos` is the
offset of the token expr itself would blame: the operator of a binary node, the `[` of an index,
the name of a member or call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: object
    raw: str = ""  # the source text of a number, used when it is a map key


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Pointer(Node):
    """`#` (the current element), `#index` or `#acc` inside a predicate."""

    name: str


@dataclass(frozen=True, slots=True)
class Paren(Node):
    """Parentheses, kept so that the parser can tell `(a ?? b) + 1` from `a ?? b + 1`."""

    inner: Node


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "!" (also for `not`), "-" or "+"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # arithmetic, comparison, "and", "or", "..", "??", "in", "matches", ...
    left: Node
    right: Node
    chained: bool = False  # an `and` made from a chained comparison `a < b < c`


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    cond: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True, slots=True)
class Member(Node):
    """`obj.name`, `obj[key]`, and their optional forms `?.name` / `?.[key]`."""

    obj: Node
    key: Node
    optional: bool


@dataclass(frozen=True, slots=True)
class Slice(Node):
    obj: Node
    start: Node | None
    end: Node | None


@dataclass(frozen=True, slots=True)
class Chain(Node):
    """The scope of optional chaining: a nil met by `?.` inside makes the whole chain nil."""

    inner: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Closure(Node):
    """A predicate `{...}` (or a bare expression in a predicate's place)."""

    body: Node


@dataclass(frozen=True, slots=True)
class ArrayLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit(Node):
    pairs: tuple[tuple[Node, Node], ...]


def unwrap(node: Node) -> Node:
    """The node without the parentheses around it."""
    while isinstance(node, Paren):
        node = node.inner
    return node
