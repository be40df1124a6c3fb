"""The store-wide log in the SQL backends (see `journal.log` for the design).

Writers append events without a position; as the last statement of the same
transaction they mark the execution in ``journal_log_marks`` with its new
head (one row per execution, whatever the number of appends). A *sequencer*
round, run by whoever reads the log, numbers what has committed since the
last round: for each marked execution it gives the events after
``journal_log_heads.logged_seq`` up to the marked head one range of
positions after the largest so far, in execution-key order, moves
``logged_seq``, and removes the mark only if it still holds the head it read,
all in one transaction. Rounds are serialised (SQLite: the write lock;
PostgreSQL: an advisory lock a round *tries*, so a busy sequencer is never
waited for). A round only sees committed marks, and a mark commits with its
events, so every position it hands out is above every position a follower
can already have read: nothing is filled in behind a follower, however late
a writer commits. A writer that moves the mark while a round removes it
either waits for the round and marks afresh, or makes the round's removal
miss (the head changed): its events are numbered next round. Writers of
different executions share no lock; a round never locks an execution.

``journal_log`` holds one row per numbered range: ``position`` (the first
position), the execution's key and the range of sequence numbers.

Reads, and rounds (a round commits whole or not at all, and one repeated
after an unknown outcome numbers what is left), are `journal.retry.retried`
after a transient failure, so a follower outlives a dropped connection; a
tracking record is not (repeated after an unknown outcome, it would refuse
its own position).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from journal.errors import ConflictError
from journal.log import LogEntry
from journal.packing import unpack
from journal.retry import RetryPolicy, retried


def log_ddl(key_type: str) -> tuple[str, ...]:
    """The log's tables; `key_type` is the position column's type (SQLite's
    ``INTEGER`` makes it the rowid: no second index)."""
    return (
        "CREATE TABLE IF NOT EXISTS journal_log ("
        f"position {key_type} PRIMARY KEY, "
        "exec_key BIGINT NOT NULL, "
        "first_seq BIGINT NOT NULL, "
        "last_seq BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS journal_log_marks ("
        "exec_key BIGINT PRIMARY KEY, head_seq BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS journal_log_heads ("
        "exec_key BIGINT PRIMARY KEY, "
        "logged_seq BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS journal_tracking ("
        "application_name TEXT PRIMARY KEY, "
        "notification_id BIGINT NOT NULL)",
        # A store that had events before it had the log (a first-round store
        # migrated, or one written before the log was added): every execution
        # is marked at its head, so the next round numbers its whole history.
        # Repeating it is harmless (a round skips what it already numbered).
        "INSERT INTO journal_log_marks (exec_key, head_seq) "
        "SELECT exec_key, head_seq FROM journal_executions WHERE 1 = 1 "
        "ON CONFLICT (exec_key) DO NOTHING",
    )


_PENDING = (
    "SELECT m.exec_key, (SELECT min(e.seq) FROM journal_events e "
    "WHERE e.exec_key = m.exec_key AND e.seq > coalesce(h.logged_seq, -1) "
    "AND e.seq <= m.head_seq), m.head_seq FROM journal_log_marks m "
    "LEFT JOIN journal_log_heads h ON h.exec_key = m.exec_key "
    "ORDER BY m.exec_key"
)
_LAST_RANGE = (
    "SELECT position, exec_key, first_seq, last_seq FROM journal_log "
    "ORDER BY position DESC LIMIT 1"
)
_LAST_POSITION = (
    "SELECT position + last_seq - first_seq FROM journal_log "
    "ORDER BY position DESC LIMIT 1"
)
_UNNUMBERED = (
    "SELECT count(*) FROM journal_log_marks m "
    "JOIN journal_executions x ON x.exec_key = m.exec_key "
    "LEFT JOIN journal_log_heads h ON h.exec_key = m.exec_key "
    "JOIN journal_events e ON e.exec_key = m.exec_key "
    "AND e.seq > coalesce(h.logged_seq, -1) AND e.seq <= m.head_seq WHERE 1 = 1"
)
_ENTRIES = (
    "SELECT l.position + e.seq - l.first_seq AS pos, x.tenant_id, x.execution_id, "
    "e.seq, e.topic, e.payload, e.hash FROM journal_log l "
    "JOIN journal_executions x ON x.exec_key = l.exec_key "
    "JOIN journal_events e ON e.exec_key = l.exec_key "
    "AND e.seq >= l.first_seq AND e.seq <= l.last_seq "
    "WHERE l.position >= (SELECT coalesce(max(position), 0) FROM journal_log "
    "WHERE position <= ?) AND l.position + e.seq - l.first_seq > ?"
)


class SQLLog:
    """The log methods of `journal.sqlstore.SQLStore`."""

    retry_policy: RetryPolicy

    def _transaction(self, write: bool) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        raise NotImplementedError

    def _require_layout(self, detail: str) -> None:
        """Refuse a first-round store (its tables predate the log)."""
        raise NotImplementedError

    def _require_log(self) -> None:
        self._require_layout(
            "it has no store-wide log to follow; run `journal migrate` as its owner"
        )

    def _sequencer_lock(self, cur: Any, wait: bool) -> bool:
        """Serialise sequencer rounds; False if another round is running."""
        return True

    def _notify_log(self, cur: Any) -> None:
        """Tell listening followers that positions were handed out."""

    def _mark_unlogged(self, cur: Any, key: int, head_seq: int) -> None:
        """Last in a write: the execution has events up to `head_seq` that the
        log has not numbered."""
        cur.execute(
            self._q(
                "INSERT INTO journal_log_marks (exec_key, head_seq) VALUES (?, ?) "
                "ON CONFLICT (exec_key) DO UPDATE SET head_seq = excluded.head_seq"
            ),
            (key, head_seq),
        )

    @retried
    def sequence_log(self, *, wait: bool = False) -> int:
        """Number what has committed since the last round; return how many.

        With ``wait`` the round waits for a running round instead of leaving
        what is new to it.
        """
        self._require_log()
        if not wait and not self._has_unlogged():
            return 0
        with self._transaction(write=True) as cur:
            if not self._sequencer_lock(cur, wait):
                return 0
            cur.execute(_PENDING)
            found_rows = cur.fetchall()
            pending = [row for row in found_rows if row[1] is not None]
            self._unmark(
                cur, [(row[0], row[2]) for row in found_rows if row[1] is None]
            )
            if not pending:
                return 0
            cur.execute(_LAST_RANGE)
            last = cur.fetchone()
            position = (last[0] + last[3] - last[2] if last else 0) + 1
            ranges = []
            for key, first, head in pending:
                ranges.append((position, key, first, head))
                position += head - first + 1
            self._record_ranges(cur, ranges, last)
            self._notify_log(cur)
        return sum(last - first + 1 for _, _, first, last in ranges)

    def _record_ranges(
        self, cur: Any, ranges: list[tuple[int, int, int, int]], last: Any
    ) -> None:
        """Store the round's ranges; a range that continues the last one (same
        execution, next sequence) extends it instead: one busy execution
        followed closely costs one row, not one per round."""
        updates = [(key, head) for _, key, _, head in ranges]
        if last is not None and (last[1], last[3] + 1) == ranges[0][1:3]:
            cur.execute(
                self._q("UPDATE journal_log SET last_seq = ? WHERE position = ?"),
                (ranges[0][3], last[0]),
            )
            ranges = ranges[1:]
        cur.executemany(
            self._q(
                "INSERT INTO journal_log (position, exec_key, first_seq, last_seq) "
                "VALUES (?, ?, ?, ?)"
            ),
            ranges,
        )
        cur.executemany(
            self._q(
                "INSERT INTO journal_log_heads (exec_key, logged_seq) VALUES (?, ?) "
                "ON CONFLICT (exec_key) DO UPDATE SET logged_seq = excluded.logged_seq"
            ),
            updates,
        )
        self._unmark(cur, updates)

    def _unmark(self, cur: Any, marks: list[tuple[int, int]]) -> None:
        """Remove marks that still hold the head the round read (a writer
        that moved one since keeps it for the next round)."""
        cur.executemany(
            self._q(
                "DELETE FROM journal_log_marks WHERE exec_key = ? AND head_seq = ?"
            ),
            marks,
        )

    def _has_unlogged(self) -> bool:
        with self._transaction(write=False) as cur:
            cur.execute("SELECT 1 FROM journal_log_marks LIMIT 1")
            return cur.fetchone() is not None

    @retried
    def unnumbered(
        self, *, tenant_id: str | None = None, journal_only: bool = False
    ) -> int:
        """How many committed events the next round would number (see
        `journal.log.LogStore.unnumbered`); reads only."""
        self._require_log()
        sql = _UNNUMBERED
        params: list[Any] = []
        if tenant_id is not None:
            sql += " AND x.tenant_id = ?"
            params.append(tenant_id)
        if journal_only:
            sql += " AND e.topic IS NULL"
        with self._transaction(write=False) as cur:
            cur.execute(self._q(sql), params)
            found = cur.fetchone()
        return int(found[0])

    @retried
    def read_log(
        self,
        after: int,
        limit: int,
        *,
        stop: int | None = None,
        tenant_id: str | None = None,
        topics: Sequence[str] = (),
        journal_only: bool = False,
    ) -> list[LogEntry]:
        """Entries with positions above `after` (see `journal.store.Store`)."""
        self._require_log()
        sql = _ENTRIES
        params: list[Any] = [after + 1, after]
        if stop is not None:
            sql += " AND l.position + e.seq - l.first_seq <= ?"
            params.append(stop)
        if tenant_id is not None:
            sql += " AND x.tenant_id = ?"
            params.append(tenant_id)
        if journal_only:
            sql += " AND e.topic IS NULL"
        if topics:
            sql += f" AND e.topic IN ({', '.join('?' * len(topics))})"
            params.extend(topics)
        with self._transaction(write=False) as cur:
            cur.execute(self._q(sql + " ORDER BY pos LIMIT ?"), [*params, limit])
            fetched = cur.fetchall()
        return [_entry(row) for row in fetched]

    @retried
    def max_position(self) -> int | None:
        """The largest position handed out, or None before the first."""
        self._require_log()
        with self._transaction(write=False) as cur:
            cur.execute(_LAST_POSITION)
            found = cur.fetchone()
        return None if found is None else int(found[0])

    @retried
    def position_of(self, execution_id: str, seq: int) -> int | None:
        """The position of one event, if it has been numbered."""
        self._require_log()
        with self._transaction(write=False) as cur:
            cur.execute(
                self._q(
                    "SELECT l.position + ? - l.first_seq FROM journal_log l "
                    "JOIN journal_executions x ON x.exec_key = l.exec_key "
                    "WHERE x.execution_id = ? AND l.first_seq <= ? AND l.last_seq >= ?"
                ),
                (seq, execution_id, seq, seq),
            )
            found = cur.fetchone()
        return None if found is None else int(found[0])

    def insert_tracking(self, application_name: str, notification_id: int) -> None:
        """Record that `application_name` has processed up to `notification_id`."""
        self._require_log()
        with self._transaction(write=True) as cur:
            self._insert_tracking(cur, application_name, notification_id)

    def _insert_tracking(
        self, cur: Any, application_name: str, notification_id: int
    ) -> None:
        cur.execute(
            self._q(
                "INSERT INTO journal_tracking (application_name, notification_id) "
                "VALUES (?, ?) ON CONFLICT (application_name) DO UPDATE "
                "SET notification_id = excluded.notification_id "
                "WHERE journal_tracking.notification_id < excluded.notification_id "
                "RETURNING notification_id"
            ),
            (application_name, notification_id),
        )
        if cur.fetchone() is None:
            raise ConflictError(
                f"{application_name} has already processed past {notification_id}"
            )

    @retried
    def max_tracking_id(self, application_name: str) -> int | None:
        """The largest position `application_name` recorded, or None."""
        self._require_log()
        with self._transaction(write=False) as cur:
            cur.execute(
                self._q(
                    "SELECT notification_id FROM journal_tracking "
                    "WHERE application_name = ?"
                ),
                (application_name,),
            )
            found = cur.fetchone()
        return None if found is None else int(found[0])


def _entry(row: Sequence[Any]) -> LogEntry:
    position, tenant_id, execution_id, seq, topic, payload, link = row
    return LogEntry(
        int(position),
        tenant_id,
        execution_id,
        int(seq),
        topic,
        unpack(bytes(payload)),
        bytes(link),
    )
