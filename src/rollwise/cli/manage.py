"""The verbs that write: apply, set image, promote, abort, retry, undo, pause, restart.

Who calls it: `rollwise.cli.main`, which registers these functions as typer commands. Each verb
reads what it needs and writes inside one store transaction, so what it computed from is what
it changes; the patches themselves come from `rollwise.core.commands` (Argo's exact writes).
Any problem is a `UserError` raised before the first write: the person sees one clear line
and nothing changed. Heavy modules (models, validation, the core) are imported inside the
verbs, keeping `rollwise --help` and `rollwise get` fast.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rollwise.api.errors import UserError
from rollwise.cli.state import (
    Settings,
    missing_rollout,
    open_store,
    read_rollout,
    resource_label,
    template_names,
)

if TYPE_CHECKING:
    from rollwise.api.manifests import Loaded, Problem
    from rollwise.core.commands import Patches
    from rollwise.platforms.local.images import ImageTable
    from rollwise.platforms.local.store import SqliteStore

Raw = dict[str, Any]
RolloutName = Annotated[str, typer.Argument(metavar="ROLLOUT", help="Name of the rollout.")]


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def _write(store: SqliteStore, name: str, namespace: str, patches: Patches) -> None:
    # Argo patches the status subresource first, then the object; one transaction here.
    if patches.status_patch:
        store.patch("Rollout", name, namespace, merge=patches.status_patch, status=True)
    if patches.object_patch:
        store.patch("Rollout", name, namespace, merge=patches.object_patch)


# --- apply ---------------------------------------------------------------------------------------

_IMAGE_PATH = ("spec", "template", "spec", "containers")


def _image_problems(
    loaded: Sequence[Loaded], table: ImageTable, settings: Settings
) -> list[Problem]:
    """Containers of rollout templates that local mode cannot run, located in their files."""
    problems: list[Problem] = []
    for item in loaded:
        if item.kind != "Rollout" or item.pruned:
            continue
        raw = item.document.raw
        template = (raw.get("spec") or {}).get("template")
        if not isinstance(template, Mapping):
            continue  # a workloadRef rollout, or an invalid one validation already reported
        containers = (template.get("spec") or {}).get("containers") or []
        for message in table.check_template(template):
            path: tuple[str | int, ...] = ("spec", "template", "spec")
            for index, container in enumerate(containers):
                if message.startswith(f"container '{container.get('name')}'"):
                    field = "image" if "image" in message else "env"
                    path = (*_IMAGE_PATH, index, field)
                    break
            # The table says "ignored" of what it can run without: a warning, not a refusal.
            if "ignored" in message:
                problems.append(item.document.problem(path, message, severity="warning"))
            else:
                problems.append(item.document.problem(path, message))
    return problems


def _as_raw(item: Loaded, namespace: str) -> Raw:
    """The object exactly as the file wrote it (like kubectl, which sends what it read), in the
    chosen namespace when it names none."""
    raw: Raw = copy.deepcopy(item.document.raw)
    metadata = dict(raw.get("metadata") or {})
    if not metadata.get("namespace") and not str(raw.get("kind", "")).startswith("Cluster"):
        metadata["namespace"] = namespace
    raw["metadata"] = metadata
    return raw


def apply(
    ctx: typer.Context,
    filenames: Annotated[
        list[str],
        typer.Option("-f", "--filename", help="Manifest files or directories ('-' reads stdin)."),
    ],
) -> None:
    """Create or update resources from YAML, like `kubectl apply -f`.

    Every problem of every file is reported as FILE:LINE:COL before anything is written; with
    any error, nothing is applied.
    """
    from rollwise.api.manifests import has_errors, load_files
    from rollwise.api.validation import validate
    from rollwise.platforms.local.images import ImageTable

    settings = _settings(ctx)
    settings.require_local()
    loaded, problems = load_files(filenames)
    if not loaded and not problems:
        raise UserError(f"no objects found in {', '.join(filenames)}")
    with open_store(settings, create=True) as store:
        assert store is not None
        known, known_cluster = template_names(store)
        problems += validate(loaded, known_templates=known, known_cluster_templates=known_cluster)
        problems += _image_problems(loaded, ImageTable.load(settings.home), settings)
        for problem in problems:
            typer.echo(problem.format(), err=True)
        if has_errors(problems):
            count = sum(1 for p in problems if p.is_error)
            raise UserError(f"{count} problem{'s' if count != 1 else ''} found; nothing applied")
        results = []
        with store.transaction():
            for item in loaded:
                stored, outcome = store.apply(_as_raw(item, settings.namespace))
                results.append(f"{resource_label(stored)} {outcome}")
    for line in results:
        typer.echo(line)


# --- set image -----------------------------------------------------------------------------------


def set_image(
    ctx: typer.Context,
    rollout_name: RolloutName,
    assignment: Annotated[str, typer.Argument(metavar="CONTAINER=IMAGE")],
) -> None:
    """Update the image of a container (`*` for all) in the rollout's pod template."""
    from rollwise.core.commands import set_image_patch
    from rollwise.platforms.local.images import ImageTable

    container, sep, image = assignment.partition("=")
    if not sep or not container or not image:
        raise UserError(
            "expected CONTAINER=IMAGE (e.g. myapp=argoproj/rollouts-demo:yellow),"
            f" got '{assignment}'"
        )
    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        if store is None:
            raise missing_rollout(rollout_name, settings.namespace)
        table = ImageTable.load(settings.home)
        with store.transaction():
            rollout = read_rollout(store, rollout_name, settings.namespace)
            workload = _workload(store, rollout, settings.namespace)
            patches = set_image_patch(workload or rollout, container, image)
            template = (rollout.get("spec") or {}).get("template") or {}
            changed = patches.object_patch.get("spec", {}).get("template", {}).get("spec", {})
            new_template = {**template, "spec": {**(template.get("spec") or {}), **changed}}
            refusals = [m for m in table.check_template(new_template) if "ignored" not in m]
            if refusals:
                raise UserError(f"rollout '{rollout_name}': {refusals[0]}")
            if workload is not None:
                _write_workload(store, workload, patches)
            else:
                _write(store, rollout_name, settings.namespace, patches)
    typer.echo(patches.note or f"rollout '{rollout_name}' image updated")


