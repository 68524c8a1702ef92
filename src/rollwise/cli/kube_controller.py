"""`rollwise controller --kubernetes`: the flags turned into `KubeOptions`, then the loop.

Who calls it: `rollwise.cli.main.controller`. Kept apart so that the local CLI never imports
the Kubernetes client (its import alone costs ~0.7 s).
"""

from __future__ import annotations

import contextlib

from rollwise.api.errors import UserError

ROUTER_FLAGS = {
    "istio": "istio_api_version",
    "ingress": "ingress_api_version",
    "traefik": "traefik_api_version",
    "smi": "smi_api_version",
    "gateway": "gateway_api_version",
}


def run_controller(
    *,
    kubeconfig: str | None,
    namespace: str | None,
    namespaced: bool,
    instance_id: str | None,
    leader_elect: bool,
    lease: tuple[float, float, float],
    qps: float,
    burst: int,
    threads: tuple[int, int, int],
    metrics_port: int,
    healthz_port: int,
    router_flags: list[str],
) -> None:
    from rollwise.controller.kubernetes import KubeOptions, run_kubernetes
    from rollwise.platforms.kubernetes.leader import LeaseTimings
    from rollwise.routers.registry import ClusterRouterOptions

    versions: dict[str, str] = {}
    for flag in router_flags:
        name, _, version = flag.partition("=")
        if name not in ROUTER_FLAGS or not version:
            raise UserError(
                f"--router-api {flag!r}: expected NAME=VERSION with NAME one of "
                f"{', '.join(ROUTER_FLAGS)}"
            )
        versions[ROUTER_FLAGS[name]] = version
    lease_seconds, renew_deadline, retry_period = lease
    if not retry_period < renew_deadline < lease_seconds:
        raise UserError(
            "leader election needs retry period < renew deadline < lease duration "
            f"(got {retry_period:g} s, {renew_deadline:g} s, {lease_seconds:g} s)"
        )
    rollout_threads, experiment_threads, analysis_threads = threads
    options = KubeOptions(
        kubeconfig=kubeconfig,
        namespace=namespace,
        namespaced=namespaced,
        instance_id=instance_id or None,
        leader_elect=leader_elect,
        lease=LeaseTimings(lease_seconds, renew_deadline, retry_period),
        qps=qps,
        burst=burst,
        rollout_threads=rollout_threads,
        experiment_threads=experiment_threads,
        analysis_threads=analysis_threads,
        metrics_port=metrics_port,
        healthz_port=healthz_port,
        routers=ClusterRouterOptions(**versions),
    )
    with contextlib.suppress(KeyboardInterrupt):
        run_kubernetes(options)
