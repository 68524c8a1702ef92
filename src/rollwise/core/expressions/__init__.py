"""Argo's condition language: the subset of expr-lang/expr v1.17 that Argo Rollouts evaluates.

Where it sits: `rollwise.core`, pure and synchronous. Who calls it: the analysis core, to decide
a measurement from `successCondition` / `failureCondition` (`evaluate_condition`), and anything
that wants to check an expression early (`compile_expression`, e.g. `rollwise lint`).

    compile_expression(text) -> Expression        # cached by text; ExpressionError on bad syntax
    Expression.evaluate(env, *, now=None) -> object
    evaluate_condition(text, result, *, now=None) -> bool   # Argo's environment around `result`

How: a lark LALR grammar (`grammar`) builds a syntax tree (`parsing`), which is compiled into
Python closures (`evaluation`) — never `eval`/`exec`. Operators and builtins follow expr's runtime
(`values`, `builtins`, `regexes`, `times`). Limits keep every evaluation bounded: 4 KB of text,
100 levels of nesting, a budget of 1,000,000 steps of work, ranges of at most 1,000,000
elements, strings of at most 1,000,000 characters, and regular expressions refused the texts
they could backtrack on catastrophically. Every failure is an `ExpressionError` naming the
expression and the 0-based position.

Not supported (expr has them; Argo's conditions do not use them): `let` variables, `if`/`else`
blocks, method calls (`now().Year()`), struct fields, time zones other than UTC, `$env`.
"""

from __future__ import annotations

from rollwise.core.expressions.conditions import ENVIRONMENT, compile_condition, evaluate_condition
from rollwise.core.expressions.context import MAX_STEPS
from rollwise.core.expressions.errors import ExpressionError
from rollwise.core.expressions.evaluation import Expression, compile_expression
from rollwise.core.expressions.operators import MAX_RANGE
from rollwise.core.expressions.parsing import MAX_DEPTH, MAX_LENGTH
from rollwise.core.expressions.values import MAX_STRING

__all__ = [
    "ENVIRONMENT",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_RANGE",
    "MAX_STEPS",
    "MAX_STRING",
    "Expression",
    "ExpressionError",
    "compile_condition",
    "compile_expression",
    "evaluate_condition",
]
