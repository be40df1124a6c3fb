"""Matching calls against a record: the rules replay, resume and fork share.

A call is matched with the recorded call of the same identity (see
`journal.context`): name, callable id and input must be equal. An effect
step is answered from the record (its recorded nested steps and retries
are consumed with it); a pure step runs once per recorded attempt and what
it produces is compared. Concurrent calls of an async run are answered in
the order their records *ended* (`Turns`), so ``as_completed`` and a
failing ``TaskGroup`` see what they saw live. A divergence is stored
before a `Stop` signal (a BaseException, so a flow's ``except Exception``
cannot swallow it) unwinds the entry.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import TYPE_CHECKING, Any

import msgspec

from journal.context import Frame, join
from journal.divergence import Divergence, step_view, value_view
from journal.errors import FlowDefinitionError
from journal.failures import StepError, error_from, same_error
from journal.ids import StepId
from journal.model import (
    Execution,
    ExecutionState,
    RetryPolicy,
    Step,
    StepState,
    is_null,
)
from journal.record import RecordIndex
from journal.schema import canonical

if TYPE_CHECKING:
    from journal.flow import Flow, Signature, StepDef, ValueUpcaster

#: Rounds of the event loop a concurrent answer waits for a call that
#: ended before it in the record before deciding that call is not coming.
PATIENCE = 64


class Stop(BaseException):
    """Unwinds the entry: diverged, or the record ended (not an error)."""


def produced_view(step: StepDef, state: str) -> dict[str, Any]:
    """The comparable parts of a step call the re-run made (cf. `step_view`)."""
    return {
        "name": step.name,
        "callable_id": step.callable_id,
        "step_type": step.step_type,
        "state": state,
    }


class Turns:
    """Releases concurrent answers in the order the record ended them."""

    def __init__(self, keys: list[int]) -> None:
        self.heap = list(keys)
        heapq.heapify(self.heap)
        self.done: set[int] = set()
        self.progress = 0

    def _head(self) -> int | None:
        while self.heap and self.heap[0] in self.done:
            heapq.heappop(self.heap)
        return self.heap[0] if self.heap else None

    def release(self, key: int | None) -> None:
        if key is not None:
            self.done.add(key)
            self.progress += 1

    async def wait(self, key: int | None) -> None:
        """Wait until every call that ended before `key` was answered."""
        stalled, seen = 0, self.progress
        while key is not None and (head := self._head()) is not None and head < key:
            if self.progress != seen:
                stalled, seen = 0, self.progress
            stalled += 1
            if stalled > PATIENCE:  # that call is not coming (cancelled first)
                self.release(head)
                continue
            await asyncio.sleep(0)
        self.release(key)


class Matcher:
    """What a run knows of its record, and the comparisons it makes."""

    def __init__(
        self, flow: Flow, record: Execution | None, upcast: ValueUpcaster | None
    ) -> None:
        self.flow = flow
        self.record = record
        self.index = RecordIndex.of(record) if record is not None else None
        self.upcast = upcast
        self.divergence: Divergence | None = None
        self.record_ended = False
        self.steps_checked = 0
        self.consumed: set[StepId] = set()
        self.opaque: set[StepId] = set()
        self.drawn: set[str] = set()
        self.raised: set[StepId] = set()
        # A record that did not finish (still running, paused, waiting, or
        # cancelled between steps) is matched only as far as it goes.
        self.open_ended = record is None or record.state not in (
            ExecutionState.COMPLETED,
            ExecutionState.FAILED,
        )
        self.turns = Turns(self._end_keys()) if self.index else Turns([])

    def _end_keys(self) -> list[int]:
        assert self.index is not None
        return [
            key
            for step in self.index.by_call.values()
            if (key := self.index.final_attempt(step).ended_seq) is not None
        ]

    @property
    def live(self) -> bool:
        """True when calls the record lacks go live (a `Run` with a handle)."""
        return False

    # --- signals ----------------------------------------------------------

    def diverge(self, divergence: Divergence) -> Stop:
        """Keep the first divergence; the signal that unwinds the entry."""
        if self.divergence is None:
            self.divergence = divergence
        return Stop()

    def end_of_record(self) -> Stop:
        """The record ends here (it did not finish): matched so far."""
        self.record_ended = True
        return Stop()

    def undeclared(self, error: FlowDefinitionError) -> Stop:
        """A call into a flow not declared in ``uses=``."""
        return self.diverge(Divergence(index=self._end(), reason=str(error)))

    def _end(self) -> int:
        return 0 if self.record is None else len(self.record.step_order)

    def _position(self, step: Step) -> int:
        assert self.index is not None
        return self.index.position[step.id]

    # --- values -----------------------------------------------------------

    def upcast_bytes(self, callable_id: str, kind: str, raw: msgspec.Raw) -> bytes:
        """Recorded bytes, upcast when recorded under an accepted old schema."""
        if self.upcast is None or is_null(raw):
            return bytes(raw)
        value = msgspec.json.decode(raw)
        return canonical(self.upcast(callable_id, kind, value))

    def _value(self, step: Step, kind: str, raw: msgspec.Raw) -> bytes:
        return self.upcast_bytes(step.callable_id or step.name, kind, raw)

    # --- finding a call's record ---------------------------------------------

    def find(
        self, frame: Frame, call: str, name: str, callable_id: str, payload: bytes
    ) -> Step | None:
        """The recorded first attempt of `call`, checked; None: go live."""
        if self.index is None:
            return None
        record = self.index.by_call.get(call)
        if record is None or record.id in self.consumed:
            if self.live:
                return None
            raise self._no_record(call, name, callable_id, payload)
        frame.answered(record.call)
        produced = {"name": name, "callable_id": callable_id}
        where = self._position(record)
        if record.callable_id != callable_id or record.name != name:
            raise self.diverge(
                Divergence(
                    index=where,
                    reason=f"step {where}: recorded {record.callable_id}, "
                    f"code called {callable_id}",
                    recorded_step=step_view(record),
                    recorded_value=value_view(bytes(record.input)),
                    produced_step=produced,
                    produced_value=value_view(payload),
                    call=call,
                )
            )
        recorded_input = self._value(record, "input", record.input)
        if recorded_input != payload:
            raise self.diverge(
                Divergence(
                    index=where,
                    reason=f"step {where} ({callable_id}): input differs"
                    + self._undrawn_before(frame),
                    recorded_step=step_view(record),
                    recorded_value=value_view(recorded_input),
                    produced_step=produced,
                    produced_value=value_view(payload),
                    call=call,
                )
            )
        return record

    def _no_record(
        self, call: str, name: str, callable_id: str, payload: bytes
    ) -> Stop:
        if self.open_ended:
            return self.end_of_record()
        caught = self.caught_failure()
        reason = f"{callable_id} was called, but the record has no further step"
        if caught:
            reason = f"{caught}, and calls {callable_id}"
        return self.diverge(
            Divergence(
                index=self._end(),
                reason=reason,
                produced_step={"name": name, "callable_id": callable_id},
                produced_value=value_view(payload),
                call=call,
            )
        )

    def caught_failure(self) -> str:
        """Names the recorded failure that ended the record, if today's code
        received it (as `StepError`) and went on anyway."""
        record = self.record
        if record is None or record.error is None or record.error.step_id is None:
            return ""
        if record.error.step_id not in self.raised:
            return ""
        step = record.steps[record.error.step_id]
        where = self.index.position[step.id] if self.index else 0
        return (
            f"step {where} ({step.callable_id}) failed as recorded "
            f"({step.error.category.value if step.error else '?'}: "
            f"{step.error.message if step.error else ''}), which ended the "
            "recorded run; today's code catches that failure"
        )

    def _undrawn_before(self, frame: Frame) -> str:
        """A recorded helper value this scope should have drawn by now."""
        assert self.index is not None
        pending = self.index.values_by_scope.get(frame.scope, [])
        if frame.values >= len(pending):
            return ""
        value = pending[frame.values]
        if value.calls_before > frame.calls - 1:
            return ""
        return (
            f"; the record drew journal.{value.recorded.kind}() just before this "
            f"call and today's code did not: a value from a clock or random "
            "source the journal does not record (datetime.now(), time.time(), "
            f"random) differs on every run; draw it with journal."
            f"{value.recorded.kind}()"
        )

    # --- attempts -----------------------------------------------------------

    def attempts(self, first: Step) -> list[Step]:
        """The recorded attempts of a call, each consumed as it is answered."""
        assert self.index is not None
        found = [first, *self.index.retries.get(first.id, ())]
        for attempt in found:
            self.consumed.add(attempt.id)
            self.steps_checked += 1
        return found

    def index_final(self, first: Step) -> Step:
        assert self.index is not None
        return self.index.final_attempt(first)

    def answer_effect(self, attempt: Step) -> None:
        """An effect attempt is answered: what it did inside is consumed too."""
        self.opaque.add(attempt.id)

    def release(self, first: Step) -> None:
        """A synchronous answer: it takes its turn at once."""
        self.turns.release(self.index_final(first).ended_seq)

    async def turn(self, first: Step) -> None:
        """An async answer waits for the calls the record ended before it."""
        final = self.index_final(first)
        try:
            await self.turns.wait(final.ended_seq)
        except asyncio.CancelledError:
            self.turns.release(final.ended_seq)
            raise

    def check_retries(self, step: StepDef, attempts: list[Step]) -> None:
        """Today's retry policy must retry a failed attempt exactly when the
        record did: a changed policy is a changed behaviour. A last failed
        attempt whose retry an unfinished record lacks is where it ends."""
        for number, attempt in enumerate(attempts, start=1):
            if attempt.state is not StepState.FAILED or attempt.error is None:
                continue
            retried = number < len(attempts)
            policy = step.policy_for(attempt.error)
            if policy.should_retry(number) == retried:
                continue
            if not retried and self.open_ended:
                if self.live:
                    return  # the retry goes on live
                raise self.end_of_record()
            raise self._retry_differs(step, attempt, number, retried, policy)

    def _retry_differs(
        self,
        step: StepDef,
        attempt: Step,
        number: int,
        retried: bool,
        policy: RetryPolicy,
    ) -> Stop:
        assert attempt.error is not None
        would = "would not retry it" if retried else "would retry it"
        return self.diverge(
            Divergence(
                index=self._position(attempt),
                reason=f"{step.callable_id} attempt {number} failed "
                f"({attempt.error.category.value}) and was "
                f"{'retried' if retried else 'not retried'}; today's retry policy "
                f"(max_retries {policy.max_retries}) {would}",
                recorded_step={**(step_view(attempt) or {}), "attempt": number},
                produced_step={
                    **produced_view(step, "Failed"),
                    "attempt": number,
                    "retries": policy.max_retries if policy.retryable else 0,
                },
            )
        )

    def retry_pending(self, step: StepDef, final: Step) -> bool:
        """A recorded failed attempt whose retry the record does not hold."""
        if final.state is not StepState.FAILED or final.error is None:
            return False
        attempt = final.error.attempt or 1
        return step.policy_for(final.error).should_retry(attempt)

    @staticmethod
    def live_start(
        resume: Step | None, after: Step | None
    ) -> tuple[StepId | None, int, StepId | None]:
        """(original step, attempt number, step id to reuse) for going live."""
        if resume is not None:
            attempt = resume.error.attempt if resume.error else None
            return _original_of(resume), attempt or 1, resume.id
        if after is not None:
            attempt = (after.error.attempt if after.error else None) or 1
            return _original_of(after) or after.id, attempt + 1, None
        return None, 1, None

    # --- pure steps and outcomes ------------------------------------------

    def compare_pure(
        self,
        step: StepDef,
        attempt: Step,
        produced: bytes | None,
        failure: BaseException | None,
    ) -> bytes | None:
        """Compare what a pure attempt did with what it recorded."""
        index = self._position(attempt)
        self._require_no_nested_left(attempt)
        if attempt.state in (StepState.RUNNING, StepState.PENDING):
            if self.live:
                return produced
            raise self.end_of_record()
        if failure is not None:
            error = error_from(failure, step.step_type)
            if same_error(attempt.error, error):
                return None
            raise self.diverge(
                Divergence(
                    index=index,
                    reason=f"step {index} ({step.callable_id}): pure step raised "
                    f"{error.category.value}: {error.message}",
                    recorded_step=step_view(attempt),
                    recorded_value=value_view(bytes(attempt.output)),
                    produced_step=produced_view(step, "Failed"),
                    produced_value={
                        "error": error.category.value,
                        "message": error.message,
                    },
                )
            )
        recorded_output = self._value(attempt, "output", attempt.output)
        if attempt.state is not StepState.COMPLETED or recorded_output != produced:
            raise self.diverge(
                Divergence(
                    index=index,
                    reason=f"step {index} ({step.callable_id}): "
                    "pure step output differs",
                    recorded_step=step_view(attempt),
                    recorded_value=value_view(recorded_output),
                    produced_step=produced_view(step, "Completed"),
                    produced_value=value_view(produced or b"null"),
                )
            )
        return produced

    def _require_no_nested_left(self, attempt: Step) -> None:
        assert self.index is not None
        for record in self.index.children.get(attempt.id, ()):
            if record.id not in self.consumed:
                where = self._position(record)
                raise self.diverge(
                    Divergence(
                        index=where,
                        reason=f"step {where} ({record.callable_id}) was "
                        f"recorded inside {attempt.callable_id} but not called",
                        recorded_step=step_view(record),
                    )
                )

    def recorded_outcome(
        self,
        step: StepDef | None,
        final: Step,
        produced: bytes | None,
        signature: Signature | None = None,
    ) -> Any:
        """Return the recorded output, or raise the recorded `StepError`."""
        if final.state is StepState.COMPLETED:
            output = (
                produced
                if produced is not None
                else self._value(final, "output", final.output)
            )
            decode = (signature or _signature(step)).decode_output
            return decode(output)
        if final.state is StepState.FAILED and final.error is not None:
            self.raised.add(final.id)
            raise StepError(error=final.error)
        raise self.end_of_record()

    # --- recorded helper values ---------------------------------------------

    def find_value(self, frame: Frame, call: str, kind: str) -> bytes | None:
        """The recorded value for helper draw `call`; None: draw it live."""
        if self.index is None:
            return None
        value = self.index.values.get(call)
        if value is None:
            if self.live:
                return None
            if self.open_ended:
                raise self.end_of_record()
            raise self.diverge(
                Divergence(
                    index=self._end(),
                    reason=f"journal.{kind}() was called, but the record has no "
                    "further recorded value",
                    produced_step={"helper": kind},
                )
            )
        recorded = value.recorded
        calls = frame.calls
        if recorded.kind != kind or value.calls_before != calls:
            raise self._moved_value(frame, kind, value.recorded.kind, value, calls)
        self.drawn.add(call)
        return self.upcast_bytes(f"journal.{kind}", "value", recorded.value)

    def _moved_value(
        self, frame: Frame, kind: str, recorded_kind: str, value: Any, calls: int
    ) -> Stop:
        assert self.index is not None
        before = value.calls_before
        skipped = self.index.by_call.get(join(frame.scope, str(calls)))
        if calls < before and skipped is not None and kind == recorded_kind:
            where = self._position(skipped)
            return self.diverge(
                Divergence(
                    index=where,
                    reason=f"step {where} ({skipped.callable_id}) was recorded "
                    f"but not called (the record drew journal.{recorded_kind}() "
                    "after it)",
                    recorded_step=step_view(skipped),
                    recorded_value=value_view(bytes(skipped.input)),
                    produced_step={"helper": kind, "after_steps": calls},
                )
            )
        return self.diverge(
            Divergence(
                index=self._end() if skipped is None else self._position(skipped),
                reason=f"journal.{kind}() was called after {calls} steps "
                f"where the record drew journal.{recorded_kind}() after "
                f"{before} steps",
                recorded_step={"helper": recorded_kind, "after_steps": before},
                recorded_value=value_view(bytes(value.recorded.value)),
                produced_step={"helper": kind, "after_steps": calls},
            )
        )

    # --- the end ------------------------------------------------------------

    def check_all_consumed(self) -> None:
        """Every recorded call must have been made (and every value drawn)."""
        if self.index is None:
            return
        assert self.record is not None
        for position, step_id in enumerate(self.record.step_order):
            step = self.record.steps[step_id]
            if step_id in self.consumed:
                continue
            if step.parent_step_id in self.opaque or step.is_retry:
                self.opaque.add(step_id)  # answered with its ancestor
                continue
            if _cancelled_unreached(step, self.index.final_attempt(step)):
                continue
            raise self.diverge(
                Divergence(
                    index=position,
                    reason=f"step {position} ({step.callable_id}) was recorded "
                    "but not called",
                    recorded_step=step_view(step),
                    recorded_value=value_view(bytes(step.input)),
                )
            )
        for call, value in self.index.values.items():
            if call not in self.drawn:
                raise self.diverge(
                    Divergence(
                        index=self._end(),
                        reason=f"the record drew journal.{value.recorded.kind}() "
                        f"after {value.calls_before} steps, but today's code "
                        "never did: a value from a clock or random source the "
                        "journal does not record differs on every run",
                        recorded_step={
                            "helper": value.recorded.kind,
                            "after_steps": value.calls_before,
                        },
                        recorded_value=value_view(bytes(value.recorded.value)),
                    )
                )


def _cancelled_unreached(step: Step, final: Step) -> bool:
    """A recorded step cancelled in flight, whose task replay cancelled
    before it made the call (its answer would have been the cancellation)."""
    return final.error is not None and final.error.code == "cancelled"


def _original_of(step: Step) -> StepId | None:
    """The first attempt a retry attempt points at (None for a first one)."""
    if step.is_retry and step.source is not None and step.source.triggered_by:
        return StepId(step.source.triggered_by)
    return None


def _signature(step: StepDef | None) -> Signature:
    assert step is not None
    return step.signature
