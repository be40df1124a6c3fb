"""Checks on a whole call and on the end of a re-run.

Retries as today's policy would make them, recorded helper values drawn
where the record drew them, every recorded call made, and the entry's end
equal to the record's. Shared by replay and by continuations (resume, fork)
through `journal.runtime.Run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from journal.context import Frame, join
from journal.divergence import Divergence, step_view, value_view
from journal.failures import StepError, error_from, same_error
from journal.matching import Matcher, Stop, produced_view
from journal.model import (
    Execution,
    ExecutionError,
    ExecutionState,
    RetryPolicy,
    Step,
    StepState,
)

if TYPE_CHECKING:
    from journal.flow import StepDef


class RecordChecks(Matcher):
    """The matcher's checks on retries, helper values and the end."""

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

    def compare_end(self, output: bytes | None, failure: BaseException | None) -> None:
        """The entry's output (or error) and the end state must be the record's."""
        recorded = self.record
        assert recorded is not None
        state = recorded.state
        if state not in (ExecutionState.COMPLETED, ExecutionState.FAILED):
            return  # recorded while still running (or cancelled): matched so far
        if failure is None and output is not None:
            produced = output
            recorded_output = self.upcast_bytes(
                self.flow.name, "output", recorded.output
            )
            if state is ExecutionState.COMPLETED and recorded_output == produced:
                return
            caught = self.caught_failure()
            raise self.diverge(
                Divergence(
                    index=len(recorded.step_order),
                    reason="the entry's output differs from the record"
                    if state is ExecutionState.COMPLETED
                    else f"{caught}, and completes"
                    if caught
                    else "the entry completed, but the record failed",
                    recorded_step={"execution": state.value},
                    recorded_value=_end_value(recorded),
                    produced_step={"execution": "Completed"},
                    produced_value=value_view(produced),
                )
            )
        error = _error_of(failure)
        if state is ExecutionState.FAILED and same_error(recorded.error, error):
            return
        raise self.diverge(
            Divergence(
                index=len(recorded.step_order),
                reason="the entry failed differently from the record",
                recorded_step={"execution": state.value},
                recorded_value=_end_value(recorded),
                produced_step={"execution": "Failed"},
                produced_value=None
                if error is None
                else {"error": error.category.value, "message": error.message},
            )
        )


def _cancelled_unreached(step: Step, final: Step) -> bool:
    """A recorded step cancelled in flight, whose task replay cancelled
    before it made the call (its answer would have been the cancellation)."""
    return final.error is not None and final.error.code == "cancelled"


def _error_of(failure: BaseException | None) -> ExecutionError | None:
    if failure is None:
        return None
    if isinstance(failure, StepError):
        return failure.error
    return error_from(failure, "")


def _end_value(recorded: Execution) -> Any:
    if recorded.error is not None:
        return {
            "error": recorded.error.category.value,
            "message": recorded.error.message,
        }
    return value_view(bytes(recorded.output))
