"""The grammar of Argo's condition language (expr-lang/expr v1.17), for lark's LALR parser.

Who uses it: `parsing` builds the one parser from `GRAMMAR` and turns the parse into `nodes`.

Operator precedence follows expr's table (parser/operator/operator.go), lowest first:
`|` (pipe) < `or ||` < `and &&` < comparisons (`== != < > <= >= in matches contains
startsWith endsWith`, optionally negated with `not`) < `..` < `+ -` < `* / %` < `** ^`
(right-associative) < `??` < postfix (`.x ?.x [i] [a:b]`). The ternary `a ? b : c` sits above
everything. Unary operators are expr's odd ones: `not`/`!` bind an operand made of multiplicative
operators (`!a * b` is `!(a * b)` but `!a == b` is `(!a) == b`), `-`/`+` an operand made of `**`
and `??` (`-2 ** 2` is -4). The grammar encodes this by giving the unary rules those operands;
the LALR shift/reduce conflicts this creates are resolved by shifting, which is exactly expr's
greedy precedence climbing (the tests pin each case). The pipe `a | f(b) == c` means
`f(a, b) == c`: its right side is parsed as an expression whose leftmost operand must be a call,
and `parsing` moves the left side into that call.
"""

from __future__ import annotations

GRAMMAR = r"""
start: expr

?expr: pipe
     | pipe QMARK expr COLON expr            -> ternary
     | pipe QMARK COLON expr                 -> elvis

?pipe: or_expr
     | pipe PIPE or_expr                     -> pipe

?or_expr: and_expr
        | or_expr (OR | OROR) and_expr       -> logic

?and_expr: cmp_expr
         | and_expr (AND | ANDAND) cmp_expr  -> logic

?cmp_expr: range_expr
         | cmp_expr _cmp_op range_expr             -> compare
         | cmp_expr NOT _negatable range_expr      -> compare_not

_cmp_op: EQ | NE | LE | GE | LT | GT | _negatable
_negatable: IN | MATCHES | CONTAINS | STARTSWITH | ENDSWITH

?range_expr: add_expr
           | range_expr DOTDOT add_expr      -> binary

?add_expr: mul_expr
         | add_expr (PLUS | MINUS) mul_expr  -> binary

?mul_expr: pow_expr
         | mul_expr (STAR | SLASH | PERCENT) pow_expr  -> binary

?pow_expr: coalesce
         | coalesce (POW | CARET) pow_expr   -> binary

?coalesce: postfix
         | coalesce QQ postfix               -> coalesce

?postfix: atom
        | postfix DOT _prop                  -> member
        | postfix QDOT _prop                 -> opt_member
        | postfix LSQB expr RSQB             -> index
        | postfix QDOT LSQB expr RSQB        -> opt_index
        | postfix LSQB [expr] COLON [expr] RSQB  -> slice

?atom: NUMBER                                -> number
     | STRING                                -> string
     | RAWSTRING                             -> raw_string
     | NAME                                  -> name
     | NAME LPAR [args] RPAR                 -> call
     | LPAR expr RPAR                        -> paren
     | LSQB [args] RSQB                      -> array
     | LBRACE [pairs] RBRACE                 -> map
     | LBRACE expr RBRACE                    -> closure
     | POINTER                               -> pointer
     | DOT _prop                             -> pointer_member
     | (NOT | BANG) mul_expr                 -> unary
     | (MINUS | PLUS) pow_expr               -> unary

args: expr (COMMA expr)* [COMMA]
pairs: pair (COMMA pair)* [COMMA]
pair: expr COLON expr

_prop: NAME | IN | NOT | OR | AND | MATCHES | CONTAINS | STARTSWITH | ENDSWITH

NUMBER: /0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+/
      | /(?:\d[\d_]*(?:\.(?!\.)[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?[\d_]+)?/
STRING: /"(?:[^"\\]|\\[\s\S])*"|'(?:[^'\\]|\\[\s\S])*'/
RAWSTRING: /`[^`]*`/
NAME: /(?!\d)[\w$]+/
POINTER: /#[\w$]*/

OR: "or"
OROR: "||"
AND: "and"
ANDAND: "&&"
NOT: "not"
BANG: "!"
IN: "in"
MATCHES: "matches"
CONTAINS: "contains"
STARTSWITH: "startsWith"
ENDSWITH: "endsWith"
EQ: "=="
NE: "!="
LE: "<="
GE: ">="
LT: "<"
GT: ">"
DOTDOT: ".."
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
PERCENT: "%"
POW: "**"
CARET: "^"
QQ: "??"
QDOT: "?."
QMARK: "?"
PIPE: "|"
DOT: "."
COLON: ":"
COMMA: ","
LPAR: "("
RPAR: ")"
LSQB: "["
RSQB: "]"
LBRACE: "{"
RBRACE: "}"

%ignore /\s+/
%ignore /\/\/[^\n]*/
%ignore /\/\*[\s\S]*?\*\//
"""
