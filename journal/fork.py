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

import msgspec

from journal import events as ev
from journal.chain import ChainPoint
from journal.errors import ConflictError
from journal.fold import fold
from journal.ids import ExecutionId, new_execution_id
from journal.leases import Heartbeat

if TYPE_CHECKING:
    from journal.application import Journal, VerifiedHistory
    from journal.flow import Flow, StepDef
    from journal.leases import Lease
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
        raise ValueError(
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

    `input`, if given, replaces the arguments of the call at step `at_step`
    (a mapping of parameter names to values, as the step's recorded input
    shows them); a `StepInputReplaced` event records it, so the fork
    replays. Returns the fork's state when its run ends.

    Raises:
        ValueError: No step `at_step`, or `input` does not fit the step.
    """
    from journal.continuation import dry_run

    history = journal_.history(execution_id)
    cut = cut_before(history, at_step)
    copied: list[ev.Event] = list(history.events[: cut - 1])
    fork_id = ExecutionId(new_execution_id())
    if input is not None:
        copied.append(_replacement(flow, history, at_step, input))
    prefix = fold(fork_id, copied)
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
        journal_.append(0, prefix, copied, lease=lease, origin=origin)
        return _continue(flow, journal_, fork_id, lease)
    finally:
        heartbeat.stop()


def _replacement(
    flow: Flow, history: VerifiedHistory, at_step: int, input: Any
) -> ev.StepInputReplaced:
    """The event replacing step `at_step`'s input (checked against its
    parameters, canonical as the run would encode it)."""
    from journal.application import utc_now
    from journal.codec import encode_value
    from journal.record import RecordIndex

    recorded = fold(ExecutionId(history.summary.execution_id), history.events)
    step = recorded.ordered_steps()[at_step]
    definition = _step_def(flow, step.callable_id)
    raw = bytes(encode_value(input))
    try:
        arguments = definition.signature.decode_args(raw)
        payload = definition.signature.encode_args((), arguments)
    except (msgspec.ValidationError, msgspec.DecodeError, TypeError) as e:
        raise ValueError(
            f"--input for step {at_step} ({definition.callable_id}) does not fit "
            f"its parameters: {e}"
        ) from e
    call = RecordIndex.of(recorded).call_of[step.id]
    return ev.StepInputReplaced(at=utc_now(), call=call, input=msgspec.Raw(payload))


def _step_def(flow: Flow, callable_id: str | None) -> StepDef:
    steps = dict(flow.steps)
    for library in flow.libraries:
        steps.update(library.steps)
    found = steps.get(callable_id or "")
    if found is None:
        raise ValueError(
            f"step {callable_id} is not a step of flow {flow.name!r} today: "
            "its input cannot be replaced"
        )
    return found


def _continue(flow: Flow, journal_: Journal, fork_id: str, lease: Lease) -> Execution:
    from journal.commands import ExecutionHandle
    from journal.driving import continue_live

    handle = ExecutionHandle(journal_, journal_.get(fork_id), lease)
    return continue_live(flow, handle, journal_.get(fork_id))
