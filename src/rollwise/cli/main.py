"""`rollwise`: the command line, mirroring `kubectl argo rollouts`.

Where this sits: the console scripts `rollwise = rollwise.cli.main:run` and the kubectl plugin
`kubectl-rollwise = rollwise.cli.main:run_plugin` (the same commands, always on the cluster of
the kubeconfig). It parses the global options (`--home`, `--namespace`, `--context`,
`--kubeconfig`, `--kube-context`; after the verb too, see `options`), registers the verbs of
`view` (reads) and `manage` (writes), and is the one place where a `RollwiseError` becomes one
line on stderr and exit code 1, never a traceback.

Startup time is a budget (150 ms for `rollwise --help` and `rollwise get rollout`): this module
imports typer and the small CLI modules only. The controller, the demo, the models, the core
and yaml are imported inside the commands that use them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from rollwise import __version__
from rollwise.api.errors import RollwiseError, UserError
from rollwise.cli import analysis, dashboard, experiments, install, manage, notifications, view
from rollwise.cli.options import VerbCommand, VerbGroup, plugin_args
from rollwise.cli.plain_params import use_plain_conversion
from rollwise.cli.state import Settings, cluster_store, open_store, template_names

_HELP_ORDER = (
    "apply",
    "create",
    "get",
    "list",
    "status",
    "set",
    "promote",
    "abort",
    "retry",
    "undo",
    "pause",
    "restart",
    "terminate",
    "lint",
    "analyze",
    "notifications",
    "install",
    "controller",
    "dashboard",
    "demo",
    "version",
)


class _Commands(VerbGroup):
    """The root group: turns every rollwise error into `Error: <message>` and exit code 1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        use_plain_conversion(self)

    def list_commands(self, ctx: Any) -> list[str]:
        # the order a person meets them in, not the order they were registered in
        known = [name for name in _HELP_ORDER if name in self.commands]
        return known + [name for name in self.commands if name not in known]

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except RollwiseError as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(1) from None


def _typer(help_text: str, cls: type[VerbGroup] = VerbGroup) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        cls=cls,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # rich help would cost ~50 ms of imports on every `--help`
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = _typer(
    "Progressive delivery: canary and blue-green rollouts, measured and promoted or rolled "
    "back on their own. Reads Argo Rollouts YAML unchanged.",
    cls=_Commands,
)
get_app = _typer("Show a rollout, an experiment or an analysis run.")
list_app = _typer("List rollouts, experiments or analysis runs.")
set_app = _typer("Change a rollout's pod template.")
retry_app = _typer("Retry an aborted rollout, or an experiment.")
terminate_app = _typer("Terminate an analysis run or an experiment.")
create_app = _typer("Create a resource (a secret) in the local home or the cluster.")
create_secret_app = _typer("Create a secret.")
app.add_typer(get_app, name="get")
app.add_typer(list_app, name="list")
app.add_typer(set_app, name="set")
app.add_typer(retry_app, name="retry")
app.add_typer(terminate_app, name="terminate")
app.add_typer(create_app, name="create")
create_app.add_typer(create_secret_app, name="secret")
notifications_app = _typer("Send the notifications a rollout subscribes to.")
app.add_typer(notifications_app, name="notifications")


@app.callback()
def _global_options(
    ctx: typer.Context,
    home: Annotated[
        Path,
        typer.Option(
            "--home",
            envvar="ROLLWISE_HOME",
            help="Local state directory (SQLite store, logs, proxy config).",
        ),
    ] = Path(".rollwise"),
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Namespace to act in (default: 'default'; on a cluster, the kubeconfig "
            "context's namespace).",
        ),
    ] = None,
    context: Annotated[
        str,
        typer.Option(
            "--context",
            envvar="ROLLWISE_CONTEXT",
            help="Where to act: local (a rollwise home) or kubernetes (the cluster of the "
            "kubeconfig). In `kubectl rollwise`: the kubeconfig context, as in kubectl.",
        ),
    ] = "local",
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig",
            help="Kubernetes: the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, "
            "else in-cluster).",
        ),
    ] = None,
    kube_context: Annotated[
        str | None,
        typer.Option(
            "--kube-context", help="Kubernetes: the kubeconfig context (default: the current)."
        ),
    ] = None,
) -> None:
    settings = Settings(
        home=home,
        namespace_option=namespace,
        context=context,
        kubeconfig=kubeconfig,
        kube_context=kube_context,
    )
    ctx.obj = settings
    # One connection to a cluster per invocation, closed when the command is done.
    ctx.call_on_close(settings.cluster.close)


# --- verbs -------------------------------------------------------------------------------------


def _register(group: typer.Typer, names: tuple[str, ...], verb: Callable[..., None]) -> None:
    """The verb under its name, and under hidden aliases (Argo's `ro`, `exp`...)."""
    for index, name in enumerate(names):
        group.command(name, cls=VerbCommand, hidden=index > 0)(verb)


