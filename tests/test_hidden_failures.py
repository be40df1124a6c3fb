"""Journal failures inside a run are never hidden by the flow's own code.

A journal failure (here: a store another writer keeps locked past the lock
timeout, a real `StoreBusyError`) ends the run with the real error whatever
the entry's ``except Exception`` does: the execution is recorded Failed
when the store still accepts it, then `Flow.run` raises the original
error; when nothing can be recorded, it raises and leaves the execution
(Running) to recovery. A child's journal failure is its parent's too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import journal
from journal.errors import StoreBusyError
from journal.sqlite_store import SQLiteStore
from journal.store import ListFilter

LOCKED = "locked by another writer"


class Locker:
    """Another writer: takes the SQLite write lock and keeps it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def lock(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "locked.db"


@pytest.fixture
def jr(store_path: Path, tenant: str) -> Any:
    with journal.Journal(SQLiteStore(store_path, lock_timeout_ms=100), tenant) as j:
        yield j


def only(jr: journal.Journal, flow: str) -> journal.Execution:
    (summary,) = jr.list(ListFilter(flow=flow))
    return jr.get(summary.execution_id)


def test_a_child_failing_in_the_journal_fails_a_parent_that_catches_exception(
    jr: journal.Journal, store_path: Path
) -> None:
    locker = Locker(store_path)
    child = journal.Flow("pgf.child")

    @child.step
    def take_the_lock(x: int) -> int:
        locker.lock()  # the child's next write waits 100 ms, then fails
        return x

    @child.entry
    def child_main(x: int) -> int:
        return take_the_lock(x)

    parent = journal.Flow("pgf.parent", uses=[child])

    @parent.entry
    def main(x: int) -> str:
        try:
            child.run_child(x)
        except Exception:
            locker.release()
            return "swallowed"  # the flow hides the failure: the run must not
        return "done"

    with pytest.raises(StoreBusyError, match=LOCKED):
        parent.run(jr, 1)
    ended = only(jr, "pgf.parent")
    assert ended.state_label == "Failed"
    assert ended.error is not None
    assert LOCKED in ended.error.message
    assert (ended.error.exception_type or "").endswith("StoreBusyError")
    # Nothing could be recorded for the child while the lock was held: it is
    # left Running for recovery, its step started and never ended.
    left = only(jr, "pgf.child")
    assert left.state_label == "Running"
    assert [s.state.value for s in left.steps.values()] == ["Running"]


def test_a_journal_failure_the_entry_catches_still_fails_the_run(
    jr: journal.Journal, store_path: Path
) -> None:
    locker = Locker(store_path)
    flow = journal.Flow("pgf.swallow")

    @flow.step
    def take_the_lock(x: int) -> int:
        locker.lock()
        return x

    @flow.entry
    def main(x: int) -> int:
        try:
            return take_the_lock(x)
        except Exception:
            locker.release()
            return -1

    with pytest.raises(StoreBusyError, match=LOCKED):
        flow.run(jr, 1)
    ended = only(jr, "pgf.swallow")
    assert ended.state_label == "Failed"
    assert ended.error is not None
    assert LOCKED in ended.error.message


def test_when_nothing_can_be_recorded_the_run_raises_and_leaves_it_running(
    jr: journal.Journal, store_path: Path
) -> None:
    locker = Locker(store_path)
    flow = journal.Flow("pgf.stuck")

    @flow.step
    def take_the_lock(x: int) -> int:
        locker.lock()
        return x

    @flow.entry
    def main(x: int) -> int:
        try:
            return take_the_lock(x)
        except Exception:
            return -1  # the lock stays: not even Failed can be written

    try:
        with pytest.raises(StoreBusyError, match=LOCKED):
            flow.run(jr, 1)
    finally:
        locker.release()
    assert only(jr, "pgf.stuck").state_label == "Running"
