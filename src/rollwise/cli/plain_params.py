"""Plain conversion of the CLI's parameters, so running a command does not import pydantic.

Also here: a command line click cannot parse exits 1, as every other user error does.

Why this exists: typer 0.29 converts every parameter that is not a flag through a pydantic
`TypeAdapter`, built on first use. Importing pydantic and building those adapters costs about
170 ms, more than the whole 150 ms budget of `rollwise get rollout`. rollwise's parameters are
plain (str, int, bool, Path, list[str], int | None, str | None), so one converter per annotation
does the same job. Who calls it: the root command group of `rollwise.cli.main`, once, when
typer builds it.

This reaches into typer internals (`RuntimeParam`, `_TyperParameter._runtime_param`) of the
pinned typer; a parameter of any other type, or a typer whose internals moved, simply keeps
typer's own conversion (slower, never wrong).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer._click.exceptions import UsageError
from typer.core import TyperCommand, TyperGroup

try:
    from typer._click.exceptions import BadParameter
    from typer._coercion import RuntimeParam
except ImportError:  # pragma: no cover - a typer without these internals keeps its own
    RuntimeParam = None  # type: ignore[assignment,misc]


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(value)


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value]


_CONVERTERS: dict[Any, tuple[str, Callable[[Any], Any]]] = {
    str: ("text", str),
    bool: ("boolean", _boolean),
    int: ("integer", int),
    Path: ("path", Path),
    int | None: ("integer", _optional_int),
    str | None: ("text", _optional_str),
    list[str]: ("list of text", _strings),
}


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _PlainParam(RuntimeParam):
        label: str = "value"
        convert: Callable[[Any], Any] = str

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.convert(value)
            except (TypeError, ValueError):
                raise BadParameter(
                    f"{value!r} is not a valid {self.label}.", ctx=ctx, param=param
                ) from None


def _commands(command: Any) -> Iterator[Any]:
    yield command
    for child in (getattr(command, "commands", None) or {}).values():
        yield from _commands(child)


def _make_plain(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if RuntimeParam is None or descriptor is None:
        return
    if getattr(param, "_runtime_param", False) is not None:
        return
    found = _CONVERTERS.get(descriptor.annotation)
    if found is None or descriptor.parameter_info.parser is not None:
        return
    label, convert = found
    param._runtime_param = _PlainParam(
        parameter_info=descriptor.parameter_info,
        annotation=descriptor.annotation,
        label=label,
        convert=convert,
    )


def use_plain_conversion(root: Any) -> None:
    """Give every plain parameter under `root` (a click group) a pydantic-free converter."""
    for command in _commands(root):
        for param in command.params:
            _make_plain(param)


def user_error_exit_code(error: UsageError) -> UsageError:
    """A mistyped command line is a user error like any other: exit code 1, not click's 2."""
    error.exit_code = 1
    return error


class PlainCommand(TyperCommand):
    """A command whose `--help` option (made on demand by click) converts without pydantic."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except UsageError as error:
            raise user_error_exit_code(error) from None

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            _make_plain(option)
        return option


class PlainGroup(TyperGroup):
    """A group whose own `--help` converts without pydantic, like `PlainCommand`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except UsageError as error:
            raise user_error_exit_code(error) from None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as error:
            raise user_error_exit_code(error) from None

    def invoke(self, ctx: Any) -> Any:
        # click finds a missing command only here (`rollwise --home h`, options and no verb)
        try:
            return super().invoke(ctx)
        except UsageError as error:
            raise user_error_exit_code(error) from None

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            _make_plain(option)
        return option
