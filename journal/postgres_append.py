"""One round trip per append on PostgreSQL, when the writer knows the head.

An append inside a client-side transaction costs a round trip per
statement: BEGIN, the lease fence, the head under ``FOR UPDATE``, the rows,
the index row, the log mark, COMMIT. Those round trips, not the work, are
what a writer spends its CPU on (psycopg's per-statement cost on the
client, the protocol's on the server), and on a machine with few cores that
is what limits how far writers on different executions scale.

A writer that appended to an execution (or read its head while appending)
remembers the head it left (`HeadCache`). Its next append chains the new
rows in Python from that remembered head, exactly as `plan_append` does
from a stored one, and sends everything in one autocommit call of
``journal_append``, a PL/pgSQL function that does what the transaction
would have done, in the same order and under the same row locks:

1. with a lease, lock its row and return ``'lease'`` unless the token and
   owner still match;
2. lock the index row and return ``'stale'`` unless its head is the
   remembered one (sequence and link);
3. when the write is unsigned and the writer may not write unsigned into a
   signed store, return ``'signed'`` if the store holds signed chains;
4. insert the rows, update the index row (its trigger checks the new head
   is a stored link), mark the execution for the log; return NULL.

Any answer but NULL has written nothing; the caller forgets the head and
takes the ordinary path, which raises the precise error (or succeeds, when
only the remembered head was out of date). The server decides every check,
so a remembered head that is wrong costs one extra round trip, never a
wrong write. A connection lost during the call leaves the outcome unknown,
as a lost COMMIT does, and `journal.retry.append_with_retry` resolves it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from journal.keys import Keyring
from journal.leases import Lease
from journal.packing import pack
from journal.store import Head, Summary, head_of, plan_append

#: The function's parameters after the fixed ones: the index row's columns
#: that an append may change, in `SQLStore._summary_params` order from
#: ``state`` on (the id and tenant never change).
_ROW_PARAMS = (
    ("state", "TEXT"),
    ("flow", "TEXT"),
    ("parent_id", "TEXT"),
    ("schema_version", "TEXT"),
    ("created_at", "TIMESTAMPTZ"),
    ("started_at", "TIMESTAMPTZ"),
    ("ended_at", "TIMESTAMPTZ"),
    ("updated_at", "TIMESTAMPTZ"),
    ("step_count", "INTEGER"),
    ("failed_steps", "INTEGER"),
    ("output", "BYTEA"),
    ("error", "BYTEA"),
    ("alg", "TEXT"),
    ("head_seq", "BIGINT"),
    ("head_hash", "BYTEA"),
    ("genesis", "BYTEA"),
    ("key_id", "TEXT"),
    ("head_mac", "BYTEA"),
)
_FIXED_PARAMS = (
    ("key", "BIGINT"),
    ("lease_execution_id", "TEXT"),
    ("expected_seq", "BIGINT"),
    ("expected_hash", "BYTEA"),
    ("lease_token", "BIGINT"),
    ("lease_owner", "TEXT"),
    ("refuse_if_signed", "BOOLEAN"),
    # The rows follow the expected head, numbered from it: the first alone
    # (most appends are one event, and arrays cost the client twice what
    # scalars do to send), any more as arrays.
    ("payload", "BYTEA"),
    ("hash", "BYTEA"),
    ("more_payloads", "BYTEA[]"),
    ("more_hashes", "BYTEA[]"),
)
_PARAMS = _FIXED_PARAMS + _ROW_PARAMS

APPEND_FUNCTION_DDL = f"""CREATE OR REPLACE FUNCTION journal_append(
    {", ".join(f"p_{name} {kind}" for name, kind in _PARAMS)}
) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    found_seq BIGINT;
    found_hash BYTEA;
    held_token BIGINT;
    held_owner TEXT;
