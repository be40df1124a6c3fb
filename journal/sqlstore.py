"""SQL backends: the shared row layout and transactions, SQLite and PostgreSQL.

Row layout (chosen for DESIGN.md §11's storage and read targets):

* ``journal_executions``: one row per execution, keyed by a small integer
  ``exec_key``; holds the text id once, the tenant, the index columns and
  the chain head. Listing reads only this table.
* ``journal_events``: ``(exec_key, seq)`` primary key, the payload bytes
  exactly as hashed, the 32-byte link, and a topic only for events written
  through eventsourcing's generic interface (ours carry their tag inside the
  payload). SQLite stores it WITHOUT ROWID, so the key is the row.
* ``journal_snapshots`` and ``journal_schemas``.

Appends lock the execution's index row (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: ``SELECT … FOR UPDATE``), so writers of *different* executions
never wait on one another in PostgreSQL (no table lock, unlike
eventsourcing's stock recorder, which locks the table for gap-free
notification ids we do not need).
"""

from __future__ import annotations

import sqlite3
import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from journal.chain import Hasher
from journal.errors import ConflictError, StoreError
from journal.packing import pack, unpack
from journal.store import (
    Head,
    History,
    ListFilter,
    Row,
    Store,
    Stored,
    Summary,
    generic_summary,
    plan_append,
    plan_insert_stored,
)

_SUMMARY_COLUMNS = (
    "execution_id, tenant_id, state, flow, parent_id, schema_version, "
    "created_at, started_at, ended_at, updated_at, step_count, failed_steps, "
    "output, error, alg, head_seq, head_hash"
)
_TIME_FIELDS = ("created_at", "started_at", "ended_at", "updated_at")
_UPDATE_EXECUTION = (
    "UPDATE journal_executions SET "
    + ", ".join(f"{c.strip()} = ?" for c in _SUMMARY_COLUMNS.split(",")[2:])
    + " WHERE exec_key = ?"
)


