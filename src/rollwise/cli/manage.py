"""The verbs that write: apply, set image, promote, abort, retry, undo, pause, restart.

Who calls it: `rollwise.cli.main`, which registers these functions as typer commands. Each verb
reads what it needs and writes in one read-modify-write (`state.read_modify_write`: a local
transaction, or on a cluster writes that carry the resourceVersion read, redone on a conflict),
so what it computed from is what it changes; the patches themselves come from
`rollwise.core.commands` (Argo's exact writes), sent as merge patches in both contexts.
Any problem is a `UserError` raised before the first write: the person sees one clear line
and nothing changed. Heavy modules (models, validation, the core) are imported inside the
verbs, keeping `rollwise --help` and `rollwise get` fast.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rollwise.api.errors import RollwiseError, UserError
from rollwise.cli.state import (
    Settings,
    Store,
    cluster_store,
    missing_rollout,
    open_store,
    read_modify_write,
    read_rollout,
    resource_label,
    rollout_replica_sets,
    template_names,
)

if TYPE_CHECKING:
    from rollwise.api.manifests import Loaded, Problem
    from rollwise.core.commands import Patches
    from rollwise.platforms.local.images import ImageTable

Raw = dict[str, Any]
RolloutName = Annotated[str, typer.Argument(metavar="ROLLOUT", help="Name of the rollout.")]


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def _write(store: Store, name: str, namespace: str, patches: Patches) -> None:
    # Argo patches the status subresource first, then the object.
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
        spec = item.document.raw.get("spec")
        template = spec.get("template") if isinstance(spec, Mapping) else None
        if not isinstance(template, Mapping) or not _container_shapes(template):
            continue  # a workloadRef rollout, or an invalid one validation reports
        containers = template["spec"].get("containers") or []
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


def _container_shapes(template: Mapping[str, Any]) -> bool:
    """Whether the containers of a pod template have the shapes the image table reads (a
    mapping of lists of mappings, images as text); validation reports those that do not."""
    spec = template.get("spec")
    if not isinstance(spec, Mapping):
        return False
    containers = spec.get("containers") or []
    if not isinstance(containers, list):
        return False
    for container in containers:
        if not isinstance(container, Mapping):
            return False
        if not isinstance(container.get("image") or "", str):
            return False
        if not isinstance(container.get("env") or [], list):
            return False
    return True


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

    settings = _settings(ctx)
    loaded, problems = load_files(filenames)
    if not loaded and not problems:
        raise UserError(f"no objects found in {', '.join(filenames)}")
    # Checked against the store as it is, without creating a home: refused manifests leave
    # no trace, not even an empty state file.
    with open_store(settings, create=False) as store:
        cluster = cluster_store(store)
        if cluster is not None:
            from rollwise.cli.cluster import cluster_template_names

            known, known_cluster = cluster_template_names(cluster, loaded, settings.namespace)
        else:
            from rollwise.platforms.local.images import ImageTable

            known, known_cluster = template_names(store)
            problems += _image_problems(loaded, ImageTable.load(settings.home), settings)
        problems += validate(loaded, known_templates=known, known_cluster_templates=known_cluster)
        for problem in problems:
            typer.echo(problem.format(), err=True)
        if has_errors(problems):
            count = sum(1 for p in problems if p.is_error)
            raise UserError(f"{count} problem{'s' if count != 1 else ''} found; nothing applied")
        results = _apply_all(store, loaded, settings.namespace) if store is not None else None
    if results is None:  # a home with no state yet: made now that there is something to apply
        with open_store(settings, create=True) as store:
            assert store is not None
            results = _apply_all(store, loaded, settings.namespace)
    for line in results:
        typer.echo(line)


def _apply_all(store: Store, loaded: Sequence[Loaded], namespace: str) -> list[str]:
    """Apply each object: in a local home, all in one transaction; on a cluster one by one
    (there are no transactions), so a failure part-way says what was applied before it."""
    results: list[str] = []
    try:
        with store.transaction():
            for item in loaded:
                stored, outcome = store.apply(_as_raw(item, namespace))
                results.append(f"{resource_label(stored)} {outcome}")
    except RollwiseError:
        if cluster_store(store) is not None:
            for line in results:
                typer.echo(line)
        raise
    return results


# --- set image -----------------------------------------------------------------------------------


def set_image(
    ctx: typer.Context,
    rollout_name: RolloutName,
    assignment: Annotated[str, typer.Argument(metavar="CONTAINER=IMAGE")],
) -> None:
    """Update the image of a container (`*` for all) in the rollout's pod template."""
    from rollwise.core.commands import set_image_patch

    container, sep, image = assignment.partition("=")
    if not sep or not container or not image:
        raise UserError(
            "expected CONTAINER=IMAGE (e.g. myapp=argoproj/rollouts-demo:yellow),"
            f" got '{assignment}'"
        )
    settings = _settings(ctx)
    namespace = settings.namespace
    with open_store(settings, create=False) as store:
        if store is None:
            raise missing_rollout(rollout_name, namespace)
        table = None
        if cluster_store(store) is None:
            # Whether this machine can run the image is a local-mode question only.
            from rollwise.platforms.local.images import ImageTable

            table = ImageTable.load(settings.home)

        def change() -> Patches:
            assert store is not None
            rollout = read_rollout(store, rollout_name, namespace)
            workload = _workload(store, rollout, namespace)
            patches = set_image_patch(workload or rollout, container, image)
            if table is not None:
                _check_runnable(table, rollout, patches, rollout_name)
            if workload is not None:
                _write_workload(store, workload, patches)
            else:
                _write(store, rollout_name, namespace, patches)
            return patches

        patches = read_modify_write(store, change)
    typer.echo(patches.note or f"rollout '{rollout_name}' image updated")


