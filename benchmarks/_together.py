"""Start N benchmark processes together behind a barrier; collect one result each."""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable
from typing import Any


def run_together(
    target: Callable[..., None],
    args: tuple[Any, ...],
    processes: int,
    *,
    busy: list[float] | None = None,
) -> list[Any]:
    """Run ``target(*args, barrier, out)`` in `processes` spawned processes.

    Each waits on ``barrier`` before its timed part and puts one result on
    ``out``. A process that dies or hangs (5 minutes) ends the run with an
    error instead of a hang. With `busy`, this process waits on the barrier
    too and appends how many of the machine's cores were busy (Linux's
    ``/proc/stat``, every process including a local database server) from
    the release until the last result came.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + (busy is not None))
    out = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(*args, barrier, out)) for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    if busy is not None:
        barrier.wait(timeout=300)
        start = _cpu_times()
    results = []
    for _ in procs:
        try:
            results.append(out.get(timeout=300))
        except queue.Empty:
            for proc in procs:
                proc.kill()
            raise RuntimeError(f"a {target.__name__} process died or hung") from None
    if busy is not None:
        end = _cpu_times()
        total, idle = end[0] - start[0], end[1] - start[1]
        busy.append((total - idle) / total * _cores() if total else 0.0)
    for proc in procs:
        proc.join()
    return results


def _cpu_times() -> tuple[int, int]:
    """All and idle jiffies of every core since boot (``/proc/stat``)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # idle + iowait


def _cores() -> int:
    import os

    return os.cpu_count() or 1
