"""Operators pause and cancel executions through the store; a running flow
notices at its next step, and a step in flight keeps its output."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

import journal
from journal import ExecutionState, Flow, StepState
from journal import events as ev
from journal.control import cancel, pause
from journal.errors import StateNotAllowedError
from tests.cli_support import Invoke
from tests.conftest import OpenJournal
from tests.flows_helpers import NO_RETRY

pytest_plugins = ["tests.cli_fixtures"]


def two_step_flow(during_first: Callable[[str], object]) -> tuple[Flow, list[str]]:
    """A flow whose first step calls `during_first(execution_id)` mid-step."""
    flow = Flow("operated")
    effects: list[str] = []

    @flow.step(retry=NO_RETRY)
    def first() -> str:
        during_first(journal.step_key().split(":")[0])
        effects.append("first")
        return "kept"

    @flow.step(retry=NO_RETRY)
    def second(value: str) -> str:
        effects.append("second")
        return value + "!"

    @flow.entry
    def main() -> str:
        return second(first())

    return flow, effects


def test_a_pause_during_a_running_step_keeps_its_output_and_stops_the_run(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    operator = open_journal()
    flow, effects = two_step_flow(lambda eid: pause(operator, eid, "look first"))

    execution = flow.run(journal_)

    assert execution.state is ExecutionState.PAUSED
    assert effects == ["first"]
    (step,) = execution.ordered_steps()
    assert step.state is StepState.COMPLETED
    assert bytes(step.output) == b'"kept"'
    tags = [ev.tag_of(e.event) for e in journal_.events(execution.id)]
    assert tags[-2:] == ["ExecutionPaused", "StepCompleted"]
    assert journal_.get(execution.id).pause_reason == "look first"


def test_a_cancel_during_a_running_step_ends_the_run_cancelled(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    operator = open_journal()
    flow, effects = two_step_flow(lambda eid: cancel(operator, eid, "wrong order"))

    execution = flow.run(journal_)

    assert execution.state is ExecutionState.CANCELLED
    assert execution.cancel_reason == "wrong order"
    assert effects == ["first"]
    assert journal_.get(execution.id).version == execution.version


def test_pausing_an_ended_or_waiting_execution_is_not_allowed(
    journal_: journal.Journal,
) -> None:
    done = journal_.create(flow="f")
    done.start()
    done.complete(1)
    waiting = journal_.create(flow="f")
    waiting.start()
    waiting.wait("approval")

    with pytest.raises(StateNotAllowedError, match="Completed: cannot pause"):
        pause(journal_, done.id)
    with pytest.raises(StateNotAllowedError, match="resume or cancel it"):
        pause(journal_, waiting.id)
    assert StateNotAllowedError.exit_code == 8


def test_a_waiting_execution_can_be_cancelled(journal_: journal.Journal) -> None:
    waiting = journal_.create(flow="f")
    waiting.start()
    waiting.wait("approval")

    (cancelled,) = cancel(journal_, waiting.id, "nobody will approve")

    assert cancelled.state is ExecutionState.CANCELLED


def test_cancel_cascades_to_unfinished_children_unless_told_not_to(
    journal_: journal.Journal,
) -> None:
    parent = journal_.create(flow="p")
    parent.start()
    child = parent.child(flow="c")
    child.start()
    grandchild = child.child(flow="g")
    finished = parent.child(flow="c")
    finished.start()
    finished.complete(0)
    alone = journal_.create(flow="p")
    alone.start()
    alone_child = alone.child(flow="c")

    cascaded = cancel(journal_, parent.id, "stop all")
    cancel(journal_, alone.id, "only this", cascade=False)

    assert [e.id for e in cascaded] == [parent.id, child.id, grandchild.id]
    assert journal_.get(grandchild.id).cancel_reason == (
        f"parent {child.id} cancelled: parent {parent.id} cancelled: stop all"
    )
    assert journal_.get(finished.id).state is ExecutionState.COMPLETED
    assert journal_.get(alone_child.id).state is ExecutionState.CREATED


def test_the_cli_pauses_and_cancels_and_refuses_with_exit_8(
    db: str, invoke: Invoke
) -> None:
    with journal.open(db) as journal_:
        running = journal_.create(flow="f")
        running.start()

    paused = invoke("--db", db, "pause", running.id, "--reason", "check")
    again = invoke("--db", db, "pause", running.id)
    cancelled = invoke("--db", db, "cancel", running.id, "--reason", "done")
    missing_reason = invoke("--db", db, "cancel", running.id)

    assert paused.exit_code == 0, paused.stderr
    assert paused.stdout == f"{running.id} Paused\n"
    assert again.exit_code == 8
    assert again.stderr == (
        f"journal: error: {running.id} is Paused: cannot pause it\n"
    )
    assert cancelled.exit_code == 0, cancelled.stderr
    assert cancelled.stdout == f"{running.id} Cancelled\n"
    assert missing_reason.exit_code == 2


def test_the_console_script_cancels_with_json_output(
    db: str, run_script: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    with journal.open(db) as journal_:
        waiting = journal_.create(flow="f")
        waiting.start()
        waiting.wait("approval")

    done = run_script("cancel", waiting.id, "--reason", "late", "--json", "--db", db)
    ended = run_script("cancel", waiting.id, "--reason", "again", "--db", db)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cancelled": [waiting.id]}
    assert ended.returncode == 8
    assert "Cancelled: cannot cancel it (it has ended)" in ended.stderr
