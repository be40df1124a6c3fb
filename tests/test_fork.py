"""Forks, stable identities and children found again (every backend)."""

from __future__ import annotations

from pathlib import Path

import pytest

import journal
import replay
from journal import ExecutionState, Flow, StepState
from journal import events as ev
from journal.chain import parse_genesis
from journal.continuation import recover
from journal.errors import ConflictError, ExecutionNotFoundError
from replay import Verdict
from tests import continuation_flows as cf
from tests.conftest import OpenJournal


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "effects.log"
    monkeypatch.setenv("JOURNAL_TEST_EFFECTS", str(log))
    monkeypatch.delenv("JOURNAL_TEST_BLOCK", raising=False)
    return log


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def replays_ok(journal_: journal.Journal, execution_id: str, flow: Flow) -> None:
    result = replay.replay(journal_, execution_id, flows=[flow])
    assert result.verdict is Verdict.OK, result.report()


def stored(journal_: journal.Journal, execution_id: str) -> list[tuple[int, bytes]]:
    return [(e.seq, e.payload) for e in journal_.events(execution_id)]


def test_a_fork_copies_the_record_before_the_step_and_runs_the_rest_live(
    journal_: journal.Journal, effects: Path
) -> None:
    original = cf.charges.run(journal_, "ord_7")
    before = stored(journal_, original.id)
    effects.unlink()

    forked = cf.charges.fork(journal_, original.id, at_step=1)

    assert forked.id != original.id
    assert forked.state is ExecutionState.COMPLETED
    assert forked.decode_output(str) == "shipped after charged r-ord_7"
    assert lines(effects) == [
        f"charge r-ord_7 key={forked.id}:1",
        "ship charged r-ord_7",
    ]
    assert stored(journal_, original.id) == before
    replays_ok(journal_, forked.id, cf.charges)
    replays_ok(journal_, original.id, cf.charges)


def test_a_fork_names_its_origin_in_its_chain_genesis_and_verifies(
    journal_: journal.Journal, effects: Path
) -> None:
    original = cf.charges.run(journal_, "ord_8")
    started_step_1 = next(
        e.seq
        for e in journal_.events(original.id)
        if isinstance(e.event, ev.StepStarted)
        and e.event.step_id == original.step_order[1]
    )

    forked = cf.charges.fork(journal_, original.id, at_step=1)

    genesis = journal_.summary(forked.id).genesis
    assert genesis is not None
    origin = parse_genesis(genesis, forked.id).origin
    assert origin is not None
    assert origin.execution_id == original.id
    assert origin.seq == started_step_1 - 1
    link = journal_.events(original.id)[started_step_1 - 2].hash.hex()
    assert origin.link == link
    journal_.verify(forked.id)
    assert [e.payload for e in journal_.events(forked.id)[: started_step_1 - 1]] == [
        e.payload for e in journal_.events(original.id)[: started_step_1 - 1]
    ]


def test_a_fork_can_replace_the_input_of_its_step_and_still_replays(
    journal_: journal.Journal, effects: Path
) -> None:
    original = cf.charges.run(journal_, "ord_9")

    forked = cf.charges.fork(
        journal_, original.id, at_step=1, input={"reservation": "r-fixed"}
    )

    assert forked.decode_output(str) == "shipped after charged r-fixed"
    assert bytes(forked.ordered_steps()[1].input) == b'{"reservation":"r-fixed"}'
    replays_ok(journal_, forked.id, cf.charges)


def test_a_fork_refuses_a_step_it_does_not_have_or_an_input_that_does_not_fit(
    journal_: journal.Journal, effects: Path
) -> None:
    original = cf.charges.run(journal_, "ord_10")

    with pytest.raises(ValueError, match="no step 3 to fork at"):
        cf.charges.fork(journal_, original.id, at_step=3)
    with pytest.raises(ValueError, match="does not fit its parameters"):
        cf.charges.fork(journal_, original.id, at_step=1, input={"reservation": 5})
    assert len(journal_.list()) == 1


def test_with_an_explicit_id_a_run_is_idempotent_and_refuses_another_input(
    journal_: journal.Journal, open_journal: OpenJournal, effects: Path
) -> None:
    execution_id = journal.ids.new_execution_id()
    options = cf.charges.with_options(execution_id=execution_id)

    first = options.run(journal_, "ord_11")
    again = options.run(journal_, "ord_11")

    assert first.id == execution_id
    assert again.version == first.version
    assert lines(effects).count("reserve ord_11") == 1
    with pytest.raises(ConflictError, match="another input"):
        options.run(journal_, "ord_12")
    with pytest.raises(ConflictError, match="another input"):
        cf.approvals.with_options(execution_id=execution_id).run(journal_, "ord_11")
    other_tenant = open_journal(journal_.tenant_id + "_b")
    with pytest.raises(ExecutionNotFoundError):
        options.run(other_tenant, "ord_11")


def test_a_recovered_parent_finds_its_child_again(
    journal_: journal.Journal, effects: Path
) -> None:
    child_flow = Flow("t.child")
    crash = [True]

    @child_flow.step(step_type="ToolNode")
    def child_effect(n: int) -> int:
        cf.effect(f"child effect {n}")
        if crash and crash.pop():
            raise SystemExit("died inside the child")
        return n * 2

    @child_flow.entry
    def child_main(n: int) -> int:
        return child_effect(n)

    parent = Flow("t.parent", uses=[child_flow])

    @parent.entry
    def parent_main(n: int) -> int:
        doubled: int = child_flow.run_child(n)
        return doubled + 1

    with pytest.raises(SystemExit):
        parent.run(journal_, 20)
    (child_summary,) = journal_.list(journal.ListFilter(flow="t.child"))

    done = recover(journal_, [parent], older_than_s=0)

    assert [d.state for d in done] == ["Completed"]
    children = journal_.list(journal.ListFilter(flow="t.child"))
    assert [c.execution_id for c in children] == [child_summary.execution_id]
    child = journal_.get(child_summary.execution_id)
    assert child.state is ExecutionState.COMPLETED
    assert [s.state for s in child.ordered_steps()] == [StepState.COMPLETED]
    assert journal_.get(done[0].execution_id).decode_output(int) == 41
    assert lines(effects) == ["child effect 20", "child effect 20"]
    replays_ok(journal_, done[0].execution_id, parent)


def test_a_fork_after_an_approval_keeps_the_answer_and_replays(
    journal_: journal.Journal, effects: Path
) -> None:
    waiting = cf.approvals.run(journal_, "ord_12")
    approved = cf.approvals.resume(
        journal_,
        waiting.id,
        input="ok",
        approver="alice",
        digest=waiting.waits[0].digest,
    )

    forked = cf.approvals.fork(journal_, approved.id, at_step=1)

    assert forked.decode_output(str) == "refunded 40 (ok)"
    answer = forked.waits[0].answer
    assert answer is not None
    assert answer.approver == "alice"
    assert lines(effects).count("refund ord_12 40") == 2
    replays_ok(journal_, forked.id, cf.approvals)