BEGIN
    IF p_lease_token IS NOT NULL THEN
        SELECT token, owner INTO held_token, held_owner FROM journal_leases
            WHERE execution_id = p_lease_execution_id FOR UPDATE;
        IF NOT FOUND OR held_token IS DISTINCT FROM p_lease_token
                OR held_owner IS DISTINCT FROM p_lease_owner THEN
            RETURN 'lease';
        END IF;
    END IF;
    SELECT head_seq, head_hash INTO found_seq, found_hash
        FROM journal_executions WHERE exec_key = p_key FOR UPDATE;
    IF NOT FOUND OR found_seq IS DISTINCT FROM p_expected_seq
            OR found_hash IS DISTINCT FROM p_expected_hash THEN
        RETURN 'stale';
    END IF;
    IF p_refuse_if_signed AND p_key_id IS NULL
            AND EXISTS (SELECT 1 FROM journal_meta WHERE name = 'signed') THEN
        RETURN 'signed';
    END IF;
    INSERT INTO journal_events (exec_key, seq, topic, payload, hash)
        VALUES (p_key, p_expected_seq + 1, NULL, p_payload, p_hash);
    IF p_more_payloads IS NOT NULL THEN
        INSERT INTO journal_events (exec_key, seq, topic, payload, hash)
            SELECT p_key, p_expected_seq + 1 + n, NULL, p, h
            FROM unnest(p_more_payloads, p_more_hashes) WITH ORDINALITY
                AS u(p, h, n);
    END IF;
    UPDATE journal_executions SET
        {", ".join(f"{name} = p_{name}" for name, _ in _ROW_PARAMS)}
        WHERE exec_key = p_key;
    INSERT INTO journal_log_marks (exec_key, head_seq) VALUES (p_key, p_head_seq)
        ON CONFLICT (exec_key) DO UPDATE SET head_seq = excluded.head_seq;
    RETURN NULL;
END $$"""
#: Whether a store has the function (a store created before it gets it on
#: open, when the user may create functions; else appends take the
#: ordinary path).
HAS_APPEND_FUNCTION = "SELECT to_regproc('journal_append') IS NOT NULL"
APPEND_CALL = (
    "SELECT journal_append(" + ", ".join(f"p_{name} => %b" for name, _ in _PARAMS) + ")"
)


class HeadCache:
    """The heads this process left, by execution id (bounded, thread-safe).

    A remembered head is only a guess the server checks (see the module
    docstring); forgetting one costs a round trip.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._heads: OrderedDict[str, tuple[int, Head]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, execution_id: str) -> tuple[int, Head] | None:
        with self._lock:
            return self._heads.get(execution_id)

    def remember(self, key: int, summary: Summary) -> None:
        """The head `summary` (just stored) leaves, under index key `key`."""
        with self._lock:
            self._heads[summary.execution_id] = (key, head_of(summary))
            self._heads.move_to_end(summary.execution_id)
            while len(self._heads) > self._size:
                self._heads.popitem(last=False)

    def forget(self, execution_id: str) -> None:
        with self._lock:
            self._heads.pop(execution_id, None)


def plan_call(
    keyring: Keyring,
    signed_seen: bool,
    remembered: tuple[int, Head],
    summary: Summary,
    expected_seq: int,
    payloads: Sequence[bytes],
    lease: Lease | None,
    row_params: Callable[[Summary], list[Any]],
) -> tuple[Summary, list[Any]] | None:
    """The new index row and the call's parameters; None when this append
    must take the ordinary path (it signs the store for the first time, or
    the writer would be refused an unsigned write there).

    `row_params` turns the new index row into `_ROW_PARAMS` values.
    """
    key, head = remembered
    refuse_if_signed = keyring.unsigned_write_needs_unsigned_store
    if refuse_if_signed and signed_seen:
        return None  # the ordinary path raises the refusal
    rows, new = plan_append(
        keyring, summary, expected_seq, head, payloads, store_signed=False
    )
    if new.key_id is not None and not signed_seen:
        return None  # the ordinary path records that the store is signed
    packed = [pack(r.payload, json=True) for r in rows]  # ours: compact JSON
    params: list[Any] = [
        key,
        None if lease is None else lease.execution_id,
        head.seq,
        head.hash,
        None if lease is None else lease.token,
        None if lease is None else lease.owner,
        refuse_if_signed,
        packed[0],
        rows[0].hash,
        packed[1:] or None,
        [r.hash for r in rows[1:]] or None,
        *row_params(new),
    ]
    return new, params