_register(app, ("apply",), manage.apply)
_register(get_app, ("rollout", "ro", "rollouts"), view.get_rollout)
_register(get_app, ("experiment", "exp", "experiments"), experiments.get_experiment)
_register(list_app, ("experiments", "experiment", "exp"), experiments.list_experiments)
_register(terminate_app, ("experiment", "exp", "experiments"), experiments.terminate_experiment)
_register(retry_app, ("experiment", "exp", "experiments"), experiments.retry_experiment)
_register(list_app, ("rollouts", "rollout", "ro"), view.list_rollouts)
_register(app, ("status",), view.status)
_register(set_app, ("image",), manage.set_image)
_register(app, ("promote",), manage.promote)
_register(app, ("abort",), manage.abort)
_register(retry_app, ("rollout", "ro"), manage.retry_rollout)
_register(app, ("undo",), manage.undo)
_register(app, ("pause",), manage.pause)
_register(app, ("restart",), manage.restart)
_register(get_app, ("analysisrun", "ar", "analysisruns"), analysis.get_analysisrun)
_register(list_app, ("analysisruns", "analysisrun", "ar"), analysis.list_analysisruns)
_register(terminate_app, ("analysisrun", "ar", "analysisruns"), analysis.terminate_analysisrun)
_register(create_secret_app, ("generic",), analysis.create_secret_generic)
_register(app, ("analyze",), analysis.analyze)
_register(notifications_app, ("test",), notifications.send_test)
_register(app, ("dashboard",), dashboard.dashboard)
_register(app, ("install",), install.install)


# --- the rest ----------------------------------------------------------------------------------


@app.command("lint", cls=VerbCommand)
def lint(
    ctx: typer.Context,
    filenames: Annotated[
        list[str],
        typer.Option("-f", "--filename", help="Manifest files or directories ('-' reads stdin)."),
    ],
) -> None:
    """Check manifests; every problem as FILE:LINE:COL: message. Exit 1 if any is an error.

    Templates the files refer to may be in the files or already in the store (the local home,
    or the cluster with --context kubernetes)."""
    from rollwise.api.manifests import has_errors, load_files
    from rollwise.api.validation import validate

    settings = ctx.obj
    assert isinstance(settings, Settings)
    loaded, read_problems = load_files(filenames)
    with open_store(settings, create=False) as store:
        cluster = cluster_store(store)
        if cluster is not None:
            from rollwise.cli.cluster import cluster_template_names

            known, known_cluster = cluster_template_names(cluster, loaded, settings.namespace)
        else:
            known, known_cluster = template_names(store)
    found = read_problems + validate(
        loaded, known_templates=known, known_cluster_templates=known_cluster
    )
    # as `lint_paths` orders them: once each (two rules may find one thing), in file order
    problems = sorted(dict.fromkeys(found), key=lambda p: (p.file, p.line, p.column))
    for problem in problems:
        typer.echo(problem.format())
    if has_errors(problems):  # the verdict on stderr, one line, as apply and Argo's lint say it
        count = sum(1 for problem in problems if problem.is_error)
        raise UserError(f"{count} problem{'s' if count != 1 else ''} found")


