"""Replay: divergence reports, effect steps, integrity, partial records, batches."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import msgspec
import pytest

import journal
import replay
from journal import (
    ChainIntegrityError,
    ExecutionState,
    Flow,
    ListFilter,
    NondeterminismError,
    StepState,
)
from journal.export import export_lines
from journal.fold import fold
from journal.ids import parse_execution_id
from replay import Verdict
from tests.cli_support import drop_sqlite_guards
from tests.flows_helpers import Call, SideEffects, memory_journal, pipeline

RECORDED: list[Call] = [("a", 1), ("b", 2), ("c", 3)]


@pytest.fixture
def jr() -> Iterator[journal.Journal]:
    with memory_journal() as opened:
        yield opened


def record(journal_: journal.Journal, script: list[Call], **kwargs: Any) -> str:
    execution = pipeline(script, **kwargs).run(journal_, 0)
    assert execution.state is ExecutionState.COMPLETED
    return execution.id


def replay_with(
    journal_: journal.Journal, execution_id: str, script: list[Call], **kwargs: Any
) -> replay.ReplayResult:
    return replay.replay(journal_, execution_id, [pipeline(script, **kwargs)])


def step(name: str) -> dict[str, str]:
    return {"name": name, "callable_id": f"pipeline.{name}"}


# --- divergence ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "index", "recorded", "produced"),
    [
        pytest.param(
            [("b", 2), ("a", 1), ("c", 3)],
            0,
            ("a", {"x": 1}),
            ("b", {"x": 2}),
            id="reordered",
        ),
        pytest.param(
            [("a", 1), ("c", 3)],
            1,
            ("b", {"x": 2}),
            ("c", {"x": 3}),
            id="a-call-dropped",
        ),
        pytest.param(
            [("a", 1), ("b", 2)],
            2,
            ("c", {"x": 3}),
            None,
            id="the-last-call-dropped",
        ),
        pytest.param(
            [("a", 1), ("b", 2), ("c", 3), ("d", 4)],
            3,
            None,
            ("d", {"x": 4}),
            id="a-call-added",
        ),
        pytest.param(
            [("a", 1), ("b", 5), ("c", 3)],
            1,
            ("b", {"x": 2}),
            ("b", {"x": 5}),
            id="an-argument-changed",
        ),
    ],
)
def test_a_changed_call_sequence_diverges_at_its_index_showing_both_sides(
    jr: journal.Journal,
    script: list[Call],
    index: int,
    recorded: tuple[str, dict[str, int]] | None,
    produced: tuple[str, dict[str, int]] | None,
) -> None:
    execution_id = record(jr, RECORDED)
    recorded_schema = pipeline(RECORDED).schema_version
    assert pipeline(script).schema_version == recorded_schema

    result = replay_with(jr, execution_id, script)

    assert result.verdict is Verdict.DIVERGED, result.report()
    divergence = result.divergence
    assert divergence is not None
    assert divergence.index == index
    if recorded is None:
        assert divergence.recorded_step is None
    else:
        assert divergence.recorded_step is not None
        assert divergence.recorded_step["name"] == recorded[0]
        assert divergence.recorded_value == recorded[1]
    if produced is None:
        assert divergence.produced_step is None
    else:
        assert divergence.produced_step == step(produced[0])
        assert divergence.produced_value == produced[1]
    assert result.message == divergence.reason
    assert f"at step index {index}" in result.report()
    assert divergence.diff.startswith("--- recorded\n+++ produced")


def test_a_pure_step_returning_something_else_diverges_with_both_values(
    jr: journal.Journal,
) -> None:
    script: list[Call] = [("a", 1), ("double", 2), ("c", 3)]
    execution_id = record(jr, script)

    result = replay_with(jr, execution_id, script, pure_offset=1)

    assert result.verdict is Verdict.DIVERGED
    divergence = result.divergence
    assert divergence is not None
    assert divergence.index == 1
    assert divergence.recorded_step is not None
    assert divergence.recorded_step["name"] == "double"
    assert divergence.produced_step == {
        **step("double"),
        "step_type": "FunctionNode",
        "state": "Completed",
    }
    assert (divergence.recorded_value, divergence.produced_value) == (4, 5)
    assert '-  "value": 4' in divergence.diff
    assert '+  "value": 5' in divergence.diff
    # Only the value differs: the diff shows no step field as changed.
    changed = [line for line in divergence.diff.splitlines() if line[:1] in "+-"]
    assert changed == ["--- recorded", "+++ produced", '-  "value": 4', '+  "value": 5']


def test_an_entry_that_catches_every_exception_still_diverges(
    jr: journal.Journal,
) -> None:
    execution_id = record(jr, RECORDED, catch_everything=True)

    result = replay_with(jr, execution_id, [("c", 3), ("a", 1)], catch_everything=True)

    assert result.verdict is Verdict.DIVERGED, result.report()
    assert result.divergence is not None
    assert result.divergence.index == 0


def test_an_entry_returning_something_else_diverges_at_the_end(
    jr: journal.Journal,
) -> None:
    def make(bonus: int) -> Flow:
        flow = Flow("adder")

        @flow.step
        def fetch(x: int) -> int:
            return x

        @flow.entry
        def main(x: int) -> int:
            return fetch(x) + bonus

        return flow

    execution = make(1).run(jr, 10)

    result = replay.replay(jr, execution.id, [make(2)])

    assert result.verdict is Verdict.DIVERGED
    assert result.divergence is not None
    assert result.divergence.index == 1  # after the one recorded step
    assert result.divergence.recorded_value == 11
    assert result.divergence.produced_value == 12


def test_replaying_the_unchanged_code_is_ok(jr: journal.Journal) -> None:
    script: list[Call] = [*RECORDED, ("double", 7)]
    execution_id = record(jr, script)

    result = replay_with(jr, execution_id, script)

    assert result.verdict is Verdict.OK, result.report()
    assert result.divergence is None
    assert result.steps_checked == 4
    assert result.events_checked == len(jr.events(execution_id))
    assert result.recorded_schema == result.current_schema


def test_raise_on_failure_raises_nondeterminism_error_with_the_report(
    jr: journal.Journal,
) -> None:
    execution_id = record(jr, RECORDED)

    with pytest.raises(NondeterminismError, match="at step index 0") as raised:
        replay.replay(
            jr,
            execution_id,
            [pipeline(list(reversed(RECORDED)))],
            raise_on_failure=True,
        )

    failed = raised.value.result
    assert isinstance(failed, replay.ReplayResult)
    assert failed.verdict is Verdict.DIVERGED


def test_raise_on_failure_returns_an_ok_result(jr: journal.Journal) -> None:
    execution_id = record(jr, RECORDED)

    result = replay.replay(
        jr, execution_id, [pipeline(RECORDED)], raise_on_failure=True
    )

    assert result.ok


# --- effect and pure steps --------------------------------------------------------


def test_effect_steps_do_not_run_on_replay(jr: journal.Journal, tmp_path: Path) -> None:
    effects = SideEffects(folder=tmp_path)
    execution_id = record(jr, RECORDED, effects=effects)
    assert effects.calls == ["a(1)", "b(2)", "c(3)"]
    assert effects.file_lines() == ["a(1)", "b(2)", "c(3)"]
    effects.calls.clear()

    result = replay_with(jr, execution_id, RECORDED, effects=effects)

    assert result.verdict is Verdict.OK
    assert effects.calls == []
    assert effects.file_lines() == ["a(1)", "b(2)", "c(3)"]


def test_an_effect_step_returns_its_recorded_output_on_replay(
    jr: journal.Journal,
) -> None:
    outputs: list[int] = []
    state = {"value": 1}

    def make() -> Flow:
        flow = Flow("clock")

        @flow.step(step_type="ToolNode")
        def read_sensor() -> int:
            state["value"] += 100
            return state["value"]

        @flow.entry
        def main() -> int:
            outputs.append(read_sensor())
            return outputs[-1]

        return flow

    execution = make().run(jr)
    result = replay.replay(jr, execution.id, [make()])

    assert result.verdict is Verdict.OK
    assert outputs == [101, 101]
    assert state["value"] == 101


def test_pure_steps_run_on_replay(jr: journal.Journal) -> None:
    runs: list[int] = []
    flow = Flow("pure_runs")

    @flow.step(pure=True)
    def square(x: int) -> int:
        runs.append(x)
        return x * x

    @flow.entry
    def main(x: int) -> int:
        return square(x)

    execution = flow.run(jr, 3)
    replay.replay(jr, execution.id, [flow])

    assert runs == [3, 3]


# --- integrity ---------------------------------------------------------------------


def tamper_sqlite(path: Path, execution_id: str, seq: int) -> None:
    """Edit one stored event's bytes directly in the database."""
    with sqlite3.connect(path) as conn:
        (payload,) = conn.execute(
            "SELECT e.payload FROM journal_events e JOIN journal_executions x "
            "ON e.exec_key = x.exec_key WHERE x.execution_id = ? AND e.seq = ?",
            (execution_id, seq),
        ).fetchone()
        # The output 99 of step b(1): stored as its digits, whatever packing
        # the store applies around them.
        edited = bytes(payload).replace(b"99,", b"98,")
        assert edited != bytes(payload)
        drop_sqlite_guards(conn)
        conn.execute(
            "UPDATE journal_events SET payload = ? WHERE seq = ? AND exec_key = "
            "(SELECT exec_key FROM journal_executions WHERE execution_id = ?)",
            (edited, seq, execution_id),
        )


