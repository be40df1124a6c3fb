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
from typing import TYPE_CHECKING, Any

import msgspec

from journal.context import Frame
from journal.divergence import Divergence, step_view, value_view
from journal.errors import FlowDefinitionError
from journal.failures import StepError, error_from, same_error
from journal.ids import StepId
from journal.model import (
    Execution,
    ExecutionState,
    Step,
    StepState,
    is_null,
)
from journal.record import RecordIndex
from journal.schema import canonical
from journal.turns import Turns

if TYPE_CHECKING:
    from journal.flow import Flow, Signature, StepDef, ValueUpcaster


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


def _original_of(step: Step) -> StepId | None:
    """The first attempt a retry attempt points at (None for a first one)."""
    if step.is_retry and step.source is not None and step.source.triggered_by:
        return StepId(step.source.triggered_by)
    return None


def _signature(step: StepDef | None) -> Signature:
    assert step is not None
    return step.signature
