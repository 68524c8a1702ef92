"""The one error of the condition language.

Who raises it: every public function of `rollwise.core.expressions` (syntax errors, unknown
names, type errors, limits). Who catches it: the analysis core, which turns it into an Error
measurement whose message is `str(error)`.
"""

from __future__ import annotations

from rollwise.api.errors import UserError

MAX_DETAIL = 500  # characters of the message after the expression; it ends up in a status


class ExpressionError(UserError):
    """An expression cannot be compiled or evaluated: report the message, never retry it as is.

    `expression` is the text as written, `position` the 0-based offset of the offending token
    (None when the failure is not tied to a place, e.g. a non-boolean condition), `detail` the
    message without the expression around it.
    """

    def __init__(
        self,
        detail: str,
        *,
        expression: str,
        position: int | None,
        kind: str = "invalid expression",
    ) -> None:
        if len(detail) > MAX_DETAIL:  # a value quoted in full could be megabytes
            detail = detail[: MAX_DETAIL - 3] + "..."
        self.detail = detail
        self.expression = expression
        self.position = position
        self.kind = kind
        where = f" at {position}" if position is not None else ""
        super().__init__(f'{kind} "{expression}": {detail}{where}')

    def renamed(self, kind: str) -> ExpressionError:
        """The same error introduced differently (e.g. "invalid condition")."""
        error = ExpressionError(
            self.detail, expression=self.expression, position=self.position, kind=kind
        )
        error.__cause__ = self.__cause__
        return error