def _workload(store: SqliteStore, rollout: Raw, namespace: str) -> Raw | None:
    """The Deployment a `workloadRef` Rollout takes its pod template from (None without one):
    like Argo's CLI, `set image` and `undo` then edit that object, not the Rollout."""
    ref = (rollout.get("spec") or {}).get("workloadRef")
    if not ref:
        return None
    kind, name = str(ref.get("kind") or "Deployment"), str(ref.get("name") or "")
    workload = store.get(kind, name, namespace)
    if workload is None:
        raise UserError(
            f"rollout '{rollout['metadata']['name']}' takes its pod template from {kind} "
            f"'{name}' (spec.workloadRef), which is not in namespace '{namespace}'"
        )
    return workload


def _write_workload(store: SqliteStore, workload: Raw, patches: Patches) -> None:
    metadata = workload["metadata"]
    store.patch(
        str(workload["kind"]),
        metadata["name"],
        metadata.get("namespace") or "default",
        merge=patches.object_patch,
    )


# --- promote, abort, retry, pause, restart, undo --------------------------------------------------


def promote(
    ctx: typer.Context,
    name: RolloutName,
    full: Annotated[
        bool, typer.Option("--full", help="Skip all remaining steps, pauses and analysis.")
    ] = False,
) -> None:
    """Promote a paused rollout to its next step (or, with --full, to the end)."""
    from rollwise.core.commands import promote_patch

    patches = _patch_rollout(ctx, name, lambda rollout: promote_patch(rollout, full=full))
    if patches.empty and patches.note:
        typer.echo(patches.note)
    else:
        typer.echo(f"rollout '{name}' {'fully promoted' if full else 'promoted'}")


def abort(ctx: typer.Context, name: RolloutName) -> None:
    """Abort the update: traffic goes back to the stable version."""
    from rollwise.core.commands import abort_patch

    _patch_rollout(ctx, name, abort_patch)
    typer.echo(f"rollout '{name}' aborted")


def retry_rollout(ctx: typer.Context, name: RolloutName) -> None:
    """Retry an aborted rollout: its steps start again from the first."""
    from rollwise.core.commands import retry_patch

    _patch_rollout(ctx, name, retry_patch)
    typer.echo(f"rollout '{name}' retried")


def pause(ctx: typer.Context, name: RolloutName) -> None:
    """Pause the rollout where it is, until `promote`."""
    from rollwise.core.commands import pause_patch

    _patch_rollout(ctx, name, pause_patch)
    typer.echo(f"rollout '{name}' paused")


def restart(
    ctx: typer.Context,
    name: RolloutName,
    in_: Annotated[
        str, typer.Option("--in", "-i", help="Delay before the restart (30s, 5m, 1h).")
    ] = "",
) -> None:
    """Restart the rollout's pods (one at a time), now or after a delay."""
    from rollwise.api.durations import parse_duration
    from rollwise.core.commands import restart_patch

    try:
        seconds = parse_duration(in_) if in_ else 0.0
    except ValueError as error:
        raise UserError(f"--in: {error}") from error
    if seconds < 0:
        raise UserError(f"--in: a delay cannot be negative, got '{in_}'")
    now = datetime.now(UTC)
    _patch_rollout(
        ctx, name, lambda rollout: restart_patch(rollout, now, delay=timedelta(seconds=seconds))
    )
    typer.echo(f"rollout '{name}' restarts in {in_ or '0s'}")


def undo(
    ctx: typer.Context,
    name: RolloutName,
    to_revision: Annotated[
        int,
        typer.Option(
            "--to-revision", help="The revision to go back to (default: the previous one)."
        ),
    ] = 0,
) -> None:
    """Roll back to the pod template of an earlier revision."""
    from rollwise.core.commands import undo_patch
    from rollwise.views.info import owned_by

    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        if store is None:
            raise missing_rollout(name, settings.namespace)
        with store.transaction():
            rollout = read_rollout(store, name, settings.namespace)
            replica_sets = [
                rs
                for rs in store.list("ReplicaSet", settings.namespace)
                if owned_by(rs, rollout, kind="Rollout")
            ]
            workload = _workload(store, rollout, settings.namespace)
            if workload is None:
                patches = undo_patch(rollout, replica_sets, to_revision or None)
                _write(store, name, settings.namespace, patches)
            else:
                # Compare and write against the Deployment's template, the one the Rollout runs.
                template = (workload.get("spec") or {}).get("template") or {}
                current = {**rollout, "spec": {**rollout["spec"], "template": template}}
                patches = undo_patch(current, replica_sets, to_revision or None)
                _write_workload(store, workload, patches)
    typer.echo(patches.note or f"rollout '{name}' undo")


def _patch_rollout(ctx: typer.Context, name: str, make: Any) -> Patches:
    """Read the rollout, compute its patches and write them, all in one transaction."""
    settings = _settings(ctx)
    with open_store(settings, create=False) as store:
        if store is None:
            raise missing_rollout(name, settings.namespace)
        with store.transaction():
            patches: Patches = make(read_rollout(store, name, settings.namespace))
            _write(store, name, settings.namespace, patches)
    return patches
