"""What cannot work is refused early; reports name what a person must fix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import msgspec
import pytest

import journal
import replay
from journal import Flow, StepError
from journal.errors import EventDecodeError, FlowDefinitionError
from replay import Verdict
from tests.flows_helpers import memory_journal


def test_generator_and_async_generator_steps_are_refused_at_decoration() -> None:
    flow = Flow("gen")

    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    async def stream(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    with pytest.raises(FlowDefinitionError, match="numbers is a generator"):
        flow.step(numbers)
    with pytest.raises(FlowDefinitionError, match="stream is an async generator"):
        flow.step(stream)
    assert flow.steps == {}


def test_unannotated_parameters_and_returns_are_refused_at_decoration() -> None:
    flow = Flow("bare")

    def no_param_type(x) -> int:  # type: ignore[no-untyped-def]
        return 1

    def no_return_type(x: int):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(FlowDefinitionError, match="parameter 'x' has no type"):
        flow.step(no_param_type)
    with pytest.raises(FlowDefinitionError, match="return type is not annotated"):
        flow.entry(no_return_type)


def test_a_step_returning_raw_bytes_not_json_fails_the_step_not_the_history() -> None:
    flow = Flow("raw_out")

    @flow.step(step_type="ToolNode")
    def fetch(x: int) -> msgspec.Raw:
        return msgspec.Raw(b"{not json")

    @flow.entry
    def main(x: int) -> str:
        try:
            fetch(x)
        except StepError as e:
            return e.error.category.value
        return "stored"

    with memory_journal() as jr:
        execution = flow.run(jr, 1)
        history = jr.history(execution.id)  # verifies and decodes every event
        result = replay.replay(jr, execution.id, [flow])

    assert execution.decode_output(str) == "ValidationError"
    (step,) = execution.ordered_steps()
    assert step.error is not None
    assert "not valid JSON" in step.error.message
    assert len(history.events) == execution.version
    assert result.verdict is Verdict.OK, result.report()


def test_a_raw_value_that_is_not_json_is_refused_when_appended() -> None:
    with memory_journal() as jr:
        handle = jr.create(flow="cmd")
        handle.start()
        step_id = handle.start_step("s", input={"a": 1})
        with pytest.raises(EventDecodeError, match=r"StepCompleted\.output"):
            handle.complete_step(step_id, msgspec.Raw(b'{"a": tru'))
        with pytest.raises(EventDecodeError, match=r"ValueRecorded\.value"):
            handle.record_value("now", msgspec.Raw(b"[1,"))
        stored = jr.get(handle.id)

    assert stored.steps[step_id].state is journal.StepState.RUNNING
    assert stored.recorded_values == []


def helper_flow(drop_middle: bool) -> Flow:
    flow = Flow("helper_after")

    @flow.step(step_type="ToolNode")
    def act(x: int) -> int:
        return x + 1

    @flow.entry
    def main(x: int) -> str:
        act(x)
        if not drop_middle:
            act(x + 1)
        return str(journal.uuid4())

    return flow


def test_a_dropped_step_is_named_even_when_a_helper_comes_right_after_it() -> None:
    with memory_journal() as jr:
        execution = helper_flow(drop_middle=False).run(jr, 1)
        result = replay.replay(jr, execution.id, [helper_flow(drop_middle=True)])

    assert result.verdict is Verdict.DIVERGED
    assert result.divergence is not None
    assert result.divergence.index == 1
    assert result.divergence.reason == (
        "step 1 (helper_after.act) was recorded but not called "
        "(the record drew journal.uuid4() after it)"
    )
    assert result.divergence.recorded_value == {"x": 2}


def catching_flow(catch: bool) -> Flow:
    flow = Flow("catcher")

    @flow.step(step_type="ToolNode", retry=journal.RetryPolicy.fatal())
    def charge(amount: int) -> int:
        raise ConnectionError("card declined")

    @flow.step(step_type="ToolNode")
    def refund(amount: int) -> int:
        return amount

    @flow.entry
    def main(amount: int) -> int:
        try:
            return charge(amount)
        except StepError:
            if not catch:
                raise
            return refund(amount)

    return flow


def test_a_recorded_failure_that_todays_code_catches_is_named_as_such() -> None:
    with memory_journal() as jr:
        execution = catching_flow(catch=False).run(jr, 5)
        result = replay.replay(jr, execution.id, [catching_flow(catch=True)])

    assert execution.state is journal.ExecutionState.FAILED
    assert result.verdict is Verdict.DIVERGED
    assert result.divergence is not None
    assert result.divergence.reason == (
        "step 0 (catcher.charge) failed as recorded (NetworkError: card "
        "declined), which ended the recorded run; today's code catches that "
        "failure, and calls catcher.refund"
    )


def clock_flow(recorded_clock: bool) -> Flow:
    flow = Flow("stamped")

    @flow.step(step_type="ToolNode")
    def stamp(at: datetime) -> str:
        return at.isoformat()

    @flow.entry
    def main() -> str:
        at = journal.now() if recorded_clock else datetime.now(UTC)
        return stamp(at)

    return flow


def test_a_value_from_a_clock_the_journal_does_not_record_points_at_the_draw() -> None:
    with memory_journal() as jr:
        execution = clock_flow(recorded_clock=True).run(jr)
        result = replay.replay(jr, execution.id, [clock_flow(recorded_clock=False)])

    assert result.verdict is Verdict.DIVERGED
    assert result.divergence is not None
    reason = result.divergence.reason
    assert reason.startswith("step 0 (stamped.stamp): input differs; the record ")
    assert "drew journal.now() just before this call and today's code did not" in (
        reason
    )
    assert "draw it with journal.now()" in reason


def test_an_entry_naming_an_undeclared_child_is_refused_before_any_step() -> None:
    child = Flow("undeclared_child")

    @child.entry
    def child_main(x: int) -> int:
        return x

    parent = Flow("careless_parent")  # no uses=[child]
    effects: list[int] = []

    @parent.step(step_type="ToolNode")
    def charge(x: int) -> int:
        effects.append(x)
        return x

    @parent.entry
    def main(x: int) -> int:
        return charge(x) + int(child.run_child(x))

    with memory_journal() as jr:
        with pytest.raises(FlowDefinitionError, match=r"uses=\[child\]"):
            parent.run(jr, 1)
        (summary,) = jr.list()
        stored = jr.get(summary.execution_id)

    assert stored.state is journal.ExecutionState.FAILED
    assert stored.steps == {}  # refused before any step was recorded
    assert effects == []


def test_an_entry_calling_another_flows_step_undeclared_is_refused_up_front() -> None:
    tools = Flow("tools")  # a step library, not declared below

    @tools.step(step_type="ToolNode")
    def ping(x: int) -> int:
        return x

    flow = Flow("no_uses")

    @flow.entry
    def main(x: int) -> int:
        return ping(x)

    with memory_journal() as jr:
        with pytest.raises(FlowDefinitionError, match=r"called step tools\.ping"):
            flow.run(jr, 1)
        (summary,) = jr.list()
        assert jr.get(summary.execution_id).steps == {}
