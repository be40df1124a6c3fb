"""The fold: `evolve(state, event)` is the only thing that changes an Execution.

The transition table is explicit and total: for every (state, event tag)
pair, `TRANSITIONS` either names the next state or the pair is refused with
`InvalidTransitionError`. Terminal states accept nothing. Beyond
enact-core 0.0.2: `PlanningStarted` makes Planning reachable, Waiting and
InputReceived are persisted events, and every event carries wall-clock time.

`evolve` never mutates its input. `fold` copies once and then applies events
in place on its private copy, so folding N events costs O(N), not O(N^2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

from journal import events as ev
from journal.errors import InvalidTransitionError
from journal.ids import ExecutionId
from journal.model import (
    Answer,
    Execution,
    ExecutionState,
    RecordedValue,
    Step,
    StepState,
    Wait,
)

S = ExecutionState
_LIVE: Final = frozenset({S.CREATED, S.PLANNING, S.RUNNING, S.PAUSED, S.WAITING})
_IN_FLIGHT: Final = frozenset({S.RUNNING, S.PAUSED, S.WAITING})

#: For each event tag: the states it is allowed in, and the state it leads to
#: (None: the state does not change). ExecutionCreated is only ever the first
#: event, so it is allowed in no state.
TRANSITIONS: Final[
    dict[str, tuple[frozenset[ExecutionState], ExecutionState | None]]
] = {
    "ExecutionCreated": (frozenset(), None),
    "PlanningStarted": (frozenset({S.CREATED}), S.PLANNING),
    "ExecutionStarted": (frozenset({S.CREATED, S.PLANNING}), S.RUNNING),
    "StepAdded": (_LIVE, None),
    "StepStarted": (frozenset({S.RUNNING}), None),
    "StepCompleted": (_IN_FLIGHT, None),
    "StepFailed": (_IN_FLIGHT, None),
    "StepSkipped": (_LIVE, None),
    "ExecutionPaused": (frozenset({S.RUNNING}), S.PAUSED),
    "ExecutionResumed": (frozenset({S.PAUSED, S.WAITING}), S.RUNNING),
    "ExecutionWaiting": (frozenset({S.RUNNING}), S.WAITING),
    "InputReceived": (frozenset({S.WAITING}), S.RUNNING),
    "ValueRecorded": (frozenset({S.RUNNING}), None),
    "StepInputReplaced": (frozenset({S.RUNNING}), None),
    "ExecutionCompleted": (frozenset({S.RUNNING}), S.COMPLETED),
    "ExecutionFailed": (_LIVE, S.FAILED),
    "ExecutionCancelled": (_LIVE, S.CANCELLED),
}


def begin(execution_id: ExecutionId, event: ev.ExecutionCreated) -> Execution:
    """The state after an execution's first event."""
    return Execution(
        id=execution_id,
        tenant_id=event.tenant_id,
        parent=event.parent,
        flow=event.flow,
        schema_version=event.schema_version,
        input=event.input,
        created_at=event.at,
        updated_at=event.at,
        version=1,
    )


def evolve(state: Execution, event: ev.Event) -> Execution:
    """Return the state after `event`; `state` itself is left unchanged."""
    copy = _copy(state)
    _apply(copy, event)
    return copy


def fold(
    execution_id: ExecutionId,
    events: Iterable[ev.Event],
    state: Execution | None = None,
) -> Execution:
    """Fold events onto `state` (or from nothing); `state` is not changed."""
    iterator = iter(events)
    if state is None:
        first = next(iterator, None)
        if not isinstance(first, ev.ExecutionCreated):
            name = "no event" if first is None else ev.tag_of(first)
            raise InvalidTransitionError(
                f"{execution_id}: the first event must be ExecutionCreated, not {name}"
            )
        current = begin(execution_id, first)
    else:
        current = _copy(state)
    for event in iterator:
        _apply(current, event)
    return current


def _copy(state: Execution) -> Execution:
    steps = {step_id: msgspec.structs.replace(s) for step_id, s in state.steps.items()}
    return msgspec.structs.replace(
        state,
        steps=steps,
        step_order=list(state.step_order),
        recorded_values=list(state.recorded_values),
        received_inputs=list(state.received_inputs),
        waits=list(state.waits),
        replaced_inputs=dict(state.replaced_inputs),
    )


def _refuse(state: Execution, event: ev.Event, why: str) -> InvalidTransitionError:
    return InvalidTransitionError(
        f"{state.id} seq {state.version + 1}: {ev.tag_of(event)} refused: {why}"
    )


def apply_in_place(state: Execution, event: ev.Event) -> None:
    """Apply one event to `state` itself (for callers that own `state`).

    Every refusal is raised before anything changes, so a refused event
    leaves `state` exactly as it was.
    """
    _apply(state, event)


def _apply(state: Execution, event: ev.Event) -> None:
    """Apply one event in place; refusals come before any change."""
    allowed, target, change = _RULES[type(event)]
    if state.state not in allowed:
        raise _refuse(state, event, f"not allowed in state {state.state_label}")
    if change is not None:
        change(state, event)
    if target is not None:
        if target is not S.WAITING:
            state.wait_reason = None
        state.state = target
    state.updated_at = event.at
    state.version += 1


def _started(state: Execution, event: Any) -> None:
    state.started_at = event.at


def _paused(state: Execution, event: Any) -> None:
    state.pause_reason = event.reason