def test_a_tampered_journal_is_integrity_and_no_flow_code_runs(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    effects = SideEffects()
    with journal.open(url, tenant="tenant_audit") as journal_:
        execution_id = record(journal_, [("b", 1)], effects=effects)
        completed = [
            e.seq
            for e in journal_.events(execution_id)
            if type(e.event).__name__ == "StepCompleted"
        ]
    tamper_sqlite(tmp_path / "journal.db", execution_id, completed[0])
    effects.calls.clear()

    with journal.open(url, tenant="tenant_audit") as journal_:
        result = replay_with(journal_, execution_id, [("b", 1)], effects=effects)
        with pytest.raises(ChainIntegrityError, match=f"seq {completed[0]}"):
            replay.replay(
                journal_,
                execution_id,
                [pipeline([("b", 1)], effects=effects)],
                raise_on_failure=True,
            )

    assert result.verdict is Verdict.INTEGRITY
    assert f"seq {completed[0]}" in result.message
    assert effects.calls == []


# --- records that end early -------------------------------------------------------


def test_an_execution_recorded_while_running_is_ok_when_it_matches_so_far(
    jr: journal.Journal,
) -> None:
    flow = pipeline(RECORDED)
    jr.put_schema(flow.schema_version, msgspec.json.encode(flow.schema_document))
    handle = jr.create(
        flow="pipeline", schema_version=flow.schema_version, input={"n": 0}
    )
    handle.start()
    first = handle.start_step("a", "ToolNode", input={"x": 1}, callable_id="pipeline.a")
    handle.complete_step(first, 1 + ord("a"))
    handle.start_step("b", "ToolNode", input={"x": 2}, callable_id="pipeline.b")
    assert handle.state.state is ExecutionState.RUNNING

    result = replay.replay(jr, handle.id, [flow])

    assert result.verdict is Verdict.OK, result.report()
    assert result.steps_checked == 2
    assert "Running" in result.message


def test_an_execution_recorded_while_running_diverges_within_the_record(
    jr: journal.Journal,
) -> None:
    flow = pipeline(RECORDED)
    handle = jr.create(
        flow="pipeline", schema_version=flow.schema_version, input={"n": 0}
    )
    handle.start()
    handle.start_step("a", "ToolNode", input={"x": 1}, callable_id="pipeline.a")

    result = replay.replay(jr, handle.id, [pipeline([("b", 2)])])

    assert result.verdict is Verdict.DIVERGED
    assert result.divergence is not None
    assert result.divergence.index == 0


class Crash(BaseException):
    """The process died mid-step (nothing the run could catch)."""


def test_a_live_run_cut_off_mid_step_replays_ok_as_far_as_it_went(
    jr: journal.Journal,
) -> None:
    crash = {"armed": True}
    flow = Flow("cut_off")

    @flow.step
    def first(x: int) -> int:
        return x + 1

    @flow.step
    def second(x: int) -> int:
        if crash["armed"]:
            raise Crash
        return x

    @flow.entry
    def main(x: int) -> int:
        return second(first(x)) + second(x)

    with pytest.raises(Crash):
        flow.run(jr, 1)
    (summary,) = jr.list()
    recorded = jr.get(summary.execution_id)
    assert recorded.state is ExecutionState.RUNNING
    assert [s.state for s in recorded.ordered_steps()] == [
        StepState.COMPLETED,
        StepState.RUNNING,
    ]

    result = replay.replay(jr, summary.execution_id, [flow])

    assert result.verdict is Verdict.OK, result.report()


# --- read-only replay ---------------------------------------------------------------


def test_get_at_n_gives_the_state_after_event_n(jr: journal.Journal) -> None:
    execution_id = record(jr, RECORDED)
    events = [e.event for e in jr.events(execution_id)]

    states = [jr.get(execution_id, at=n) for n in range(1, len(events) + 1)]

    for n, state in enumerate(states, start=1):
        assert state == fold(parse_execution_id(execution_id), events[:n])
        assert state.version == n
    assert states[0].state is ExecutionState.CREATED
    assert states[1].state is ExecutionState.RUNNING
    assert states[1].steps == {}
    assert [s.state for s in states[2].ordered_steps()] == [StepState.RUNNING]
    assert [s.state for s in states[3].ordered_steps()] == [StepState.COMPLETED]
    assert states[-1] == jr.get(execution_id)
    assert states[-1].state is ExecutionState.COMPLETED


def test_replay_without_the_flow_is_not_rerun_and_fold_only_needs_no_flow(
    jr: journal.Journal,
) -> None:
    execution_id = record(jr, RECORDED)

    missing = replay.replay(jr, execution_id, [])
    folded = replay.replay(jr, execution_id, [pipeline([])], fold_only=True)

    assert missing.verdict is Verdict.NOT_RERUN
    assert "'pipeline' is not loaded" in missing.message
    assert folded.verdict is Verdict.NOT_RERUN
    assert "Completed, 3 steps" in folded.message


# --- batches -------------------------------------------------------------------------


def test_batch_replay_of_a_flow_continues_past_failures_and_reports_junit(
    jr: journal.Journal,
) -> None:
    good = record(jr, RECORDED)
    bad = record(jr, [("d", 9)])
    other = Flow("other")

    @other.entry
    def main() -> int:
        return 1

    other.run(jr)
    other_tenant = jr.with_tenant("tenant_elsewhere")
    record(other_tenant, RECORDED)

    batch = replay.replay_all(
        jr, [pipeline(RECORDED), other], ListFilter(flow="pipeline")
    )

    verdicts = {r.execution_id: r.verdict for r in batch.results}
    assert verdicts == {good: Verdict.OK, bad: Verdict.DIVERGED}
    assert batch.counts["ok"] == 1
    assert batch.counts["diverged"] == 1
    assert not batch.ok

    suite = ElementTree.fromstring(batch.junit_xml())
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases.keys() == {good, bad}
    assert cases[good].find("failure") is None
    failure = cases[bad].find("failure")
    assert failure is not None
    assert failure.get("type") == "diverged"
    assert "at step index 0" in (failure.text or "")


def test_batch_replay_of_a_tenant_sees_only_that_tenant(jr: journal.Journal) -> None:
    mine = record(jr, RECORDED)
    record(jr.with_tenant("tenant_elsewhere"), RECORDED)

    seen: list[str] = []
    batch = replay.replay_all(
        jr, [pipeline(RECORDED)], on_result=lambda r: seen.append(r.execution_id)
    )

    assert [r.execution_id for r in batch.results] == [mine] == seen
    assert batch.ok


def export_to(journal_: journal.Journal, execution_id: str, path: Path) -> Path:
    path.write_bytes(b"".join(export_lines(journal_, execution_id)))
    return path


def test_replay_file_over_a_folder_continues_past_failures(
    jr: journal.Journal, tmp_path: Path
) -> None:
    folder = tmp_path / "golden"
    (folder / "deeper").mkdir(parents=True)
    good = export_to(jr, record(jr, RECORDED), folder / "good.jsonl")
    export_to(jr, record(jr, [("d", 4)]), folder / "deeper" / "diverged.jsonl")
    tampered = export_to(jr, record(jr, [("b", 1)]), folder / "tampered.jsonl")
    text = tampered.read_text()
    assert '\\"output\\":99' in text
    tampered.write_text(text.replace('\\"output\\":99', '\\"output\\":98'))
    (folder / "notes.txt").write_text("not a journal")

    batch = replay.replay_file(folder, [pipeline(RECORDED)])

    by_file = {Path((r.source or "").split(":")[0]).name: r for r in batch.results}
    assert {name: r.verdict for name, r in by_file.items()} == {
        "diverged.jsonl": Verdict.DIVERGED,
        "good.jsonl": Verdict.OK,
        "tampered.jsonl": Verdict.INTEGRITY,
    }
    single = replay.replay_file(good, [pipeline(RECORDED)])
    assert [r.verdict for r in single.results] == [Verdict.OK]
    suite = ElementTree.fromstring(batch.junit_xml())
    assert len(list(suite.iter("testcase"))) == 3
    assert suite.get("failures") == "2"


def test_a_recorded_helper_moved_across_a_step_call_diverges(
    jr: journal.Journal,
) -> None:
    def build(draw_first: bool) -> Flow:
        flow = Flow("moved_draw")

        @flow.step(step_type="ToolNode")
        def act(x: int) -> int:
            return x + 1

        @flow.entry
        def main(x: int) -> float:
            if draw_first:
                r = journal.random()
                return act(x) + r
            y = act(x)
            return y + journal.random()

        return flow

    execution = build(draw_first=True).run(jr, 1)
    result = replay.replay(jr, execution.id, [build(draw_first=False)])
    assert result.verdict is Verdict.DIVERGED, result.report()
    assert result.divergence is not None
    assert "journal.random() was called after 1 steps" in result.divergence.reason
    assert result.divergence.recorded_step == {"helper": "random", "after_steps": 0}
