"""What a benchmark's child process reports about itself, and how it answers its parent.

Where it sits: the scale and memory benchmarks run the controller (or the API mock) in a process
of its own and talk to it over stdin/stdout, one JSON object a line. `serve_commands` is the
controller side of that conversation: each line read is answered with what the process spent
since the previous answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Protocol


def rss_kb(field: str = "VmRSS") -> int:
    """This process's resident set (or `VmHWM`, its peak) in KiB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used."""
    times = os.times()
    return times.user + times.system


def answer(data: dict[str, Any]) -> None:
    """One line of JSON to the parent."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


class Counted(Protocol):
    durations: list[float]
    failures: int
    counts: dict[str, int]

    def reset(self) -> None: ...


async def serve_commands(controller: Any, timings: Counted) -> None:
    """Answer each command line (until `quit` or the end of input) with the wall and CPU time,
    memory and reconciles since the last answer, and the controller's queue."""
    loop = asyncio.get_running_loop()
    mark_cpu, mark_at = cpu_s(), time.monotonic()
    timings.reset()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or json.loads(line)["cmd"] == "quit":
            return
        now_cpu, now = cpu_s(), time.monotonic()
        answer(
            {
                "wall_s": now - mark_at,
                "cpu_s": now_cpu - mark_cpu,
                "rss_kb": rss_kb(),
                "rss_peak_kb": rss_kb("VmHWM"),
                "durations": timings.durations,
                "failures": timings.failures,
                "counts": timings.counts,
                "queued": len(controller.loop.queue),
                "running": len(controller.loop.running),
            }
        )
        mark_cpu, mark_at = now_cpu, now
        timings.reset()
