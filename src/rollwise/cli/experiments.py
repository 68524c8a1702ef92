"""The experiment verbs: get experiment (once or watched), list experiments, terminate
experiment, retry experiment (reference 5.1).

Who calls it: `rollwise.cli.main`, which registers these functions as typer commands. Reads go
through the store of the context (on a cluster by label selector, `rollwise.cli.cluster`) and
`rollwise.views.experiment_render`; the writes are the ones Argo's
CLI makes (`spec.terminate: true`; the whole `status` cleared for a retry), so the controller
sees the same request whichever tool made it. Like `view`, this module is on the CLI's start-up
path and imports neither the models nor the core.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from rollwise.api.errors import NotFoundError, UserError
from rollwise.cli.state import (
    Settings,
    Store,
    cluster_store,
    open_store,
    read_modify_write,
    use_color,
)
from rollwise.cli.state import watch as watch_store
from rollwise.views.experiment_render import render_experiment, render_experiment_list

ExperimentName = Annotated[
    str, typer.Argument(metavar="EXPERIMENT", help="Name of the experiment.")
]


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def _missing(name: str, namespace: str) -> NotFoundError:
    return NotFoundError(f"experiment '{name}' not found in namespace '{namespace}'")


def _read(store: Store | None, name: str, namespace: str) -> dict[str, Any]:
    experiment = store.get("Experiment", name, namespace) if store is not None else None
    if experiment is None:
        raise _missing(name, namespace)
    return experiment


def _draw(store: Store, experiment: dict[str, Any], namespace: str, *, color: bool) -> str:
    cluster = cluster_store(store)
    if cluster is not None:
        from rollwise.cli.cluster import experiment_children

        replica_sets, pods, runs = experiment_children(cluster, experiment, namespace)
    else:
        replica_sets = store.list("ReplicaSet", namespace)
        pods = store.list("Pod", namespace)
        runs = store.list("AnalysisRun", namespace)
    return render_experiment(
        experiment, replica_sets, pods, runs, now=datetime.now(UTC), color=color
    )


def get_experiment(
    ctx: typer.Context,
    name: ExperimentName,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw as the experiment changes.")
    ] = False,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Print the object: json or yaml.")
    ] = "",
    no_color: Annotated[
        bool, typer.Option("--no-color", help="Do not colourize the output.")
    ] = False,
) -> None:
    """Show an experiment: its phase, templates (ReplicaSets and pods) and analysis runs."""
    settings = _settings(ctx)
    namespace = settings.namespace
    color = use_color(no_color)
    with open_store(settings, create=False) as store:
        experiment = _read(store, name, namespace)
        assert store is not None  # _read found the experiment in it
        if output == "json":
            typer.echo(json.dumps(experiment, indent=2, ensure_ascii=False))
            return
        if output == "yaml":
            import yaml

            typer.echo(yaml.safe_dump(experiment, sort_keys=False, allow_unicode=True), nl=False)
            return
        if output:
            raise UserError(f"unknown output format '{output}': expected json or yaml")
        if not watch:
            typer.echo(_draw(store, experiment, namespace, color=color), nl=False)
            return

        def draw(changed: bool) -> str:
            nonlocal experiment
            if changed:
                experiment = _read(store, name, namespace)
            return _draw(store, experiment, namespace, color=color)

        watch_store(store, draw)


def list_experiments(
    ctx: typer.Context,
    all_namespaces: Annotated[
        bool,
        typer.Option("--all-namespaces", "-A", help="List the experiments of every namespace."),
    ] = False,
) -> None:
    """List experiments: status, duration, time remaining and age."""
    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        namespace = None if all_namespaces else settings.namespace
        experiments = store.list("Experiment", namespace) if store is not None else []
    if not experiments:
        where = "" if all_namespaces else f" in namespace '{settings.namespace}'"
        typer.echo(f"No experiments found{where}.", err=True)
        return
    text = render_experiment_list(experiments, all_namespaces=all_namespaces, now=datetime.now(UTC))
    typer.echo(text, nl=False)


def terminate_experiment(ctx: typer.Context, name: ExperimentName) -> None:
    """Terminate an experiment: its templates scale down and its analysis runs are terminated."""
    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        if store is None:
            raise _missing(name, settings.namespace)

        def change() -> None:
            assert store is not None
            _read(store, name, settings.namespace)
            store.patch("Experiment", name, settings.namespace, merge={"spec": {"terminate": True}})

        read_modify_write(store, change)
    typer.echo(f"experiment '{name}' terminated")


def retry_experiment(ctx: typer.Context, name: ExperimentName) -> None:
    """Retry an experiment: its status is cleared and it starts over."""
    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        if store is None:
            raise _missing(name, settings.namespace)

        def change() -> None:
            assert store is not None
            experiment = _read(store, name, settings.namespace)
            store.update_status({**experiment, "status": None})

        read_modify_write(store, change)
    typer.echo(f"experiment '{name}' restarted")
