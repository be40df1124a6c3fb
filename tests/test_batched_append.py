"""A batched append on SQLite writes many event rows per INSERT statement
(`journal.sqlite_store.ROWS_PER_INSERT`); the rows it stores are, byte for
byte, those that one statement per row stores: the same events appended one
at a time, imported from an export, or written through eventsourcing's
interface with topics come out alike."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
from eventsourcing.persistence import StoredEvent

import journal
from journal import codec
from journal import events as ev
from journal.export import export_lines, import_files
from journal.ids import new_execution_id, new_step_id
from journal.packing import pack, unpack
from journal.recorder import StoreRecorder
from journal.sqlite_store import ROWS_PER_INSERT
from journal.urls import open_store

#: Two full statements and a remainder written row by row.
N = 2 * ROWS_PER_INSERT + 37

StoredRow = tuple[int, str | None, bytes, bytes]


def _stored(path: Path, execution_id: str) -> list[StoredRow]:
    """(seq, topic, payload as stored, hash) straight from the file."""
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            "SELECT e.seq, e.topic, e.payload, e.hash FROM journal_events e "
            "JOIN journal_executions x ON x.exec_key = e.exec_key "
            "WHERE x.execution_id = ? ORDER BY e.seq",
            (execution_id,),
        ).fetchall()
    return [(s, t, bytes(p), bytes(h)) for s, t, p, h in found]


def _body(n: int) -> list[ev.Event]:
    """Step events; some inputs are large enough to be deflated."""
    at = journal.utc_now()
    out: list[ev.Event] = []
    while len(out) < n:
        step_id = new_step_id()
        size = 600 if len(out) % 7 == 0 else 3
        out.append(
            ev.StepStarted(
                at=at,
                step_id=step_id,
                step_type="ToolNode",
                name=f"step {len(out)}",
                callable_id="tests.work",
                input=codec.encode_value({"i": len(out), "pad": "x" * size}),
            )
        )
        out.append(
            ev.StepCompleted(
                at=at,
                step_id=step_id,
                output=msgspec.Raw(b'{"ok":true}'),
                duration_ms=len(out),
            )
        )
    return out[:n]


def test_a_batch_is_stored_as_the_same_events_appended_one_at_a_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    body = [ev.ExecutionStarted(at=journal.utc_now()), *_body(N)]
    with journal.open(f"sqlite:///{path}") as journal_:
        batched = journal_.create(flow="batched")
        batched.record(*body)
        single = journal_.create(flow="single")
        for event in body:
            single.record(event)
        heads = journal_.verify(batched.id), journal_.verify(single.id)
    together = _stored(path, batched.id)
    one_by_one = _stored(path, single.id)
    assert [row[0] for row in together] == list(range(1, N + 3))
    assert heads[0] == (N + 2, together[-1][3])
    assert heads[1] == (N + 2, one_by_one[-1][3])
    # Row 1 (ExecutionCreated) names the execution, and the links differ
    # with the genesis; every other stored byte is the same.
    assert [r[:3] for r in together[1:]] == [r[:3] for r in one_by_one[1:]]
    payloads = [codec.encode(event) for event in body]
    assert [r[2] for r in together[1:]] == [pack(p, json=True) for p in payloads]
    assert [unpack(r[2]) for r in together[1:]] == payloads
    assert {r[1] for r in together} == {None}
    assert any(r[2][0] == 0x01 for r in together)  # a deflated one among them


def test_an_imported_batch_is_stored_as_it_was_exported(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    with journal.open(f"sqlite:///{source}") as journal_:
        handle = journal_.create(flow="batched")
        handle.record(ev.ExecutionStarted(at=journal.utc_now()), *_body(N))
        (tmp_path / "x.jsonl").write_bytes(b"".join(export_lines(journal_, handle.id)))
    with journal.open(f"sqlite:///{target}") as journal_:
        import_files(journal_, [tmp_path / "x.jsonl"])
        assert journal_.verify(handle.id)[0] == N + 2
    assert _stored(target, handle.id) == _stored(source, handle.id)


def _stored_events(originator: str, n: int) -> list[StoredEvent]:
    """Generic events with topics; some states hold control bytes, some are
    large, as eventsourcing's own (compressed, encrypted) states can."""
    states: list[bytes] = [
        b'{"n":%d}' % i
        if i % 3
        else bytes(range(32)) * (1 + i % 40)
        if i % 2
        else b'{"big":"' + b"y" * 700 + b'"}'
        for i in range(n)
    ]
    return [
        StoredEvent(originator, i + 1, f"tests.Thing.Event{i % 4}", state)
        for i, state in enumerate(states)
    ]


def test_events_with_topics_are_stored_alike_in_one_insert_and_one_at_a_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "es.db"
    store = open_store(f"sqlite:///{path}")
    try:
        recorder = StoreRecorder(store)
        together, single = new_execution_id(), new_execution_id()
        recorder.insert_events(_stored_events(together, N))
        for event in _stored_events(single, N):
            recorder.insert_events([event])
        read = list(recorder.select_events(together))
    finally:
        store.close()
    assert [(e.originator_version, e.topic, e.state) for e in read] == [
        (e.originator_version, e.topic, e.state) for e in _stored_events(together, N)
    ]
    rows, rows_single = _stored(path, together), _stored(path, single)
    assert [r[:3] for r in rows] == [r[:3] for r in rows_single]
    assert rows[5][1] == "tests.Thing.Event1"
    assert {r[2][0] for r in rows} >= {0x00, 0x01}  # raw and deflated forms
