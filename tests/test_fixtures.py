"""Every golden journal in fixtures/ replays to the verdict its README promises."""

from __future__ import annotations

from pathlib import Path

import msgspec

import replay
from fixtures import flows
from journal import events as ev
from journal.export import read_blocks
from journal.fold import fold
from journal.ids import parse_execution_id
from journal.keys import Keyring
from journal.model import ExecutionState, ParentType, StepState
from replay import BatchResult, Verdict

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TODAYS_FLOWS = [flows.orders, flows.shipping, flows.fulfilment]


def replay_fixture(name: str, *, fold_only: bool = False) -> BatchResult:
    return replay.replay_file(FIXTURES / name, TODAYS_FLOWS, fold_only=fold_only)


def only_result(batch: BatchResult) -> replay.ReplayResult:
    (result,) = batch.results
    return result


def test_clean_current() -> None:
    result = only_result(replay_fixture("clean_current.jsonl"))

    assert result.verdict is Verdict.OK, result.report()
    assert result.steps_checked == 3
    # Recorded under schema document format 1, gated with format 1's rules.
    assert result.recorded_schema == flows.orders.schema_version_for(1)
    assert result.recorded_schema != flows.orders.schema_version
    assert result.schema_format == 1
    assert "gated with format 1's rules" in result.report()


def test_legacy_step_ended() -> None:
    """The prototype's format 0 must keep decoding, verifying and replaying."""
    path = FIXTURES / "legacy_step_ended.jsonl"
    stored = path.read_text()
    assert '\\"type\\":\\"StepEnded\\"' in stored
    assert '\\"duration_s\\":' in stored
    assert "StepCompleted" not in stored

    (block,) = read_blocks(path, Keyring())  # verifies the chain over those bytes

    completed = [e for e in block.events if isinstance(e, ev.StepCompleted)]
    assert len(completed) == 3
    assert all(e.duration_ms == 250 for e in completed)
    result = only_result(replay_fixture("legacy_step_ended.jsonl"))
    assert result.verdict is Verdict.OK, result.report()


def test_tampered() -> None:
    result = only_result(replay_fixture("tampered.jsonl"))

    assert result.verdict is Verdict.INTEGRITY
    assert "chain broken at seq 6" in result.message
    assert result.steps_checked == 0


def test_diverged() -> None:
    result = only_result(replay_fixture("diverged.jsonl"))

    assert result.verdict is Verdict.DIVERGED, result.report()
    assert result.divergence is not None
    assert result.divergence.index == 2
    assert result.divergence.recorded_value == {"total_cents": 2498}
    assert result.divergence.produced_value == {"total_cents": 1998}
    assert result.recorded_schema == flows.orders.schema_version_for(1)


def test_schema_mismatch() -> None:
    result = only_result(replay_fixture("schema_mismatch.jsonl"))

    assert result.verdict is Verdict.SCHEMA_MISMATCH
    assert result.schema_changes == ("golden_orders.subtotal output: float -> int",)
    assert result.schema_format == 1
    assert f"accepts={{{result.recorded_schema!r}: upcaster}}" in result.report()


def test_retried_step() -> None:
    path = FIXTURES / "retried_step.jsonl"
    (block,) = read_blocks(path, Keyring())
    recorded = fold(parse_execution_id(block.header.execution_id), block.events)
    first, retry = recorded.ordered_steps()[:2]
    assert first.state is StepState.FAILED
    assert first.error is not None
    assert first.error.category.value == "NetworkError"
    assert retry.is_retry
    assert retry.source is not None
    assert retry.source.triggered_by == first.id

    result = only_result(replay_fixture("retried_step.jsonl"))

    assert result.verdict is Verdict.OK, result.report()
    assert result.steps_checked == 4


def test_child_execution() -> None:
    path = FIXTURES / "child_execution.jsonl"
    parent_block, child_block = read_blocks(path, Keyring())
    parent = fold(
        parse_execution_id(parent_block.header.execution_id), parent_block.events
    )
    child = fold(
        parse_execution_id(child_block.header.execution_id), child_block.events
    )
    assert child.tenant_id == parent.tenant_id
    assert child.parent is not None
    assert child.parent.parent_type is ParentType.STEP
    assert child.parent.parent_execution_id == parent.id
    assert child.parent.parent_id == parent.step_order[1]

    batch = replay_fixture("child_execution.jsonl")

    assert [(r.flow, r.verdict) for r in batch.results] == [
        ("golden_fulfilment", Verdict.OK),
        ("golden_shipping", Verdict.OK),
    ]


def test_waited_for_input() -> None:
    path = FIXTURES / "waited_for_input.jsonl"
    (block,) = read_blocks(path, Keyring())
    kinds = [type(e).__name__ for e in block.events]
    assert "ExecutionWaiting" in kinds
    assert kinds.index("InputReceived") == kinds.index("ExecutionWaiting") + 1
    recorded = fold(parse_execution_id(block.header.execution_id), block.events)
    assert recorded.flow is None
    assert recorded.state is ExecutionState.COMPLETED
    assert [msgspec.json.decode(v) for v in recorded.received_inputs] == [
        {"approved": True, "by": "agent-17"}
    ]

    result = only_result(replay_fixture("waited_for_input.jsonl"))
    folded = only_result(replay_fixture("waited_for_input.jsonl", fold_only=True))

    assert result.verdict is Verdict.NOT_RERUN
    assert "recorded without a flow" in result.message
    assert folded.verdict is Verdict.NOT_RERUN
    assert "state Completed, 2 steps" in folded.message


def test_the_fixture_folder_holds_exactly_the_documented_journals() -> None:
    documented = {
        line.split("`")[1]
        for line in (FIXTURES / "README.md").read_text().splitlines()
        if line.startswith("| `")
    }
    assert documented == {path.name for path in FIXTURES.glob("*.jsonl")}


def without_writer(text: str) -> str:
    """The journal minus the header's ``writer`` (the package version)."""
    lines = []
    for line in text.splitlines():
        document = msgspec.json.decode(line)
        if "format" in document:
            document.pop("writer", None)
        lines.append(msgspec.json.encode(document).decode())
    return "\n".join(lines)


def test_the_script_regenerates_the_committed_journals(tmp_path: Path) -> None:
    from fixtures import make_fixtures

    make_fixtures.main(["--out", str(tmp_path)])

    for path in sorted(FIXTURES.glob("*.jsonl")):
        regenerated = (tmp_path / path.name).read_text()
        assert without_writer(regenerated) == without_writer(path.read_text()), (
            f"{path.name} is stale: run python -m fixtures.make_fixtures and "
            "review the diff"
        )
