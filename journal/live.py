"""Recording live: the journal writes of a run, one writer at a time.

The part of `journal.runtime.Run` that appends: a call's attempts, their
failures (with the retry policy in force), helper values and child
executions. Every event is appended (durably) when it happens: a step's
`StepStarted` is stored before its code runs, so a crash mid-step is
visible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from journal import events as ev
from journal.calls import call_key, current_step_key
from journal.checks import RecordChecks
from journal.codec import json_problem
from journal.context import Frame, enter
from journal.errors import FlowDefinitionError, InvalidTransitionError, JournalError
from journal.failures import StepError, error_from
from journal.ids import derived_execution_id
from journal.model import (
    CallableType,
    ErrorCategory,
    Execution,
    ExecutionError,
    ExecutionState,
    ParentLink,
    ParentType,
    Step,
    StepSource,
    StepState,
    StepType,
    WaitReason,
)
from journal.schema import canonical
from journal.waits import child_wait_detail

if TYPE_CHECKING:
    from journal.commands import ExecutionHandle
    from journal.flow import Flow, StepDef, ValueUpcaster
    from journal.ids import StepId


class Halt(BaseException):
    """Unwinds the entry when an operator paused or cancelled the execution
    (a BaseException, so a flow's ``except Exception`` cannot hide it)."""


#: States an operator's command leaves a running execution in.
STOPPED_BY_OPERATOR = (ExecutionState.PAUSED, ExecutionState.CANCELLED)

#: What a live child execution is run with (set by `journal.driving`).
ChildRunner = Callable[..., Execution]

CANCELLED_CODE = "cancelled"


def cancelled_error(step_id: StepId) -> ExecutionError:
    """What a step cancelled in flight records (never retried)."""
    from journal import application

    return ExecutionError(
        category=ErrorCategory.KERNEL_INTERNAL,
        message="cancelled",
        code=CANCELLED_CODE,
        exception_type="asyncio.CancelledError",
        occurred_at=application.utc_now(),
        step_id=step_id,
        attempt=1,
    )


def checked(step: StepDef, output: bytes) -> bytes:
    """A step's output, refused if it is not JSON (a `msgspec.Raw` it
    returned unchecked): a ValidationError of the step, never a bad value
    in the history."""
    problem = json_problem(output)
    if problem is not None:
        raise msgspec.ValidationError(
            f"{step.callable_id} returned a msgspec.Raw that is not valid JSON: "
            f"{problem}"
        )
    return output


def is_cancellation(error: ExecutionError | None) -> bool:
    """True for the error a step cancelled in flight recorded."""
    return error is not None and error.code == CANCELLED_CODE


class LiveRecorder(RecordChecks):
    """A run's live side: answers from `record`, records through `handle`.

    Args:
        flow: The flow whose entry runs.
        record: A recorded execution to answer calls from (None: none).
        handle: Where live calls are recorded (None: never go live; a call
            the record lacks is then a divergence, or the end of an
            unfinished record).
        upcast: Turns values recorded under an accepted older schema into
            today's.
        sleep: How a synchronous retry waits (tests pass a fake).
    """

    def __init__(
        self,
        flow: Flow,
        *,
        record: Execution | None = None,
        handle: ExecutionHandle | None = None,
        upcast: ValueUpcaster | None = None,
        sleep: Callable[[float], None] = time.sleep,
        child_runner: ChildRunner | None = None,
    ) -> None:
        super().__init__(flow, record, upcast)
        self.handle = handle
        self.sleep = sleep
        self.child_runner = child_runner
        self.journal_failure: JournalError | None = None
        self.waits_seen = 0
        self.finished = False
        self._lock = threading.RLock()

    @property
    def live(self) -> bool:
        """True when calls the record lacks are run and recorded live."""
        return self.handle is not None

    # --- journal writes ----------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[ExecutionHandle]:
        """Around a journal write: one writer at a time (threads), and a
        failure remembered so no user ``except`` in the entry can hide it. A
        write refused because an operator paused or cancelled the execution
        halts the run cleanly instead."""
        assert self.handle is not None
        with self._lock:
            try:
                yield self.handle
            except InvalidTransitionError as e:
                if self.handle.state.state in STOPPED_BY_OPERATOR:
                    raise Halt from e
                self.journal_failure = self.journal_failure or e
                raise
            except JournalError as e:
                self.journal_failure = self.journal_failure or e
                raise

    def _refuse(self, error: FlowDefinitionError) -> BaseException:
        """A flow wiring error ends the run: live it is the run's failure,
        on replay a divergence; no user ``except`` may hide either."""
        if self.live:
            self.journal_failure = self.journal_failure or error
            return error
        return self.undeclared(error)

    def refused(self, error: FlowDefinitionError) -> None:
        """A step of this flow was called outside the run (another thread)."""
        self._refuse(error)

    def _declared(self, check: Callable[[], None]) -> None:
        try:
            check()
        except FlowDefinitionError as e:
            raise self._refuse(e) from e

    def _start_attempt(
        self,
        frame: Frame,
        step: StepDef,
        call: str,
        payload: bytes,
        original: StepId | None,
        attempt: int,
    ) -> StepId:
        source = StepSource.retry(original, attempt) if original else None
        with self._write() as handle:
            step_id: StepId = handle.start_step(
                step.name,
                step.step_type,
                input=msgspec.Raw(payload),
                parent_step_id=frame.step,
                source=source,
                callable_id=step.callable_id,
                call=frame.stored_call(call) if original is None else None,
            )
        return step_id

    _last_error: ExecutionError

    def _live_body(self, frame: Frame, call: str, after: Step | None) -> Frame:
        """The body scope of a live call (one for every attempt); going on
        after recorded attempts, its ordinals continue after theirs."""
        body = frame.body(call, None)
        if after is not None and self.index is not None:
            first = self.index.by_call.get(call)
            body.calls = self.index.nested_calls(first) if first else 0
        return body

    def _enter_live_body(
        self, body: Frame, call: str, step_id: StepId
    ) -> Callable[[], None]:
        """Enter a live attempt's body scope, with its `journal.step_key()`
        (the call's: the same for every attempt and after a crash)."""
        assert self.handle is not None
        body.step = step_id
        undo = enter(body)
        key = current_step_key.set(call_key(self.handle.id, call))

        def leave() -> None:
            current_step_key.reset(key)
            undo()

        return leave

    def _failed(
        self,
        step: StepDef,
        exc: Exception,
        step_id: StepId,
        attempt: int,
        started: float,
    ) -> float | None:
        """Record a failed attempt; the delay before a retry, or None."""
        if isinstance(exc, JournalError) and exc is self.journal_failure:
            raise exc
        error = error_from(exc, step.step_type, attempt=attempt, step_id=step_id)
        policy = step.policy_for(error)
        error = msgspec.structs.replace(error, retry_policy=policy)
        with self._write() as handle:
            handle.fail_step(step_id, error, duration_ms=_ms_since(started))
        self._last_error = error
        if policy.should_retry(attempt):
            return policy.delay_for_attempt(attempt) / 1000
        return None

    def _completed(
        self, step: StepDef, step_id: StepId, output: bytes, started: float
    ) -> Any:
        with self._write() as handle:
            handle.complete_step(
                step_id, msgspec.Raw(output), duration_ms=_ms_since(started)
            )
        return step.signature.decode_output(output)

    # --- helpers and children ----------------------------------------------

    def draw_value(
        self, frame: Frame, kind: str, make: Callable[[], Any], type_: Any
    ) -> Any:
        if frame.step is not None:
            # Inside a step the value is part of the step: an effect step's
            # output is recorded (and it does not run on replay); a pure
            # step must not draw one at all, and replay will say so.
            return msgspec.json.decode(canonical(make()), type=type_)
        call = frame.next_value()
        recorded = self.find_value(frame, call, kind)
        if recorded is not None:
            return msgspec.json.decode(recorded, type=type_)
        raw = canonical(make())
        with self._write() as handle:
            handle.record_value(kind, msgspec.Raw(raw), call=frame.stored_value(call))
        return msgspec.json.decode(raw, type=type_)

    def run_child(
        self,
        frame: Frame,
        child: Flow,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        self._declared(lambda: self.flow.check_child(child))
        signature = child.require_entry()
        call = frame.next_call()
        payload = signature.encode_args(args, kwargs)
        record = self.find(frame, call, child.name, child.name, payload)
        if record is not None:
            for attempt in self.attempts(record):
                self.answer_effect(attempt)
            self.release(record)
            if self.live and record.state is StepState.RUNNING:
                # The process died while the child ran: the child (found
                # again by its derived id) is resumed or returned.
                return self._live_child(
                    frame, child, call, payload, args, kwargs, step_id=record.id
                )
            return self.recorded_outcome(None, record, None, signature)
        return self._live_child(frame, child, call, payload, args, kwargs)

    def _live_child(
        self,
        frame: Frame,
        child: Flow,
        call: str,
        payload: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        step_id: StepId | None = None,
    ) -> Any:
        assert self.handle is not None
        assert self.child_runner is not None
        signature = child.require_entry()
        if step_id is None:
            with self._write() as handle:
                step_id = handle.start_step(
                    child.name,
                    StepType.GRAPH_NODE,
                    input=msgspec.Raw(payload),
                    parent_step_id=frame.step,
                    callable_id=child.name,
                    callable_type=CallableType.FLOW,
                    call=frame.stored_call(call),
                )
        started = time.perf_counter()
        link = ParentLink(
            parent_id=step_id, parent_type=ParentType.STEP, execution_id=self.handle.id
        )
        child_id = derived_execution_id(self.handle.id, call)
        try:
            result = self.child_runner(
                child, self.handle.journal, args, kwargs, link, child_id
            )
        except JournalError as e:
            # The child's journal failure ends this run too, whatever the
            # entry's own ``except`` does with it.
            self.journal_failure = self.journal_failure or e
            raise
        if result.state.value in ("Waiting", "Paused"):
            self._wait_for_child(result)
        if result.error is None and result.state.value == "Completed":
            with self._write() as handle:
                handle.complete_step(
                    step_id, result.output, duration_ms=_ms_since(started)
                )
            return signature.decode_output(bytes(result.output))
        error = result.error or ExecutionError(
            category=ErrorCategory.KERNEL_INTERNAL,
            message=f"child execution {result.id} ended {result.state_label}",
        )
        error = msgspec.structs.replace(error, step_id=step_id, attempt=1)
        with self._write() as handle:
            handle.fail_step(step_id, error, duration_ms=_ms_since(started))
        raise StepError(error=error)

    def _wait_for_child(self, child: Execution) -> NoReturn:
        """A child stopped (it waits for a person, or was paused): this run
        waits for it too (`sub_agent`), its call step still running. Resuming
        this execution once the child has ended takes the child's result."""
        from journal.application import utc_now

        with self._write() as handle:
            handle.record(
                ev.ExecutionWaiting(
                    at=utc_now(),
                    reason=WaitReason.SUB_AGENT,
                    detail=child_wait_detail(child),
                )
            )
        raise Halt

    def _cancelled(self, step_id: StepId, started: float) -> None:
        """Record an attempt cancelled in flight (it is then re-raised)."""
        with self._write() as handle:
            handle.fail_step(
                step_id, cancelled_error(step_id), duration_ms=_ms_since(started)
            )


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