def _waiting(state: Execution, event: Any) -> None:
    state.wait_reason = event.reason
    state.waits.append(
        Wait(
            reason=event.reason,
            at=event.at,
            seq=state.version + 1,
            after_steps=len(state.step_order),
            detail=event.detail,
            prompt=event.prompt,
            action=event.action,
            digest=event.digest,
            timeout_at=event.timeout_at,
            require_approver=event.require_approver,
        )
    )


def _answer(state: Execution, answer: Answer) -> None:
    """Record the answer on the wait it ends (a Paused execution's resume
    answers nothing)."""
    if state.state is S.WAITING and state.waits:
        state.waits[-1] = msgspec.structs.replace(state.waits[-1], answer=answer)


def _input_received(state: Execution, event: Any) -> None:
    state.received_inputs.append(event.input)
    _answer(
        state,
        Answer(
            at=event.at,
            input=event.input,
            approver=event.approver,
            digest=event.digest,
            signature=event.signature,
            denied=event.denied,
            reason=event.reason,
            timed_out=event.timed_out,
        ),
    )


def _resumed(state: Execution, event: Any) -> None:
    _answer(state, Answer(at=event.at))


def _value_recorded(state: Execution, event: Any) -> None:
    state.recorded_values.append(
        RecordedValue(event.kind, event.value, len(state.step_order), event.call)
    )


def _input_replaced(state: Execution, event: Any) -> None:
    state.replaced_inputs[event.call] = event.input


def _completed(state: Execution, event: Any) -> None:
    _require_no_running_step(state, event)
    state.output = event.output
    state.ended_at = event.at


def _failed(state: Execution, event: Any) -> None:
    state.error = event.error
    state.ended_at = event.at


def _cancelled(state: Execution, event: Any) -> None:
    state.cancel_reason = event.reason
    state.ended_at = event.at


def _require_no_running_step(state: Execution, event: ev.Event) -> None:
    for step_id in reversed(state.step_order):
        if state.steps[step_id].state is StepState.RUNNING:
            raise _refuse(state, event, f"step {step_id} is still running")


def _apply_step_start(state: Execution, event: ev.StepAdded | ev.StepStarted) -> None:
    step = state.steps.get(event.step_id)
    if isinstance(event, ev.StepAdded) or step is None:
        if step is not None:
            raise _refuse(state, event, f"step {event.step_id} already exists")
        if event.step_type is None or event.name is None:
            raise _refuse(
                state, event, f"new step {event.step_id} needs a type and name"
            )
        if event.parent_step_id is not None and event.parent_step_id not in state.steps:
            raise _refuse(state, event, f"parent step {event.parent_step_id} not found")
        step = Step(
            id=event.step_id,
            step_type=event.step_type,
            name=event.name,
            parent_step_id=event.parent_step_id,
            callable_id=event.callable_id,
            callable_type=event.callable_type,
            source=event.source,
            input=event.input,
            call=event.call if isinstance(event, ev.StepStarted) else None,
        )
        state.steps[event.step_id] = step
        if isinstance(event, ev.StepAdded):
            return
    elif step.state is not StepState.PENDING:
        raise _refuse(state, event, f"step {event.step_id} is {step.state.value}")
    elif bytes(event.input) != b"null":
        step.input = event.input
    step.state = StepState.RUNNING
    step.started_at = event.at
    state.step_order.append(event.step_id)


def _apply_step_end(
    state: Execution, event: ev.StepCompleted | ev.StepFailed | ev.StepSkipped
) -> None:
    step = state.steps.get(event.step_id)
    if step is None:
        raise _refuse(state, event, f"step {event.step_id} not found")
    expected = (
        StepState.PENDING if isinstance(event, ev.StepSkipped) else StepState.RUNNING
    )
    if step.state is not expected:
        raise _refuse(state, event, f"step {event.step_id} is {step.state.value}")
    step.ended_at = event.at
    step.ended_seq = state.version + 1  # the order ends happened in
    if isinstance(event, ev.StepSkipped):
        step.state = StepState.SKIPPED
        return
    step.duration_ms = event.duration_ms
    if isinstance(event, ev.StepCompleted):
        step.state = StepState.COMPLETED
        step.output = event.output
    else:
        step.state = StepState.FAILED
        step.error = event.error
        state.failed_step_count += 1


_CHANGES: dict[type[ev.Event], Callable[[Execution, Any], None] | None] = {
    ev.ExecutionCreated: None,
    ev.PlanningStarted: None,
    ev.ExecutionStarted: _started,
    ev.StepAdded: _apply_step_start,
    ev.StepStarted: _apply_step_start,
    ev.StepCompleted: _apply_step_end,
    ev.StepFailed: _apply_step_end,
    ev.StepSkipped: _apply_step_end,
    ev.ExecutionPaused: _paused,
    ev.ExecutionResumed: _resumed,
    ev.ExecutionWaiting: _waiting,
    ev.InputReceived: _input_received,
    ev.ValueRecorded: _value_recorded,
    ev.StepInputReplaced: _input_replaced,
    ev.ExecutionCompleted: _completed,
    ev.ExecutionFailed: _failed,
    ev.ExecutionCancelled: _cancelled,
}

#: Per event class: allowed states, next state, and the change it makes
#: (dispatch by type: one dict lookup per event on the hot path).
_RULES: Final = {
    cls: (*TRANSITIONS[ev.tag_of(cls)], change) for cls, change in _CHANGES.items()
}
