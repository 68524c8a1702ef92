"""The analysis verbs: get/list/terminate analysisrun, create secret generic, analyze.

Who calls it: `rollwise.cli.main`, which registers these functions as typer commands.
- `get analysisrun`, `list analysisruns` read the store of the context and draw with
  `rollwise.views.analysis`; `terminate analysisrun` merge-patches `spec.terminate: true`, as
  `kubectl argo rollouts terminate analysisrun` does.
- `create secret generic` stores a v1 Secret the way `kubectl create secret generic` builds it
  (`data` base64); the analysis reconciler reads it for `secretKeyRef` args and provider
  credentials (a Secret of the cluster with `--context kubernetes`). Values are never
  printed: not on success, not in any error.
- `analyze` (local only) builds an AnalysisRun from a file and drives it in-process with the
  controller's own reconciler (`rollwise.controller.analyze`), printing each measurement as it
  lands.

Like the other verb modules it sits on the 150 ms start-up path of every command: the models,
the core, the controller and aiohttp are imported inside the verbs that use them.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rollwise.api.errors import NotFoundError, UserError
from rollwise.cli.state import (
    Settings,
    Store,
    open_local_store,
    open_store,
    read_modify_write,
    template_names,
    use_color,
)
from rollwise.cli.state import watch as watch_store
from rollwise.views import analysis as views

if TYPE_CHECKING:
    from rollwise.api.manifests import Loaded
    from rollwise.api.models import AnalysisRun
    from rollwise.controller.analyze import PreparedRun
    from rollwise.platforms.local.store import SqliteStore

Raw = dict[str, Any]
RunName = Annotated[str, typer.Argument(metavar="ANALYSISRUN", help="Name of the analysis run.")]

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_RUNNABLE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun")


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def _print_object(obj: Mapping[str, Any], output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))
    elif output == "yaml":
        import yaml

        typer.echo(yaml.safe_dump(dict(obj), sort_keys=False, allow_unicode=True), nl=False)
    else:
        raise UserError(f"unknown output format '{output}': expected json or yaml")


def _missing_run(name: str, namespace: str) -> NotFoundError:
    return NotFoundError(f"analysisrun '{name}' not found in namespace '{namespace}'")


def _read_run(store: Store | None, name: str, namespace: str) -> Raw:
    run = store.get("AnalysisRun", name, namespace) if store is not None else None
    if run is None:
        raise _missing_run(name, namespace)
    return run


# --- get / list / terminate analysisrun ---------------------------------------------------------


def get_analysisrun(
    ctx: typer.Context,
    name: RunName,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw as the run changes.")
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
    """Show an analysis run: its phase, and each metric's counts, query and measurements."""
    settings = _settings(ctx)
    color = use_color(no_color)
    with open_store(settings, create=False) as store:
        run = _read_run(store, name, settings.namespace)
        if output:
            _print_object(run, output)
            return
        if not watch:
            typer.echo(views.render_analysis_run(run, now=datetime.now(UTC), color=color), nl=False)
            return
        assert store is not None  # _read_run found the run in it

        def draw(changed: bool) -> str:
            nonlocal run
            if changed:
                run = _read_run(store, name, settings.namespace)
            return views.render_analysis_run(run, now=datetime.now(UTC), color=color)

        watch_store(store, draw, timeout_seconds=timeout_seconds)


def list_analysisruns(
    ctx: typer.Context,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="List the runs of every namespace.")
    ] = False,
) -> None:
    """List analysis runs: name, status and age."""
    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        namespace = None if all_namespaces else settings.namespace
        runs = store.list("AnalysisRun", namespace) if store is not None else []
    if not runs:
        where = "" if all_namespaces else f" in namespace '{settings.namespace}'"
        typer.echo(f"No analysis runs found{where}.", err=True)
        return
    text = views.render_analysis_run_list(
        runs, now=datetime.now(UTC), all_namespaces=all_namespaces
    )
    typer.echo(text, nl=False)


def terminate_analysisrun(ctx: typer.Context, name: RunName) -> None:
    """Terminate an analysis run: no new measurements; it ends Successful unless a limit broke
    (or Inconclusive when nothing succeeded and it opts in with rollwise.io/on-terminate)."""
    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        if store is None:
            raise _missing_run(name, settings.namespace)

        def change() -> None:
            assert store is not None
            _read_run(store, name, settings.namespace)
            store.patch(
                "AnalysisRun", name, settings.namespace, merge={"spec": {"terminate": True}}
            )

        read_modify_write(store, change)
    typer.echo(f"analysisrun '{name}' terminated")


# --- create secret generic -----------------------------------------------------------------------


