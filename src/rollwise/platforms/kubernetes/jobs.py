"""Kubernetes mode's JobRunner: the `job` metric provider's pod runs as a batch/v1 Job.

Who calls it: `rollwise.providers.job`, through `ProviderServices.job_runner`, which the
Kubernetes controller fills with a `KubeJobRunner`. The provider keeps Argo's contract (the Job
decides the measurement; retries with back-off up to `backoffLimit`) and asks the runner to run
one pod at a time, so each Job here is created with `backoffLimit: 0`. Names, labels and clean-up
are Argo's: the Job is named `<run>.<metric>.<n>`, labelled `analysisrun.argoproj.io/uid` and
annotated with the run's name, namespace and metric, owned by the AnalysisRun (so deleting the
run deletes its Jobs), and deleted when the measurement is terminated.

The handle the provider keeps in the measurement's metadata is `<namespace>/<name>`, so a
controller started after a restart resumes polling the same Job.
"""

from __future__ import annotations

from typing import Any

from rollwise.api.errors import NotFoundError
from rollwise.platforms.kubernetes.client import KubeClient
from rollwise.providers.base import JobPhase

RUN_UID_LABEL = "analysisrun.argoproj.io/uid"
RUN_NAME_ANNOTATION = "analysisrun.argoproj.io/run-name"
RUN_NAMESPACE_ANNOTATION = "analysisrun.argoproj.io/run-namespace"
METRIC_ANNOTATION = "analysisrun.argoproj.io/metric-name"


class KubeJobRunner:
    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def start(self, name: str, namespace: str, pod_template: dict[str, Any]) -> str:
        run_name, _, rest = name.partition(".")
        metric = rest.rpartition(".")[0]
        run = await self.client.get("argoproj.io/v1alpha1", "AnalysisRun", run_name, namespace)
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "annotations": {
                RUN_NAME_ANNOTATION: run_name,
                RUN_NAMESPACE_ANNOTATION: namespace,
                METRIC_ANNOTATION: metric,
            },
        }
        if run is not None:
            run_metadata = run.get("metadata") or {}
            metadata["labels"] = {RUN_UID_LABEL: str(run_metadata.get("uid", ""))}
            metadata["ownerReferences"] = [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "AnalysisRun",
                    "name": run_name,
                    "uid": run_metadata.get("uid"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        template = dict(pod_template)
        spec = dict(template.get("spec") or {})
        spec.setdefault("restartPolicy", "Never")
        template["spec"] = spec
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": {"backoffLimit": 0, "template": template},
        }
        await self.client.create(job)
        return f"{namespace}/{name}"

    async def status(self, handle: str) -> JobPhase:
        namespace, _, name = handle.partition("/")
        job = await self.client.get("batch/v1", "Job", name, namespace)
        if job is None:
            return "Failed"  # deleted under us: nothing will ever report success
        status = job.get("status") or {}
        for condition in status.get("conditions") or ():
            if condition.get("status") == "True" and condition.get("type") in (
                "Complete",
                "Failed",
            ):
                return "Succeeded" if condition["type"] == "Complete" else "Failed"
        if int(status.get("succeeded") or 0) > 0:
            return "Succeeded"
        if int(status.get("failed") or 0) > 0:
            return "Failed"
        return "Running"

    async def stop(self, handle: str) -> None:
        namespace, _, name = handle.partition("/")
        try:
            await self.client.delete("batch/v1", "Job", name, namespace)
        except NotFoundError:
            return