@app.command("controller", cls=VerbCommand)
def controller(
    ctx: typer.Context,
    local: Annotated[
        bool,
        typer.Option("--local/--kubernetes", help="Run against the local store (the default)."),
    ] = True,
    port: Annotated[
        int | None, typer.Option("--port", help="Port Traefik serves the services on.")
    ] = None,
    stop: Annotated[
        bool,
        typer.Option(
            "--stop",
            help="Stop the pods and Traefik a killed controller left running, then exit.",
        ),
    ] = False,
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port",
            help="Port of the controller's /metrics and /healthz on 127.0.0.1 (0: off).",
        ),
    ] = 8090,
    dashboard_port: Annotated[
        int,
        typer.Option(
            "--dashboard-port",
            help="Port of the web dashboard on 127.0.0.1 (0: off); the token is printed.",
        ),
    ] = 3100,
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", help="Kubernetes: kubeconfig file.")
    ] = None,
    namespaced: Annotated[
        bool, typer.Option("--namespaced", help="Kubernetes: watch only --namespace.")
    ] = False,
    instance_id: Annotated[
        str | None,
        typer.Option("--instance-id", help="Kubernetes: act only on objects with this label."),
    ] = None,
    leader_elect: Annotated[
        bool, typer.Option("--leader-elect/--no-leader-elect", help="Kubernetes: use a Lease.")
    ] = True,
    lease_duration: Annotated[
        float, typer.Option("--leader-election-lease-duration", help="Seconds.")
    ] = 15.0,
    renew_deadline: Annotated[
        float, typer.Option("--leader-election-renew-deadline", help="Seconds.")
    ] = 10.0,
    retry_period: Annotated[
        float, typer.Option("--leader-election-retry-period", help="Seconds.")
    ] = 2.0,
    qps: Annotated[float, typer.Option("--qps", help="Kubernetes: API requests/s.")] = 40.0,
    burst: Annotated[int, typer.Option("--burst", help="Kubernetes: API burst.")] = 80,
    rollout_threads: Annotated[int, typer.Option("--rollout-threads")] = 10,
    experiment_threads: Annotated[int, typer.Option("--experiment-threads")] = 10,
    analysis_threads: Annotated[int, typer.Option("--analysis-threads")] = 30,
    healthz_port: Annotated[
        int, typer.Option("--healthz-port", help="Kubernetes: port of /healthz (0: off).")
    ] = 8080,
    router_flags: Annotated[
        list[str] | None,
        typer.Option(
            "--router-api",
            help="Kubernetes: API versions of routers as NAME=VERSION (istio, ingress, "
            "traefik, smi, gateway), like Argo's --istio-api-version.",
        ),
    ] = None,
) -> None:
    """Run the controller in the foreground until Ctrl-C (which stops its pods and Traefik).

    With --kubernetes it runs against the cluster of the kubeconfig (or in-cluster), with
    Argo's controller flags."""
    settings = ctx.obj
    assert isinstance(settings, Settings)
    if not local:
        from rollwise.cli.kube_controller import run_controller

        run_controller(
            kubeconfig=kubeconfig or settings.kubeconfig,
            # Without -n: the pod's POD_NAMESPACE, else the kubeconfig context's namespace.
            namespace=settings.namespace_option,
            namespaced=namespaced,
            instance_id=instance_id,
            leader_elect=leader_elect,
            lease=(lease_duration, renew_deadline, retry_period),
            qps=qps,
            burst=burst,
            threads=(rollout_threads, experiment_threads, analysis_threads),
            metrics_port=metrics_port,
            healthz_port=healthz_port,
            router_flags=router_flags or [],
        )
        return
    settings.require_local("`rollwise controller --local`")
    from rollwise.controller.local import run_local, stop_local

    if stop:
        stop_local(home=settings.home)
        typer.echo(f"stopped the pods and Traefik of {settings.home}")
        return
    make_dashboard = None
    if dashboard_port:
        from rollwise.dashboard.local import dashboard_url, local_app
        from rollwise.dashboard.server import new_token

        token = new_token()
        home = settings.home

        def make_dashboard() -> Any:
            return local_app(home, token=token, read_only=False)

        url = dashboard_url(host="127.0.0.1", port=dashboard_port, token=token)
        typer.echo(f"dashboard at {url} (token for actions: {token})")
    with contextlib.suppress(KeyboardInterrupt):
        run_local(
            home=settings.home,
            port=port,
            metrics_port=metrics_port,
            dashboard_port=dashboard_port,
            dashboard=make_dashboard,
        )


@app.command("demo", cls=VerbCommand)
def demo(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON summary at the end.")
    ] = False,
    prometheus: Annotated[
        bool,
        typer.Option(
            "--prometheus",
            help="Judge the auto-rollback scenario with the seed's success-rate template "
            "against a real Prometheus (a `prometheus` binary on PATH; takes ~4 minutes).",
        ),
    ] = False,
    dashboard_port: Annotated[
        int,
        typer.Option(
            "--dashboard-port", help="Serve the web dashboard on this port while it runs (0: off)."
        ),
    ] = 3100,
) -> None:
    """Run whole canaries locally in about a minute: promoted, aborted, rolled back by analysis."""
    settings = ctx.obj
    assert isinstance(settings, Settings)
    settings.require_local("`rollwise demo`")
    from rollwise.demo.scenarios import main as run_demo

    dashboard = None
    if dashboard_port:
        from rollwise.dashboard.local import dashboard_url, local_app
        from rollwise.dashboard.server import new_token

        token = new_token()

        def dashboard(home: Path) -> Any:
            return lambda: local_app(home, token=token, read_only=False)

        url = dashboard_url(host="127.0.0.1", port=dashboard_port, token=token)
        typer.echo(f"watch the demo in the dashboard: {url}", err=True)
    result = run_demo(
        json_output=json_output,
        prometheus=prometheus,
        dashboard=dashboard,
        dashboard_port=dashboard_port,
    )
    if isinstance(result, int) and result:
        raise typer.Exit(result)


@app.command("version", cls=VerbCommand)
def version() -> None:
    """Print the version of rollwise."""
    typer.echo(f"rollwise {__version__}")


def run() -> None:
    """The console script."""
    app(prog_name="rollwise")


def run_plugin() -> None:
    """The kubectl plugin `kubectl-rollwise`: `kubectl rollwise get rollout myapp -w` acts on
    the cluster of the kubeconfig; kubectl's `--context NAME` names the kubeconfig context."""
    app(args=plugin_args(sys.argv[1:]), prog_name="kubectl rollwise")
