"""Flows record executions live, and replaying what they recorded is `ok`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import journal
import replay
from journal import (
    ErrorCategory,
    ExecutionState,
    Flow,
    ParentType,
    RetryPolicy,
    StepError,
    StepState,
)
from journal.fold import fold
from journal.ids import parse_execution_id
from journal.model import StepSourceType
from replay import Verdict
from tests.conftest import OpenJournal
from tests.flows_helpers import NO_RETRY, Order, SideEffects, memory_journal


@pytest.fixture
def jr() -> Iterator[journal.Journal]:
    with memory_journal() as opened:
        yield opened


def replays_ok(journal_: journal.Journal, execution_id: str, *flows: Flow) -> None:
    result = replay.replay(journal_, execution_id, flows=flows)
    assert result.verdict is Verdict.OK, result.report()


# --- recording ---------------------------------------------------------------


def test_a_live_run_records_steps_inputs_outputs_and_the_schema(
    jr: journal.Journal,
) -> None:
    flow = Flow("shop")

    @flow.step(step_type="ToolNode")
    def fetch(order_id: str) -> Order:
        return Order(order_id, 40)

    @flow.step(pure=True)
    def total(order: Order, tip: int = 2) -> int:
        return order.amount + tip

    @flow.entry
    def main(order_id: str) -> int:
        return total(fetch(order_id))

    execution = flow.run(jr, "ord_1")

    assert execution.state is ExecutionState.COMPLETED
    assert execution.flow == "shop"
    assert execution.schema_version == flow.schema_version
    assert execution.schema_version.startswith("sha256:")
    assert execution.decode_output(int) == 42
    steps = execution.ordered_steps()
    assert [(s.name, s.callable_id, s.step_type) for s in steps] == [
        ("fetch", "shop.fetch", "ToolNode"),
        ("total", "shop.total", "FunctionNode"),
    ]
    assert msgspec.json.decode(steps[0].input) == {"order_id": "ord_1"}
    assert msgspec.json.decode(steps[1].input) == {
        "order": {"order_id": "ord_1", "amount": 40},
        "tip": 2,
    }
    assert stored_document(jr, flow) == flow.schema_document
    replays_ok(jr, execution.id, flow)


def stored_document(journal_: journal.Journal, flow: Flow) -> object:
    stored = journal_.get_schema(flow.schema_version)
    assert stored is not None
    return msgspec.json.decode(stored)


def test_a_step_called_outside_any_run_is_a_plain_call() -> None:
    flow = Flow("plain")

    @flow.step
    def add(x: int, y: int) -> int:
        return x + y

    assert add(2, 3) == 5


def test_a_failing_step_is_retried_as_new_retry_steps_and_replays_ok(
    jr: journal.Journal,
) -> None:
    flow = Flow("flaky")
    attempts: list[int] = []

    @flow.step(step_type="ToolNode", retry=RetryPolicy.retrying(3))
    def call_api(x: int) -> int:
        attempts.append(x)
        if len(attempts) < 3:
            raise ConnectionError(f"reset #{len(attempts)}")
        return x * 10

    @flow.entry
    def main(x: int) -> int:
        return call_api(x)

    execution = flow.run(jr, 4)

    assert execution.state is ExecutionState.COMPLETED
    steps = execution.ordered_steps()
    assert [s.state for s in steps] == [
        StepState.FAILED,
        StepState.FAILED,
        StepState.COMPLETED,
    ]
    original = steps[0]
    assert original.error is not None
    assert original.error.category is ErrorCategory.NETWORK_ERROR
    assert original.error.message == "reset #1"
    assert original.error.attempt == 1
    assert [s.error.attempt for s in steps[:2] if s.error] == [1, 2]
    for retry in steps[1:]:
        assert retry.source is not None
        assert retry.source.source_type is StepSourceType.RETRY
        assert retry.source.triggered_by == original.id
    attempts.clear()
    replays_ok(jr, execution.id, flow)
    assert attempts == []  # an effect step does not run on replay


@pytest.mark.parametrize(
    ("exception", "step_type", "category"),
    [
        (TimeoutError("slow"), "ToolNode", ErrorCategory.TIMEOUT),
        (ConnectionError("down"), "ToolNode", ErrorCategory.NETWORK_ERROR),
        (PermissionError("no"), "ToolNode", ErrorCategory.POLICY_VIOLATION),
        (msgspec.ValidationError("bad"), "ToolNode", ErrorCategory.VALIDATION_ERROR),
        (RuntimeError("boom"), "LlmNode", ErrorCategory.LLM_ERROR),
        (RuntimeError("boom"), "ToolNode", ErrorCategory.TOOL_ERROR),
        (
            StepError("over quota", category="QuotaExceeded"),
            "ToolNode",
            ErrorCategory.QUOTA_EXCEEDED,
        ),
    ],
)
def test_a_step_failure_is_categorised_by_its_exception(
    jr: journal.Journal,
    exception: Exception,
    step_type: str,
    category: ErrorCategory,
) -> None:
    flow = Flow("categories")

    @flow.step(step_type=step_type, retry=NO_RETRY)
    def work() -> None:
        raise exception

    @flow.entry
    def main() -> str:
        try:
            work()
        except StepError as e:
            return e.category.value
        return "no error"

    execution = flow.run(jr)

    assert execution.decode_output(str) == category.value
    (step,) = execution.ordered_steps()
    assert step.error is not None
    assert step.error.category is category
    replays_ok(jr, execution.id, flow)


def test_an_uncaught_step_error_fails_the_execution_and_replays_ok(
    jr: journal.Journal,
) -> None:
    flow = Flow("doomed")

    @flow.step(step_type="ToolNode", retry=RetryPolicy.retrying(1))
    def charge(amount: int) -> int:
        raise StepError(f"card declined for {amount}", category="ToolError", code="D")

    @flow.entry
    def main(amount: int) -> int:
        return charge(amount)

    execution = flow.run(jr, 12)

    assert execution.state is ExecutionState.FAILED
    assert execution.error is not None
    assert execution.error.message == "card declined for 12"
    assert execution.error.code == "D"
    assert len(execution.steps) == 2  # the original and one retry
    replays_ok(jr, execution.id, flow)


def test_the_entry_sees_the_same_step_error_live_and_on_replay(
    jr: journal.Journal,
) -> None:
    seen: list[tuple[str, str, str | None]] = []
    flow = Flow("observer")

    @flow.step(step_type="ToolNode", retry=NO_RETRY)
    def lookup(key: str) -> str:
        raise KeyError(key)

    @flow.entry
    def main(key: str) -> str:
        try:
            return lookup(key)
        except StepError as e:
            seen.append((type(e).__name__, e.category.value, e.error.exception_type))
            return "fallback"

    execution = flow.run(jr, "k")
    replays_ok(jr, execution.id, flow)

    assert seen == [("StepError", "ToolError", "builtins.KeyError")] * 2


def test_a_step_calling_a_step_records_the_parent_step_id(
    jr: journal.Journal,
) -> None:
    flow = Flow("nested")
    effects = SideEffects()

    @flow.step
    def leaf(x: int) -> int:
        effects.record(f"leaf({x})")
        return x + 1

    @flow.step(step_type="ToolNode")
    def branch(x: int) -> int:
        return leaf(x) + leaf(x * 10)

    @flow.step(pure=True)
    def pure_branch(x: int) -> int:
        return leaf(x) * 2

    @flow.entry
    def main(x: int) -> list[int]:
        return [branch(x), pure_branch(x)]

    execution = flow.run(jr, 1)

    assert execution.decode_output(list[int]) == [13, 4]
    by_position = execution.ordered_steps()
    assert [s.name for s in by_position] == [
        "branch",
        "leaf",
        "leaf",
        "pure_branch",
        "leaf",
    ]
    branch_step, leaf_1, leaf_2, pure_step, leaf_3 = by_position
    assert branch_step.parent_step_id is None
    assert leaf_1.parent_step_id == branch_step.id
    assert leaf_2.parent_step_id == branch_step.id
    assert leaf_3.parent_step_id == pure_step.id
    effects.calls.clear()
    replays_ok(jr, execution.id, flow)
    # The effect step's nested steps are skipped with it; the pure step runs,
    # and its nested effect step is matched but does not run.
    assert effects.calls == []


def child_and_parent() -> tuple[Flow, Flow]:
    child = Flow("child")

    @child.step
    def triple(x: int) -> int:
        return x * 3

    @child.entry
    def child_main(x: int) -> int:
        return triple(x) + 1

    parent = Flow("parent", uses=[child])

    @parent.step
    def prepare(x: int) -> int:
        return x + 1

    @parent.entry
    def main(x: int) -> int:
        shipped: int = child.run_child(prepare(x))
        return shipped * 2

    return parent, child


def test_run_child_records_a_child_execution_in_the_same_tenant(
    jr: journal.Journal,
) -> None:
    parent, child = child_and_parent()

    execution = parent.run(jr, 1)

    assert execution.decode_output(int) == 14
    call = execution.ordered_steps()[1]
    assert (call.name, call.callable_type, call.step_type) == (
        "child",
        "Flow",
        "GraphNode",
    )
    (summary,) = [s for s in jr.list() if s.execution_id != execution.id]
    child_execution = jr.get(summary.execution_id)
    assert child_execution.tenant_id == jr.tenant_id
    assert child_execution.flow == "child"
    assert child_execution.parent is not None
    assert child_execution.parent.parent_type is ParentType.STEP
    assert child_execution.parent.parent_id == call.id
    assert child_execution.parent.parent_execution_id == execution.id
    assert child_execution.decode_output(int) == 7
    replays_ok(jr, execution.id, parent, child)
    replays_ok(jr, child_execution.id, parent, child)


def test_a_failed_child_is_a_step_error_in_the_parent_and_replays_ok(
    jr: journal.Journal,
) -> None:
    child = Flow("failing_child")

    @child.entry
    def child_main(x: int) -> int:
        raise ValueError(f"no {x}")

    parent = Flow("catching_parent", uses=[child])

    @parent.entry
    def main(x: int) -> str:
        try:
            child.run_child(x)
        except StepError as e:
            return e.error.message
        return "?"

    execution = parent.run(jr, 5)

    assert execution.decode_output(str) == "no 5"
    assert execution.ordered_steps()[0].state is StepState.FAILED
    replays_ok(jr, execution.id, parent, child)


def test_recorded_helpers_replay_the_values_that_were_drawn(
    jr: journal.Journal,
) -> None:
    flow = Flow("helpers")
    drawn: list[tuple[datetime, float, UUID]] = []

    @flow.entry
    def main() -> str:
        values = (journal.now(), journal.random(), journal.uuid4())
        drawn.append(values)
        return f"{values[0].isoformat()} {values[1]} {values[2]}"

    execution = flow.run(jr)
    assert [v.kind for v in execution.recorded_values] == ["now", "random", "uuid4"]
    replays_ok(jr, execution.id, flow)

    live, replayed = drawn
    assert replayed == live
    assert isinstance(replayed[0], datetime)
    assert isinstance(replayed[2], UUID)


def test_helpers_outside_a_run_just_draw_a_value() -> None:
    assert 0 <= journal.random() < 1
    assert isinstance(journal.uuid4(), UUID)
    assert journal.now().tzinfo is not None


def test_a_flow_run_on_every_backend_replays_ok(open_journal: OpenJournal) -> None:
    parent, child = child_and_parent()
    journal_ = open_journal()

    execution = parent.run(journal_, 3)

    assert execution.state is ExecutionState.COMPLETED
    replays_ok(journal_, execution.id, parent, child)
    assert journal_.get(execution.id) == execution


# --- Hypothesis: random flows, recorded live, replay ok -----------------------


@dataclass(frozen=True)
class Op:
    """One operation of a generated entry."""

    kind: str  # effect | pure | helper | child
    x: int = 0
    fails: int = 0  # effect: failures before success (3 exhausts retries)
    nested: bool = False
    catch: bool = True
    helper: str = "random"


ops = st.one_of(
    st.builds(
        Op,
        kind=st.just("effect"),
        x=st.integers(-50, 50),
        fails=st.integers(0, 3),
        nested=st.booleans(),
        catch=st.booleans(),
    ),
    st.builds(
        Op,
        kind=st.just("pure"),
        x=st.integers(-50, 50),
        nested=st.booleans(),
        catch=st.booleans(),
    ),
    st.builds(Op, kind=st.just("helper"), helper=st.sampled_from(["now", "random"])),
    st.builds(Op, kind=st.just("child"), x=st.integers(-50, 50)),
)


def generated_flow(plan: list[Op], attempts: dict[int, int]) -> tuple[Flow, Flow]:
    """A flow whose entry performs `plan`; `attempts` counts effect calls."""
    child = Flow("gen_child")

    @child.step(step_type="LlmNode", pure=True)
    def square(x: int) -> int:
        return x * x

    @child.entry
    def child_main(x: int) -> int:
        return square(x)

    flow = Flow("gen", uses=[child])

    @flow.step(retry=NO_RETRY)
    def inner(x: int) -> int:
        return x - 1

    @flow.step(step_type="ToolNode", retry=RetryPolicy.retrying(2))
    def effect(index: int, x: int) -> int:
        attempts[index] = attempts.get(index, 0) + 1
        if attempts[index] <= plan[index].fails:
            raise TimeoutError(f"attempt {attempts[index]} of op {index}")
        return inner(x) if plan[index].nested else x

    @flow.step(pure=True, retry=RetryPolicy.retrying(1))
    def pure(index: int, x: int) -> int:
        if x % 7 == 0:
            raise ValueError(f"{x} is a multiple of 7")
        return inner(x) * 2 if plan[index].nested else x * 2

    @flow.entry
    def main(n: int) -> list[float | str | None]:
        results: list[float | str | None] = []
        for index, op in enumerate(plan):
            try:
                if op.kind == "effect":
                    results.append(effect(index, op.x + n))
                elif op.kind == "pure":
                    results.append(pure(index, op.x + n))
                elif op.kind == "child":
                    results.append(child.run_child(op.x))
                elif op.helper == "now":
                    results.append(journal.now().isoformat())
                else:
                    results.append(journal.random())
            except StepError as e:
                if not op.catch:
                    raise
                results.append(e.category.value)
        return results

    return flow, child


@settings(max_examples=40)
@given(plan=st.lists(ops, max_size=8), n=st.integers(-5, 5))
def test_replaying_a_generated_live_run_is_ok_and_gives_the_live_state(
    plan: list[Op], n: int
) -> None:
    attempts: dict[int, int] = {}
    flow, child = generated_flow(plan, attempts)
    with memory_journal() as journal_:
        live = flow.run(journal_, n)
        assert live.is_terminal

        stored = journal_.get(live.id)
        folded = fold(parse_execution_id(live.id), journal_.history(live.id).events)
        assert stored == live
        assert folded == live
        effect_calls = dict(attempts)
        for summary in journal_.list():
            result = replay.replay(journal_, summary.execution_id, [flow, child])
            assert result.verdict is Verdict.OK, result.report()
        assert attempts == effect_calls  # effect steps did not run again


def test_values_drawn_inside_an_effect_step_do_not_shift_the_entrys_draws(
    jr: journal.Journal,
) -> None:
    flow = Flow("draws")

    @flow.step(step_type="ToolNode")
    def make_token() -> str:
        return str(journal.uuid4())  # part of the step's recorded output

    @flow.entry
    def main() -> dict[str, str]:
        token = make_token()
        stamp = journal.uuid4()
        return {"token": token, "stamp": str(stamp)}

    execution = flow.run(
        jr,
    )
    assert [v.kind for v in execution.recorded_values] == ["uuid4"]
    recorded_stamp = msgspec.json.decode(execution.recorded_values[0].value)
    assert execution.decode_output()["stamp"] == recorded_stamp
    replays_ok(jr, execution.id, flow)
