"""The floor: raw ``sqlite3`` + a SHA-256 hash chain + msgspec + a match-based fold.

What it measures
    * ``append_batched``: encode N events as msgspec JSON (sorted keys), extend
      the hash chain over them and insert them all in one transaction.
    * ``append_single``: the same, but one durable transaction (one commit, so
      one WAL fsync under ``synchronous=FULL``) per event.
    * ``read_verify_fold``: select one execution's rows in order, recompute and
      compare the chain over the stored bytes, decode each payload into a tagged
      Struct union and fold it into a dict-of-steps state.

Why it is a fair anchor
    It does the same work the journal must do for the same events and gives the
    same guarantees (WAL, ``synchronous=FULL``, the chain of docs/design.md §5:
    ``h_0 = sha256(b"journal-chain/v1\\0" + exec_id)``, ``h_n = sha256(h_{n-1} +
    seq as 8-byte big-endian + payload)``, verification hashes the stored bytes
    before decoding) with nothing else: no library layers, no tenancy, no
    optimistic-concurrency check against the stored head, no index of
    executions. It is therefore the lower bound the journal is compared with
    ("within 2x of the floor"), not a competitor.

    The workload shape is the journal's: ``ExecutionCreated``,
    ``ExecutionStarted``, then ``StepStarted``/``StepCompleted`` pairs, then
    ``ExecutionCompleted``; payloads are about 150 bytes each. When the event
    count asks for an odd number of body events, one ``StepAdded`` (a step
    planned ahead of running) makes the count exact.

Connection set-up and schema creation are outside the timed region; encoding,
hashing, inserting and committing (or selecting, hashing, decoding and folding)
are inside it. The events and the fold live in ``_raw_events`` (msgspec), imported
inside the functions, so importing this module needs only the standard library.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

__all__ = [
    "CHAIN_PREFIX",
    "ChainError",
    "append_batched",
    "append_single",
    "bytes_per_event",
    "genesis",
    "prepare",
    "read_verify_fold",
]

CHAIN_PREFIX = b"journal-chain/v1\0"
DEFAULT_EXEC_ID = "exec_01HZXBENCHANCHOR0000000000"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    exec TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (exec, seq)
)
"""
_INSERT = "INSERT INTO events (exec, seq, payload, hash) VALUES (?, ?, ?, ?)"
_SELECT = "SELECT seq, payload, hash FROM events WHERE exec = ? ORDER BY seq"


class ChainError(Exception):
    """The recomputed hash chain differs from the stored one."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"hash chain broken at seq {seq}")
        self.seq = seq


def genesis(exec_id: str) -> bytes:
    """``h_0`` of an execution's chain."""
    return hashlib.sha256(CHAIN_PREFIX + exec_id.encode()).digest()


# --- storage ---


