"""The store-wide log: positions, followers, and writers that commit late.

The property eventsourcing's test cases take for granted and PostgreSQL does
not give for free: a follower that has read up to position P never sees an
event appear at or below P later. Here a writer is held open mid-transaction
while another commits and the follower reads; the late writer's events must
then arrive, above everything already delivered.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any

import pytest

import journal
from journal.follow import follow_log
from journal.log import LogEntry
from journal.persistence import JournalNotification, LogRecorder
from journal.store import Store
from journal.urls import open_store
from tests.conftest import new_tenant, require_postgres

#: Steps per writer in the eight-writer test (JOURNAL_SOAK=1: a longer run).
STEPS = 60 if os.environ.get("JOURNAL_SOAK") == "1" else 6


def record_steps(j: journal.Journal, steps: int) -> str:
    handle = j.create(flow="log.test")
    handle.start()
    for index in range(steps):
        step = handle.start_step("fetch", "Tool", input={"i": index})
        handle.complete_step(step, {"ok": index})
    return str(handle.id)


def follow_all(store: Store, after: int = 0) -> list[LogEntry]:
    store.sequence_log()
    return store.read_log(after, 1_000_000)


def events_table(
    store: Store, tenant: str, execution_ids: list[str]
) -> set[tuple[str, int, bytes]]:
    return {
        (execution_id, row.seq, row.hash)
        for execution_id in execution_ids
        for row in store.load_rows(execution_id, tenant)
    }


def test_positions_are_contiguous_and_follow_each_executions_sequence(
    store_url: str,
) -> None:
    tenant = new_tenant()
    with journal.open(store_url, tenant=tenant) as j:
        first = record_steps(j, 3)
        second = record_steps(j, 2)
        store = j.store
        entries = [e for e in follow_all(store) if e.tenant_id == tenant]
        before = store.max_position()
        assert before is not None
        assert [e.position for e in entries] == list(
            range(entries[0].position, entries[0].position + len(entries))
        )
        for execution_id in (first, second):
            seqs = [e.seq for e in entries if e.execution_id == execution_id]
            assert seqs == list(range(1, len(seqs) + 1))
            rows = store.load_rows(execution_id, tenant)
            mine = [e for e in entries if e.execution_id == execution_id]
            assert [(e.payload, e.link) for e in mine] == [
                (r.payload, r.hash) for r in rows
            ]
        record_steps(j, 1)
        later = follow_all(store, before)
        assert later
        assert min(e.position for e in later) == before + 1


def test_a_follower_reads_only_its_tenant_and_only_journal_events(
    store_url: str,
) -> None:
    tenant, other = new_tenant(), new_tenant()
    with journal.open(store_url, tenant=tenant) as j:
        mine = record_steps(j, 1)
        record_steps(j.with_tenant(other), 1)
        store = j.store
        store.sequence_log()
        entries = store.read_log(0, 1000, tenant_id=tenant, journal_only=True)
        assert {e.execution_id for e in entries} == {mine}
        assert all(e.topic is None for e in entries)


def test_follow_without_waiting_numbers_what_committed_and_ends(
    store_url: str,
) -> None:
    tenant, other = new_tenant(), new_tenant()
    with journal.open(store_url, tenant=tenant) as j:
        store = j.store
        follow_all(store)
        before = store.max_position() or 0
        mine = record_steps(j, 1)
        record_steps(j.with_tenant(other), 2)
        events = len(store.load_rows(mine, tenant))
        # The memory store numbers as it writes; the SQL ones in rounds.
        waiting = 0 if store_url.startswith("memory:") else events
        assert store.unnumbered(tenant_id=tenant, journal_only=True) == waiting
        entries = list(follow_log(store, before, tenant_id=tenant, wait=False))
        assert [(e.execution_id, e.seq) for e in entries] == [
            (mine, seq) for seq in range(1, events + 1)
        ]
        assert store.unnumbered(tenant_id=tenant) == 0


@pytest.mark.postgres
def test_a_late_commit_is_delivered_after_what_the_follower_already_read() -> None:
    url = require_postgres()
    tenant = new_tenant()
    with (
        journal.open(url, tenant=tenant) as writer_a,
        journal.open(url, tenant=tenant) as writer_b,
        journal.open(url, tenant=tenant) as follower,
    ):
        late = writer_a.create(flow="log.late")
        late.start()
        early = writer_b.create(flow="log.early")
        early.start()
        store = follower.store
        seen = follow_all(store)
        last = seen[-1].position
        # Writer A begins and writes, but does not commit yet ...
        with writer_a.store._transaction(write=True):  # type: ignore[attr-defined]
            step = late.start_step("slow", "Tool", input={"late": True})
            # ... writer B commits meanwhile, and the follower reads it.
            early.start_step("fast", "Tool", input={"early": True})
            during = follow_all(store, last)
            assert [(e.execution_id, e.seq) for e in during] == [(early.id, 3)]
        # A commits: the follower must now deliver A's event, above B's.
        after = follow_all(store, during[-1].position)
        assert [(e.execution_id, e.seq) for e in after] == [(late.id, 3)]
        assert after[0].position > during[-1].position
        assert step is not None


def _writer(
    url: str, tenant: str, steps: int, out: multiprocessing.Queue[str], go: Any
) -> None:
    go.wait(60)
    with journal.open(url, tenant=tenant) as j:
        out.put(record_steps(j, steps))


@pytest.mark.postgres
def test_a_follower_of_eight_concurrent_writers_sees_the_events_table_exactly() -> None:
    url = require_postgres()
    tenant = new_tenant()
    # fork before this process opens any connection or starts any thread
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[str] = context.Queue()
    go = context.Event()
    writers = [
        context.Process(target=_writer, args=(url, tenant, STEPS, out, go))
        for _ in range(8)
    ]
    for process in writers:
        process.start()
    store = open_store(url)
    start = store.max_position() or 0
    received: list[JournalNotification] = []
    subscription = LogRecorder(store).subscribe(gt=start)

    def follow() -> None:
        with subscription:
            for notification in subscription:
                assert isinstance(notification, JournalNotification)
                received.append(notification)

    follower = threading.Thread(target=follow)
    follower.start()
    go.set()
    execution_ids = [out.get(timeout=120) for _ in writers]
    for process in writers:
        process.join()
    store.sequence_log(wait=True)
    end = store.max_position() or 0
    deadline = time.monotonic() + 60
    while (not received or received[-1].id < end) and time.monotonic() < deadline:
        time.sleep(0.05)
    subscription.stop()
    follower.join(timeout=60)
    assert not follower.is_alive()
    table = store.read_log(start, 1_000_000, stop=end)
    # Position by position, the stream is the log: nothing missing, nothing twice.
    assert [
        (n.id, n.originator_id, n.originator_version, n.link) for n in received
    ] == [(e.position, e.execution_id, e.seq, e.link) for e in table]
    assert [n.id for n in received] == list(range(start + 1, end + 1))
    # And the log holds exactly the events table's rows of these writers.
    mine = {
        (n.originator_id, n.originator_version, n.link)
        for n in received
        if n.tenant_id == tenant
    }
    assert mine == events_table(store, tenant, execution_ids)
    assert len(mine) == 8 * (2 + 2 * STEPS)
    store.close()
