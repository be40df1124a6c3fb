"""Running an entry under a `Run`: live, replay, or record-then-live.

`record_live` records a new execution (`Flow.run`); `replay_record` re-runs
a recorded one with no writes (`replay.replay`); `continue_live` answers
from a record and goes on live where it ends (resume, recovery, fork).
Each has an ``_async`` twin for ``async def`` entries, which installs the
run's task factory so that a task spawned in the run gets its identity when
it is created. `compare_end` holds the end-of-run rules replay applies.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from journal.context import Frame, current_frame, enter, mark_active, owner_now
from journal.context import spawned_context as spawned_context
from journal.divergence import Divergence, value_view
from journal.errors import (
    ConflictError,
    FlowDefinitionError,
    InvalidTransitionError,
    JournalError,
    NondeterminismError,
)
from journal.failures import error_from
from journal.ids import ExecutionId, new_execution_id
from journal.leases import Heartbeat
from journal.model import Execution, ParentLink
from journal.runtime import STOPPED_BY_OPERATOR, Halt, Run, Stop
from journal.schema import canonical
from journal.wiring import check_entry_uses

if TYPE_CHECKING:
    from journal.application import Journal
    from journal.commands import ExecutionHandle
    from journal.flow import Flow, ValueUpcaster

log = logging.getLogger("journal")


@dataclass
class Outcome:
    """How an entry ended: an output, a failure, or stopped by the run."""

    output: bytes | None = None
    failure: BaseException | None = None
    stopped: bool = False
    halted: bool = False


def is_async(flow: Flow) -> bool:
    """True when the flow's entry is an ``async def``."""
    return inspect.iscoroutinefunction(flow.entry_function)


def _active_flows(flow: Flow) -> list[Flow]:
    return [flow, *flow.libraries]


def drive(run: Run, kwargs: dict[str, Any]) -> Outcome:
    """Call a synchronous entry under `run`; never raises the entry's errors."""
    entry = run.flow.entry_function
    assert entry is not None
    undo = enter(Frame(run, owner=owner_now()))
    flows = _active_flows(run.flow)
    mark_active(flows, run, True)
    try:
        return Outcome(output=canonical(entry(**kwargs)))
    except Stop:
        return Outcome(stopped=True)
    except Halt:
        return Outcome(halted=True)
    except Exception as exc:
        return Outcome(failure=exc)
    finally:
        run.finished = True
        mark_active(flows, run, False)
        undo()


async def drive_async(run: Run, kwargs: dict[str, Any]) -> Outcome:
    """Await an ``async def`` entry under `run` (in the running loop)."""
    entry = run.flow.entry_function
    assert entry is not None
    install_task_factory(asyncio.get_running_loop())
    undo = enter(Frame(run, owner=owner_now()))
    flows = _active_flows(run.flow)
    mark_active(flows, run, True)
    try:
        return Outcome(output=canonical(await entry(**kwargs)))
    except Stop:
        return Outcome(stopped=True)
    except Halt:
        return Outcome(halted=True)
    except Exception as exc:
        return _unwrap_signal(exc)
    finally:
        run.finished = True
        mark_active(flows, run, False)
        undo()


def _unwrap_signal(exc: Exception) -> Outcome:
    """A `Stop` or `Halt` raised in a task of a TaskGroup arrives in a group."""
    if isinstance(exc, BaseExceptionGroup):
        if exc.subgroup(Stop) is not None:
            return Outcome(stopped=True)
        if exc.subgroup(Halt) is not None:
            return Outcome(halted=True)
    return Outcome(failure=exc)


