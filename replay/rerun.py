"""The re-run: call the entry again and match each call against the record.

Each step call consumes the next recorded step (in ``step_order``): name,
callable id, parent and input must match. Effect steps return the recorded
output, or raise the recorded `StepError`, without running; their nested
steps and retries are consumed with them. Pure steps run once per recorded
attempt and what they produce is compared. A divergence is stored on the run
*before* a `Stop` signal (a BaseException, so a flow's ``except Exception``
cannot swallow it) unwinds the entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from journal.approvals import wait_digest
from journal.errors import FlowDefinitionError
from journal.flow import Flow, StepDef, StepError, ValueUpcaster
from journal.ids import StepId
from journal.model import (
    Execution,
    ExecutionError,
    ExecutionState,
    Step,
    StepState,
    is_null,
)
from journal.runtime import error_from
from journal.schema import canonical
from journal.waits import WaitRequest, answer, differs
from replay.report import Divergence, step_view, value_view


def produced_view(step: StepDef, state: str) -> dict[str, Any]:
    """The comparable parts of a step call the re-run made (cf. `step_view`)."""
    return {
        "name": step.name,
        "callable_id": step.callable_id,
        "step_type": step.step_type,
        "state": state,
    }


def same_error(a: ExecutionError | None, b: ExecutionError | None) -> bool:
    """Errors compare by what they say, never by ids, attempts or times."""
    if a is None or b is None:
        return a is b
    return (a.category, a.message, a.code, a.exception_type) == (
        b.category,
        b.message,
        b.code,
        b.exception_type,
    )


class Stop(BaseException):
    """Unwinds the entry: diverged, or the record ended (not an error)."""


class ReplayRun:
    """The `RunContext` of a re-run against a recorded execution."""

    def __init__(
        self, flow: Flow, recorded: Execution, upcast: ValueUpcaster | None = None
    ) -> None:
        self.flow = flow
        self.recorded = recorded
        self.order = recorded.step_order
        self.upcast = upcast
        self.cursor = 0
        self.value_cursor = 0
        self.wait_cursor = 0
        self.stack: list[StepId] = []
        self.divergence: Divergence | None = None
        self.record_ended = False
        self.steps_checked = 0
        # A record that did not finish (still running, paused, waiting, or
        # cancelled between steps) is matched only as far as it goes.
        self.open_ended = recorded.state not in (
            ExecutionState.COMPLETED,
            ExecutionState.FAILED,
        )

    # --- signals ----------------------------------------------------------

    def diverge(self, divergence: Divergence) -> Stop:
        if self.divergence is None:
            self.divergence = divergence
        return Stop()

    def end_of_record(self) -> Stop:
        self.record_ended = True
        return Stop()

    # --- matching ---------------------------------------------------------

    def _next(self) -> Step | None:
        if self.cursor >= len(self.order):
            return None
        return self.recorded.steps[self.order[self.cursor]]

    def _value(self, step: Step, kind: str, raw: msgspec.Raw) -> bytes:
        """A step's recorded bytes, upcast if recorded under an old schema."""
        return self.upcast_bytes(step.callable_id or step.name, kind, raw)

    def upcast_bytes(self, callable_id: str, kind: str, raw: msgspec.Raw) -> bytes:
        """Recorded bytes, upcast when recorded under an accepted old schema."""
        if self.upcast is None or is_null(raw):
            return bytes(raw)
        value = msgspec.json.decode(raw)
        return canonical(self.upcast(callable_id, kind, value))

    def _match(self, name: str, callable_id: str, payload: bytes) -> Step:
        index = self.cursor
        record = self._next()
        parent = self.stack[-1] if self.stack else None
        produced = {"name": name, "callable_id": callable_id}
        if record is None or record.parent_step_id != parent:
            if record is None and self.open_ended:
                raise self.end_of_record()
            raise self.diverge(
                Divergence(
                    index=index,
                    reason=f"{callable_id} was called, but the record has "
                    + ("no further step" if record is None else "another step here"),
                    recorded_step=step_view(record),
                    recorded_value=None
                    if record is None
                    else value_view(bytes(record.input)),
                    produced_step=produced,
                    produced_value=value_view(payload),
                )
            )
        if record.callable_id != callable_id or record.name != name:
            raise self.diverge(
                Divergence(
                    index=index,
                    reason=f"step {index}: recorded {record.callable_id}, "
                    f"code called {callable_id}",
                    recorded_step=step_view(record),
                    recorded_value=value_view(bytes(record.input)),
                    produced_step=produced,
                    produced_value=value_view(payload),
                )
            )
        recorded_input = self._value(record, "input", record.input)
        if recorded_input != payload:
            raise self.diverge(
                Divergence(
                    index=index,
                    reason=f"step {index} ({callable_id}): input differs",
                    recorded_step=step_view(record),
                    recorded_value=value_view(recorded_input),
                    produced_step=produced,
                    produced_value=value_view(payload),
                )
            )
        self.cursor += 1
        self.steps_checked += 1
        return record

    def _skip_descendants(self, ancestor: StepId) -> None:
        family = {ancestor}
        while (record := self._next()) is not None and record.parent_step_id in family:
            family.add(record.id)
            self.cursor += 1

    def _next_retry_of(self, original: Step) -> Step | None:
        record = self._next()
        if (
            record is not None
            and record.is_retry
            and record.source is not None
            and record.source.triggered_by == original.id
        ):
            self.cursor += 1
            self.steps_checked += 1
            return record
        return None

    def _require_no_nested_left(self, attempt: Step) -> None:
        record = self._next()
        if record is not None and record.parent_step_id == attempt.id:
            raise self.diverge(
                Divergence(
                    index=self.cursor,
                    reason=f"step {self.cursor} ({record.callable_id}) was recorded "
                    f"inside {attempt.callable_id} but not called",
                    recorded_step=step_view(record),
                )
            )

    # --- RunContext -------------------------------------------------------

    def _declared(self, check: Callable[[], None]) -> None:
        try:
            check()
        except FlowDefinitionError as e:
            raise self.diverge(Divergence(index=self.cursor, reason=str(e))) from e

    def call_step(
        self, step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if step.flow is not self.flow:
            self._declared(lambda: self.flow.check_step(step))
        payload = step.signature.encode_args(args, kwargs)
        first = self._match(step.name, step.callable_id, payload)
        attempt: Step | None = first
        final = first
        produced: bytes | None = None
        number = 0
        while attempt is not None:
            final, number = attempt, number + 1
            if step.pure:
                produced = self._run_pure(step, attempt, args, kwargs)
            else:
                self._skip_descendants(attempt.id)
            attempt = self._next_retry_of(first)
            self._check_retry(step, final, number, retried=attempt is not None)
        return self._outcome(step, final, produced)

    def _check_retry(
        self, step: StepDef, attempt: Step, number: int, *, retried: bool
    ) -> None:
        """Today's retry policy must retry a failed attempt exactly when the
        record did: a changed policy is a changed behaviour."""
        if attempt.state is not StepState.FAILED or attempt.error is None:
            return
        policy = step.policy_for(attempt.error)
        if policy.should_retry(number) == retried:
            return
        would = "would not retry it" if retried else "would retry it"
        raise self.diverge(
            Divergence(
                index=self.cursor - 1,
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

    def _run_pure(
        self,
        step: StepDef,
        attempt: Step,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> bytes | None:
        index = self.cursor - 1  # the attempt just matched or consumed
        self.stack.append(attempt.id)
        try:
            produced = canonical(step.function(*args, **kwargs))
            failure: BaseException | None = None
        except Stop:
            raise
        except Exception as exc:
            produced, failure = None, exc
        finally:
            self.stack.pop()
        self._require_no_nested_left(attempt)
        self._compare_pure(step, attempt, index, produced, failure)
        return produced

    def _compare_pure(
        self,
        step: StepDef,
        attempt: Step,
        index: int,
        produced: bytes | None,
        failure: BaseException | None,
    ) -> None:
        if attempt.state in (StepState.RUNNING, StepState.PENDING):
            raise self.end_of_record()
        if failure is not None:
            error = error_from(failure, step.step_type)
            if same_error(attempt.error, error):
                return
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

    def _outcome(self, step: StepDef, final: Step, produced: bytes | None) -> Any:
        if final.state is StepState.COMPLETED:
            output = (
                produced
                if produced is not None
                else self._value(final, "output", final.output)
            )
            return step.signature.decode_output(output)
        if final.state is StepState.FAILED and final.error is not None:
            raise StepError(error=final.error)
        raise self.end_of_record()

    def draw_value(self, kind: str, make: Callable[[], Any], type_: Any) -> Any:
        if self.stack:  # inside a pure step: not recorded live either
            return msgspec.json.decode(canonical(make()), type=type_)
        values = self.recorded.recorded_values
        if self.value_cursor >= len(values):
            if self.open_ended:
                raise self.end_of_record()
            raise self.diverge(
                Divergence(
                    index=self.cursor,
                    reason=f"journal.{kind}() was called, but the record has no "
                    "further recorded value",
                    produced_step={"helper": kind},
                )
            )
        recorded = values[self.value_cursor]
        if recorded.kind != kind or recorded.after_steps != self.cursor:
            where = f"after {recorded.after_steps} steps"
            raise self.diverge(
                Divergence(
                    index=self.cursor,
                    reason=f"journal.{kind}() was called after {self.cursor} steps "
                    f"where the record drew journal.{recorded.kind}() {where}",
                    recorded_step={
                        "helper": recorded.kind,
                        "after_steps": recorded.after_steps,
                    },
                    recorded_value=value_view(bytes(recorded.value)),
                    produced_step={"helper": kind, "after_steps": self.cursor},
                )
            )
        self.value_cursor += 1
        value = self.upcast_bytes(f"journal.{kind}", "value", recorded.value)
        return msgspec.json.decode(value, type=type_)

    def wait_for(self, request: WaitRequest) -> Any:
        """Answer a `journal.wait_for` as recorded (the record may end
        waiting: then the re-run ends there)."""
        ordinal = self.wait_cursor
        waits = self.recorded.waits
        if ordinal >= len(waits):
            if self.open_ended:
                raise self.end_of_record()
            raise self.diverge(
                Divergence(
                    index=self.cursor,
                    reason=f"journal.wait_for({request.reason.value}) was called, "
                    "but the record has no further wait",
                )
            )
        self.wait_cursor += 1
        wait = waits[ordinal]
        digest = wait_digest(
            self.recorded.id,
            ordinal,
            request.reason.value,
            request.prompt,
            request.action,
        )
        why = differs(wait, request, digest)
        if why is not None:
            raise self.diverge(Divergence(index=self.cursor, reason=why))
        if wait.answer is None:
            raise self.end_of_record()
        return answer(wait.answer, request.type_)

    def run_child(
        self, child: Flow, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self._declared(lambda: self.flow.check_child(child))
        signature = child._entry()
        payload = signature.encode_args(args, kwargs)
        record = self._match(child.name, child.name, payload)
        self._skip_descendants(record.id)
        if record.state is StepState.COMPLETED:
            return signature.decode_output(self._value(record, "output", record.output))
        if record.state is StepState.FAILED and record.error is not None:
            raise StepError(error=record.error)
        raise self.end_of_record()

    # --- the end ------------------------------------------------------------

    def check_all_consumed(self) -> None:
        """Every recorded top-level step must have been called."""
        record = self._next()
        if record is not None:
            raise self.diverge(
                Divergence(
                    index=self.cursor,
                    reason=f"step {self.cursor} ({record.callable_id}) was recorded "
                    "but not called",
                    recorded_step=step_view(record),
                    recorded_value=value_view(bytes(record.input)),
                )
            )
