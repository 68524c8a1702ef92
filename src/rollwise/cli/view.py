"""The verbs that read: get rollout (once or watched), list rollouts, status.

Who calls it: `rollwise.cli.main`, which registers these functions as typer commands. They
read the store of the context, draw with `render`, and, when watching, poll the store's revision
(locally one cheap query; on a cluster a counter its watches advance) and redraw at most every
200 ms as Argo's CLI does; a redraw also happens every second so ages stay current. This
module is on the 150 ms path of `get rollout`: it imports neither the models nor the core.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from rollwise.api.errors import UserError
from rollwise.cli.state import Settings, open_store, read_rollout, read_tree, use_color
from rollwise.cli.state import watch as watch_store
from rollwise.views import info, render

_POLL_SECONDS = 0.1  # how often `status` looks at the store
RolloutName = Annotated[str, typer.Argument(metavar="ROLLOUT", help="Name of the rollout.")]


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def _print_object(obj: dict[str, Any], output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))
    elif output == "yaml":
        import yaml

        typer.echo(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True), nl=False)
    else:
        raise UserError(f"unknown output format '{output}': expected json or yaml")


def get_rollout(
    ctx: typer.Context,
    name: RolloutName,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw as the rollout changes.")
    ] = False,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Print the object: json or yaml.")
    ] = "",
    no_color: Annotated[
        bool, typer.Option("--no-color", help="Do not colourize the output.")
    ] = False,
    timeout_seconds: Annotated[
        int,
        typer.Option("--timeout-seconds", help="Stop watching after this many seconds (0: never)."),
    ] = 0,
) -> None:
    """Show a rollout, its revisions, ReplicaSets, pods and analysis runs."""
    settings = _settings(ctx)
    color = use_color(no_color)
    with open_store(settings, create=False) as store:
        if output:
            _print_object(read_rollout(store, name, settings.namespace), output)
            return
        tree = read_tree(store, name, settings.namespace)
        if not watch:
            typer.echo(_draw(tree, color=color), nl=False)
            return
        assert store is not None  # read_tree found the rollout

        def draw(changed: bool) -> str:
            nonlocal tree
            if changed:
                tree = read_tree(store, name, settings.namespace)
            return _draw(tree, color=color)

        watch_store(store, draw, timeout_seconds=timeout_seconds)


def _draw(tree: Any, *, color: bool) -> str:
    return render.render_rollout(
        tree.rollout,
        tree.replica_sets,
        tree.pods,
        tree.analysis_runs,
        now=datetime.now(UTC),
        color=color,
        experiments=tree.experiments,
    )


def list_rollouts(
    ctx: typer.Context,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="List the rollouts of every namespace.")
    ] = False,
) -> None:
    """List rollouts: strategy, status, step, weight and replica counts."""
    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        namespace = None if all_namespaces else settings.namespace
        rollouts = store.list("Rollout", namespace) if store is not None else []
    if not rollouts:
        where = "" if all_namespaces else f" in namespace '{settings.namespace}'"
        typer.echo(f"No rollouts found{where}.", err=True)
        return
    typer.echo(render.render_rollout_list(rollouts, all_namespaces=all_namespaces), nl=False)


def status(
    ctx: typer.Context,
    name: RolloutName,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch/--no-watch", "-w", help="Follow the status until Healthy or Degraded."
        ),
    ] = True,
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout", "-t", help="Give up after this long (30s, 5m; 0: never); exit 2."
        ),
    ] = "0",
) -> None:
    """Print the rollout's status as it changes.

    Exits 0 once Healthy, 1 if Degraded, 2 if the timeout passes first.
    """
    from rollwise.api.durations import parse_duration

    try:
        limit = parse_duration(timeout)
    except ValueError as error:
        raise UserError(f"--timeout: {error}") from error
    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        rollout = read_rollout(store, name, settings.namespace)
        assert store is not None
        deadline = time.monotonic() + limit if limit > 0 else None
        printed = ""
        seen_revision: int | None = None
        try:
            while True:
                line = render.status_line(rollout)
                if line != printed:
                    typer.echo(line)
                    printed = line
                phase, _ = info.rollout_phase(rollout)
                if phase == "Healthy":
                    raise typer.Exit(0)
                if phase in ("Degraded", "InvalidSpec"):
                    raise typer.Exit(1)
                if not watch:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    typer.echo(
                        f"Error: rollout '{name}' did not become Healthy within {timeout}",
                        err=True,
                    )
                    raise typer.Exit(2)
                # Asked only now, so a finished rollout opens no watch on a cluster; the first
                # answer re-reads, so a change made before it is not missed.
                revision = store.revision()
                if revision != seen_revision:
                    rollout = read_rollout(store, name, settings.namespace)
                    seen_revision = revision
                    continue
                time.sleep(_POLL_SECONDS)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
