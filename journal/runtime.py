"""Live runs: execute a flow's entry and journal every step as it happens.

Every event is appended (durably) when it happens: a step's `StepStarted`
is stored before the step's code runs, so a crash mid-step is visible.
Values cross the journal as canonical JSON and the entry receives them
decoded from those bytes, exactly as a replay would give them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec

from journal import events as ev
from journal.approvals import wait_digest
from journal.calls import call_key, current_step_key
from journal.errors import (
    ConflictError,
    FlowDefinitionError,
    InvalidTransitionError,
    JournalError,
    NondeterminismError,
)
from journal.flow import Flow, StepDef, StepError, categorize, current_run
from journal.ids import StepId, new_execution_id
from journal.leases import Heartbeat
from journal.model import (
    CallableType,
    ErrorCategory,
    Execution,
    ExecutionError,
    ExecutionState,
    ParentLink,
    ParentType,
    StepSource,
    StepType,
)
from journal.schema import canonical
from journal.waits import WaitRequest, answer, differs

if TYPE_CHECKING:
    from journal.application import Journal
    from journal.commands import ExecutionHandle


def error_from(exc: BaseException, step_type: str, **fields: Any) -> ExecutionError:
    """The `ExecutionError` recorded for an exception."""
    from journal.application import utc_now

    if isinstance(exc, StepError):
        return msgspec.structs.replace(exc.error, occurred_at=utc_now(), **fields)
    return ExecutionError(
        category=categorize(exc, step_type),
        message=str(exc) or type(exc).__name__,
        occurred_at=utc_now(),
        exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        **fields,
    )


class Halt(BaseException):
    """Unwinds the entry when an operator paused or cancelled the execution
    (a BaseException, so a flow's ``except Exception`` cannot hide it)."""


#: States an operator's command leaves a running execution in.
_STOPPED_BY_OPERATOR = (ExecutionState.PAUSED, ExecutionState.CANCELLED)


class LiveRun:
    """The `RunContext` of a live run: records as it goes."""

    def __init__(
        self,
        flow: Flow,
        handle: ExecutionHandle,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.flow = flow
        self.handle = handle
        self.sleep = sleep
        self.stack: list[StepId] = []
        self.paths: list[tuple[int, ...]] = [()]
        self.calls_made: dict[tuple[int, ...], int] = {}
        self.journal_failure: JournalError | None = None
        self.waits_seen = 0

    def next_call_path(self) -> tuple[int, ...]:
        """The identity of the call being made: its ordinal among the calls
        made by the same parent, after the parent's own path."""
        parent = self.paths[-1]
        ordinal = self.calls_made.get(parent, 0)
        self.calls_made[parent] = ordinal + 1
        return (*parent, ordinal)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Around a journal write: remember a failure so no user `except`
        in the entry can hide it (the run re-raises it at the end). A write
        refused because an operator paused or cancelled the execution halts
        the run cleanly instead."""
        try:
            yield
        except InvalidTransitionError as e:
            if self.handle.state.state in _STOPPED_BY_OPERATOR:
                raise Halt from e
            self.journal_failure = self.journal_failure or e
            raise
        except JournalError as e:
            self.journal_failure = self.journal_failure or e
            raise

    def _refuse_undeclared(self, check: Callable[[], None]) -> None:
        """Flow wiring errors end the run: no user ``except`` may hide them."""
        try:
            check()
        except FlowDefinitionError as e:
            self.journal_failure = self.journal_failure or e
            raise

    def call_step(
        self, step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if step.flow is not self.flow:
            self._refuse_undeclared(lambda: self.flow.check_step(step))
        payload = msgspec.Raw(step.signature.encode_args(args, kwargs))
        parent = self.stack[-1] if self.stack else None
        path = self.next_call_path()
        original: StepId | None = None
        attempt = 1
        while True:
            source = StepSource.retry(original, attempt) if original else None
            with self._guard():
                step_id: StepId = self.handle.start_step(
                    step.name,
                    step.step_type,
                    input=payload,
                    parent_step_id=parent,
                    source=source,
                    callable_id=step.callable_id,
                )
            original = original or step_id
            started = time.perf_counter()
            self.stack.append(step_id)
            self.paths.append(path)
            key = current_step_key.set(call_key(self.handle.id, path))
            try:
                output = canonical(step.function(*args, **kwargs))
            except Exception as exc:
                if isinstance(exc, JournalError) and exc is self.journal_failure:
                    raise
                error = error_from(
                    exc, step.step_type, attempt=attempt, step_id=step_id
                )
                policy = step.policy_for(error)
                error = msgspec.structs.replace(error, retry_policy=policy)
                with self._guard():
                    self.handle.fail_step(
                        step_id, error, duration_ms=_ms_since(started)
                    )
                if policy.should_retry(attempt):
                    self.sleep(policy.delay_for_attempt(attempt) / 1000)
                    attempt += 1
                    continue
                raise StepError(error=error) from exc
            finally:
                current_step_key.reset(key)
                self.paths.pop()
                self.stack.pop()
            with self._guard():
                self.handle.complete_step(
                    step_id, msgspec.Raw(output), duration_ms=_ms_since(started)
                )
            return step.signature.decode_output(output)

    def draw_value(self, kind: str, make: Callable[[], Any], type_: Any) -> Any:
        raw = canonical(make())
        if self.stack:
            # Inside a step the value is part of the step: an effect step's
            # output is recorded (and it does not run on replay); a pure step
            # must not draw one at all, and replay will say so.
            return msgspec.json.decode(raw, type=type_)
        with self._guard():
            self.handle.record_value(kind, msgspec.Raw(raw))
        return msgspec.json.decode(raw, type=type_)

    def wait_for(self, request: WaitRequest) -> Any:
        """Answer a `journal.wait_for` from the record, or record the wait
        and halt the run (it ends Waiting; a resume answers it)."""
        if self.stack:
            raise RuntimeError("journal.wait_for() cannot be called inside a step")
        ordinal = self.waits_seen
        self.waits_seen += 1
        state = self.handle.state
        digest = wait_digest(
            state.id, ordinal, request.reason.value, request.prompt, request.action
        )
        if ordinal < len(state.waits):
            wait = state.waits[ordinal]
            why = differs(wait, request, digest)
            if why is not None:
                failure = NondeterminismError(f"{state.id} seq {wait.seq}: {why}")
                self.journal_failure = self.journal_failure or failure
                raise failure
            if wait.answer is None:
                raise Halt
            return answer(wait.answer, request.type_)
        from journal.application import utc_now

        now = utc_now()
        with self._guard():
            self.handle.record(
                ev.ExecutionWaiting(
                    at=now,
                    reason=request.reason,
                    prompt=request.prompt,
                    action=msgspec.Raw(request.action),
                    digest=digest,
                    timeout_at=now + request.timeout if request.timeout else None,
                    require_approver=request.require_approver,
                )
            )
        raise Halt

    def run_child(
        self, child: Flow, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self._refuse_undeclared(lambda: self.flow.check_child(child))
        signature = child._entry()
        payload = msgspec.Raw(signature.encode_args(args, kwargs))
        parent = self.stack[-1] if self.stack else None
        self.next_call_path()
        with self._guard():
            step_id: StepId = self.handle.start_step(
                child.name,
                StepType.GRAPH_NODE,
                input=payload,
                parent_step_id=parent,
                callable_id=child.name,
                callable_type=CallableType.FLOW,
            )
        started = time.perf_counter()
        link = ParentLink(
            parent_id=step_id, parent_type=ParentType.STEP, execution_id=self.handle.id
        )
        result = run_live(child, self.handle.journal, args, kwargs, parent=link)
        if result.error is None and result.state.value == "Completed":
            with self._guard():
                self.handle.complete_step(
                    step_id, result.output, duration_ms=_ms_since(started)
                )
            return signature.decode_output(bytes(result.output))
        error = result.error or ExecutionError(
            category=ErrorCategory.KERNEL_INTERNAL,
            message=f"child execution {result.id} ended {result.state_label}",
        )
        error = msgspec.structs.replace(error, step_id=step_id, attempt=1)
        with self._guard():
            self.handle.fail_step(step_id, error, duration_ms=_ms_since(started))
        raise StepError(error=error)


def run_live(
    flow: Flow,
    journal_: Journal,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    parent: ParentLink | None = None,
) -> Execution:
    """Record a whole live run of `flow`; see `Flow.run`.

    The run holds the execution's lease (renewed by a heartbeat thread) from
    before its first event to its end, so its appends are fenced.
    """
    entry = flow._entry()
    payload = entry.encode_args(args, kwargs)
    document = canonical(flow.schema_document)
    schema_version = "sha256:" + hashlib.sha256(document).hexdigest()
    journal_.put_schema(schema_version, document)
    execution_id = new_execution_id()
    lease = journal_.acquire_lease(execution_id)
    if lease is None:  # a fresh id: only a clash of generated ids can do this
        raise ConflictError(f"{execution_id}: lease already held")
    heartbeat = Heartbeat(journal_.store, lease, journal_.heartbeat_every_s).start()
    try:
        handle = journal_.create(
            flow=flow.name,
            input=msgspec.Raw(payload),
            parent=parent,
            schema_version=schema_version,
            execution_id=execution_id,
            lease=lease,
        )
        handle.start()
        return drive(flow, handle, payload)
    finally:
        heartbeat.stop()


def drive(flow: Flow, handle: ExecutionHandle, payload: bytes) -> Execution:
    """Call the entry with `payload` under a live run context and record how
    it ends; return the state (Paused or Cancelled if an operator stopped it)."""
    entry = flow._entry()
    assert flow.entry_function is not None
    run = LiveRun(flow, handle)
    token = current_run.set(run)
    try:
        result = flow.entry_function(**entry.decode_args(payload))
        output = canonical(result)
    except Halt:
        pass
    except Exception as exc:
        _end_with_failure(handle, run.journal_failure or exc)
    else:
        if run.journal_failure is not None:
            _end_with_failure(handle, run.journal_failure)
        try:
            handle.complete(msgspec.Raw(output))
        except InvalidTransitionError:
            if handle.state.state not in _STOPPED_BY_OPERATOR:
                raise
    finally:
        current_run.reset(token)
    state: Execution = handle.state
    return state


def _end_with_failure(handle: ExecutionHandle, failure: Exception) -> None:
    """Record the entry's failure; re-raise it if it is the journal's own.

    A store failure is raised as it is (the store may be unusable). A flow
    wiring error is recorded as the execution's failure, then raised.
    """
    if isinstance(failure, JournalError) and not isinstance(
        failure, FlowDefinitionError
    ):
        raise failure
    handle.fail(error_from(failure, ""))
    if isinstance(failure, FlowDefinitionError):
        raise failure


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
