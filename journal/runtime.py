"""One run context for live runs, replays and continuations.

A `Run` answers each call of a flow's entry either from a record (the
calls a recorded execution made, matched by call identity: effect bodies
never run, pure steps run and are compared) or live (the body runs and
every event is appended as it happens). Given a record *and* an execution
handle it answers from the record while the record has the call and
switches to live at the first call it lacks: resume, recovery and fork
are that. Given only a record it is a replay; given only a handle, a live
run. See `journal.matching` for the comparisons and `journal.driving` for
running an entry under a `Run`.

Every live event is appended (durably) when it happens: a step's
`StepStarted` is stored before the step's code runs, so a crash mid-step
is visible.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec

from journal import events as ev
from journal.approvals import wait_digest
from journal.calls import call_key, current_step_key
from journal.context import Frame, enter
from journal.divergence import Divergence
from journal.errors import FlowDefinitionError, InvalidTransitionError, JournalError
from journal.failures import StepError, error_from
from journal.ids import derived_execution_id
from journal.matching import Matcher, Stop
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
)
from journal.schema import canonical
from journal.waits import WaitRequest, answer, differs

if TYPE_CHECKING:
    from journal.commands import ExecutionHandle
    from journal.flow import Flow, StepDef, ValueUpcaster
    from journal.ids import StepId

__all__ = ["Halt", "Run", "Stop"]


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


def is_cancellation(error: ExecutionError | None) -> bool:
    """True for the error a step cancelled in flight recorded."""
    return error is not None and error.code == CANCELLED_CODE


class Run(Matcher):
    """The run context: answers from `record`, records live through `handle`.

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

    def _declared(self, check: Callable[[], None]) -> None:
        try:
            check()
        except FlowDefinitionError as e:
            raise self._refuse(e) from e

    # --- steps -----------------------------------------------------------

    def call_step(
        self,
        frame: Frame,
        step: StepDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if step.flow is not self.flow:
            self._declared(lambda: self.flow.check_step(step))
        call = frame.next_call()
        payload = step.signature.encode_args(args, kwargs)
        replaced = self.replaced_input(call)
        if replaced is not None:  # a fork gave this call another input
            payload, args, kwargs = replaced, (), step.signature.decode_args(replaced)
        first = self.find(frame, call, step.name, step.callable_id, payload)
        if first is None:
            return self._live(frame, step, call, payload, args, kwargs)
        produced: bytes | None = None
        body = frame.body(call, first.id)  # one scope for every attempt
        attempts = self.attempts(first)
        for attempt in attempts:
            if step.pure:
                body.step = attempt.id
                produced = self._pure_body(body, step, attempt, args, kwargs)
            else:
                self.answer_effect(attempt)
        self.check_retries(step, attempts)
        self.release(first)
        return self._outcome(
            frame, step, call, payload, first, produced, (args, kwargs)
        )

    def _pure_body(
        self,
        body: Frame,
        step: StepDef,
        attempt: Step,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> bytes | None:
        undo = enter(body)
        try:
            produced = canonical(step.function(*args, **kwargs))
            failure: BaseException | None = None
        except Stop:
            raise
        except Exception as exc:
            produced, failure = None, exc
        finally:
            undo()
        return self.compare_pure(step, attempt, produced, failure)

    def _outcome(
        self,
        frame: Frame,
        step: StepDef,
        call: str,
        payload: bytes,
        first: Step,
        produced: bytes | None,
        arguments: tuple[tuple[Any, ...], dict[str, Any]],
    ) -> Any:
        final = self.index_final(first)
        args, kwargs = arguments
        if self.live and final.state is StepState.RUNNING:
            # Started, never ended: the one place an effect may run twice.
            return self._live(frame, step, call, payload, args, kwargs, resume=final)
        if self.live and self.retry_pending(step, final):
            return self._live(frame, step, call, payload, args, kwargs, after=final)
        return self.recorded_outcome(step, final, produced)

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

    def _live(
        self,
        frame: Frame,
        step: StepDef,
        call: str,
        payload: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        resume: Step | None = None,
        after: Step | None = None,
    ) -> Any:
        """Run `step`'s body live, recording each attempt.

        `resume`: a recorded attempt that started and never ended (its body
        runs again under the same step id); `after`: a recorded failed
        attempt whose retry had not started yet.
        """
        original, attempt, step_id = self.live_start(resume, after)
        body = self._live_body(frame, call, after)
        while True:
            if step_id is None:
                step_id = self._start_attempt(
                    frame, step, call, payload, original, attempt
                )
            original = original or step_id
            started = time.perf_counter()
            undo = self._enter_live_body(body, call, step_id)
            try:
                output = canonical(step.function(*args, **kwargs))
            except Exception as exc:
                delay = self._failed(step, exc, step_id, attempt, started)
                if delay is None:
                    raise StepError(error=self._last_error) from exc
                self.sleep(delay)
                attempt, step_id = attempt + 1, None
                continue
            finally:
                undo()
            return self._completed(step, step_id, output, started)

    async def call_step_async(
        self,
        frame: Frame,
        step: StepDef,
        call: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if step.flow is not self.flow:
            self._declared(lambda: self.flow.check_step(step))
        payload = step.signature.encode_args(args, kwargs)
        replaced = self.replaced_input(call)
        if replaced is not None:  # a fork gave this call another input
            payload, args, kwargs = replaced, (), step.signature.decode_args(replaced)
        first = self.find(frame, call, step.name, step.callable_id, payload)
        if first is None:
            return await self._live_async(frame, step, call, payload, args, kwargs)
        produced: bytes | None = None
        body = frame.body(call, first.id)  # one scope for every attempt
        attempts = self.attempts(first)
        for attempt in attempts:
            if step.pure:
                body.step = attempt.id
                produced = await self._pure_body_async(
                    body, step, attempt, args, kwargs
                )
            else:
                self.answer_effect(attempt)
        self.check_retries(step, attempts)
        await self.turn(first)
        final = self.index_final(first)
        if self.live and final.state is StepState.RUNNING:
            return await self._live_async(
                frame, step, call, payload, args, kwargs, resume=final
            )
        if self.live and self.retry_pending(step, final):
            return await self._live_async(
                frame, step, call, payload, args, kwargs, after=final
            )
        if is_cancellation(final.error):
            raise asyncio.CancelledError
        return self.recorded_outcome(step, final, produced)

    async def _pure_body_async(
        self,
        body: Frame,
        step: StepDef,
        attempt: Step,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> bytes | None:
        undo = enter(body)
        try:
            produced = canonical(await step.function(*args, **kwargs))
            failure: BaseException | None = None
        except Stop:
            raise
        except Exception as exc:
            produced, failure = None, exc
        finally:
            undo()
        return self.compare_pure(step, attempt, produced, failure)

    async def _live_async(
        self,
        frame: Frame,
        step: StepDef,
        call: str,
        payload: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        resume: Step | None = None,
        after: Step | None = None,
    ) -> Any:
        original, attempt, step_id = self.live_start(resume, after)
        body = self._live_body(frame, call, after)
        while True:
            if step_id is None:
                step_id = self._start_attempt(
                    frame, step, call, payload, original, attempt
                )
            original = original or step_id
            started = time.perf_counter()
            undo = self._enter_live_body(body, call, step_id)
            try:
                output = canonical(await step.function(*args, **kwargs))
            except asyncio.CancelledError:
                with self._write() as handle:
                    handle.fail_step(
                        step_id,
                        cancelled_error(step_id),
                        duration_ms=_ms_since(started),
                    )
                raise
            except Exception as exc:
                delay = self._failed(step, exc, step_id, attempt, started)
                if delay is None:
                    raise StepError(error=self._last_error) from exc
                await asyncio.sleep(delay)
                attempt, step_id = attempt + 1, None
                continue
            finally:
                undo()
            return self._completed(step, step_id, output, started)

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

    def replaced_input(self, call: str) -> bytes | None:
        """The input a fork recorded for `call` instead of the entry's."""
        known = self.handle.state if self.handle is not None else self.record
        if known is None or not known.replaced_inputs:
            return None
        found = known.replaced_inputs.get(call)
        return None if found is None else bytes(found)

    # --- waits ---------------------------------------------------------------

    def wait_for(self, frame: Frame, request: WaitRequest) -> Any:
        """Answer a `journal.wait_for` from the record (a resume appended its
        answer before going on), or record the wait and halt the run: it ends
        Waiting, and the process may exit."""
        if frame.step is not None:
            raise RuntimeError("journal.wait_for() cannot be called inside a step")
        with self._lock:
            ordinal = self.waits_seen
            self.waits_seen += 1
        known = self.handle.state if self.handle is not None else self.record
        waits = known.waits if known is not None else []
        execution_id = known.id if known is not None else ""
        digest = wait_digest(
            execution_id,
            ordinal,
            request.reason.value,
            request.prompt,
            request.action,
        )
        if ordinal < len(waits):
            wait = waits[ordinal]
            why = differs(wait, request, digest)
            if why is not None:
                raise self.diverge(Divergence(index=self._end(), reason=why))
            if wait.answer is None:
                raise Halt if self.live else self.end_of_record()
            return answer(wait.answer, request.type_)
        if not self.live:
            if self.open_ended:
                raise self.end_of_record()
            raise self.diverge(
                Divergence(
                    index=self._end(),
                    reason=f"journal.wait_for({request.reason.value}) was called, "
                    "but the record has no further wait",
                )
            )
        self._record_wait(request, digest)
        raise Halt

    def _record_wait(self, request: WaitRequest, digest: str) -> None:
        from journal.application import utc_now

        now = utc_now()
        deadline = now + request.timeout if request.timeout is not None else None
        with self._write() as handle:
            handle.record(
                ev.ExecutionWaiting(
                    at=now,
                    reason=request.reason,
                    prompt=request.prompt,
                    action=msgspec.Raw(request.action),
                    digest=digest,
                    timeout_at=deadline,
                    require_approver=request.require_approver,
                )
            )

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


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
