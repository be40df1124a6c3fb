"""The model: predicates, retry policies, error categories, child executions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import journal
from journal import events as ev
from journal.fold import fold
from journal.ids import ExecutionId, StepId, new_execution_id, new_step_id
from journal.model import (
    Backoff,
    ErrorCategory,
    Execution,
    ExecutionError,
    ExecutionState,
    ParentType,
    RetryPolicy,
    StepState,
    WaitReason,
)
from journal.store import ListFilter
from tests.strategies import retry_policies

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
S = ExecutionState


def at(offset_s: float) -> datetime:
    return T0 + timedelta(seconds=offset_s)


def execution_in(*tail: ev.Event) -> Execution:
    created = ev.ExecutionCreated(at=at(0), tenant_id=journal.ids.DEFAULT_TENANT)
    return fold(new_execution_id(), [created, *tail])


PREDICATES = {
    # state: (is_terminal, can_resume, is_active)
    S.CREATED: (False, False, False),
    S.PLANNING: (False, False, False),
    S.RUNNING: (False, False, True),
    S.PAUSED: (False, True, False),
    S.WAITING: (False, True, True),
    S.COMPLETED: (True, False, False),
    S.FAILED: (True, False, False),
    S.CANCELLED: (True, False, False),
}
ERROR = ExecutionError(category=ErrorCategory.TOOL_ERROR, message="boom")
PATHS: dict[ExecutionState, list[ev.Event]] = {
    S.CREATED: [],
    S.PLANNING: [ev.PlanningStarted(at=at(1))],
    S.RUNNING: [ev.ExecutionStarted(at=at(1))],
    S.PAUSED: [ev.ExecutionStarted(at=at(1)), ev.ExecutionPaused(at=at(2))],
    S.WAITING: [
        ev.ExecutionStarted(at=at(1)),
        ev.ExecutionWaiting(at=at(2), reason=WaitReason.APPROVAL),
    ],
    S.COMPLETED: [ev.ExecutionStarted(at=at(1)), ev.ExecutionCompleted(at=at(2))],
    S.FAILED: [
        ev.ExecutionStarted(at=at(1)),
        ev.ExecutionFailed(at=at(2), error=ERROR),
    ],
    S.CANCELLED: [ev.ExecutionCancelled(at=at(2))],
}


@pytest.mark.parametrize("state", list(ExecutionState))
def test_state_predicates_match_enact_core(state: ExecutionState) -> None:
    execution = execution_in(*PATHS[state])
    assert execution.state is state
    terminal, can_resume, active = PREDICATES[state]
    assert execution.is_terminal is terminal
    assert state.is_terminal is terminal
    assert execution.can_resume is can_resume
    assert execution.is_active is active


def test_a_waiting_execution_is_labelled_with_its_reason() -> None:
    waiting = execution_in(*PATHS[S.WAITING])
    assert waiting.state_label == "Waiting(approval)"
    assert waiting.wait_reason is WaitReason.APPROVAL
    resumed = fold(waiting.id, [ev.ExecutionResumed(at=at(3))], waiting)
    assert resumed.state_label == "Running"
    assert resumed.wait_reason is None


def test_duration_is_the_wall_clock_time_from_start_to_end() -> None:
    running = execution_in(ev.ExecutionStarted(at=at(1)))
    assert running.duration_ms is None
    done = fold(running.id, [ev.ExecutionCompleted(at=at(3.25))], running)
    assert done.duration_ms == 2250
    assert done.started_at == at(1)
    assert done.ended_at == at(3.25)


def test_step_order_holds_started_steps_in_start_order_only() -> None:
    planned, second, first = new_step_id(), new_step_id(), new_step_id()
    execution = execution_in(
        ev.StepAdded(at=at(1), step_id=planned, step_type="ToolNode", name="p"),
        ev.StepAdded(at=at(1), step_id=second, step_type="ToolNode", name="b"),
        ev.ExecutionStarted(at=at(2)),
        ev.StepStarted(at=at(3), step_id=first, step_type="LlmNode", name="a"),
        ev.StepStarted(at=at(4), step_id=second),
    )
    assert execution.step_order == [first, second]
    assert [s.id for s in execution.ordered_steps()] == [first, second]
    assert set(execution.steps) == {planned, first, second}
    pending = execution.get_step(planned)
    assert pending is not None
    assert pending.state is StepState.PENDING
    assert execution.get_step(StepId("step_" + "0" * 27)) is None


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        (Backoff.NONE, [0, 0, 0, 0, 0]),
        (Backoff.FIXED, [100, 100, 100, 100, 100]),
        (Backoff.LINEAR, [100, 200, 300, 400, 450]),
        (Backoff.EXPONENTIAL, [100, 200, 400, 450, 450]),
    ],
)
def test_backoff_delays_are_deterministic_and_capped(
    backoff: Backoff, delays: list[int]
) -> None:
    policy = RetryPolicy(
        retryable=True,
        max_retries=5,
        backoff=backoff,
        base_delay_ms=100,
        max_delay_ms=450,
    )
    assert [policy.delay_for_attempt(n) for n in range(1, 6)] == delays
    assert [policy.delay_for_attempt(n) for n in range(1, 6)] == delays
    assert policy.deterministic


@given(retry_policies, st.integers(min_value=1, max_value=30))
def test_a_retry_policy_gives_the_same_delay_every_time(
    policy: RetryPolicy, attempt: int
) -> None:
    delay = policy.delay_for_attempt(attempt)
    assert delay == policy.delay_for_attempt(attempt)
    assert delay >= 0
    if policy.max_delay_ms > 0:
        assert delay <= policy.max_delay_ms


def test_should_retry_allows_exactly_max_retries_more_attempts() -> None:
    policy = RetryPolicy.retrying(2)
    assert [policy.should_retry(n) for n in (1, 2, 3)] == [True, True, False]
    assert not RetryPolicy.fatal().should_retry(1)
    assert not RetryPolicy.retrying(0).should_retry(1)


RETRYABLE = {
    ErrorCategory.LLM_ERROR,
    ErrorCategory.TOOL_ERROR,
    ErrorCategory.TIMEOUT,
    ErrorCategory.NETWORK_ERROR,
}
FATAL = {
    ErrorCategory.POLICY_VIOLATION,
    ErrorCategory.QUOTA_EXCEEDED,
    ErrorCategory.KERNEL_INTERNAL,
    ErrorCategory.VALIDATION_ERROR,
}


def test_there_are_exactly_eight_categories_four_retryable_four_fatal() -> None:
    assert set(ErrorCategory) == RETRYABLE | FATAL
    assert len(ErrorCategory) == 8


@pytest.mark.parametrize("category", sorted(RETRYABLE))
def test_retryable_categories_retry_by_default(category: ErrorCategory) -> None:
    error = ExecutionError(category=category, message="x")
    assert not error.is_fatal
    assert not category.is_fatal
    policy = error.effective_retry_policy
    assert policy.retryable
    assert policy.max_retries > 0
    assert policy.should_retry(1)
    assert policy.deterministic


@pytest.mark.parametrize("category", sorted(FATAL))
def test_fatal_categories_never_retry_by_default(category: ErrorCategory) -> None:
    error = ExecutionError(category=category, message="x")
    assert error.is_fatal
    assert category.is_fatal
    assert not error.effective_retry_policy.retryable
    assert not error.effective_retry_policy.should_retry(1)


def test_an_explicit_retry_policy_overrides_the_category_default() -> None:
    policy = RetryPolicy.retrying(7, backoff=Backoff.FIXED, base_delay_ms=5)
    error = ExecutionError(
        category=ErrorCategory.VALIDATION_ERROR, message="x", retry_policy=policy
    )
    assert error.effective_retry_policy == policy
    assert error.attempt == 1


def test_a_child_inherits_the_tenant_and_links_its_parent_execution() -> None:
    with journal.open("memory://", tenant="tenant_parents") as journal_:
        parent = journal_.create(flow="outer")
        child = parent.child(flow="inner", input={"q": 1})
        assert child.id != parent.id
        assert child.state.tenant_id == "tenant_parents"
        assert child.state.parent is not None
        assert child.state.parent.parent_type is ParentType.EXECUTION
        assert child.state.parent.parent_id == parent.id
        assert child.state.parent.parent_execution_id == parent.id
        assert journal_.summary(child.id).parent_id == parent.id
        assert msgspec.json.decode(child.state.input) == {"q": 1}
        assert journal_.get(child.id) == child.state


def test_a_child_of_a_step_links_the_step_and_names_its_execution() -> None:
    with journal.open("memory://", tenant="tenant_parents") as journal_:
        parent = journal_.create()
        parent.start()
        step_id = parent.start_step("delegate", "GraphNode")
        child = parent.child(step_id=step_id)
        link = child.state.parent
        assert link is not None
        assert link.parent_type is ParentType.STEP
        assert link.parent_id == step_id
        assert link.parent_execution_id == parent.id
        children = journal_.list(ListFilter(parent_id=parent.id))
        assert [s.execution_id for s in children] == [child.id]
        assert child.state.tenant_id == parent.state.tenant_id


def test_an_execution_needs_its_tenant() -> None:
    with pytest.raises(TypeError):
        Execution(id=ExecutionId(new_execution_id()))  # type: ignore[call-arg]
