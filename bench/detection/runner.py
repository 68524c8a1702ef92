"""Runs every policy on every cell: one cell's streams are drawn once and judged by all.

Who uses it: `bench.detection.run`. Cells go to a pool of worker processes (one per CPU);
each worker draws the cell's streams from the cell's own seed, so the results do not depend
on the number of workers or on the order cells finish in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from bench.detection import streams
from bench.detection.outcomes import CellResult, summarise
from bench.detection.policies import POLICIES
from bench.detection.scenarios import Cell


@dataclass(frozen=True, slots=True)
class Judged:
    cell: Cell
    results: dict[str, CellResult]
    """By policy key."""
    seconds: dict[str, float]
    """CPU time each policy took on this cell."""


def judge_cell(cell: Cell) -> Judged:
    drawn = streams.draw(cell)
    results: dict[str, CellResult] = {}
    seconds: dict[str, float] = {}
    for policy in POLICIES:
        start = time.process_time()
        results[policy.key] = summarise(cell, drawn, policy.decide(drawn))
        seconds[policy.key] = time.process_time() - start
    return Judged(cell, results, seconds)


def judge_all(
    cells: Sequence[Cell],
    *,
    workers: int | None = None,
    progress: Callable[[Judged], None] | None = None,
) -> list[Judged]:
    workers = workers or len(os.sched_getaffinity(0))
    if workers <= 1:
        judged = []
        for cell in cells:
            judged.append(judge_cell(cell))
            if progress:
                progress(judged[-1])
        return judged
    # Slow cells (many runs, low traffic: nobody decides early) first, for an even finish.
    ordered = sorted(cells, key=lambda c: (-c.runs, c.traffic.rate))
    done: dict[Cell, Judged] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(judge_cell, cell) for cell in ordered]
        for future in as_completed(futures):
            result = future.result()
            done[result.cell] = result
            if progress:
                progress(result)
    return [done[cell] for cell in cells]
