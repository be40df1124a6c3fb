"""Commands: imperative calls that check the rules and append events.

For code that records executions without flows. Each command builds the
event(s), folds them onto the current state (which refuses an invalid
transition with `InvalidTransitionError` before anything is written), then
appends them with optimistic concurrency: if another writer appended first,
`ConflictError` is raised, nothing of ours is stored, and the handle catches
up with the events it missed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from journal import events as ev
from journal.codec import encode_value
from journal.errors import (
    ConflictError,
    InvalidTransitionError,
    JournalError,
    LeaseLostError,
)
from journal.fold import apply_in_place, begin, evolve
from journal.ids import (
    ExecutionId,
    StepId,
    new_execution_id,
    new_step_id,
    parse_execution_id,
)
from journal.model import (
    NULL,
    ErrorCategory,
    Execution,
    ExecutionError,
    ParentLink,
    ParentType,
    StepSource,
    WaitReason,
)

if TYPE_CHECKING:
    from journal.application import Journal
    from journal.leases import Lease

log = logging.getLogger("journal")

#: Events an operator appends to a running execution without its lease.
#: A runner's append refused because of them is retried on the new head
#: when its own events are still valid there (they commute).
OPERATOR_EVENTS = (ev.ExecutionPaused, ev.ExecutionResumed, ev.ExecutionCancelled)
#: How many times in a row a runner retries past operators' events.
_COMMUTE_TRIES = 8


def _raw(value: Any) -> msgspec.Raw:
    if value is None:
        null: msgspec.Raw = NULL
        return null
    if isinstance(value, msgspec.Raw):
        return value  # checked by Journal.append, with every event
    return encode_value(value)


class ExecutionHandle:
    """One execution's command API; `state` is the folded state after each."""

    def __init__(
        self, journal: Journal, state: Execution, lease: Lease | None = None
    ) -> None:
        self.journal = journal
        self.state = state
        #: Held by the process running the execution: its appends are fenced,
        #: and appends refused only because an operator wrote are retried.
        self.lease = lease

    @property
    def id(self) -> ExecutionId:
        return self.state.id

    @classmethod
    def create(
        cls,
        journal: Journal,
        *,
        flow: str | None = None,
        input: Any = None,
        parent: ParentLink | None = None,
        schema_version: str | None = None,
        execution_id: str | None = None,
        lease: Lease | None = None,
    ) -> ExecutionHandle:
        """Record ``ExecutionCreated`` for a new execution of this tenant."""
        from journal.application import utc_now

        new_id = (
            parse_execution_id(execution_id) if execution_id else new_execution_id()
        )
        created = ev.ExecutionCreated(
            at=utc_now(),
            tenant_id=journal.tenant_id,
            parent=parent,
            flow=flow,
            schema_version=schema_version,
            input=_raw(input),
        )
        state = begin(new_id, created)
        journal.append(0, state, [created], lease=lease)
        return cls(journal, state, lease)

    def child(
        self,
        *,
        flow: str | None = None,
        input: Any = None,
        step_id: StepId | None = None,
        schema_version: str | None = None,
    ) -> ExecutionHandle:
        """A sub-execution: same tenant, `ParentLink` to this one (or a step)."""
        link = (
            ParentLink(
                parent_id=step_id, parent_type=ParentType.STEP, execution_id=self.id
            )
            if step_id is not None
            else ParentLink(parent_id=self.id, parent_type=ParentType.EXECUTION)
        )
        return ExecutionHandle.create(
            self.journal,
            flow=flow,
            input=input,
            parent=link,
            schema_version=schema_version,
        )

    # --- the one write path ---------------------------------------------

    def record(self, *new: ev.Event) -> Execution:
        """Fold `new` onto the state (refusing invalid ones), then append.

        Events are applied in place (no copy of a long execution's state per
        call). Whatever fails, the handle's state is left as the store has
        it: a refused event or a failed append is undone (O(events), see
        `_Undo`); after a `ConflictError` the handle catches up by reading
        only the events stored after its head (`Journal.catch_up`), so a
        writer sharing an execution pays for what it missed, never for the
        whole history. A lease holder then retries past operators' events
        (`_commute`); anyone else gets the conflict.
        """
        expected = self.state.version
        undo = _Undo(self.state, new)
        try:
            for event in new:
                apply_in_place(self.state, event)
            self.journal.append(expected, self.state, new, lease=self.lease)
        except ConflictError as conflict:
            undo.restore(self.state)
            self._catch_up()
            if self.lease is None or isinstance(conflict, LeaseLostError):
                raise
            return self._commute(expected, new, conflict)
        except BaseException:
            undo.restore(self.state)
            raise
        return self.state

    def _catch_up(self) -> None:
        """Fold in what others stored after our head (after a conflict).

        If even that read fails, the state stays at the last head the store
        confirmed: the next append conflicts and catches up again.
        """
        try:
            self.journal.catch_up(self.state)
        except JournalError as error:
            log.warning("%s: could not catch up after a conflict: %s", self.id, error)

    def _commute(
        self, expected: int, new: tuple[ev.Event, ...], conflict: ConflictError
    ) -> Execution:
        """Retry `new` on the new head if only operators' events came in
        between and `new` is still valid after them (`self.state` is the
        reloaded head); else raise (`InvalidTransitionError` if the
        operator's event made ours invalid, e.g. a step start after a pause).
        """
        for _ in range(_COMMUTE_TRIES):
            between = self.journal.events_after(self.id, expected)
            if not all(isinstance(e, OPERATOR_EVENTS) for e in between):
                raise conflict
            expected = self.state.version
            candidate = self.state
            for event in new:
                candidate = evolve(candidate, event)  # refusal: state unchanged
            try:
                self.journal.append(expected, candidate, new, lease=self.lease)
                self.state = candidate
                return candidate
            except LeaseLostError:
                self._catch_up()
                raise
            except ConflictError as again:
                conflict = again
                self._catch_up()
        raise conflict

    def _now(self) -> Any:
        from journal.application import utc_now

        return utc_now()

    # --- execution commands ----------------------------------------------

    def start_planning(self) -> Execution:
        return self.record(ev.PlanningStarted(at=self._now()))

    def start(self) -> Execution:
        return self.record(ev.ExecutionStarted(at=self._now()))

    def pause(self, reason: str | None = None) -> Execution:
        return self.record(ev.ExecutionPaused(at=self._now(), reason=reason))

    def resume(self) -> Execution:
        return self.record(ev.ExecutionResumed(at=self._now()))

    def wait(self, reason: WaitReason | str, detail: str | None = None) -> Execution:
        return self.record(
            ev.ExecutionWaiting(
                at=self._now(), reason=WaitReason(reason), detail=detail
            )
        )

    def receive_input(
        self,
        value: Any = None,
        *,
        approver: str | None = None,
        digest: str | None = None,
        signature: str | None = None,
        denied: bool = False,
        reason: str | None = None,
        timed_out: bool = False,
    ) -> Execution:
        """Record the input (or approval, denial, timeout) a wait got."""
        return self.record(
            ev.InputReceived(
                at=self._now(),
                input=_raw(value),
                approver=approver,
                digest=digest,
                signature=signature,
                denied=denied,
                reason=reason,
                timed_out=timed_out,
            )
        )

    def record_value(
        self, kind: str, value: Any, *, call: str | None = None
    ) -> Execution:
        return self.record(
            ev.ValueRecorded(at=self._now(), kind=kind, value=_raw(value), call=call)
        )

    def complete(self, output: Any = None) -> Execution:
        return self.record(ev.ExecutionCompleted(at=self._now(), output=_raw(output)))

    def fail(self, error: ExecutionError | str) -> Execution:
        if isinstance(error, str):
            error = ExecutionError(
                category=ErrorCategory.KERNEL_INTERNAL,
                message=error,
                occurred_at=self._now(),
            )
        return self.record(ev.ExecutionFailed(at=self._now(), error=error))

    def cancel(self, reason: str | None = None) -> Execution:
        return self.record(ev.ExecutionCancelled(at=self._now(), reason=reason))

    # --- step commands ---------------------------------------------------

    def add_step(
        self,
        name: str,
        step_type: str = "FunctionNode",
        *,
        input: Any = None,
        parent_step_id: StepId | None = None,
        source: StepSource | None = None,
        callable_id: str | None = None,
        callable_type: str | None = None,
        step_id: StepId | None = None,
    ) -> StepId:
        """Plan a step ahead of running it (Pending)."""
        new_id = step_id or new_step_id()
        self.record(
            ev.StepAdded(
                at=self._now(),
                step_id=new_id,
                step_type=step_type,
                name=name,
                parent_step_id=parent_step_id,
                callable_id=callable_id,
                callable_type=callable_type,
                source=source,
                input=_raw(input),
            )
        )
        return new_id

    def start_step(
        self,
        name: str | None = None,
        step_type: str | None = "FunctionNode",
        *,
        step_id: StepId | None = None,
        input: Any = None,
        parent_step_id: StepId | None = None,
        source: StepSource | None = None,
        callable_id: str | None = None,
        callable_type: str | None = None,
        call: str | None = None,
    ) -> StepId:
        """Start a pending step (by id), or add and start a new one at once.

        `call` is the call's identity where it is not implied by order (a
        call made in a spawned task or thread; see `journal.context`).
        """
        if step_id is not None and step_id in self.state.steps:
            event = ev.StepStarted(at=self._now(), step_id=step_id, input=_raw(input))
        else:
            if name is None:
                raise InvalidTransitionError("a new step needs a name")
            step_id = step_id or new_step_id()
            event = ev.StepStarted(
                at=self._now(),
                step_id=step_id,
                step_type=step_type,
                name=name,
                parent_step_id=parent_step_id,
                callable_id=callable_id,
                callable_type=callable_type,
                source=source,
                input=_raw(input),
                call=call,
            )
        self.record(event)
        return step_id

    def complete_step(
        self, step_id: StepId, output: Any = None, *, duration_ms: int | None = None
    ) -> Execution:
        now = self._now()
        return self.record(
            ev.StepCompleted(
                at=now,
                step_id=step_id,
                output=_raw(output),
                duration_ms=self._duration(step_id, now, duration_ms),
            )
        )

    def fail_step(
        self,
        step_id: StepId,
        error: ExecutionError,
        *,
        duration_ms: int | None = None,
    ) -> Execution:
        now = self._now()
        return self.record(
            ev.StepFailed(
                at=now,
                step_id=step_id,
                error=error,
                duration_ms=self._duration(step_id, now, duration_ms),
            )
        )

    def skip_step(self, step_id: StepId, reason: str | None = None) -> Execution:
        return self.record(
            ev.StepSkipped(at=self._now(), step_id=step_id, reason=reason)
        )

    def _duration(self, step_id: StepId, now: Any, given: int | None) -> int | None:
        if given is not None:
            return given
        step = self.state.steps.get(step_id)
        if step is None or step.started_at is None:
            return None
        return int((now - step.started_at).total_seconds() * 1000)


class _Undo:
    """What applying `events` in place can change, saved so that it can be
    put back: the scalar fields, the lengths of the append-only lists and
    the steps the events name. O(events), never a copy of the whole state.
    """

    def __init__(self, state: Execution, events: tuple[ev.Event, ...]) -> None:
        self.fields = msgspec.structs.replace(state)  # shallow: same lists
        self.lengths = {
            name: len(value)
            for name in state.__struct_fields__
            if isinstance(value := getattr(state, name), list)
        }
        self.steps = {
            step_id: (
                msgspec.structs.replace(state.steps[step_id])
                if step_id in state.steps
                else None
            )
            for step_id in _step_ids(events)
        }

    def restore(self, state: Execution) -> None:
        for name in state.__struct_fields__:
            setattr(state, name, getattr(self.fields, name))
        for name, length in self.lengths.items():
            del getattr(state, name)[length:]
        for step_id, step in self.steps.items():
            if step is None:
                state.steps.pop(step_id, None)
            else:
                state.steps[step_id] = step


def _step_ids(events: tuple[ev.Event, ...]) -> list[StepId]:
    return [
        step_id
        for event in events
        if (step_id := getattr(event, "step_id", None)) is not None
    ]
