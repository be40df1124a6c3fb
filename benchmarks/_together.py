"""Start N benchmark processes together behind a barrier; collect one result each."""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable
from typing import Any


def run_together(
    target: Callable[..., None], args: tuple[Any, ...], processes: int
) -> list[Any]:
    """Run ``target(*args, barrier, out)`` in `processes` spawned processes.

    Each waits on ``barrier`` before its timed part and puts one result on
    ``out``. A process that dies or hangs (5 minutes) ends the run with an
    error instead of a hang.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(*args, barrier, out)) for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = []
    for _ in procs:
        try:
            results.append(out.get(timeout=300))
        except queue.Empty:
            for proc in procs:
                proc.kill()
            raise RuntimeError(f"a {target.__name__} process died or hung") from None
    for proc in procs:
        proc.join()
    return results
