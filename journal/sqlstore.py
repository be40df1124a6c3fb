"""SQL backends: the shared row layout and statements.

One module per backend holds its dialect, DDL and connection handling:
`journal.sqlite_store` (the embedded default) and `journal.postgres_store`.

Row layout (chosen for the storage and read targets of docs/design.md §12;
the layout itself is described in §6):

* ``journal_executions``: one row per execution, keyed by a small integer
  ``exec_key``; holds the text id once, the tenant, the index columns and
  the chain head. Listing reads only this table.
* ``journal_events``: ``(exec_key, seq)`` primary key, the payload bytes
  exactly as hashed, the 32-byte link, and a topic only for events written
  through eventsourcing's generic interface (ours carry their tag inside the
  payload). SQLite stores it WITHOUT ROWID, so the key is the row.
* ``journal_snapshots`` and ``journal_schemas``.
* ``journal_meta``: the layout version (``layout = 2``) and whether the
  store holds signed chains (``signed``). A first-round store (layout 1)
  has no such table and no ``genesis``/``key_id``/``head_mac`` columns: it
  is read as it is and written only after ``journal migrate``.

Append-only in the database: triggers refuse UPDATE and DELETE of event
rows, DELETE of index rows, and any UPDATE of an index row other than the
append path advancing its head to a stored event's link. Snapshots (a
cache) and schema documents are not evidence and stay outside.

Appends lock the execution's index row (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: ``SELECT … FOR UPDATE``), so writers of *different* executions
never wait on one another in PostgreSQL (no table lock, unlike
eventsourcing's stock recorder, which locks the table for gap-free
notification ids we do not need).

Reads and idempotent writes (snapshot and schema upserts) are
`journal.retry.retried` after a transient failure; appends go through
`journal.retry.append_with_retry`.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from journal.census import Census, Orphan, first_event_tenant
from journal.errors import ConflictError, StoreError
from journal.leases import Lease
from journal.packing import pack_many, unpack
from journal.retry import retried
from journal.sql_leases import SQLLeases
from journal.sql_ledger import SQLLedger
from journal.sql_log import SQLLog
from journal.store import (
    Head,
    History,
    ListFilter,
    Row,
    Store,
    Stored,
    Summary,
    advanced,
    generic_summary,
    plan_append,
    plan_insert_stored,
    sign_imported,
)

LAYOUT = 2  # journal_meta's "layout": 1 = the first round (no meta table)
_V1_COLUMNS = (
    "execution_id, tenant_id, state, flow, parent_id, schema_version, "
    "created_at, started_at, ended_at, updated_at, step_count, failed_steps, "
    "output, error, alg, head_seq, head_hash"
)
_SUMMARY_COLUMNS = _V1_COLUMNS + ", genesis, key_id, head_mac"
_COLUMN_COUNT = 20
_PUT_SCHEMA = (
    "INSERT INTO journal_schemas (schema_hash, document) VALUES (?, ?) "
    "ON CONFLICT (schema_hash) DO NOTHING"
)
_TIME_FIELDS = ("created_at", "started_at", "ended_at", "updated_at")
INSERT_EVENT = (
    "INSERT INTO journal_events (exec_key, seq, topic, payload, hash) "
    "VALUES (?, ?, ?, ?, ?)"
)
_UPDATE_EXECUTION = (
    "UPDATE journal_executions SET "
    + ", ".join(f"{c.strip()} = ?" for c in _SUMMARY_COLUMNS.split(",")[2:])
    + " WHERE exec_key = ?"
)


class SQLStore(SQLLeases, SQLLog, SQLLedger, Store):
    """Everything the SQL backends share; subclasses supply the dialect."""

    P = "?"  # parameter placeholder
    LOCK_ROW = ""  # suffix that locks the selected index row
    _conn: Any
    _lock: threading.RLock
    layout: int = LAYOUT  # 1: a first-round store, read as it is
    _signed_seen: bool = False

    @property
    def _columns(self) -> str:
        if self.layout >= LAYOUT:
            return _SUMMARY_COLUMNS
        return _V1_COLUMNS + ", NULL, NULL, NULL"

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """A write transaction; refused on a first-round store."""
        self._require_layout(
            "run `journal migrate` as its owner before writing (reading needs "
            "no migration)"
        )
        with self._transaction(write=True) as cur:
            yield cur

    def _require_layout(self, detail: str) -> None:
        if self.layout < LAYOUT:
            raise StoreError(
                f"{redact_url(self.url)} is a first-round journal (layout "
                f"{self.layout}): {detail}"
            )

    @contextmanager
    def _snapshot(self) -> Iterator[Any]:
        """A read transaction whose statements all see one snapshot."""
        with self._transaction(write=False) as cur:
            yield cur

    # --- dialect hooks -------------------------------------------------

    @abstractmethod
    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Any]:
        """Yield a cursor inside one transaction; map driver errors."""

    def _time_in(self, value: datetime | None) -> Any:
        return value

    def _time_out(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]

    def _q(self, sql: str) -> str:
        return sql.replace("?", self.P)

    # --- helpers -------------------------------------------------------

    def _summary_params(self, s: Summary) -> list[Any]:
        return [
            s.execution_id,
            s.tenant_id,
            s.state,
            s.flow,
            s.parent_id,
            s.schema_version,
            *(self._time_in(getattr(s, name)) for name in _TIME_FIELDS),
            s.step_count,
            s.failed_steps,
            s.output,
            s.error,
            s.alg,
            s.head_seq,
            s.head_hash,
            s.genesis,
            s.key_id,
            s.head_mac,
        ]

    def _summary_from(self, row: Sequence[Any]) -> Summary:
        values = list(row)
        for index in range(6, 10):
            values[index] = self._time_out(values[index])
        values[12] = bytes(values[12]) if values[12] is not None else None
        values[13] = bytes(values[13]) if values[13] is not None else None
        values[16] = _blob(values[16])
        values[17] = None if values[17] is None else _blob(values[17])
        values[19] = None if values[19] is None else _blob(values[19])
        return Summary(*values)

    def _head(self, cur: Any, execution_id: str) -> tuple[int, Head] | None:
        """The execution's key and stored head, locking its index row."""
        cur.execute(
            self._q(
                "SELECT exec_key, tenant_id, alg, head_seq, head_hash, state, "
                "genesis, key_id FROM journal_executions WHERE execution_id = ?"
                + self.LOCK_ROW
            ),
            (execution_id,),
        )
        found = cur.fetchone()
        if found is None:
            return None
        key, tenant, alg, seq, link, state, genesis, key_id = found
        genesis = None if genesis is None else _blob(genesis)
        return key, Head(tenant, alg, seq, _blob(link), state, genesis, key_id)

    def _store_signed(self, cur: Any) -> bool:
        """Whether any chain of this store was signed (``journal_meta``)."""
        if not self._signed_seen:
            cur.execute("SELECT 1 FROM journal_meta WHERE name = 'signed'")
            self._signed_seen = cur.fetchone() is not None
        return self._signed_seen

    def _mark_signed(self, cur: Any, summary: Summary) -> None:
        if summary.key_id is not None and not self._signed_seen:
            cur.execute(
                self._q(
                    "INSERT INTO journal_meta (name, value) VALUES ('signed', ?) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                (summary.key_id,),
            )
            self._signed_seen = True

    def _signing_check(self, cur: Any) -> bool:
        """`store_signed` for a write: only asked when it can matter."""
        if not self.keyring.unsigned_write_needs_unsigned_store:
            return False
        return self._store_signed(cur)

    def _insert_execution(self, cur: Any, summary: Summary) -> int:
        marks = ", ".join([self.P] * _COLUMN_COUNT)
        cur.execute(
            f"INSERT INTO journal_executions ({_SUMMARY_COLUMNS}) VALUES ({marks}) "
            "RETURNING exec_key",
            self._summary_params(summary),
        )
        return int(cur.fetchone()[0])

    def _update_execution(self, cur: Any, key: int, summary: Summary) -> None:
        params = self._summary_params(summary)[2:]  # not the id, not the tenant
        cur.execute(self._q(_UPDATE_EXECUTION), [*params, key])

    def _insert_rows(
        self,
        cur: Any,
        key: int,
        rows: Sequence[Row],
        topics: Sequence[str | None],
        *,
        json: bool = False,
    ) -> None:
        packed = pack_many([r.payload for r in rows], json=json)
        self._insert_packed(cur, key, rows, topics, packed)
        if rows:  # journal.sql_log numbers them later
            self._mark_unlogged(cur, key, rows[-1].seq)

    def _insert_packed(
        self,
        cur: Any,
        key: int,
        rows: Sequence[Row],
        topics: Sequence[str | None],
        packed: Sequence[bytes],
    ) -> None:
        """Insert `rows` under index key `key`, storing ``packed[i]`` (the
        packed payload) for ``rows[i]``; a backend may batch differently."""
        cur.executemany(
            self._q(INSERT_EVENT),
            [
                (key, seq, topic, data, link)
                for (seq, _, link), topic, data in zip(
                    rows, topics, packed, strict=True
                )
            ],
        )

    def _key(self, cur: Any, execution_id: str, tenant_id: str) -> int | None:
        cur.execute(
            self._q(
                "SELECT exec_key FROM journal_executions "
                "WHERE execution_id = ? AND tenant_id = ?"
            ),
            (execution_id, tenant_id),
        )
        found = cur.fetchone()
        return None if found is None else int(found[0])

    # --- Store ---------------------------------------------------------

    def append(
        self,
        summary: Summary,
        expected_seq: int,
        payloads: Sequence[bytes],
        topics: Sequence[str | None] | None = None,
        *,
        lease: Lease | None = None,
    ) -> Summary:
        known = self._append_known_head(summary, expected_seq, payloads, topics, lease)
        if known is not None:
            return known
        with self._write() as cur:
            self._check_fence(cur, lease)
            found = self._head(cur, summary.execution_id)
            head = None if found is None else found[1]
            rows, new = plan_append(
                self.keyring,
                summary,
                expected_seq,
                head,
                payloads,
                store_signed=self._signing_check(cur),
            )
            # Rows first: the index trigger checks the new head is a stored link.
            key = self._insert_execution(cur, new) if found is None else found[0]
            # Our events, encoded by journal.codec: compact JSON (topics unset).
            self._insert_rows(
                cur, key, rows, topics or [None] * len(rows), json=topics is None
            )
            if found is not None:
                self._update_execution(cur, key, new)
            self._mark_signed(cur, new)
        self._remember_head(key, new)
        return new

    def _append_known_head(
        self,
        summary: Summary,
        expected_seq: int,
        payloads: Sequence[bytes],
        topics: Sequence[str | None] | None,
        lease: Lease | None,
    ) -> Summary | None:
        """A backend's shorter path for an append after a head it knows;
        None: take the transaction in `append`."""
        return None

    def _remember_head(self, key: int, summary: Summary) -> None:
        """`summary`'s head was just stored under index key `key`."""

    @retried
    def get_summary(self, execution_id: str, tenant_id: str) -> Summary | None:
        with self._transaction(write=False) as cur:
            found = self._summary_row(cur, execution_id, tenant_id)
        return None if found is None else self._summary_from(found[1:])

    def _summary_row(self, cur: Any, execution_id: str, tenant_id: str) -> Any:
        cur.execute(
            self._q(
                f"SELECT exec_key, {self._columns} FROM journal_executions "
                "WHERE execution_id = ? AND tenant_id = ?"
            ),
            (execution_id, tenant_id),
        )
        return cur.fetchone()

    @retried
    def load_history(self, execution_id: str, tenant_id: str) -> History | None:
        with self._snapshot() as cur:
            found = self._summary_row(cur, execution_id, tenant_id)
            if found is None:
                return None
            cur.execute(
                self._q(
                    "SELECT seq, payload, hash FROM journal_events "
                    "WHERE exec_key = ? ORDER BY seq"
                ),
                (found[0],),
            )
            fetched = cur.fetchall()
        return History(self._summary_from(found[1:]), _rows(fetched))

    @retried
    def last_links(
        self, tenant_id: str, execution_ids: Sequence[str]
    ) -> dict[str, tuple[int, bytes]]:
        if not execution_ids:
            return {}
        marks = ", ".join([self.P] * len(execution_ids))
        sql = (
            "SELECT x.execution_id, e.seq, e.hash FROM journal_executions x "
            "JOIN journal_events e ON e.exec_key = x.exec_key AND e.seq = ("
            "SELECT max(seq) FROM journal_events m WHERE m.exec_key = x.exec_key) "
            f"WHERE x.tenant_id = {self.P} AND x.execution_id IN ({marks})"
        )
        with self._snapshot() as cur:
            cur.execute(sql, [tenant_id, *execution_ids])
            return {i: (int(seq), _blob(link)) for i, seq, link in cur.fetchall()}

    @retried
    def load_rows(
        self, execution_id: str, tenant_id: str, after: int = 0, upto: int | None = None
    ) -> list[Row]:
        fetched = self._select_rows(
            "e.seq, e.payload, e.hash", execution_id, tenant_id, after, upto
        )
        return _rows(fetched)

    def _select_rows(
        self,
        columns: str,
        execution_id: str,
        tenant_id: str,
        after: int | None,
        upto: int | None,
    ) -> list[Any]:
        """Event rows of one execution of this tenant, in sequence order
        (one statement: the tenant check is part of the join)."""
        sql = (
            f"SELECT {columns} FROM journal_events e "
            "JOIN journal_executions x ON x.exec_key = e.exec_key "
            "WHERE x.execution_id = ? AND x.tenant_id = ?"
        )
        params: list[Any] = [execution_id, tenant_id]
        if after is not None:
            sql += " AND e.seq > ?"
            params.append(after)
        if upto is not None:
            sql += " AND e.seq <= ?"
            params.append(upto)
        with self._transaction(write=False) as cur:
            cur.execute(self._q(sql + " ORDER BY e.seq"), params)
            return list(cur.fetchall())

    @retried
    def list_summaries(self, tenant_id: str, where: ListFilter) -> list[Summary]:
        sql = f"SELECT {self._columns} FROM journal_executions WHERE tenant_id = ?"
        params: list[Any] = [tenant_id]
        if where.state is not None:
            sql += " AND (state = ? OR state LIKE ?)"
            params += [where.state, where.state + "(%"]
        for column, value, op in (
            ("flow", where.flow, "="),
            ("parent_id", where.parent_id, "="),
            ("created_at", self._time_in(where.since), ">="),
            ("created_at", self._time_in(where.until), "<"),
        ):
            if value is not None:
                sql += f" AND {column} {op} ?"
                params.append(value)
        sql += " ORDER BY created_at DESC, execution_id DESC"
        if where.limit is not None:
            sql += " LIMIT ?"
            params.append(where.limit)
        with self._transaction(write=False) as cur:
            cur.execute(self._q(sql), params)
            return [self._summary_from(row) for row in cur.fetchall()]

    @retried
    def census(self, tenant_id: str) -> Census:
        # From the events' own key to the executions row by its primary key:
        # neither the time index nor the tenant index is consulted.
        found = (
            "SELECT k.exec_key, k.events, x.execution_id, x.tenant_id FROM "
            "(SELECT exec_key, count(*) AS events FROM journal_events "
            "GROUP BY exec_key) k "
            "LEFT JOIN journal_executions x ON x.exec_key = k.exec_key "
            "ORDER BY k.exec_key"
        )
        first = "SELECT payload FROM journal_events WHERE exec_key = ? AND seq = 1"
        ids: list[str] = []
        orphans: list[Orphan] = []
        with self._snapshot() as cur:
            cur.execute(found)
            for key, events, execution_id, owner in cur.fetchall():
                if execution_id is not None:
                    if owner == tenant_id:
                        ids.append(str(execution_id))
                    continue
                cur.execute(self._q(first), [key])
                row = cur.fetchone()
                tenant = (
                    None if row is None else first_event_tenant(unpack(_blob(row[0])))
                )
                if tenant in (None, tenant_id):
                    orphans.append(Orphan(int(key), tenant, int(events)))
        return Census(tuple(ids), tuple(orphans))

    @retried
    def save_snapshot(
        self, execution_id: str, tenant_id: str, seq: int, state: bytes
    ) -> None:
        with self._write() as cur:
            key = self._key(cur, execution_id, tenant_id)
            if key is not None:
                cur.execute(
                    self._q(
                        "INSERT INTO journal_snapshots (exec_key, seq, state) "
                        "VALUES (?, ?, ?) ON CONFLICT (exec_key, seq) DO UPDATE "
                        "SET state = excluded.state"
                    ),
                    (key, seq, state),
                )
                cur.execute(
                    self._q(
                        "DELETE FROM journal_snapshots WHERE exec_key = ? AND seq <> ?"
                    ),
                    (key, seq),
                )

    @retried
    def load_snapshot(
        self, execution_id: str, tenant_id: str, upto: int | None = None
    ) -> tuple[int, bytes] | None:
        sql = (
            "SELECT s.seq, s.state FROM journal_snapshots s "
            "JOIN journal_executions x ON x.exec_key = s.exec_key "
            "WHERE x.execution_id = ? AND x.tenant_id = ?"
        )
        params: list[Any] = [execution_id, tenant_id]
        if upto is not None:
            sql += " AND s.seq <= ?"
            params.append(upto)
        with self._transaction(write=False) as cur:
            cur.execute(self._q(sql + " ORDER BY s.seq DESC LIMIT 1"), params)
            found = cur.fetchone()
        return None if found is None else (int(found[0]), bytes(found[1]))

    @retried
    def put_schema(self, schema_hash: str, document: bytes) -> None:
        with self._write() as cur:
            cur.execute(self._q(_PUT_SCHEMA), (schema_hash, document))

    @retried
    def get_schema(self, schema_hash: str) -> bytes | None:
        with self._transaction(write=False) as cur:
            cur.execute(
                self._q("SELECT document FROM journal_schemas WHERE schema_hash = ?"),
                (schema_hash,),
            )
            found = cur.fetchone()
        return None if found is None else bytes(found[0])

    def import_histories(
        self, histories: Sequence[History], schemas: Mapping[str, bytes] | None = None
    ) -> list[str]:
        written = []
        with self._write() as cur:
            for schema_hash, document in (schemas or {}).items():
                cur.execute(self._q(_PUT_SCHEMA), (schema_hash, document))
            signed = self._signing_check(cur)
            for history in histories:
                summary = history.summary
                found = self._head(cur, summary.execution_id)
                if found is not None:
                    self._check_same(cur, *found, history)
                    continue
                summary = sign_imported(self.keyring, summary, signed)
                key = self._insert_execution(cur, summary)
                self._insert_rows(cur, key, history.rows, [None] * len(history.rows))
                self._mark_signed(cur, summary)
                written.append(summary.execution_id)
        return written

    def _check_same(self, cur: Any, key: int, head: Head, history: History) -> None:
        last = history.rows[-1] if history.rows else None
        same_head = last is not None and (head.seq, head.hash) == (last.seq, last.hash)
        if head.tenant_id == history.summary.tenant_id and same_head:
            cur.execute(
                self._q(
                    "SELECT seq, payload, hash FROM journal_events "
                    "WHERE exec_key = ? ORDER BY seq"
                ),
                (key,),
            )
            stored = [Row(s, unpack(_blob(p)), _blob(h)) for s, p, h in cur.fetchall()]
            if stored == history.rows:
                return
        raise ConflictError(
            f"{history.summary.execution_id}: a different history already exists "
            "under this id"
        )

    def _insert_stored(
        self, tenant_id: str, by_originator: dict[str, list[Stored]]
    ) -> None:
        with self._write() as cur:
            signed = self._signing_check(cur)
            for execution_id, events in by_originator.items():
                found = self._head(cur, execution_id)
                head = None if found is None else found[1]
                rows = plan_insert_stored(
                    self.keyring, execution_id, tenant_id, head, events
                )
                if found is None:
                    summary = generic_summary(
                        self.keyring, execution_id, tenant_id, rows, store_signed=signed
                    )
                    key = self._insert_execution(cur, summary)
                    self._insert_rows(cur, key, rows, [e.topic for e in events])
                else:
                    key = found[0]
                    self._insert_rows(cur, key, rows, [e.topic for e in events])
                    current = self._summary_row(cur, execution_id, tenant_id)
                    summary = advanced(
                        self.keyring,
                        self._summary_from(current[1:]),
                        rows,
                        store_signed=signed,
                    )
                    self._update_execution(cur, key, summary)
                self._mark_signed(cur, summary)

    @retried
    def _select_stored(
        self, execution_id: str, tenant_id: str, gt: int | None, lte: int | None
    ) -> list[tuple[int, str | None, bytes]]:
        fetched = self._select_rows(
            "e.seq, e.topic, e.payload", execution_id, tenant_id, gt, lte
        )
        return [(seq, topic, unpack(_blob(data))) for seq, topic, data in fetched]


def _rows(fetched: Sequence[Any]) -> list[Row]:
    try:  # the common case: the driver hands back bytes
        return [Row(seq, unpack(data), link) for seq, data, link in fetched]
    except TypeError:  # someone wrote TEXT into a BLOB column
        return [
            Row(seq, unpack(_blob(data)), _blob(link)) for seq, data, link in fetched
        ]


def _blob(value: Any) -> bytes:
    """Stored bytes as bytes, even after someone wrote TEXT into the column
    (SQL's ``replace()`` does): the chain check then reports the row."""
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else bytes(value)


def redact_url(url: str) -> str:
    """Hide a password in a URL before printing it."""
    head, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{head}{sep}{user}@{host}" if ":" in credentials else url
