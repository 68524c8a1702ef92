"""`rollwise notifications test`: send one notification for real, now.

Who calls it: `rollwise.cli.main` registers `send_test` as `notifications test`. It reads the
home's `notifications.yaml` and the Rollout from the local store, makes the event the trigger stands
for (`on-rollout-aborted` -> a `RolloutAborted` event), and sends it to every destination the
Rollout subscribes to that trigger (or to `--service`/`--recipient`), through the same services
and transports as the controller's notifier, one attempt each, without touching the notifier's
cursor. `--dry-run` prints the rendered notifications instead of sending them.

The notify package (jinja2, apprise, aiohttp) is imported inside the command: it is not on the
start-up path of the other verbs.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from rollwise.api.errors import UserError
from rollwise.cli.state import Settings, open_local_store, read_rollout


def send_test(
    ctx: typer.Context,
    trigger: Annotated[
        str, typer.Option("--trigger", help="Trigger to send, e.g. on-rollout-aborted.")
    ],
    rollout: Annotated[str, typer.Option("--rollout", help="Rollout the notification is about.")],
    service: Annotated[
        str | None,
        typer.Option("--service", help="Send to this configured service instead of subscribers."),
    ] = None,
    recipient: Annotated[
        str, typer.Option("--recipient", help="Recipient for --service (channel, address...).")
    ] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the rendered notifications; send nothing.")
    ] = False,
) -> None:
    """Send one notification of TRIGGER about ROLLOUT now, to its subscribers."""
    from rollwise.core.timestamps import SystemClock, format_time
    from rollwise.notify.config import CONFIG_FILE, load_config_file
    from rollwise.notify.delivery import MemoryTransport, NetworkTransport, close_transport
    from rollwise.notify.service import Notifier, StaticConfig
    from rollwise.notify.state import MemoryState
    from rollwise.notify.subscriptions import Destination
    from rollwise.notify.triggers import reason_for_trigger

    settings = ctx.obj
    assert isinstance(settings, Settings)
    settings.require_local("`rollwise notifications test`")
    path = settings.home / CONFIG_FILE
    config = load_config_file(path)
    if config is None:
        raise UserError(
            f"no notification configuration at {path}: write the services there "
            "(the keys of Argo's argo-rollouts-notification-configmap)"
        )
    for problem in config.problems:
        typer.echo(f"Warning: {path}: {problem}", err=True)
    if trigger not in config.triggers:
        known = ", ".join(sorted(config.triggers))
        raise UserError(f"no trigger.{trigger} is configured (configured: {known})")
    if service is not None and service not in config.services:
        raise UserError(f"no service '{service}' is configured in {path}")
    clock = SystemClock()
    now = format_time(clock.now())
    with open_local_store(settings, create=False) as store:
        read_rollout(store, rollout, settings.namespace)
        assert store is not None
        event: dict[str, Any] = {
            "involvedObject": {"kind": "Rollout", "name": rollout, "namespace": settings.namespace},
            "type": "Warning" if trigger.endswith(("aborted", "failed", "error")) else "Normal",
            "reason": reason_for_trigger(trigger),
            "message": f"a test of {trigger} sent by rollwise notifications test",
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
        }
        transport = MemoryTransport() if dry_run else NetworkTransport()
        notifier = Notifier(
            feed=store,
            objects=store,
            config=StaticConfig(config),
            state=MemoryState(),
            transport=transport,
            clock=clock,
            secret_namespace="default",
        )
        only = Destination(service, recipient) if service is not None else None
        deliveries = notifier.prepare(config, event, counter=0, only=only)
        if not deliveries:
            raise UserError(
                f"rollout '{rollout}' subscribes nobody to {trigger}: add the annotation "
                f"notifications.argoproj.io/subscribe.{trigger}.<service>: <recipients>, "
                "or pass --service"
            )
        if dry_run:
            for delivery in deliveries:
                typer.echo(f"# {trigger} to {Destination(delivery.service, delivery.recipient)}")
                typer.echo(json.dumps(delivery.notification, indent=2, ensure_ascii=False))
            return

        async def send_all() -> list[tuple[str, bool, str]]:
            results = []
            try:
                for delivery in deliveries:
                    outcome = await notifier.send_now(delivery)
                    where = str(Destination(delivery.service, delivery.recipient))
                    results.append((where, outcome.ok, outcome.detail))
            finally:
                await close_transport(transport)
            return results

        import asyncio  # here: asyncio alone costs ~15 ms of every command's start

        results = asyncio.run(send_all())
    failed = False
    for where, ok, detail in results:
        if ok:
            typer.echo(f"sent {trigger} about rollout '{rollout}' to {where}")
        else:
            failed = True
            typer.echo(f"Error: {trigger} to {where} failed: {detail}", err=True)
    if failed:
        raise typer.Exit(1)
