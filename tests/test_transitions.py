"""Every (state, event) pair, against a table written out here by hand.

`EXPECTED` comes from the rules of docs/design.md §3 (and enact-core 0.0.2
where they are silent), never from `journal.fold.TRANSITIONS`. A cell is the
state after the event, ``=`` for "allowed, state unchanged", ``-`` for
"refused"; states are abbreviated to two letters (Cr Created, Pl Planning,
Ru Running, Pa Paused, Wa Waiting, Co Completed, Fa Failed, Ca Cancelled).

Where the rules are silent we follow enact-core: pause, wait and complete only
from Running; a paused or waiting execution cannot wait again. Skipping a
pending step is allowed wherever adding one is; a recorded value (now,
random, uuid4) is drawn by running code, so only while Running.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from journal import events as ev
from journal.errors import InvalidTransitionError
from journal.fold import apply_in_place, evolve, fold
from journal.ids import StepId, TenantId, new_execution_id, new_step_id
from journal.model import (
    ErrorCategory,
    Execution,
    ExecutionError,
    ExecutionState,
    StepState,
    WaitReason,
)

_TABLE = """
event               Cr  Pl  Ru  Pa  Wa  Co  Fa  Ca
ExecutionCreated    -   -   -   -   -   -   -   -
PlanningStarted     Pl  -   -   -   -   -   -   -
ExecutionStarted    Ru  Ru  -   -   -   -   -   -
StepAdded           =   =   =   =   =   -   -   -
StepStarted         -   -   =   -   -   -   -   -
StepCompleted       -   -   =   =   =   -   -   -
StepFailed          -   -   =   =   =   -   -   -
StepSkipped         =   =   =   =   =   -   -   -
ExecutionPaused     -   -   Pa  -   -   -   -   -
ExecutionResumed    -   -   -   Ru  Ru  -   -   -
ExecutionWaiting    -   -   Wa  -   -   -   -   -
InputReceived       -   -   -   -   Ru  -   -   -
ValueRecorded       -   -   =   -   -   -   -   -
StepInputReplaced   -   -   =   -   -   -   -   -
ExecutionCompleted  -   -   Co  -   -   -   -   -
ExecutionFailed     Fa  Fa  Fa  Fa  Fa  -   -   -
ExecutionCancelled  Ca  Ca  Ca  Ca  Ca  -   -   -
"""


_STATES = {state.value[:2]: state for state in ExecutionState}


def _parse_table(text: str) -> dict[ExecutionState, dict[str, ExecutionState | None]]:
    header, *lines = text.strip().splitlines()
    states = [_STATES[name] for name in header.split()[1:]]
    table: dict[ExecutionState, dict[str, ExecutionState | None]] = {
        state: {} for state in states
    }
    for line in lines:
        tag, *cells = line.split()
        assert len(cells) == len(states), line
        for state, cell in zip(states, cells, strict=True):
            if cell == "-":
                table[state][tag] = None
            elif cell == "=":
                table[state][tag] = state
            else:
                table[state][tag] = _STATES[cell]
    return table


#: EXPECTED[state][tag]: the state after the event, or None if refused.
EXPECTED = _parse_table(_TABLE)
TAGS = list(EXPECTED[ExecutionState.CREATED])
TERMINAL = (ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.CANCELLED)
TENANT = TenantId("tenant_transitions")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ERROR = ExecutionError(category=ErrorCategory.TOOL_ERROR, message="boom")
PENDING = StepId("step_" + "1" * 27)
RUNNING = StepId("step_" + "2" * 27)


def at(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


def path_to(state: ExecutionState, *, running_step: bool) -> list[ev.Event]:
    """Events that reach `state` with a pending step (and maybe a running one)."""
    created = ev.ExecutionCreated(at=at(0), tenant_id=TENANT)
    added = ev.StepAdded(at=at(1), step_id=PENDING, step_type="ToolNode", name="p")
    start: list[ev.Event] = [ev.ExecutionStarted(at=at(2))]
    if running_step:
        start.append(
            ev.StepStarted(at=at(3), step_id=RUNNING, step_type="LlmNode", name="r")
        )
    tail: dict[ExecutionState, list[ev.Event]] = {
        ExecutionState.CREATED: [],
        ExecutionState.PLANNING: [ev.PlanningStarted(at=at(2))],
        ExecutionState.RUNNING: start,
        ExecutionState.PAUSED: [*start, ev.ExecutionPaused(at=at(4), reason="r")],
        ExecutionState.WAITING: [
            *start,
            ev.ExecutionWaiting(at=at(4), reason=WaitReason.USER_INPUT),
        ],
        ExecutionState.COMPLETED: [
            *start[:1],
            ev.ExecutionCompleted(at=at(4), output=msgspec.Raw(b"1")),
        ],
        ExecutionState.FAILED: [*start, ev.ExecutionFailed(at=at(4), error=ERROR)],
        ExecutionState.CANCELLED: [*start, ev.ExecutionCancelled(at=at(4))],
    }
    return [created, added, *tail[state]]


def build(state: ExecutionState, *, running_step: bool = True) -> Execution:
    execution = fold(new_execution_id(), path_to(state, running_step=running_step))
    assert execution.state is state
    return execution


NEW_STEP = StepId("step_" + "3" * 27)
EVENT_FOR: dict[str, Callable[[], ev.Event]] = {
    "ExecutionCreated": lambda: ev.ExecutionCreated(at=at(9), tenant_id=TENANT),
    "PlanningStarted": lambda: ev.PlanningStarted(at=at(9)),
    "ExecutionStarted": lambda: ev.ExecutionStarted(at=at(9)),
    "StepAdded": lambda: ev.StepAdded(
        at=at(9), step_id=NEW_STEP, step_type="ToolNode", name="n"
    ),
    "StepStarted": lambda: ev.StepStarted(
        at=at(9), step_id=NEW_STEP, step_type="ToolNode", name="n"
    ),
    "StepCompleted": lambda: ev.StepCompleted(at=at(9), step_id=RUNNING),
    "StepFailed": lambda: ev.StepFailed(at=at(9), step_id=RUNNING, error=ERROR),
    "StepSkipped": lambda: ev.StepSkipped(at=at(9), step_id=PENDING),
    "ExecutionPaused": lambda: ev.ExecutionPaused(at=at(9)),
    "ExecutionResumed": lambda: ev.ExecutionResumed(at=at(9)),
    "ExecutionWaiting": lambda: ev.ExecutionWaiting(
        at=at(9), reason=WaitReason.APPROVAL
    ),
    "InputReceived": lambda: ev.InputReceived(at=at(9), input=msgspec.Raw(b'"ok"')),
    "ValueRecorded": lambda: ev.ValueRecorded(
        at=at(9), kind="random", value=msgspec.Raw(b"0.5")
    ),
    "StepInputReplaced": lambda: ev.StepInputReplaced(
        at=at(9), call="0", input=msgspec.Raw(b'{"x":1}')
    ),
    "ExecutionCompleted": lambda: ev.ExecutionCompleted(at=at(9)),
    "ExecutionFailed": lambda: ev.ExecutionFailed(at=at(9), error=ERROR),
    "ExecutionCancelled": lambda: ev.ExecutionCancelled(at=at(9)),
}


def frozen_copy(execution: Execution) -> bytes:
    return msgspec.json.encode(execution)


def test_the_expected_table_covers_every_state_and_every_event_type() -> None:
    assert set(EXPECTED) == set(ExecutionState)
    assert sorted(TAGS) == sorted(ev.tag_of(cls) for cls in ev.EVENT_TYPES)
    assert set(EVENT_FOR) == set(TAGS)
    for state in ExecutionState:
        assert list(EXPECTED[state]) == TAGS


def test_terminal_states_accept_nothing_in_the_expected_table() -> None:
    for state in TERMINAL:
        assert set(EXPECTED[state].values()) == {None}


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("state", list(ExecutionState))
def test_every_state_and_event_pair_does_what_the_table_says(
    state: ExecutionState, tag: str
) -> None:
    # Completing the execution needs no running step: that rule is tested below.
    before = build(state, running_step=tag != "ExecutionCompleted")
    unchanged = frozen_copy(before)
    event = EVENT_FOR[tag]()
    expected = EXPECTED[state][tag]
    if expected is None:
        with pytest.raises(InvalidTransitionError) as caught:
            evolve(before, event)
        assert tag in str(caught.value)
        assert frozen_copy(before) == unchanged
        with pytest.raises(InvalidTransitionError):
            apply_in_place(before, event)
        assert frozen_copy(before) == unchanged
    else:
        after = evolve(before, event)
        assert after.state is expected
        assert after.version == before.version + 1
        assert after.updated_at == event.at
        assert frozen_copy(before) == unchanged


def test_a_fold_from_nothing_refuses_any_first_event_but_created() -> None:
    for tag in TAGS:
        if tag == "ExecutionCreated":
            continue
        with pytest.raises(InvalidTransitionError, match="ExecutionCreated"):
            fold(new_execution_id(), [EVENT_FOR[tag]()])


def test_waiting_records_its_reason_and_input_received_clears_it() -> None:
    waiting = evolve(build(ExecutionState.RUNNING), EVENT_FOR["ExecutionWaiting"]())
    assert waiting.wait_reason is WaitReason.APPROVAL
    assert waiting.state_label == "Waiting(approval)"
    resumed = evolve(waiting, EVENT_FOR["InputReceived"]())
    assert resumed.state is ExecutionState.RUNNING
    assert resumed.wait_reason is None
    assert resumed.received_inputs == [msgspec.Raw(b'"ok"')]


# --- step-level rules --------------------------------------------------------


def running_with_step_in(step_state: StepState) -> Execution:
    """A Running execution whose step RUNNING... is in `step_state`."""
    events: list[ev.Event] = [
        ev.ExecutionCreated(at=at(0), tenant_id=TENANT),
        ev.StepAdded(at=at(1), step_id=RUNNING, step_type="ToolNode", name="s"),
        ev.ExecutionStarted(at=at(2)),
    ]
    if step_state is StepState.SKIPPED:
        events.append(ev.StepSkipped(at=at(3), step_id=RUNNING))
    elif step_state is not StepState.PENDING:
        events.append(ev.StepStarted(at=at(3), step_id=RUNNING))
    if step_state is StepState.COMPLETED:
        events.append(ev.StepCompleted(at=at(4), step_id=RUNNING))
    if step_state is StepState.FAILED:
        events.append(ev.StepFailed(at=at(4), step_id=RUNNING, error=ERROR))
    execution = fold(new_execution_id(), events)
    step = execution.get_step(RUNNING)
    assert step is not None
    assert step.state is step_state
    return execution


STEP_EVENTS: dict[str, Callable[[StepId], ev.Event]] = {
    "start": lambda step_id: ev.StepStarted(at=at(9), step_id=step_id),
    "complete": lambda step_id: ev.StepCompleted(at=at(9), step_id=step_id),
    "fail": lambda step_id: ev.StepFailed(at=at(9), step_id=step_id, error=ERROR),
    "skip": lambda step_id: ev.StepSkipped(at=at(9), step_id=step_id),
}
#: From docs/design.md §3: Pending -> Running -> Completed | Failed; Pending -> Skipped.
STEP_EXPECTED: dict[tuple[str, StepState], StepState | None] = {
    ("start", StepState.PENDING): StepState.RUNNING,
    ("start", StepState.RUNNING): None,
    ("start", StepState.COMPLETED): None,
    ("start", StepState.FAILED): None,
    ("start", StepState.SKIPPED): None,
    ("complete", StepState.PENDING): None,
    ("complete", StepState.RUNNING): StepState.COMPLETED,
    ("complete", StepState.COMPLETED): None,
    ("complete", StepState.FAILED): None,
    ("complete", StepState.SKIPPED): None,
    ("fail", StepState.PENDING): None,
    ("fail", StepState.RUNNING): StepState.FAILED,
    ("fail", StepState.COMPLETED): None,
    ("fail", StepState.FAILED): None,
    ("fail", StepState.SKIPPED): None,
    ("skip", StepState.PENDING): StepState.SKIPPED,
    ("skip", StepState.RUNNING): None,
    ("skip", StepState.COMPLETED): None,
    ("skip", StepState.FAILED): None,
    ("skip", StepState.SKIPPED): None,
}


@pytest.mark.parametrize(
    ("action", "step_state"), list(STEP_EXPECTED), ids=lambda v: str(v)
)
def test_step_transitions_follow_the_step_life_cycle(
    action: str, step_state: StepState
) -> None:
    before = running_with_step_in(step_state)
    unchanged = frozen_copy(before)
    event = STEP_EVENTS[action](RUNNING)
    expected = STEP_EXPECTED[(action, step_state)]
    if expected is None:
        with pytest.raises(InvalidTransitionError, match=RUNNING):
            evolve(before, event)
        with pytest.raises(InvalidTransitionError):
            apply_in_place(before, event)
    else:
        step = evolve(before, event).get_step(RUNNING)
        assert step is not None
        assert step.state is expected
    assert frozen_copy(before) == unchanged


@pytest.mark.parametrize("action", ["complete", "fail", "skip"])
def test_ending_an_unknown_step_is_refused(action: str) -> None:
    before = running_with_step_in(StepState.PENDING)
    with pytest.raises(InvalidTransitionError, match="not found"):
        evolve(before, STEP_EVENTS[action](new_step_id()))


def test_starting_an_unknown_step_without_a_name_and_type_is_refused() -> None:
    before = running_with_step_in(StepState.PENDING)
    with pytest.raises(InvalidTransitionError):
        evolve(before, ev.StepStarted(at=at(9), step_id=new_step_id()))


def test_a_started_step_joins_step_order_and_a_skipped_one_does_not() -> None:
    started = evolve(
        running_with_step_in(StepState.PENDING), STEP_EVENTS["start"](RUNNING)
    )
    assert started.step_order == [RUNNING]
    skipped = running_with_step_in(StepState.SKIPPED)
    assert skipped.step_order == []


def test_completing_the_execution_is_refused_while_a_step_runs() -> None:
    before = running_with_step_in(StepState.RUNNING)
    with pytest.raises(InvalidTransitionError, match="still running"):
        evolve(before, ev.ExecutionCompleted(at=at(9)))
    done = evolve(
        evolve(before, STEP_EVENTS["complete"](RUNNING)),
        ev.ExecutionCompleted(at=at(10)),
    )
    assert done.state is ExecutionState.COMPLETED


def test_failing_or_cancelling_the_execution_is_allowed_while_a_step_runs() -> None:
    before = running_with_step_in(StepState.RUNNING)
    assert evolve(before, EVENT_FOR["ExecutionFailed"]()).state is ExecutionState.FAILED
    cancelled = evolve(before, EVENT_FOR["ExecutionCancelled"]())
    assert cancelled.state is ExecutionState.CANCELLED


@pytest.mark.parametrize("step_state", list(StepState))
def test_adding_a_step_with_an_id_already_used_is_refused(
    step_state: StepState,
) -> None:
    before = running_with_step_in(step_state)
    duplicate = ev.StepAdded(at=at(9), step_id=RUNNING, step_type="ToolNode", name="d")
    with pytest.raises(InvalidTransitionError, match="already exists"):
        evolve(before, duplicate)


@pytest.mark.parametrize(
    "step_state", [s for s in StepState if s is not StepState.PENDING]
)
def test_starting_a_step_id_already_used_is_refused(step_state: StepState) -> None:
    before = running_with_step_in(step_state)
    again = ev.StepStarted(at=at(9), step_id=RUNNING, step_type="ToolNode", name="d")
    with pytest.raises(InvalidTransitionError):
        evolve(before, again)


def test_a_nested_step_needs_its_parent_step_to_exist() -> None:
    before = running_with_step_in(StepState.RUNNING)
    orphan = ev.StepStarted(
        at=at(9),
        step_id=new_step_id(),
        step_type="ToolNode",
        name="child",
        parent_step_id=new_step_id(),
    )
    with pytest.raises(InvalidTransitionError, match="parent step"):
        evolve(before, orphan)
    nested = msgspec.structs.replace(orphan, parent_step_id=RUNNING)
    step = evolve(before, nested).get_step(nested.step_id)
    assert step is not None
    assert step.parent_step_id == RUNNING


@pytest.mark.parametrize("state", [ExecutionState.PAUSED, ExecutionState.WAITING])
def test_an_in_flight_step_may_finish_while_paused_or_waiting(
    state: ExecutionState,
) -> None:
    before = build(state)
    after = evolve(before, ev.StepCompleted(at=at(9), step_id=RUNNING))
    assert after.state is state
    step = after.get_step(RUNNING)
    assert step is not None
    assert step.state is StepState.COMPLETED
