"""A handle's state after a failed call is exactly what the store holds;
after a conflict it catches up by reading only what it missed; a busy or
damaged SQLite file says so; a failed snapshot never hides a committed
append."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import journal
from journal import events as ev
from journal.application import utc_now
from journal.commands import ExecutionHandle
from journal.errors import ConflictError, InvalidTransitionError, StoreBusyError
from journal.sqlite_store import SQLiteStore
from journal.store import Row

pytest_plugins = ["tests.cli_fixtures"]

Run = Callable[..., subprocess.CompletedProcess[str]]
GOLDEN = str(Path(__file__).parent.parent / "fixtures" / "clean_current.jsonl")


class ReadCountingStore(SQLiteStore):
    """A real SQLite store that also counts the rows each read returns."""

    reads: list[tuple[int, int]]

    def load_rows(
        self, execution_id: str, tenant_id: str, after: int = 0, upto: int | None = None
    ) -> list[Row]:
        rows = super().load_rows(execution_id, tenant_id, after, upto)
        self.reads.append((after, len(rows)))
        return rows


def test_a_conflict_leaves_the_handle_caught_up_with_the_store(
    open_journal: Callable[..., journal.Journal],
) -> None:
    first, second = open_journal(), open_journal()
    handle = first.create(flow="race")
    handle.start()
    stale = second.handle(handle.id)
    handle.start_step("won", "ToolNode")
    with pytest.raises(ConflictError):
        stale.start_step("lost", "ToolNode")
    assert stale.state == second.get(handle.id)
    # Its next call is judged against the true state, and goes through.
    stale.start_step("next", "ToolNode")
    names = [s.name for s in first.get(handle.id).steps.values()]
    assert names == ["won", "next"]


def test_a_refused_event_in_a_batch_leaves_the_state_untouched(
    journal_: journal.Journal,
) -> None:
    handle = journal_.create(flow="batch")
    handle.start()
    step = handle.start_step("a", "ToolNode")
    before = journal_.get(handle.id)
    with pytest.raises(InvalidTransitionError):
        handle.record(
            ev.StepCompleted(at=utc_now(), step_id=step),
            ev.StepCompleted(at=utc_now(), step_id=step),  # twice: refused
        )
    assert handle.state == before


def test_a_busy_sqlite_file_is_reported_and_the_handle_keeps_the_stored_state(
    tmp_path: Path, tenant: str
) -> None:
    path = tmp_path / "busy.db"
    with journal.Journal(SQLiteStore(path, lock_timeout_ms=100), tenant) as journal_:
        handle = journal_.create(flow="busy")
        handle.start()
        step = handle.start_step("a", "ToolNode")
        before = journal_.get(handle.id)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(
            StoreBusyError, match=r"locked by another writer; waited 100"
        ):
            handle.complete_step(step, {"n": 1})
        holder.execute("ROLLBACK")
        holder.close()
        assert handle.state == before
        handle.complete_step(step, {"n": 1})  # no wrong InvalidTransitionError
        assert journal_.get(handle.id).steps[step].state.value == "Completed"


def test_after_a_conflict_a_handle_reads_only_the_events_after_its_head(
    tmp_path: Path, tenant: str
) -> None:
    store = ReadCountingStore(tmp_path / "count.db")
    store.reads = []
    with journal.Journal(store, tenant) as journal_:
        handle = journal_.create(flow="long")
        handle.start()
        for number in range(200):
            handle.start_step(f"s{number}", "ToolNode")
        stale = journal_.handle(handle.id)
        for number in range(3):
            handle.start_step(f"other{number}", "ToolNode")
        head = stale.state.version
        store.reads.clear()
        with pytest.raises(ConflictError):
            stale.start_step("late", "ToolNode")
        # One read, of the 3 events it missed: not the 200 before them.
        assert store.reads == [(head, 3)]
        assert stale.state == journal_.get(handle.id)


def test_a_lease_holders_append_commutes_past_a_pause_from_its_caught_up_state(
    open_journal: Callable[..., journal.Journal],
) -> None:
    first, second = open_journal(), open_journal()
    handle = first.create(flow="commute")
    handle.start()
    step = handle.start_step("in-flight", "ToolNode")
    lease = second.acquire_lease(handle.id)
    assert lease is not None
    worker = ExecutionHandle(second, second.get(handle.id), lease)
    handle.pause("operator")
    # A step in flight may complete while Paused: retried on the new head.
    worker.complete_step(step, {"done": True})
    final = first.get(handle.id)
    assert (final.state.value, final.steps[step].state.value) == (
        "Paused",
        "Completed",
    )
    assert worker.state == final
    # Starting a step is not allowed while Paused: refused, nothing stored.
    with pytest.raises(InvalidTransitionError, match="not allowed in state Paused"):
        worker.start_step("x", "ToolNode")
    assert worker.state == first.get(handle.id)


def test_a_failed_snapshot_is_logged_and_the_committed_append_reported(
    tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "snap.db"
    with journal.Journal(SQLiteStore(path), tenant, snapshot_every=4) as journal_:
        handle = journal_.create(flow="snap")
        handle.start()
        with sqlite3.connect(path) as admin:
            admin.execute("DROP TABLE journal_snapshots")  # every snapshot fails
        with caplog.at_level(logging.WARNING, logger="journal"):
            handle.start_step("a", "ToolNode")
            handle.start_step("b", "ToolNode")
        assert "caching a snapshot failed" in caplog.text
        assert journal_.verify(handle.id)[0] == handle.state.version == 4


@pytest.mark.parametrize("damage", ["garbage", "pages"])
def test_the_script_reports_a_corrupted_sqlite_file_in_one_line(
    run_script: Run, workdir: Path, damage: str
) -> None:
    path = workdir / "damaged.db"
    db = f"sqlite:///{path}"
    imported = run_script(
        "--db", db, "--tenant", "tenant_golden", "import", str(GOLDEN)
    )
    assert imported.returncode == 0, imported.stderr
    data = bytearray(path.read_bytes())
    if damage == "garbage":
        data[:100] = bytes(range(100))  # the header: not a database any more
    else:
        page_size = int.from_bytes(data[16:18], "big")
        for page in range(1, len(data) // page_size):
            data[page * page_size] = 0xAB  # every b-tree page's type byte
    path.write_bytes(bytes(data))
    for command in (["list"], ["verify", "--all"]):
        result = run_script("--db", db, "--tenant", "tenant_golden", *command)
        assert result.returncode == 1, (command, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert str(path) in result.stderr
        assert "Traceback" not in result.stderr