def _secret_data(literals: Sequence[str], files: Sequence[str]) -> dict[str, str]:
    """Key -> base64 of the value. Messages name keys and paths, never a value: a mistyped
    `--from-literal` may hold nothing but the secret."""
    data: dict[str, str] = {}

    def add(key: str, value: bytes, source: str) -> None:
        if not _SECRET_KEY.fullmatch(key):
            raise UserError(
                f"{source}: key '{key}' is not valid: use letters, digits, '-', '_' or '.'"
            )
        if key in data:
            raise UserError(f"{source}: key '{key}' is given more than once")
        data[key] = base64.b64encode(value).decode("ascii")

    for index, literal in enumerate(literals, start=1):
        key, sep, value = literal.partition("=")
        if not sep or not key:
            raise UserError(
                f"--from-literal #{index}: expected KEY=VALUE (the text given is not shown,"
                " it may be the secret)"
            )
        add(key, value.encode(), "--from-literal")
    for item in files:
        key, sep, path_text = item.partition("=")
        if not sep:
            key, path_text = Path(item).name, item
        path = Path(path_text)
        try:
            content = path.read_bytes()
        except OSError as error:
            raise UserError(f"--from-file: cannot read {path}: {error.strerror}") from None
        add(key, content, "--from-file")
    return data


def create_secret_generic(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the secret.")],
    from_literal: Annotated[
        list[str] | None,
        typer.Option("--from-literal", help="KEY=VALUE to store (repeatable)."),
    ] = None,
    from_file: Annotated[
        list[str] | None,
        typer.Option("--from-file", help="KEY=PATH (or PATH: the key is its file name) to store."),
    ] = None,
) -> None:
    """Store a Secret (create or replace) in the local home or the cluster, like `kubectl
    create secret generic`; analysis reads it for secretKeyRef args and provider credentials."""
    if not _SUBDOMAIN.fullmatch(name) or len(name) > 253:
        raise UserError(
            f"'{name}' is not a valid secret name: lower-case letters, digits, '-' and '.'"
        )
    settings = _settings(ctx)
    data = _secret_data(from_literal or (), from_file or ())
    secret: Raw = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": settings.namespace},
        "type": "Opaque",
        "data": data,
    }
    with open_store(settings, create=True) as store:
        assert store is not None

        def change() -> str:
            assert store is not None
            if store.get("Secret", name, settings.namespace) is None:
                store.create(secret)
                return "created"
            store.update(secret)
            return "configured"

        outcome = read_modify_write(store, change)
    typer.echo(f"secret/{name} {outcome}")


# --- analyze -------------------------------------------------------------------------------------


def _store_templates(store: SqliteStore | None, namespace: str) -> tuple[list[Raw], list[Raw]]:
    if store is None:
        return [], []
    return store.list("AnalysisTemplate", namespace), store.list("ClusterAnalysisTemplate", None)


def _prepare(
    loaded: Sequence[Loaded],
    *,
    caller_args: Sequence[str],
    name: str,
    settings: Settings,
    stored: tuple[list[Raw], list[Raw]],
) -> PreparedRun:
    """The run to measure: the file's AnalysisRun, or its templates merged as a Rollout would."""
    from rollwise.api.models import (
        AnalysisRun,
        AnalysisTemplate,
        AnalysisTemplateRef,
        ClusterAnalysisTemplate,
    )
    from rollwise.controller.analyze import parse_args, run_from_run, run_from_templates

    args = parse_args(caller_args)
    runs = [i.resource for i in loaded if isinstance(i.resource, AnalysisRun)]
    templates = [
        i.resource
        for i in loaded
        if isinstance(i.resource, AnalysisTemplate | ClusterAnalysisTemplate)
    ]
    files = ", ".join(sorted({i.document.file for i in loaded}))
    if runs and templates:
        raise UserError(
            f"{files}: holds both an AnalysisRun and templates; analyze runs one or the other"
        )
    if len(runs) > 1:
        raise UserError(f"{files}: holds {len(runs)} AnalysisRuns; analyze runs one at a time")
    for item in loaded:
        if not isinstance(item.resource, AnalysisRun | AnalysisTemplate | ClusterAnalysisTemplate):
            typer.echo(f"note: ignoring {item.kind or 'a document'} '{item.name}'", err=True)
    now = datetime.now(UTC)
    if runs:
        run = runs[0]
        namespace = run.metadata.namespace or settings.namespace
        run_name = name or run.name or f"{run.metadata.generate_name or 'analysis-'}run"
        return run_from_run(run, args=args, name=run_name, namespace=namespace, now=now)
    if not templates:
        raise UserError(
            f"{files}: holds no AnalysisTemplate, ClusterAnalysisTemplate or AnalysisRun to run"
        )
    first = templates[0]
    namespace = (
        first.metadata.namespace
        if isinstance(first, AnalysisTemplate) and first.metadata.namespace
        else settings.namespace
    )
    namespaced, cluster = stored

    def lookup(ref: AnalysisTemplateRef) -> AnalysisTemplate | ClusterAnalysisTemplate | None:
        """A nested template the file does not hold, from the local store."""
        scope = bool(ref.cluster_scope)
        for raw in cluster if scope else namespaced:
            if (raw.get("metadata") or {}).get("name") == ref.template_name:
                model = ClusterAnalysisTemplate if scope else AnalysisTemplate
                return model.model_validate(raw)
        return None

    return run_from_templates(
        templates, args=args, name=name or first.name, namespace=namespace, lookup=lookup, now=now
    )