def _connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves.
    conn = sqlite3.connect(os.fspath(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(_SCHEMA)
    return conn


def _chain_rows(
    exec_id: str, events: list[Any], start_seq: int = 1, prev: bytes | None = None
) -> Iterator[tuple[str, int, bytes, bytes]]:
    from ._raw_events import encoder

    h = genesis(exec_id) if prev is None else prev
    sha256 = hashlib.sha256
    encode = encoder.encode
    for seq, event in enumerate(events, start_seq):
        payload = encode(event)
        h = sha256(h + seq.to_bytes(8, "big") + payload).digest()
        yield exec_id, seq, payload, h


def _fresh_exec_id(conn: sqlite3.Connection, base: str) -> str:
    n = conn.execute("SELECT COUNT(DISTINCT exec) FROM events").fetchone()[0]
    return f"{base}_{n:06d}"


def prepare(
    path: str | os.PathLike[str], n_events: int, exec_id: str = DEFAULT_EXEC_ID
) -> str:
    """Write one execution of ``n_events`` events (batched); return its id.

    An existing execution with the same id is replaced.
    """
    from ._raw_events import make_events

    events = make_events(n_events)
    conn = _connect(path)
    try:
        conn.execute("BEGIN")
        conn.execute("DELETE FROM events WHERE exec = ?", (exec_id,))
        conn.executemany(_INSERT, _chain_rows(exec_id, events))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return exec_id


def append_batched(path: str | os.PathLike[str], n_events: int) -> float:
    """Seconds to encode, chain and insert ``n_events`` events in one transaction.

    Each call appends a new execution to the database at ``path`` (created if
    missing). The Struct objects are built before the clock starts.
    """
    from ._raw_events import make_events

    conn = _connect(path)
    try:
        exec_id = _fresh_exec_id(conn, "exec_batched")
        events = make_events(n_events)
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(_INSERT, _chain_rows(exec_id, events))
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return elapsed


def append_single(path: str | os.PathLike[str], n_events: int) -> float:
    """Seconds to append ``n_events`` events, one durable transaction each.

    The previous hash is kept in memory (the floor: no read of the stored head
    before each append). Each call appends a new execution.
    """
    from ._raw_events import encoder, make_events

    conn = _connect(path)
    try:
        exec_id = _fresh_exec_id(conn, "exec_single")
        events = make_events(n_events)
        sha256 = hashlib.sha256
        encode = encoder.encode
        execute = conn.execute
        t0 = time.perf_counter()
        h = genesis(exec_id)
        for seq, event in enumerate(events, 1):
            payload = encode(event)
            h = sha256(h + seq.to_bytes(8, "big") + payload).digest()
            execute("BEGIN")
            execute(_INSERT, (exec_id, seq, payload, h))
            execute("COMMIT")
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return elapsed


def _read_verify_fold(conn: sqlite3.Connection, exec_id: str) -> dict[str, Any]:
    from ._raw_events import decoder, evolve, new_state

    rows = conn.execute(_SELECT, (exec_id,)).fetchall()
    sha256 = hashlib.sha256
    decode = decoder.decode
    h = genesis(exec_id)
    state = new_state()
    expected_seq = 1
    for seq, payload, stored in rows:
        if seq != expected_seq:
            raise ChainError(expected_seq)
        h = sha256(h + seq.to_bytes(8, "big") + payload).digest()
        if h != stored:
            raise ChainError(seq)
        evolve(state, decode(payload))
        expected_seq += 1
    return state


def read_verify_fold(
    path: str | os.PathLike[str], exec_id: str = DEFAULT_EXEC_ID, repeat: int = 1
) -> float:
    """Seconds to select, verify, decode and fold one execution (best of ``repeat``).

    The connection is opened before the clock starts; the first run reads from a
    cold statement cache but a warm OS page cache (the file was just written).
    """
    conn = _connect(path)
    try:
        best = float("inf")
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            state = _read_verify_fold(conn, exec_id)
            best = min(best, time.perf_counter() - t0)
        if state["events"] == 0:
            raise LookupError(f"no events for {exec_id!r} in {path}")
        if state["status"] != "completed":
            raise AssertionError(f"fold ended in {state['status']!r}")
    finally:
        conn.close()
    return best


def read_state(
    path: str | os.PathLike[str], exec_id: str = DEFAULT_EXEC_ID
) -> dict[str, Any]:
    """The folded state of one execution (untimed; for checks)."""
    conn = _connect(path)
    try:
        return _read_verify_fold(conn, exec_id)
    finally:
        conn.close()


def bytes_per_event(path: str | os.PathLike[str], n_events: int) -> float:
    """On-disk bytes per event of one execution in a fresh database at ``path``.

    ``path`` must not exist yet. The empty-schema size (measured on a temporary
    file) is subtracted, so the figure is what each event adds.
    """
    from ._disk import bytes_added_per_item

    return bytes_added_per_item(
        path,
        n_events,
        lambda p: prepare(p, n_events),
        lambda empty: _connect(empty).close(),
    )
