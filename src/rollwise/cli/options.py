"""Global options where kubectl users put them, and the argument list of the kubectl plugin.

Who calls it: `rollwise.cli.main`. Its commands and groups are `VerbCommand` and `VerbGroup`,
which take the global options `-n/--namespace`, `--context`, `--kubeconfig` and `--kube-context`
after the verb too (`rollwise get rollout myapp -n shop`), as kubectl and cobra take persistent
flags anywhere; a command that defines one of those names itself (`install -n`) keeps it. The
root callback has already made the `Settings` when a verb parses its arguments, so the options
found there replace the context's settings before the verb runs.

`plugin_args` turns what kubectl hands `kubectl-rollwise` into rollwise's arguments: the
kubernetes context always, and kubectl's `--context NAME` (the kubeconfig context) as
rollwise's `--kube-context NAME`, since rollwise's own `--context` names local or kubernetes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from typer._click.exceptions import UsageError

from rollwise.cli.plain_params import PlainCommand, PlainGroup, user_error_exit_code
from rollwise.cli.state import Settings

# option -> the Settings field it sets
GLOBAL_OPTIONS = {
    "-n": "namespace_option",
    "--namespace": "namespace_option",
    "--context": "context",
    "--kubeconfig": "kubeconfig",
    "--kube-context": "kube_context",
}


def _own_options(command: Any) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        names.update(getattr(param, "opts", ()) or ())
        names.update(getattr(param, "secondary_opts", ()) or ())
    return names


def _global_option(arg: str, own: set[str]) -> tuple[str, str | None] | None:
    """(Settings field, value if attached) when `arg` is a global option this command leaves
    to the root: `--namespace`, `--namespace=x`, `-n`, `-nx`, `-n=x`."""
    if arg.startswith("--"):
        name, eq, value = arg.partition("=")
        field = GLOBAL_OPTIONS.get(name)
        if field is None or name in own:
            return None
        return field, value if eq else None
    if arg.startswith("-n") and "-n" not in own:
        rest = arg[2:].removeprefix("=")
        return "namespace_option", rest or None
    return None


def split_global_options(
    args: Sequence[str], own: set[str], *, leading_only: bool = False
) -> tuple[list[str], dict[str, str]]:
    """The arguments without the global options, and those options by Settings field. With
    `leading_only`, only options before the first other argument (a group's subcommand name)."""
    rest: list[str] = []
    found: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        option = None if arg == "--" else _global_option(arg, own)
        if option is None:
            if arg == "--" or leading_only:
                rest.extend(args[index:])
                break
            rest.append(arg)
            index += 1
            continue
        field, value = option
        if value is None:
            if index + 1 >= len(args):
                raise user_error_exit_code(UsageError(f"Option '{arg}' requires an argument."))
            value = args[index + 1]
            index += 1
        found[field] = value
        index += 1
    return rest, found


def _use_options(ctx: Any, found: dict[str, str]) -> None:
    if found and isinstance(ctx.obj, Settings):
        ctx.obj = ctx.obj.with_options(**found)


class VerbCommand(PlainCommand):
    """A verb that also takes the global options among its own arguments."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rest, found = split_global_options(args, _own_options(self))
        _use_options(ctx, found)
        return super().parse_args(ctx, rest)


class VerbGroup(PlainGroup):
    """A group of verbs (`get`, `list`...) that takes global options before the verb's name
    (`rollwise get -n shop rollout myapp`); the root group parses its own."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.parent is not None:
            args, found = split_global_options(args, _own_options(self), leading_only=True)
            _use_options(ctx, found)
        return super().parse_args(ctx, args)


def plugin_args(argv: Sequence[str]) -> list[str]:
    """rollwise's arguments for `kubectl rollwise ARGV...`: the kubernetes context, and
    kubectl's `--context NAME` as `--kube-context NAME` (before a `--` only)."""
    args: list[str] = ["--context", "kubernetes"]
    for index, arg in enumerate(argv):
        if arg == "--":
            args.extend(argv[index:])
            break
        if arg == "--context":
            args.append("--kube-context")
        elif arg.startswith("--context="):
            args.append("--kube-context=" + arg.removeprefix("--context="))
        else:
            args.append(arg)
    return args