class _Progress:
    """Prints each measurement once, when it has finished (`on_update` of the loop)."""

    def __init__(self, *, color: bool) -> None:
        self.color = color
        self.printed: dict[str, int] = {}

    def __call__(self, run: AnalysisRun) -> None:
        status = run.status
        if status is None:
            return
        for result in status.metric_results or ():
            raw = result.to_raw()
            total = sum(int(raw.get(key) or 0) for key in views.MEASUREMENT_COUNTERS)
            new = total - self.printed.get(result.name, 0)
            if new <= 0:
                continue
            done = [m for m in raw.get("measurements") or [] if m.get("finishedAt")]
            for measurement in done[-new:]:
                typer.echo(views.measurement_line(result.name, measurement, color=self.color))
            self.printed[result.name] = total


def analyze(
    ctx: typer.Context,
    filenames: Annotated[
        list[str],
        typer.Option(
            "-f", "--filename", help="AnalysisTemplate(s) or an AnalysisRun ('-' reads stdin)."
        ),
    ],
    arg: Annotated[
        list[str] | None,
        typer.Option("--argument", "-a", help="NAME=VALUE for a template arg (repeatable)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print only the final AnalysisRun, as JSON.")
    ] = False,
    once: Annotated[
        bool,
        typer.Option("--once", help="One measurement of each metric now; limits aside."),
    ] = False,
    name: Annotated[str, typer.Option("--name", help="Name of the run.")] = "",
    no_color: Annotated[
        bool, typer.Option("--no-color", help="Do not colourize the output.")
    ] = False,
) -> None:
    """Run an analysis now, in-process, and print what each metric measured.

    Exit 0 Successful, 1 Failed, 2 Error, 3 Inconclusive (1 also for a file with problems).
    """
    import asyncio

    from rollwise.api.manifests import has_errors, load_files
    from rollwise.api.validation import validate
    from rollwise.controller.analysis import AnalysisRunReconciler
    from rollwise.controller.analyze import SecretsOnly, exit_code, local_services
    from rollwise.controller.analyze import analyze as drive
    from rollwise.core.timestamps import SystemClock

    settings = _settings(ctx)
    settings.require_local("`rollwise analyze`")
    color = use_color(no_color)
    loaded, problems = load_files(filenames)
    with open_local_store(settings, create=False) as store:
        stored = _store_templates(store, settings.namespace)
        known, cluster_known = template_names(store, settings.namespace)
        # Only what analyze runs is checked: a Rollout next to the templates is not its business.
        runnable = [item for item in loaded if item.kind in _RUNNABLE_KINDS]
        problems += validate(runnable, known_templates=known, known_cluster_templates=cluster_known)
        for problem in problems:
            typer.echo(problem.format(), err=True)
        if has_errors(problems):
            count = sum(1 for p in problems if p.is_error)
            raise UserError(f"{count} problem{'s' if count != 1 else ''} found; nothing run")
        if not loaded:
            raise UserError(f"no objects found in {', '.join(filenames)}")
        prepared = _prepare(
            loaded, caller_args=arg or (), name=name, settings=settings, stored=stored
        )
        namespace = prepared.run.namespace
        secrets = store.list("Secret", namespace) if store is not None else []
    for ignored in prepared.ignored_args:
        typer.echo(f"note: -a {ignored}: the analysis declares no such arg; ignored", err=True)
    reconciler = AnalysisRunReconciler(
        SecretsOnly(secrets), clock=SystemClock(), services=local_services(settings.home)
    )
    progress = None if json_output else _Progress(color=color)
    try:
        run = asyncio.run(
            drive(
                prepared.run,
                reconciler=reconciler,
                secrets=reconciler.secrets(namespace),
                once=once,
                on_update=progress,
            )
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if json_output:
        typer.echo(json.dumps(run.to_raw(), indent=2, ensure_ascii=False))
    else:
        if progress is not None and progress.printed:
            typer.echo("")
        typer.echo(
            views.render_analysis_run(run.to_raw(), now=datetime.now(UTC), color=color), nl=False
        )
    raise typer.Exit(exit_code(run))
