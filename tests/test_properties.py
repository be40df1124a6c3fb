"""Hypothesis properties of the codec, the fold and the command API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import journal
from journal import codec
from journal import events as ev
from journal.errors import InvalidTransitionError
from journal.fold import evolve, fold
from journal.ids import ExecutionId, StepId, TenantId, new_step_id
from journal.model import (
    ErrorCategory,
    Execution,
    ExecutionError,
    ExecutionState,
    StepState,
    WaitReason,
)
from tests.strategies import EVENTS, execution_ids, raw_values, step_ids, wait_reasons
from tests.test_transitions import EXPECTED

S = ExecutionState
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def test_every_event_type_has_a_strategy() -> None:
    assert set(EVENTS) == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("event_type", ev.EVENT_TYPES, ids=ev.tag_of)
@given(data=st.data())
def test_decoding_an_encoded_event_gives_it_back_and_the_same_bytes(
    event_type: type[ev.Event], data: st.DataObject
) -> None:
    event = data.draw(EVENTS[event_type])
    payload = codec.encode(event)
    decoded = codec.decode(payload)
    assert type(decoded) is event_type
    assert decoded == event
    assert codec.encode(decoded) == payload
    assert msgspec.json.decode(payload)["type"] == ev.tag_of(event_type)


@given(st.sampled_from(ev.EVENT_TYPES).flatmap(lambda t: EVENTS[t]))
def test_encoded_keys_are_sorted_at_every_level(event: ev.Event) -> None:
    def keys_sorted(value: Any) -> bool:
        if isinstance(value, dict):
            return list(value) == sorted(value) and all(
                keys_sorted(v) for v in value.values()
            )
        if isinstance(value, list):
            return all(keys_sorted(v) for v in value)
        return True

    assert keys_sorted(msgspec.json.decode(codec.encode(event)))


# --- valid histories, drawn as commands and kept only when the fold allows -----


_ERROR = st.builds(
    ExecutionError,
    category=st.sampled_from(ErrorCategory),
    message=st.text(max_size=10),
)


def _candidate(draw: st.DrawFn, tag: str, at: datetime, step_id: StepId) -> ev.Event:
    """One event of `tag` (the fold decides whether it is allowed)."""
    if tag == "StepAdded":
        return ev.StepAdded(at=at, step_id=step_id, step_type="ToolNode", name="a")
    if tag == "StepStarted":
        if draw(st.booleans()):
            return ev.StepStarted(at=at, step_id=step_id)
        return ev.StepStarted(at=at, step_id=step_id, step_type="LlmNode", name="s")
    if tag == "StepCompleted":
        return ev.StepCompleted(at=at, step_id=step_id, output=draw(raw_values))
    if tag == "StepFailed":
        return ev.StepFailed(at=at, step_id=step_id, error=draw(_ERROR))
    if tag == "StepSkipped":
        return ev.StepSkipped(at=at, step_id=step_id)
    if tag == "ExecutionWaiting":
        return ev.ExecutionWaiting(at=at, reason=draw(wait_reasons))
    if tag == "InputReceived":
        return ev.InputReceived(at=at, input=draw(raw_values))
    if tag == "ValueRecorded":
        return ev.ValueRecorded(at=at, kind="random", value=draw(raw_values))
    if tag == "StepInputReplaced":
        return ev.StepInputReplaced(at=at, call="0", input=draw(raw_values))
    if tag == "ExecutionCompleted":
        return ev.ExecutionCompleted(at=at, output=draw(raw_values))
    if tag == "ExecutionFailed":
        return ev.ExecutionFailed(at=at, error=draw(_ERROR))
    simple: dict[str, type[ev.Event]] = {
        "PlanningStarted": ev.PlanningStarted,
        "ExecutionStarted": ev.ExecutionStarted,
        "ExecutionPaused": ev.ExecutionPaused,
        "ExecutionResumed": ev.ExecutionResumed,
        "ExecutionCancelled": ev.ExecutionCancelled,
    }
    return simple[tag](at=at)


_ENDINGS = frozenset({"ExecutionCompleted", "ExecutionFailed", "ExecutionCancelled"})


def _pick_step(draw: st.DrawFn, state: Execution, tag: str) -> StepId:
    wanted = {
        "StepStarted": StepState.PENDING,
        "StepSkipped": StepState.PENDING,
        "StepCompleted": StepState.RUNNING,
        "StepFailed": StepState.RUNNING,
    }.get(tag)
    fitting = [k for k, v in state.steps.items() if v.state is wanted]
    # Mostly a step the event fits, sometimes any known step, or a new id.
    choice: int = draw(st.integers(min_value=0, max_value=5))
    if fitting and choice >= 2:
        return draw(st.sampled_from(fitting))
    if state.steps and choice == 1:
        return draw(st.sampled_from(sorted(state.steps)))
    return draw(step_ids)


@st.composite
def histories(
    draw: st.DrawFn, max_events: int = 40
) -> tuple[ExecutionId, list[ev.Event]]:
    """A valid history: ExecutionCreated and then events the fold accepts.

    Tags are drawn among those the hand-written EXPECTED table allows in the
    current state (endings rarely); step rules may still refuse one, which
    is then left out.
    """
    execution_id = draw(execution_ids)
    at = T0
    created = ev.ExecutionCreated(
        at=at, tenant_id=TenantId("tenant_props"), input=draw(raw_values)
    )
    events: list[ev.Event] = [created]
    state = fold(execution_id, events)
    for _ in range(draw(st.integers(min_value=10, max_value=max_events))):
        allowed = [
            tag
            for tag, after in EXPECTED[state.state].items()
            if after is not None and tag != "ExecutionCreated"
        ]
        if not allowed:
            break
        weighted = [t for t in allowed for _ in range(1 if t in _ENDINGS else 12)]
        tag = draw(st.sampled_from(weighted))
        at += timedelta(milliseconds=draw(st.integers(min_value=0, max_value=5000)))
        candidate = _candidate(draw, tag, at, _pick_step(draw, state, tag))
        try:
            state = evolve(state, candidate)
        except InvalidTransitionError:
            continue
        events.append(candidate)
    return execution_id, events


def encoded(execution: Execution) -> bytes:
    return msgspec.json.encode(execution)


@given(histories())
def test_fold_is_deterministic(history: tuple[ExecutionId, list[ev.Event]]) -> None:
    execution_id, events = history
    first = fold(execution_id, events)
    again = fold(execution_id, list(events))
    assert first == again
    assert encoded(first) == encoded(again)
    assert first.version == len(events)


@given(histories(), st.data())
def test_folding_a_prefix_then_the_rest_equals_folding_everything(
    history: tuple[ExecutionId, list[ev.Event]], data: st.DataObject
) -> None:
    execution_id, events = history
    cut = data.draw(st.integers(min_value=1, max_value=len(events)))
    prefix_state = fold(execution_id, events[:cut])
    prefix_bytes = encoded(prefix_state)
    assert fold(execution_id, events[cut:], prefix_state) == fold(execution_id, events)
    assert encoded(prefix_state) == prefix_bytes  # fold(state=...) copies it


@given(histories())
def test_folding_decoded_payloads_gives_the_same_state(
    history: tuple[ExecutionId, list[ev.Event]],
) -> None:
    execution_id, events = history
    decoded = [codec.decode(codec.encode(event)) for event in events]
    assert fold(execution_id, decoded) == fold(execution_id, events)


@given(histories(), st.sampled_from(ev.EVENT_TYPES).flatmap(lambda t: EVENTS[t]))
def test_evolve_never_mutates_its_input(
    history: tuple[ExecutionId, list[ev.Event]], event: ev.Event
) -> None:
    execution_id, events = history
    state = fold(execution_id, events)
    before = encoded(state)
    try:
        after = evolve(state, event)
    except InvalidTransitionError:
        pass
    else:
        assert after is not state
        assert after.version == state.version + 1
    assert encoded(state) == before


# --- random command walks on a real journal ------------------------------------

LIVE = frozenset({S.CREATED, S.PLANNING, S.RUNNING, S.PAUSED, S.WAITING})
IN_FLIGHT = frozenset({S.RUNNING, S.PAUSED, S.WAITING})


class CommandWalk(RuleBasedStateMachine):
    """Random commands on an ExecutionHandle over memory://.

    A model (the hand-written EXPECTED table plus the step rules of
    docs/design.md §3) predicts each outcome; refused commands must raise and
    store nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.journal = journal.open("memory://", tenant="tenant_walk")
        self.model_state = S.CREATED
        self.model_steps: dict[StepId, StepState] = {}
        self.handle: Any = None
        self.commands_run = 0

    @initialize(planning=st.booleans())
    def create(self, planning: bool) -> None:
        self.handle = self.journal.create(flow="walk", input={"n": 1})
        if planning:
            self.command("PlanningStarted", None, self.handle.start_planning)

    def teardown(self) -> None:
        self.journal.close()

    # the harness -------------------------------------------------------

    def head(self) -> tuple[int, bytes]:
        summary = self.journal.summary(self.handle.id)
        return summary.head_seq, summary.head_hash

    def command(
        self,
        tag: str,
        step: tuple[StepId, StepState | None] | None,
        call: Any,
        *args: Any,
    ) -> None:
        """Run `call(*args)`; check it against the model."""
        self.commands_run += 1
        expected = EXPECTED[self.model_state][tag]
        if step is not None:
            _step_id, new_step_state = step
            if new_step_state is None:
                expected = None
        before_head = self.head()
        before_state = encoded(self.handle.state)
        if expected is None:
            with pytest.raises(InvalidTransitionError):
                call(*args)
            assert self.head() == before_head, f"refused {tag} appended"
            assert encoded(self.handle.state) == before_state
            return
        call(*args)
        assert self.head()[0] == before_head[0] + 1
        self.model_state = expected
        if step is not None and step[1] is not None:
            self.model_steps[step[0]] = step[1]

    def pick_step(self, data: st.DataObject) -> StepId:
        known = sorted(self.model_steps)
        return data.draw(st.sampled_from([*known, new_step_id()]), label="step")

    # execution commands -------------------------------------------------

    @rule()
    def start_planning(self) -> None:
        self.command("PlanningStarted", None, self.handle.start_planning)

    @rule()
    def start(self) -> None:
        self.command("ExecutionStarted", None, self.handle.start)

    @rule()
    def pause(self) -> None:
        self.command("ExecutionPaused", None, self.handle.pause, "walk")

    @rule()
    def resume(self) -> None:
        self.command("ExecutionResumed", None, self.handle.resume)

    @rule(reason=wait_reasons)
    def wait(self, reason: WaitReason) -> None:
        self.command("ExecutionWaiting", None, self.handle.wait, reason)

    @rule()
    def receive_input(self) -> None:
        self.command("InputReceived", None, self.handle.receive_input, {"ok": True})

    @rule()
    def record_value(self) -> None:
        self.command("ValueRecorded", None, self.handle.record_value, "random", 0.25)

    @rule()
    def complete(self) -> None:
        tag = "ExecutionCompleted"
        if StepState.RUNNING in self.model_steps.values():
            # Refused while a step runs, whatever the state.
            self.command(tag, (new_step_id(), None), self.handle.complete, "done")
        else:
            self.command(tag, None, self.handle.complete, "done")

    # Failing and cancelling end a walk; let it wander first.
    @precondition(lambda self: self.commands_run >= 12)
    @rule()
    def fail(self) -> None:
        self.command("ExecutionFailed", None, self.handle.fail, "walk failed")

    @precondition(lambda self: self.commands_run >= 12)
    @rule()
    def cancel(self) -> None:
        self.command("ExecutionCancelled", None, self.handle.cancel, "walk")

    # step commands -------------------------------------------------------

    @rule()
    def add_step(self) -> None:
        step_id = new_step_id()
        self.command(
            "StepAdded",
            (step_id, StepState.PENDING),
            lambda: self.handle.add_step("planned", "ToolNode", step_id=step_id),
        )

    @rule(data=st.data())
    def start_step(self, data: st.DataObject) -> None:
        step_id = self.pick_step(data)
        current = self.model_steps.get(step_id)
        allowed = current in (None, StepState.PENDING)
        self.command(
            "StepStarted",
            (step_id, StepState.RUNNING if allowed else None),
            lambda: self.handle.start_step("run", "LlmNode", step_id=step_id),
        )

    @rule(data=st.data())
    def complete_step(self, data: st.DataObject) -> None:
        step_id = self.pick_step(data)
        ok = self.model_steps.get(step_id) is StepState.RUNNING
        self.command(
            "StepCompleted",
            (step_id, StepState.COMPLETED if ok else None),
            self.handle.complete_step,
            step_id,
            {"out": 1},
        )

    @rule(data=st.data())
    def fail_step(self, data: st.DataObject) -> None:
        step_id = self.pick_step(data)
        ok = self.model_steps.get(step_id) is StepState.RUNNING
        error = ExecutionError(category=ErrorCategory.TIMEOUT, message="slow")
        self.command(
            "StepFailed",
            (step_id, StepState.FAILED if ok else None),
            self.handle.fail_step,
            step_id,
            error,
        )

    @rule(data=st.data())
    def skip_step(self, data: st.DataObject) -> None:
        step_id = self.pick_step(data)
        ok = self.model_steps.get(step_id) is StepState.PENDING
        self.command(
            "StepSkipped",
            (step_id, StepState.SKIPPED if ok else None),
            self.handle.skip_step,
            step_id,
        )

    # what must always hold ---------------------------------------------------

    @precondition(lambda self: self.handle is not None)
    @invariant()
    def the_state_is_the_one_the_model_predicts(self) -> None:
        state = self.handle.state
        assert state.state is self.model_state
        assert {k: s.state for k, s in state.steps.items()} == self.model_steps
        reachable = {t for row in EXPECTED.values() for t in row.values() if t}
        assert state.state in reachable | {S.CREATED}

    @precondition(lambda self: self.handle is not None)
    @invariant()
    def the_stored_chain_folds_back_to_the_live_state(self) -> None:
        head = self.journal.verify(self.handle.id)
        assert head[0] == self.handle.state.version
        assert self.journal.get(self.handle.id) == self.handle.state


CommandWalk.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
test_random_command_walks_never_reach_a_forbidden_state = CommandWalk.TestCase