class _SpawningFactory:
    """A task factory: a task created inside a run takes its scope now."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        if kwargs.get("context") is None and current_frame() is not None:
            kwargs["context"] = spawned_context()
        if self.previous is not None:
            task: asyncio.Future[Any] = self.previous(loop, coro, **kwargs)
            return task
        return asyncio.Task(coro, loop=loop, **kwargs)


def install_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    """Make tasks created inside a run take their scope when created.

    Wraps the loop's current factory (once per loop); outside a run the
    wrapper only delegates.
    """
    previous = loop.get_task_factory()
    if not isinstance(previous, _SpawningFactory):
        loop.set_task_factory(_SpawningFactory(previous))


def _entry_kwargs(flow: Flow, payload: bytes) -> dict[str, Any]:
    return flow.require_entry().decode_args(payload)


# --- live -----------------------------------------------------------------


@contextmanager
def _new_execution(
    flow: Flow,
    journal_: Journal,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    parent: ParentLink | None,
    execution_id: ExecutionId | None = None,
) -> Iterator[tuple[ExecutionHandle, bytes]]:
    """Create and start a new execution of `flow`, holding its lease
    (renewed by a heartbeat thread) from before its first event to the end
    of the block, so that its appends are fenced."""
    payload = flow.require_entry().encode_args(args, kwargs)
    document = canonical(flow.schema_document)
    schema_version = "sha256:" + hashlib.sha256(document).hexdigest()
    journal_.put_schema(schema_version, document)
    execution_id = execution_id or new_execution_id()
    lease = journal_.acquire_lease(execution_id)
    if lease is None:  # a fresh id: only a clash of generated ids can do this
        raise ConflictError(f"{execution_id}: lease already held")
    heartbeat = Heartbeat(journal_.store, lease, journal_.heartbeat_every_s).start()
    try:
        handle: ExecutionHandle = journal_.create(
            flow=flow.name,
            input=msgspec.Raw(payload),
            parent=parent,
            schema_version=schema_version,
            execution_id=execution_id,
            lease=lease,
        )
        handle.start()
        yield handle, payload
    finally:
        heartbeat.stop()


def record_live(
    flow: Flow,
    journal_: Journal,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    parent: ParentLink | None = None,
    execution_id: ExecutionId | None = None,
) -> Execution:
    """Record a whole live run of a synchronous `flow`; see `Flow.run`."""
    with _new_execution(flow, journal_, args, kwargs, parent, execution_id) as (
        handle,
        payload,
    ):
        return continue_live(flow, handle, None, payload)


async def record_live_async(
    flow: Flow,
    journal_: Journal,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    parent: ParentLink | None = None,
    execution_id: ExecutionId | None = None,
) -> Execution:
    """Record a whole live run of an async `flow`; see `Flow.run_async`."""
    with _new_execution(flow, journal_, args, kwargs, parent, execution_id) as (
        handle,
        payload,
    ):
        return await continue_live_async(flow, handle, None, payload)


def continue_live(
    flow: Flow,
    handle: ExecutionHandle,
    record: Execution | None,
    payload: bytes | None = None,
) -> Execution:
    """Run `flow`'s entry: calls `record` holds are answered from it, the
    first one it lacks and all after go live through `handle`; the end is
    recorded. `record` must be an object of its own (``journal_.get(id)``),
    not ``handle.state``, which changes as events are appended."""
    _check_wiring(flow, handle)
    run = Run(flow, record=record, handle=handle, child_runner=_child_runner)
    source = payload if payload is not None else bytes(handle.state.input)
    outcome = drive(run, _entry_kwargs(flow, source))
    return _end_live(run, handle, outcome)


async def continue_live_async(
    flow: Flow,
    handle: ExecutionHandle,
    record: Execution | None,
    payload: bytes | None = None,
) -> Execution:
    """`continue_live` for an async entry."""
    _check_wiring(flow, handle)
    run = Run(flow, record=record, handle=handle, child_runner=_child_runner)
    source = payload if payload is not None else bytes(handle.state.input)
    outcome = await drive_async(run, _entry_kwargs(flow, source))
    return _end_live(run, handle, outcome)


def _check_wiring(flow: Flow, handle: ExecutionHandle) -> None:
    """An entry whose code names a flow or step it does not declare in
    ``uses=`` fails the execution before any step is recorded."""
    try:
        check_entry_uses(flow)
    except FlowDefinitionError as e:
        _end_with_failure(handle, e)


def _child_runner(
    child: Flow,
    journal_: Journal,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    parent: ParentLink,
    execution_id: ExecutionId,
) -> Execution:
    """Run a child under the id derived from its call: a resumed parent
    finds the child it started before (ended: its result; unfinished: it is
    resumed) instead of starting another."""
    if is_async(child):
        raise FlowDefinitionError(
            f"child flow {child.name!r} is async: run_child supports "
            "synchronous child flows"
        )
    from journal.continuation import run_with_id

    return run_with_id(child, journal_, execution_id, args, kwargs, parent=parent)


def _end_live(run: Run, handle: ExecutionHandle, outcome: Outcome) -> Execution:
    failure = run.journal_failure or outcome.failure
    if outcome.stopped and failure is None:
        # The record given to continue from does not fit today's code:
        # nothing more is written (replay it first to get the report).
        reason = run.divergence.reason if run.divergence else "the record ended"
        raise NondeterminismError(f"{handle.id}: {reason}")
    if outcome.halted:
        pass  # an operator paused or cancelled it: that is its end for now
    elif failure is not None:
        _end_with_failure(handle, failure)
    else:
        try:
            handle.complete(msgspec.Raw(outcome.output or b"null"))
        except InvalidTransitionError:
            if handle.state.state not in STOPPED_BY_OPERATOR:
                raise
    state: Execution = handle.state
    return state


def _end_with_failure(handle: ExecutionHandle, failure: BaseException) -> None:
    """Record the run's failure; re-raise it if it is the journal's own.

    A journal failure (a store error, a refused write, a child's journal
    failure, a flow wiring error) ends the run whatever the entry's own
    ``except`` did: the execution is recorded Failed with that error when
    the store still accepts it, then the original error is raised. When
    nothing can be recorded, the original error is raised all the same
    and the execution is left to recovery.
    """
    journal_own = isinstance(failure, JournalError)
    try:
        handle.fail(error_from(failure, ""))
    except JournalError as unrecorded:
        if not journal_own:
            raise
        log.warning("%s: could not record Failed: %s", handle.id, unrecorded)
        failure.add_note(f"the execution was left to recovery: {unrecorded}")
    if journal_own:
        raise failure


# --- replay -----------------------------------------------------------------


def _replay_run(
    flow: Flow, recorded: Execution, upcast: ValueUpcaster | None
) -> tuple[Run, dict[str, Any] | None]:
    run = Run(flow, record=recorded, upcast=upcast)
    recorded_input = run.upcast_bytes(flow.name, "input", recorded.input)
    try:
        return run, _entry_kwargs(flow, recorded_input)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        run.diverge(
            Divergence(
                index=0,
                reason=f"the recorded input does not fit {flow.name}'s entry: {e}",
                recorded_value=value_view(recorded_input),
            )
        )
        return run, None


def replay_record(
    flow: Flow, recorded: Execution, upcast: ValueUpcaster | None = None
) -> Run:
    """Re-run `recorded` against `flow` with no writes; the run holds the
    divergence (if any). An async flow runs in a loop of its own."""
    if is_async(flow):
        _no_running_loop(flow, "replay.replay_async")
        return asyncio.run(replay_record_async(flow, recorded, upcast))
    run, kwargs = _replay_run(flow, recorded, upcast)
    if kwargs is not None:
        _finish_replay(run, drive(run, kwargs))
    return run


async def replay_record_async(
    flow: Flow, recorded: Execution, upcast: ValueUpcaster | None = None
) -> Run:
    """`replay_record` in the running event loop (sync entries work too)."""
    run, kwargs = _replay_run(flow, recorded, upcast)
    if kwargs is not None:
        outcome = (
            await drive_async(run, kwargs) if is_async(flow) else drive(run, kwargs)
        )
        _finish_replay(run, outcome)
    return run


def _finish_replay(run: Run, outcome: Outcome) -> None:
    if run.divergence is None and not run.record_ended:
        try:
            run.check_all_consumed()
            run.compare_end(outcome.output, outcome.failure)
        except Stop:
            pass


def _no_running_loop(flow: Flow, instead: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"flow {flow.name!r} is async and an event loop is already running in "
        f"this thread: use `await {instead}(...)` here"
    )


def run_sync(
    flow: Flow, coroutine: Callable[[], Coroutine[Any, Any, Execution]]
) -> Execution:
    """Run an async flow's coroutine in a loop of its own (`Flow.run`)."""
    _no_running_loop(flow, "flow.run_async")
    return asyncio.run(coroutine())
