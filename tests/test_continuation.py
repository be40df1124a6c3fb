"""Waiting for approval, resuming, recovering (in process, every backend)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import journal
import replay
from journal import ExecutionState, Flow, StepState
from journal.approvals import Approval, Keyring, sign_digest
from journal.continuation import recover, resume
from journal.control import pause
from journal.errors import (
    ApprovalRefusedError,
    NondeterminismError,
    StateNotAllowedError,
)
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


def waiting(journal_: journal.Journal) -> journal.Execution:
    execution = cf.approvals.run(journal_, "ord_42")
    assert execution.state is ExecutionState.WAITING
    return execution


def approval_for(execution: journal.Execution, **fields: object) -> Approval:
    digest = execution.waits[-1].digest
    given: dict[str, object] = {"approver": "alice", "digest": digest}
    given.update(fields)
    return Approval(**given)  # type: ignore[arg-type]


def test_a_flow_waits_records_the_digest_and_its_run_stops_cleanly(
    journal_: journal.Journal, effects: Path
) -> None:
    execution = waiting(journal_)

    (wait,) = execution.waits
    assert execution.state_label == "Waiting(approval)"
    assert wait.prompt == "refund 40 for ord_42?"
    assert msgspec.json.decode(wait.action) == {"order": "ord_42", "amount": 40}
    assert wait.digest is not None
    assert wait.digest.startswith("sha256:")
    assert wait.answer is None
    assert lines(effects) == ["quote ord_42"]
    lease = journal_.store.get_lease(execution.id, journal_.tenant_id)
    assert lease is not None
    assert lease.owner is None
    replays_ok(journal_, execution.id, cf.approvals)


def test_an_approval_with_the_digest_resumes_to_completion_without_rerunning_effects(
    journal_: journal.Journal, effects: Path
) -> None:
    execution = waiting(journal_)

    done = resume(
        cf.approvals,
        journal_,
        execution.id,
        approval_for(execution, input=msgspec.Raw(b'"ok by phone"')),
    )

    assert done.state is ExecutionState.COMPLETED
    assert done.decode_output(str) == "refunded 40 (ok by phone)"
    assert lines(effects) == ["quote ord_42", "refund ord_42 40"]
    answer = done.waits[0].answer
    assert answer is not None
    assert (answer.approver, answer.digest) == ("alice", execution.waits[0].digest)
    replays_ok(journal_, execution.id, cf.approvals)


def test_a_refused_approval_records_nothing(
    journal_: journal.Journal, effects: Path
) -> None:
    execution = waiting(journal_)

    with pytest.raises(ApprovalRefusedError, match="names digest"):
        resume(
            cf.approvals,
            journal_,
            execution.id,
            approval_for(execution, digest="sha256:" + "0" * 64),
        )
    with pytest.raises(ApprovalRefusedError, match="requires an approver"):
        resume(
            cf.approvals, journal_, execution.id, approval_for(execution, approver=None)
        )

    assert journal_.get(execution.id).version == execution.version


def test_a_denial_reaches_the_entry_as_journal_denied(
    journal_: journal.Journal, effects: Path
) -> None:
    execution = waiting(journal_)

    done = resume(
        cf.approvals,
        journal_,
        execution.id,
        Approval(approver="bob", deny=True, reason="too much"),
    )

    assert done.decode_output(str) == "not refunded: denied by bob: too much"
    assert "refund ord_42 40" not in lines(effects)
    replays_ok(journal_, execution.id, cf.approvals)


def test_a_resume_after_the_deadline_raises_wait_timeout_in_the_entry(
    journal_: journal.Journal, effects: Path
) -> None:
    execution = cf.timed.run(journal_, "still there?")
    assert execution.state is ExecutionState.WAITING

    with pytest.raises(ApprovalRefusedError, match="timed out"):
        resume(cf.timed, journal_, execution.id, Approval(input=msgspec.Raw(b'"yes"')))
    done = resume(cf.timed, journal_, execution.id)

    assert done.decode_output(str) == "timed out"
    replays_ok(journal_, execution.id, cf.timed)


def test_with_a_keyring_an_unsigned_or_badly_signed_approval_is_refused(
    journal_: journal.Journal, effects: Path, tmp_path: Path
) -> None:
    alice = Ed25519PrivateKey.generate()
    public = alice.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    path = tmp_path / "keyring.json"
    path.write_text(
        json.dumps({"approvers": {"alice": base64.b64encode(public).decode()}})
    )
    keyring = Keyring.load(path)
    execution = waiting(journal_)
    digest = execution.waits[0].digest
    assert digest is not None
    bad = sign_digest(Ed25519PrivateKey.generate().private_bytes_raw(), digest)
    good = sign_digest(alice.private_bytes_raw(), digest)

    for signature in (None, bad):
        with pytest.raises(ApprovalRefusedError, match=r"signature|unsigned"):
            resume(
                cf.approvals,
                journal_,
                execution.id,
                approval_for(execution, signature=signature),
                keyring=keyring,
            )
    done = resume(
        cf.approvals,
        journal_,
        execution.id,
        approval_for(execution, signature=good, input=msgspec.Raw(b'"signed"')),
        keyring=keyring,
    )

    assert done.state is ExecutionState.COMPLETED
    answer = done.waits[0].answer
    assert answer is not None
    assert answer.signature == good


def test_resuming_an_ended_execution_is_not_allowed(
    journal_: journal.Journal, effects: Path
) -> None:
    execution = waiting(journal_)
    approval = approval_for(execution, input=msgspec.Raw(b'"yes"'))
    done = resume(cf.approvals, journal_, execution.id, approval)

    assert done.state is ExecutionState.COMPLETED
    with pytest.raises(StateNotAllowedError, match="Completed: it has ended"):
        resume(cf.approvals, journal_, done.id, approval_for(execution))


def test_a_resume_whose_prefix_diverges_records_nothing(
    journal_: journal.Journal, effects: Path
) -> None:
    execution = waiting(journal_)
    changed = Flow("t.approvals")
    changed.steps.update(cf.approvals.steps)  # same schema, other entry body

    @changed.entry
    def approve_refund(order: str) -> str:
        cf.quote(order + "-changed")
        return "never"

    before = [e.payload for e in journal_.events(execution.id)]
    lease = journal_.store.get_lease(execution.id, journal_.tenant_id)

    with pytest.raises(NondeterminismError, match="diverges") as refused:
        resume(changed, journal_, execution.id, approval_for(execution))

    assert refused.value.exit_code == 5
    assert [e.payload for e in journal_.events(execution.id)] == before
    assert journal_.store.get_lease(execution.id, journal_.tenant_id) == lease
    assert lines(effects) == ["quote ord_42"]


def test_a_paused_run_keeps_its_step_output_and_resumes_to_completion(
    journal_: journal.Journal, open_journal: OpenJournal, effects: Path
) -> None:
    operator = open_journal()
    flow = Flow("t.paused")

    @flow.step(step_type="ToolNode")
    def first() -> int:
        cf.effect("first")
        pause(operator, journal.step_key().split(":")[0], "hold on")
        return 1

    @flow.step(step_type="ToolNode")
    def second(n: int) -> int:
        cf.effect("second")
        return n + 1

    @flow.entry
    def main() -> int:
        return second(first())

    paused = flow.run(journal_)
    done = resume(flow, journal_, paused.id)

    assert paused.state is ExecutionState.PAUSED
    assert paused.ordered_steps()[0].state is StepState.COMPLETED
    assert done.state is ExecutionState.COMPLETED
    assert done.decode_output(int) == 2
    assert lines(effects) == ["first", "second"]
    replays_ok(journal_, paused.id, flow)


def test_recover_takes_over_a_run_whose_process_died_mid_step(
    journal_: journal.Journal, effects: Path
) -> None:
    flow = Flow("t.crashing")
    crash = [True]

    @flow.step(step_type="ToolNode")
    def before() -> int:
        cf.effect("before")
        return 1

    @flow.step(step_type="ToolNode")
    def dies(n: int) -> int:
        cf.effect(f"dies key={journal.step_key()}")
        if crash.pop() if crash else False:
            raise SystemExit("the process died here")
        return n + 1

    @flow.entry
    def main() -> int:
        return dies(before())

    with pytest.raises(SystemExit):
        flow.run(journal_)
    (summary,) = journal_.list()

    dry = recover(journal_, [flow], older_than_s=0, dry_run_only=True)
    done = recover(journal_, [flow], older_than_s=0)
    again = recover(journal_, [flow], older_than_s=0)

    assert [d.outcome for d in dry] == ["would recover"]
    assert [(d.execution_id, d.outcome, d.state) for d in done] == [
        (summary.execution_id, "recovered", "Completed")
    ]
    assert again == []
    key = f"{summary.execution_id}:1"
    assert lines(effects) == ["before", f"dies key={key}", f"dies key={key}"]
    replays_ok(journal_, summary.execution_id, flow)


def test_an_async_entry_waits_and_is_resumed_with_its_gathered_steps_answered(
    journal_: journal.Journal, effects: Path
) -> None:
    import asyncio

    flow = Flow("t.async_wait")

    @flow.step(step_type="ToolNode")
    async def look_up(n: int) -> int:
        cf.effect(f"look up {n}")
        await asyncio.sleep(0)
        return n * 10

    @flow.entry
    async def main(n: int) -> int:
        found = await asyncio.gather(look_up(n), look_up(n + 1))
        extra: int = journal.wait_for("user_input", prompt="add?", type_=int)
        return sum(found) + extra

    waiting_run = flow.run(journal_, 1)
    done = resume(flow, journal_, waiting_run.id, Approval(input=msgspec.Raw(b"5")))

    assert waiting_run.state_label == "Waiting(user_input)"
    assert done.decode_output(int) == 35
    assert sorted(lines(effects)) == ["look up 1", "look up 2"]
    replays_ok(journal_, waiting_run.id, flow)


def test_a_resume_against_a_changed_schema_is_refused_before_anything_is_written(
    journal_: journal.Journal, effects: Path
) -> None:
    from journal.errors import SchemaMismatchError

    execution = waiting(journal_)
    changed = Flow("t.approvals")

    @changed.step(step_type="ToolNode")
    def quote(order: str) -> float:  # int -> float: another schema
        return 40.0

    @changed.entry
    def approve_refund(order: str) -> str:
        return str(quote(order))

    before = [e.payload for e in journal_.events(execution.id)]

    with pytest.raises(SchemaMismatchError) as refused:
        resume(changed, journal_, execution.id, approval_for(execution))

    assert refused.value.exit_code == 4
    assert [e.payload for e in journal_.events(execution.id)] == before


def test_a_running_execution_whose_lease_is_live_is_not_resumed(
    journal_: journal.Journal, open_journal: OpenJournal, effects: Path
) -> None:
    from journal.errors import ConflictError

    other = open_journal()
    flow = Flow("t.busy")
    seen: list[str] = []

    @flow.step(step_type="ToolNode")
    def busy() -> int:
        execution_id = journal.step_key().split(":")[0]
        try:
            resume(flow, other, execution_id)
        except ConflictError as e:
            seen.append(str(e))
        return 1

    @flow.entry
    def main() -> int:
        return busy()

    done = flow.run(journal_)

    assert done.state is ExecutionState.COMPLETED
    assert seen == [f"{done.id} is held by a live process (its lease)"]
    assert ConflictError.exit_code == 7


def test_an_execution_written_without_a_lease_is_recovered_only_once_it_is_old(
    journal_: journal.Journal, effects: Path
) -> None:
    handle = journal_.create(
        flow="t.charges",
        input={"order": "ord_3"},
        schema_version=cf.charges.schema_version,
    )
    handle.start()

    fresh = recover(journal_, [cf.charges], older_than_s=3600, dry_run_only=True)
    old = recover(journal_, [cf.charges], older_than_s=0)

    assert fresh == []
    assert [(d.execution_id, d.state) for d in old] == [(handle.id, "Completed")]
    assert lines(effects) == [
        "reserve ord_3",
        f"charge r-ord_3 key={handle.id}:1",
        "ship charged r-ord_3",
    ]


def test_a_parent_waits_for_its_waiting_child_and_goes_on_once_the_child_ended(
    journal_: journal.Journal, effects: Path
) -> None:
    parent = Flow("t.manager", uses=[cf.approvals])

    @parent.entry
    def manage(order: str) -> str:
        outcome: str = cf.approvals.run_child(order)
        note: str = journal.wait_for("user_input", prompt="anything else?", type_=str)
        return f"{outcome} / {note}"

    stopped = parent.run(journal_, "ord_50")
    (child_summary,) = journal_.list(journal.ListFilter(flow="t.approvals"))
    child = journal_.get(child_summary.execution_id)
    early = resume(parent, journal_, stopped.id)  # the child still waits
    cf.approvals.resume(
        journal_, child.id, input="yes", approver="alice", digest=child.waits[0].digest
    )
    asked = resume(parent, journal_, stopped.id)
    done = resume(parent, journal_, stopped.id, Approval(input=msgspec.Raw(b'"no"')))

    assert stopped.state_label == "Waiting(sub_agent)"
    assert child.state_label == "Waiting(approval)"
    assert early.state_label == "Waiting(sub_agent)"
    assert asked.state_label == "Waiting(user_input)"
    assert done.decode_output(str) == "refunded 40 (yes) / no"
    assert lines(effects) == ["quote ord_50", "refund ord_50 40"]
    replays_ok(journal_, stopped.id, parent)
    replays_ok(journal_, child.id, cf.approvals)
