"""Steps on worker threads: carried by journal's helpers, else refused."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

import journal
import replay
from journal import Flow
from journal.errors import FlowDefinitionError
from replay import Verdict
from tests.flows_helpers import SideEffects, memory_journal


def charging_flow(effects: SideEffects, how: str, name: str = "") -> Flow:
    """Charges three cards on worker threads, through `how`."""
    flow = Flow(name or f"threads_{how}")

    @flow.step(step_type="ToolNode")
    def charge(card: str) -> str:
        effects.record(card)
        return f"charged {card}"

    @flow.entry
    def main(cards: list[str]) -> list[str]:
        if how == "plain":
            with ThreadPoolExecutor(max_workers=3) as pool:
                return list(pool.map(charge, cards))
        if how == "executor":
            with journal.executor(max_workers=3) as pool:
                return list(pool.map(charge, cards))
        result: list[str] = [journal.run_in_thread(charge, card) for card in cards]
        return result

    return flow


def test_a_step_on_a_plain_thread_pool_is_refused_naming_the_helpers() -> None:
    effects = SideEffects()
    with memory_journal() as jr:
        with pytest.raises(FlowDefinitionError, match=r"journal\.run_in_thread"):
            charging_flow(effects, "plain").run(jr, ["a", "b"])
        (summary,) = jr.list()
        execution = jr.get(summary.execution_id)

    assert execution.state is journal.ExecutionState.FAILED
    assert execution.error is not None
    message = execution.error.message
    assert "step threads_plain.charge was called without the run's context" in message
    assert "journal.run_in_thread" in message
    assert "journal.executor()" in message
    assert effects.calls == []  # never ran unrecorded
    assert execution.steps == {}


@pytest.mark.parametrize("how", ["executor", "run_in_thread"])
def test_steps_on_helper_threads_are_recorded_and_replayed_without_running(
    journal_: journal.Journal, tmp_path: object, how: str
) -> None:
    effects = SideEffects()
    flow = charging_flow(effects, how)
    execution = flow.run(journal_, ["a", "b", "c"])
    assert execution.state is journal.ExecutionState.COMPLETED, execution.error
    assert sorted(effects.calls) == ["a", "b", "c"]
    assert len(execution.steps) == 3

    effects.calls.clear()
    result = replay.replay(journal_, execution.id, [flow])

    assert result.verdict is Verdict.OK, result.report()
    assert result.steps_checked == 3
    assert effects.calls == []  # the visible side effect: no body ran


def test_run_in_thread_is_awaitable_in_an_async_entry() -> None:
    effects = SideEffects()
    flow = Flow("threads_async")

    @flow.step(step_type="ToolNode")
    def charge(card: str) -> str:
        effects.record(card)
        return card.upper()

    @flow.entry
    async def main(cards: list[str]) -> list[str]:
        calls = [journal.run_in_thread(charge, card) for card in cards]
        return list(await asyncio.gather(*calls))

    with memory_journal() as jr:
        execution = flow.run(jr, ["x", "y"])
        effects.calls.clear()
        result = replay.replay(jr, execution.id, [flow])

    assert execution.decode_output(list[str]) == ["X", "Y"]
    assert result.verdict is Verdict.OK, result.report()
    assert effects.calls == []


def test_a_step_called_with_no_run_of_its_flow_active_is_a_plain_call() -> None:
    effects = SideEffects()
    flow = charging_flow(effects, "plain")
    charge = flow.steps["threads_plain.charge"].function

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(charge, "z").result() == "charged z"
    assert effects.calls == ["z"]


def test_a_thread_that_copied_the_context_by_other_means_is_refused() -> None:
    effects = SideEffects()
    flow = Flow("threads_to_thread")

    @flow.step(step_type="ToolNode")
    def charge(card: str) -> str:
        effects.record(card)
        return card

    @flow.entry
    async def main(card: str) -> str:
        return await asyncio.to_thread(charge, card)

    with memory_journal() as jr:
        with pytest.raises(FlowDefinitionError, match="copied the run's context"):
            flow.run(jr, "q")
        (summary,) = jr.list()
        execution = jr.get(summary.execution_id)

    assert execution.state is journal.ExecutionState.FAILED
    assert execution.error is not None
    assert "journal.run_in_thread" in execution.error.message
    assert effects.calls == []


def test_on_replay_a_step_on_a_plain_thread_is_refused_and_its_body_never_runs() -> (
    None
):
    effects = SideEffects()
    with memory_journal() as jr:
        execution = charging_flow(effects, "executor").run(jr, ["a"])
        effects.calls.clear()
        # Same schema, but today's code hands the step to a plain pool.
        today = charging_flow(effects, "plain", name="threads_executor")
        result = replay.replay(jr, execution.id, [today])

    assert result.verdict is Verdict.DIVERGED, result.report()
    assert result.divergence is not None
    reason = result.divergence.reason
    assert reason.startswith("step threads_executor.charge was called without")
    assert "journal.executor()" in reason
    assert effects.calls == []
