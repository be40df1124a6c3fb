"""Async flows: concurrent steps recorded and replayed by call identity."""

from __future__ import annotations

import asyncio
import random

import pytest

import journal
import replay
from journal import Flow, StepError
from journal.record import RecordIndex
from replay import Verdict
from tests.flows_helpers import memory_journal


def gathering_flow(effects: list[int], bump: int | None = None) -> Flow:
    """Ten effect steps gathered, each sleeping a seed-chosen delay."""
    flow = Flow("gathering")

    @flow.step(step_type="ToolNode")
    async def fetch(i: int, delay_ms: int) -> int:
        effects.append(i)
        await asyncio.sleep(delay_ms / 1000)
        return i * 10

    @flow.entry
    async def main(seed: int) -> list[int]:
        rng = random.Random(seed)
        delays = rng.sample(range(0, 40, 4), 10)  # a permutation, 4 ms apart
        calls = [fetch(i, d + (1 if i == bump else 0)) for i, d in enumerate(delays)]
        return list(await asyncio.gather(*calls))

    return flow


def completion_order(execution: journal.Execution) -> tuple[str, ...]:
    """The call identities in the order their steps ended."""
    calls = RecordIndex.of(execution).call_of
    steps = sorted(execution.ordered_steps(), key=lambda s: s.ended_seq or 0)
    return tuple(calls[step.id] for step in steps)


def test_fifty_seeds_finish_in_distinct_orders_and_every_one_replays_ok(
    journal_: journal.Journal,
) -> None:
    effects: list[int] = []
    flow = gathering_flow(effects)
    jr = journal_
    orders = set()
    executions = []
    for seed in range(50):
        execution = flow.run(jr, seed)
        assert execution.state is journal.ExecutionState.COMPLETED
        orders.add(completion_order(execution))
        executions.append(execution)
    assert len(orders) >= 40, len(orders)

    effects.clear()
    verdicts = [replay.replay(jr, e.id, [flow]).verdict for e in executions]

    assert verdicts == [Verdict.OK] * 50
    assert effects == []  # no effect body ran on replay


def test_changing_one_gathered_argument_diverges_at_that_call() -> None:
    effects: list[int] = []
    with memory_journal() as jr:
        execution = gathering_flow(effects).run(jr, 7)
        result = replay.replay(jr, execution.id, [gathering_flow(effects, bump=4)])

    assert result.verdict is Verdict.DIVERGED, result.report()
    divergence = result.divergence
    assert divergence is not None
    assert divergence.call == "4"  # the fifth call made, whenever it started
    calls = RecordIndex.of(execution).call_of
    recorded = next(s for s in execution.ordered_steps() if calls[s.id] == "4")
    assert divergence.index == execution.step_order.index(recorded.id)
    assert "input differs" in divergence.reason
    assert divergence.recorded_value["i"] == divergence.produced_value["i"] == 4


def completion_flow(effects: list[str]) -> Flow:
    """Takes results in the order they complete (as_completed)."""
    flow = Flow("first_come")

    @flow.step(step_type="ToolNode")
    async def ask(name: str, delay_ms: int) -> str:
        effects.append(name)
        await asyncio.sleep(delay_ms / 1000)
        return name

    @flow.step(pure=True)
    def join(names: list[str]) -> str:
        return ",".join(names)

    @flow.entry
    async def main(delays: list[int]) -> str:
        calls = [ask(f"n{i}", d) for i, d in enumerate(delays)]
        seen = [await done for done in asyncio.as_completed(calls)]
        return join(seen)

    return flow


def test_as_completed_sees_the_recorded_order_on_replay() -> None:
    effects: list[str] = []
    flow = completion_flow(effects)
    with memory_journal() as jr:
        execution = flow.run(jr, [30, 1, 15])
        effects.clear()
        result = replay.replay(jr, execution.id, [flow])

    assert execution.decode_output(str) == "n1,n2,n0"
    assert result.verdict is Verdict.OK, result.report()
    assert effects == []


def task_group_flow(effects: list[str]) -> Flow:
    """One task fails fast; the TaskGroup cancels the slow one."""
    flow = Flow("grouped")

    @flow.step(step_type="ToolNode")
    async def slow(x: int) -> int:
        effects.append("slow")
        await asyncio.sleep(5)
        return x

    @flow.step(step_type="ToolNode")
    async def broken(x: int) -> int:
        effects.append("broken")
        await asyncio.sleep(0.01)
        raise PermissionError(f"refused {x}")

    @flow.entry
    async def main(x: int) -> int:
        async with asyncio.TaskGroup() as group:
            group.create_task(slow(x))
            group.create_task(broken(x))
        return x

    return flow


def test_a_task_group_failure_and_its_cancellation_replay_faithfully() -> None:
    effects: list[str] = []
    flow = task_group_flow(effects)
    with memory_journal() as jr:
        execution = flow.run(jr, 3)
        effects.clear()
        result = replay.replay(jr, execution.id, [flow])

    assert execution.state is journal.ExecutionState.FAILED
    assert execution.error is not None
    assert execution.error.exception_type == "builtins.ExceptionGroup"
    assert execution.error.message == (
        "unhandled errors in a TaskGroup (1 sub-exception): PolicyViolation: refused 3"
    )
    by_name = {s.name: s for s in execution.ordered_steps()}
    assert by_name["slow"].error is not None
    assert by_name["slow"].error.code == "cancelled"
    assert by_name["broken"].error is not None
    assert by_name["broken"].error.category.value == "PolicyViolation"
    assert result.verdict is Verdict.OK, result.report()
    assert effects == []


def test_an_async_entry_may_call_sync_steps_and_catch_step_errors() -> None:
    flow = Flow("mixed")

    @flow.step(step_type="ToolNode", retry=journal.RetryPolicy.fatal())
    def lookup(key: str) -> str:
        raise ConnectionError(f"no {key}")

    @flow.step(pure=True)
    def shout(text: str) -> str:
        return text.upper()

    @flow.entry
    async def main(key: str) -> str:
        try:
            return lookup(key)
        except StepError as e:
            return shout(e.error.message)

    with memory_journal() as jr:
        execution = flow.run(jr, "k")
        result = replay.replay(jr, execution.id, [flow])

    assert execution.decode_output(str) == "NO K"
    assert result.verdict is Verdict.OK, result.report()


def test_run_inside_a_running_loop_says_to_use_run_async() -> None:
    effects: list[int] = []
    flow = gathering_flow(effects)

    async def caller(jr: journal.Journal) -> journal.Execution:
        with pytest.raises(RuntimeError, match=r"await flow\.run_async"):
            flow.run(jr, 1)
        return await flow.run_async(jr, 1)

    with memory_journal() as jr:
        execution = asyncio.run(caller(jr))
        effects.clear()
        result = asyncio.run(replay.replay_async(jr, execution.id, [flow]))

    assert execution.state is journal.ExecutionState.COMPLETED
    assert result.verdict is Verdict.OK, result.report()
    assert effects == []
