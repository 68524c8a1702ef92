"""Local mode's JobRunner: the `job` metric provider's Job runs as one local process.

Who calls it: `rollwise.providers.job`, through `ProviderServices.job_runner`, which the local
controller and `rollwise analyze` fill with a `LocalJobRunner`. The Job's first container is
resolved like a pod's (its command/args, else the image table); an image the table does not know
raises `UserError`, which the provider reports as Inconclusive, as Argo does for a Job that
cannot start.

The handle the provider keeps in the measurement's metadata is a small JSON document (pid, the
kernel's start time for it, and the file the exit code goes to). The process runs under a
`/bin/sh` wrapper that writes its exit code to that file, so a controller started after a
`kill -9` still learns how a job it did not start ended.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from rollwise.platforms.local import processes
from rollwise.platforms.local.images import ImageTable
from rollwise.providers.base import JobPhase

# `sh -c SCRIPT sh EXIT_FILE PROGRAM ARGS...`: run the program, then record how it ended.
_WRAPPER = '"$@"; echo $? > "$0"'
STOP_GRACE_SECONDS = 5.0


class LocalJobRunner:
    def __init__(self, home: Path, *, images: ImageTable | None = None) -> None:
        self.home = home
        self.images = images if images is not None else ImageTable.load(home)

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    async def start(self, name: str, namespace: str, pod_template: dict[str, Any]) -> str:
        containers = (pod_template.get("spec") or {}).get("containers") or []
        if not containers:
            raise ValueError(f"job {name}: the pod template has no container")
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{namespace}-{name}")
        spec = self.images.resolve(containers[0], port=processes.free_port(), pod_name=name)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        exit_file = self.jobs_dir / f"{safe}.{uuid.uuid4().hex[:8]}.exit"
        exit_file.unlink(missing_ok=True)
        wrapped = replace(spec, argv=("/bin/sh", "-c", _WRAPPER, str(exit_file), *spec.argv))
        handle = processes.spawn(
            wrapped, log_path=self.home / "logs" / f"job-{safe}.log", banner=f"job {name}"
        )
        return json.dumps({"pid": handle.pid, "started": handle.started, "exit": str(exit_file)})

    async def status(self, handle: str) -> JobPhase:
        process, exit_file = _parse(handle)
        if processes.poll(process) is None:
            return "Running"
        try:
            code = int(exit_file.read_text().strip())
        except (OSError, ValueError):
            return "Failed"  # killed before the wrapper could record anything
        return "Succeeded" if code == 0 else "Failed"

    async def stop(self, handle: str) -> None:
        """SIGTERM, then SIGKILL if the job is still there after the grace period."""
        process, _ = _parse(handle)
        if not processes.terminate(process):
            return
        for _ in range(int(STOP_GRACE_SECONDS / 0.05)):
            if processes.poll(process) is not None:
                return
            await asyncio.sleep(0.05)
        processes.kill(process)


def _parse(handle: str) -> tuple[processes.ProcessHandle, Path]:
    raw = json.loads(handle)
    return processes.ProcessHandle(pid=int(raw["pid"]), started=str(raw["started"])), Path(
        raw["exit"]
    )
