"""Threads inside a run: helpers that carry the run's context.

``contextvars`` are copied into asyncio tasks, never into threads: a step
called on a plain worker thread would find no run. `run_in_thread` and
`executor` copy the run's context into the thread and give the job a scope
of its own when it is *submitted* (program order), so its calls have
identities that do not depend on which thread runs first. A step called on
a thread without the context while a run of its flow is active in this
process is refused (`journal.context.refuse_outside_run`); on replay an
effect's body never runs, whatever thread asks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from journal.context import spawned_context

P = ParamSpec("P")
R = TypeVar("R")


def _bound(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Callable[[], R]:
    """`fn(*args, **kwargs)` to run in a copy of this context, scoped now."""
    context = spawned_context()
    return functools.partial(context.run, fn, *args, **kwargs)


def run_in_thread(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Any:
    """Call `fn` on a worker thread that carries the run's context.

    In async code (an event loop runs in this thread) it returns an
    awaitable: ``result = await journal.run_in_thread(fn, x)``. In
    synchronous code it is a plain call that returns ``fn``'s result once
    the thread is done.
    """
    job = _bound(fn, *args, **kwargs)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(job).result()
    return loop.run_in_executor(None, job)


class RunExecutor(ThreadPoolExecutor):
    """A `ThreadPoolExecutor` whose jobs carry the submitter's run context."""

    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]:
        """Schedule `fn` with the run's context; its scope is taken now."""
        return super().submit(_bound(fn, *args, **kwargs))


def executor(max_workers: int | None = None) -> RunExecutor:
    """A thread pool whose jobs are recorded under the run that submits them.

    Use it in place of ``concurrent.futures.ThreadPoolExecutor`` (and with
    ``loop.run_in_executor(pool, ...)``) inside a flow's entry.
    """
    return RunExecutor(max_workers=max_workers, thread_name_prefix="journal")
