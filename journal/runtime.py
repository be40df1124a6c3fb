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
import time
from typing import TYPE_CHECKING, Any

import msgspec

from journal import events as ev
from journal.approvals import wait_digest
from journal.context import Frame, enter
from journal.divergence import Divergence
from journal.failures import StepError
from journal.live import (
    STOPPED_BY_OPERATOR,
    Halt,
    LiveRecorder,
    checked,
    is_cancellation,
)
from journal.matching import Stop
from journal.model import Step, StepState
from journal.schema import canonical
from journal.waits import WaitRequest, answer, differs, own_waits

if TYPE_CHECKING:
    from journal.flow import StepDef

__all__ = ["STOPPED_BY_OPERATOR", "Halt", "Run", "Stop"]


class Run(LiveRecorder):
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
        child_runner: How a live child execution is run.
    """

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
                output = checked(step, canonical(step.function(*args, **kwargs)))
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
                output = checked(step, canonical(await step.function(*args, **kwargs)))
            except asyncio.CancelledError:
                self._cancelled(step_id, started)
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
        waits = own_waits(known) if known is not None else []
        if ordinal < len(waits):
            wait = waits[ordinal]
            why = differs(wait, request)
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
        assert self.handle is not None
        self._record_wait(request, wait_digest(self.handle.id, ordinal, request))
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