def _check_runnable(table: ImageTable, rollout: Raw, patches: Patches, name: str) -> None:
    template = (rollout.get("spec") or {}).get("template") or {}
    changed = patches.object_patch.get("spec", {}).get("template", {}).get("spec", {})
    new_template = {**template, "spec": {**(template.get("spec") or {}), **changed}}
    refusals = [m for m in table.check_template(new_template) if "ignored" not in m]
    if refusals:
        raise UserError(f"rollout '{name}': {refusals[0]}")


def _workload(store: Store, rollout: Raw, namespace: str) -> Raw | None:
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


def _write_workload(store: Store, workload: Raw, patches: Patches) -> None:
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

    settings = _settings(ctx)
    namespace = settings.namespace
    with open_store(settings, create=False) as store:
        if store is None:
            raise missing_rollout(name, namespace)

        def change() -> Patches:
            assert store is not None
            rollout = read_rollout(store, name, namespace)
            replica_sets = rollout_replica_sets(store, rollout, namespace)
            workload = _workload(store, rollout, namespace)
            if workload is None:
                patches = undo_patch(rollout, replica_sets, to_revision or None)
                _write(store, name, namespace, patches)
                return patches
            # Compare and write against the Deployment's template, the one the Rollout runs.
            template = (workload.get("spec") or {}).get("template") or {}
            current = {**rollout, "spec": {**rollout["spec"], "template": template}}
            patches = undo_patch(current, replica_sets, to_revision or None)
            _write_workload(store, workload, patches)
            return patches

        patches = read_modify_write(store, change)
    typer.echo(patches.note or f"rollout '{name}' undo")


def _patch_rollout(ctx: typer.Context, name: str, make: Callable[[Raw], Patches]) -> Patches:
    """Read the rollout, compute its patches and write them, as one read-modify-write."""
    settings = _settings(ctx)
    namespace = settings.namespace
    with open_store(settings, create=False) as store:
        if store is None:
            raise missing_rollout(name, namespace)

        def change() -> Patches:
            assert store is not None
            patches = make(read_rollout(store, name, namespace))
            _write(store, name, namespace, patches)
            return patches

        return read_modify_write(store, change)