class SQLStore(Store):
    """Everything the SQL backends share; subclasses supply the dialect."""

    P = "?"  # parameter placeholder
    LOCK_ROW = ""  # suffix that locks the selected index row
    _conn: Any
    _lock: threading.RLock

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
        ]

    def _summary_from(self, row: Sequence[Any]) -> Summary:
        values = list(row)
        for index in range(6, 10):
            values[index] = self._time_out(values[index])
        values[12] = bytes(values[12]) if values[12] is not None else None
        values[13] = bytes(values[13]) if values[13] is not None else None
        values[16] = bytes(values[16])
        return Summary(*values)

    def _head(self, cur: Any, execution_id: str) -> tuple[int, Head] | None:
        """The execution's key and stored head, locking its index row."""
        cur.execute(
            self._q(
                "SELECT exec_key, tenant_id, alg, head_seq, head_hash, state "
                "FROM journal_executions WHERE execution_id = ?" + self.LOCK_ROW
            ),
            (execution_id,),
        )
        found = cur.fetchone()
        if found is None:
            return None
        return found[0], Head(found[1], found[2], found[3], _blob(found[4]), found[5])

    def _insert_execution(self, cur: Any, summary: Summary) -> int:
        marks = ", ".join([self.P] * 17)
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
        cur.executemany(
            self._q(
                "INSERT INTO journal_events (exec_key, seq, topic, payload, hash) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            [
                (key, r.seq, topic, pack(r.payload, json=json), r.hash)
                for r, topic in zip(rows, topics, strict=True)
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
    ) -> Summary:
        with self._transaction(write=True) as cur:
            found = self._head(cur, summary.execution_id)
            head = None if found is None else found[1]
            rows, new = plan_append(self.hasher, summary, expected_seq, head, payloads)
            if found is None:
                key = self._insert_execution(cur, new)
            else:
                key = found[0]
                self._update_execution(cur, key, new)
            # Our events, encoded by journal.codec: compact JSON (topics unset).
            self._insert_rows(
                cur, key, rows, topics or [None] * len(rows), json=topics is None
            )
        return new

    def get_summary(self, execution_id: str, tenant_id: str) -> Summary | None:
        with self._transaction(write=False) as cur:
            cur.execute(
                self._q(
                    f"SELECT {_SUMMARY_COLUMNS} FROM journal_executions "
                    "WHERE execution_id = ? AND tenant_id = ?"
                ),
                (execution_id, tenant_id),
            )
            found = cur.fetchone()
        return None if found is None else self._summary_from(found)

    def load_rows(
        self, execution_id: str, tenant_id: str, after: int = 0, upto: int | None = None
    ) -> list[Row]:
        fetched = self._select_rows(
            "e.seq, e.payload, e.hash", execution_id, tenant_id, after, upto
        )
        try:  # the common case: the driver hands back bytes
            return [Row(seq, unpack(data), link) for seq, data, link in fetched]
        except TypeError:  # someone wrote TEXT into a BLOB column
            return [
                Row(seq, unpack(_blob(data)), _blob(link))
                for seq, data, link in fetched
            ]

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

    def list_summaries(self, tenant_id: str, where: ListFilter) -> list[Summary]:
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM journal_executions WHERE tenant_id = ?"
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

    def save_snapshot(
        self, execution_id: str, tenant_id: str, seq: int, state: bytes
    ) -> None:
        with self._transaction(write=True) as cur:
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

    def put_schema(self, schema_hash: str, document: bytes) -> None:
        with self._transaction(write=True) as cur:
            cur.execute(
                self._q(
                    "INSERT INTO journal_schemas (schema_hash, document) VALUES (?, ?) "
                    "ON CONFLICT (schema_hash) DO NOTHING"
                ),
                (schema_hash, document),
            )

    def get_schema(self, schema_hash: str) -> bytes | None:
        with self._transaction(write=False) as cur:
            cur.execute(
                self._q("SELECT document FROM journal_schemas WHERE schema_hash = ?"),
                (schema_hash,),
            )
            found = cur.fetchone()
        return None if found is None else bytes(found[0])

    def import_histories(self, histories: Sequence[History]) -> list[str]:
        written = []
        with self._transaction(write=True) as cur:
            for history in histories:
                summary = history.summary
                found = self._head(cur, summary.execution_id)
                if found is not None:
                    self._check_same(cur, *found, history)
                    continue
                key = self._insert_execution(cur, summary)
                self._insert_rows(cur, key, history.rows, [None] * len(history.rows))
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
        with self._transaction(write=True) as cur:
            for execution_id, events in by_originator.items():
                found = self._head(cur, execution_id)
                head = None if found is None else found[1]
                rows = plan_insert_stored(
                    self.hasher, execution_id, tenant_id, head, events
                )
                if found is None:
                    summary = generic_summary(
                        self.hasher, execution_id, tenant_id, rows
                    )
                    key = self._insert_execution(cur, summary)
                else:
                    key = found[0]
                    cur.execute(
                        self._q(
                            "UPDATE journal_executions SET head_seq = ?, head_hash = ? "
                            "WHERE exec_key = ?"
                        ),
                        (rows[-1].seq, rows[-1].hash, key),
                    )
                self._insert_rows(cur, key, rows, [e.topic for e in events])

    def _select_stored(
        self, execution_id: str, tenant_id: str, gt: int | None, lte: int | None
    ) -> list[tuple[int, str | None, bytes]]:
        fetched = self._select_rows(
            "e.seq, e.topic, e.payload", execution_id, tenant_id, gt, lte
        )
        return [(seq, topic, unpack(_blob(data))) for seq, topic, data in fetched]


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_executions (
    exec_key INTEGER PRIMARY KEY,
    execution_id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    state TEXT NOT NULL,
    flow TEXT,
    parent_id TEXT,
    schema_version TEXT,
    created_at TEXT,
    started_at TEXT,
    ended_at TEXT,
    updated_at TEXT,
    step_count INTEGER NOT NULL DEFAULT 0,
    failed_steps INTEGER NOT NULL DEFAULT 0,
    output BLOB,
    error BLOB,
    alg TEXT NOT NULL,
    head_seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_executions_by_time
    ON journal_executions (tenant_id, created_at);
CREATE INDEX IF NOT EXISTS journal_executions_by_state
    ON journal_executions (tenant_id, state, created_at);
CREATE INDEX IF NOT EXISTS journal_executions_by_flow
    ON journal_executions (tenant_id, flow, created_at);
CREATE TABLE IF NOT EXISTS journal_events (
    exec_key INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT,
    payload BLOB NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (exec_key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal_snapshots (
    exec_key INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (exec_key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal_schemas (
    schema_hash TEXT PRIMARY KEY,
    document BLOB NOT NULL
);
"""


class SQLiteStore(SQLStore):
    """The embedded default: one SQLite file in WAL mode, durable appends.

    ``synchronous=FULL``: an append has reached the disk before it returns.
    Writers across processes serialise on ``BEGIN IMMEDIATE`` (with a busy
    timeout), then re-check the head, so a stale writer gets ConflictError.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        hasher: Hasher | None = None,
        url: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.url = url or f"sqlite:///{self.path}"
        self.hasher = hasher or Hasher.from_env()
        self._lock = threading.RLock()
        if not create and not self.path.exists():
            raise StoreError(f"no journal at {self.path} (nothing was created)")
        if create and self.path.parent and not self.path.parent.exists():
            raise StoreError(
                f"cannot create {self.path}: no directory {self.path.parent}"
            )
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            self._conn.execute("PRAGMA busy_timeout = 60000")
            if create:
                self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            if create:
                self._conn.executescript(_SQLITE_SCHEMA)
            else:
                self._require_tables()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open journal {self.path}: {e}") from e

    def _require_tables(self) -> None:
        found = self._conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'journal_events'"
        ).fetchone()
        if not found or found[0] == 0:
            raise StoreError(f"{self.path} is not a journal (no journal tables)")

    def _time_in(self, value: datetime | None) -> Any:
        # Times are stored and compared as text: normalise aware times to UTC
        # so that text order is time order whatever zone a caller used.
        if value is None:
            return None
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()

    def _time_out(self, value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cur
                cur.execute("COMMIT")
            except BaseException as error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(error, sqlite3.IntegrityError):
                    raise ConflictError(f"conflicting write: {error}") from error
                if isinstance(error, sqlite3.DatabaseError):
                    raise StoreError(f"{self.path}: {error}") from error
                raise
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_POSTGRES_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS journal_executions (
    exec_key BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    state TEXT NOT NULL,
    flow TEXT,
    parent_id TEXT,
    schema_version TEXT,
    created_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ,
    step_count INTEGER NOT NULL DEFAULT 0,
    failed_steps INTEGER NOT NULL DEFAULT 0,
    output BYTEA,
    error BYTEA,
    alg TEXT NOT NULL,
    head_seq BIGINT NOT NULL,
    head_hash BYTEA NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS journal_executions_by_time "
    "ON journal_executions (tenant_id, created_at)",
    "CREATE INDEX IF NOT EXISTS journal_executions_by_state "
    "ON journal_executions (tenant_id, state, created_at)",
    "CREATE INDEX IF NOT EXISTS journal_executions_by_flow "
    "ON journal_executions (tenant_id, flow, created_at)",
    """CREATE TABLE IF NOT EXISTS journal_events (
    exec_key BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    topic TEXT,
    payload BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (exec_key, seq))""",
    """CREATE TABLE IF NOT EXISTS journal_snapshots (
    exec_key BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    state BYTEA NOT NULL,
    PRIMARY KEY (exec_key, seq))""",
    """CREATE TABLE IF NOT EXISTS journal_schemas (
    schema_hash TEXT PRIMARY KEY,
    document BYTEA NOT NULL)""",
]
_SCHEMA_LOCK_ID = 0x6A6F75726E616C  # "journal": serialises concurrent CREATEs


class PostgresStore(SQLStore):
    """The server for teams: many processes and machines append concurrently."""

    P = "%s"
    LOCK_ROW = " FOR UPDATE"

    def __init__(
        self, url: str, *, create: bool = True, hasher: Hasher | None = None
    ) -> None:
        import psycopg  # lazily: SQLite users never pay for it

        self._psycopg = psycopg
        self.url = url
        self.hasher = hasher or Hasher.from_env()
        self._lock = threading.RLock()
        try:
            self._conn = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreError(f"cannot reach PostgreSQL at {_redact(url)}: {e}") from e
        with self._transaction(write=True) as cur:
            if create:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
                for statement in _POSTGRES_SCHEMA:
                    cur.execute(statement)
            else:
                cur.execute("SELECT to_regclass('journal_events') IS NOT NULL")
                if not cur.fetchone()[0]:
                    raise StoreError(f"{_redact(url)} holds no journal tables")

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Any]:
        psycopg = self._psycopg
        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
            except psycopg.errors.UniqueViolation as e:
                raise ConflictError(f"conflicting write: {e}") from e
            except psycopg.Error as e:
                raise StoreError(f"PostgreSQL error: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _blob(value: Any) -> bytes:
    """Stored bytes as bytes, even after someone wrote TEXT into the column
    (SQL's ``replace()`` does): the chain check then reports the row."""
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else bytes(value)


def _redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    head, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{head}{sep}{user}@{host}" if ":" in credentials else url
