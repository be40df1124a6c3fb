"""The embedded default backend: one SQLite file (see `journal.sqlstore`)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

from journal.errors import ConflictError, StoreBusyError, StoreError
from journal.keys import Keyring
from journal.sql_leases import LEASES_DDL
from journal.sql_log import log_ddl
from journal.sqlstore import LAYOUT, SQLStore
from journal.store import Row

LOCK_TIMEOUT_ENV = "JOURNAL_LOCK_TIMEOUT_MS"
DEFAULT_LOCK_TIMEOUT_MS = 30_000
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

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
    head_hash BLOB NOT NULL,
    genesis BLOB,
    key_id TEXT,
    head_mac BLOB
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
# What `journal migrate` adds to a first-round store, and `init` to a new one
# (journal_leases: operational data for recovery, outside the chain).
_SQLITE_V2 = f"""
{LEASES_DDL};
CREATE TABLE IF NOT EXISTS journal_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS journal_events_no_update
BEFORE UPDATE ON journal_events
BEGIN SELECT RAISE(ABORT, 'journal_events is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS journal_events_no_delete
BEFORE DELETE ON journal_events
BEGIN SELECT RAISE(ABORT, 'journal_events is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS journal_executions_no_delete
BEFORE DELETE ON journal_executions
BEGIN SELECT RAISE(ABORT, 'journal_executions is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS journal_executions_append_only
BEFORE UPDATE ON journal_executions
WHEN NEW.exec_key IS NOT OLD.exec_key
    OR NEW.execution_id IS NOT OLD.execution_id
    OR NEW.tenant_id IS NOT OLD.tenant_id
    OR NEW.flow IS NOT OLD.flow
    OR NEW.parent_id IS NOT OLD.parent_id
    OR NEW.created_at IS NOT OLD.created_at
    OR NEW.alg IS NOT OLD.alg
    OR NEW.genesis IS NOT OLD.genesis
    OR NEW.head_seq <= OLD.head_seq
    OR NOT EXISTS (SELECT 1 FROM journal_events e WHERE e.exec_key = NEW.exec_key
                   AND e.seq = NEW.head_seq AND e.hash = NEW.head_hash)
BEGIN SELECT RAISE(ABORT,
    'journal_executions: only an append may change an index row'); END;
INSERT INTO journal_meta (name, value) VALUES ('layout', '2')
    ON CONFLICT (name) DO UPDATE SET value = excluded.value;
"""
# The store-wide log (journal.sql_log): created with a store, or on first open
# of one written before it.
_SQLITE_LOG = "".join(f"{statement};\n" for statement in log_ddl("INTEGER"))
_SQLITE_MIGRATE_COLUMNS = (
    "ALTER TABLE journal_executions ADD COLUMN genesis BLOB",
    "ALTER TABLE journal_executions ADD COLUMN key_id TEXT",
    "ALTER TABLE journal_executions ADD COLUMN head_mac BLOB",
)

#: Event rows per INSERT statement in a batched append: one statement for
#: many rows costs far less than one execution per row. The index key is
#: bound once (``?1``); 100 rows of at most 4 parameters stay under the
#: 999 that every SQLite version allows.
ROWS_PER_INSERT = 100


def _insert_many(rows: int, *, topics: bool) -> str:
    row = "(?1, ?, ?, ?, ?)" if topics else "(?1, ?, NULL, ?, ?)"
    return (
        "INSERT INTO journal_events (exec_key, seq, topic, payload, hash) VALUES "
        + ", ".join([row] * rows)
    )


_INSERT_MANY = _insert_many(ROWS_PER_INSERT, topics=False)
_INSERT_MANY_TOPICS = _insert_many(ROWS_PER_INSERT, topics=True)


class SQLiteStore(SQLStore):
    """The embedded default: one SQLite file in WAL mode, durable appends.

    ``synchronous=FULL``: an append has reached the disk before it returns.
    Writers across processes serialise on ``BEGIN IMMEDIATE``, then re-check
    the head, so a stale writer gets ConflictError. A writer waits at most
    `lock_timeout_ms` for another's lock (default ``JOURNAL_LOCK_TIMEOUT_MS``,
    else 30 s), then `StoreBusyError` says so.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        keyring: Keyring | None = None,
        url: str | None = None,
        lock_timeout_ms: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.lock_timeout_ms = (
            lock_timeout_ms if lock_timeout_ms is not None else lock_timeout_from_env()
        )
        self.url = url or f"sqlite:///{self.path}"
        self.keyring = keyring or Keyring.from_env()
        self._lock = threading.RLock()
        if not create and not self.path.exists():
            raise StoreError(f"no journal at {self.path} (nothing was created)")
        if create and self.path.parent and not self.path.parent.exists():
            raise StoreError(
                f"cannot create {self.path}: no directory {self.path.parent}"
            )
        self._copy_dir: Path | None = None
        target: str | Path = self.path
        if not create and not _writable(self.path):
            target, self._copy_dir = read_only_target(self.path)
            self.read_only = True
        try:
            self._conn = sqlite3.connect(
                target,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.lock_timeout_ms / 1000,
                uri=isinstance(target, str),
            )
            if create:
                self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self.layout = self._read_layout()
            if create:
                self._refuse_foreign_tables()
            if self.layout == 0 and create:
                self._conn.executescript(
                    f"BEGIN IMMEDIATE; {_SQLITE_SCHEMA} {_SQLITE_V2} "
                    f"{_SQLITE_LOG} COMMIT;"
                )
                self.layout = LAYOUT
            elif self.layout == 0:
                raise StoreError(f"{self.path} is not a journal (no journal tables)")
            elif self.layout >= LAYOUT:
                self._add_log_tables()
        except sqlite3.DatabaseError as e:
            if self._conn_open() and self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if _is_busy(e):
                raise self._busy() from e
            raise StoreError(f"cannot open journal {self.path}: {e}") from e

    def _busy(self) -> StoreBusyError:
        return StoreBusyError(
            f"{self.path}: the database is locked by another writer; waited "
            f"{self.lock_timeout_ms} ms (JOURNAL_LOCK_TIMEOUT_MS)"
        )

    def _add_log_tables(self) -> None:
        """A store written before the log gets its tables (a read-only file
        is left alone: it is not written to, so it has nothing to number)."""
        found = self._conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'journal_log_marks'"
        ).fetchone()
        if found[0] == 0:
            try:
                self._conn.executescript(f"BEGIN IMMEDIATE; {_SQLITE_LOG} COMMIT;")
            except sqlite3.OperationalError:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    def _conn_open(self) -> bool:
        return getattr(self, "_conn", None) is not None

    def _table_names(self) -> set[str]:
        return {
            name
            for (name,) in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }

    def _refuse_foreign_tables(self) -> None:
        """Never write (import, record) into another application's database."""
        foreign = sorted(
            name
            for name in self._table_names()
            if not name.startswith(("journal_", "sqlite_"))
        )
        if foreign:
            shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
            raise StoreError(
                f"{self.path} holds tables that are not the journal's ({shown}): "
                "another application's database? Nothing was written"
            )

    def _read_layout(self) -> int:
        """0: no journal tables; 1: a first-round store; else journal_meta's."""
        names = self._table_names()
        if "journal_events" not in names:
            return 0
        if "journal_meta" not in names:
            return 1
        found = self._conn.execute(
            "SELECT value FROM journal_meta WHERE name = 'layout'"
        ).fetchone()
        return int(found[0]) if found else 1

    def migrate(self) -> int:
        """Bring a first-round store to the current layout (as the file's
        owner); return the layout it had. Idempotent."""
        before = self.layout
        if before >= LAYOUT:
            return before
        columns = {
            row[1]
            for row in self._conn.execute("PRAGMA table_info(journal_executions)")
        }
        added = [
            f"{statement};"
            for statement in _SQLITE_MIGRATE_COLUMNS
            if statement.split()[-2] not in columns
        ]
        try:
            self._conn.executescript(
                f"BEGIN IMMEDIATE; {' '.join(added)} {_SQLITE_V2} {_SQLITE_LOG} COMMIT;"
            )
        except sqlite3.DatabaseError as e:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StoreError(f"cannot migrate {self.path}: {e}") from e
        self.layout = LAYOUT
        return before

    def _time_in(self, value: datetime | None) -> Any:
        # Times are stored and compared as text: normalise aware times to UTC
        # so that text order is time order whatever zone a caller used.
        if value is None:
            return None
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()

    def _time_out(self, value: Any) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value)
        # A time stored without a zone (before the door refused them) is UTC.
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def _insert_packed(
        self,
        cur: Any,
        key: int,
        rows: Sequence[Row],
        topics: Sequence[str | None],
        packed: Sequence[bytes],
    ) -> None:
        """`ROWS_PER_INSERT` rows per statement; the rest one by one."""
        full = len(rows) - len(rows) % ROWS_PER_INSERT
        if full:
            seqs = [r.seq for r in rows[:full]]
            links = [r.hash for r in rows[:full]]
            named = topics[:full]
            columns: tuple[Sequence[object], ...]
            if any(topic is not None for topic in named):
                sql, columns = _INSERT_MANY_TOPICS, (seqs, named, packed[:full], links)
            else:
                sql, columns = _INSERT_MANY, (seqs, packed[:full], links)
            # Row after row, each in the statement's column order.
            values = list(chain.from_iterable(zip(*columns, strict=True)))
            step = len(columns) * ROWS_PER_INSERT
            for start in range(0, len(values), step):
                cur.execute(sql, [key, *values[start : start + step]])
        if full < len(rows):
            super()._insert_packed(cur, key, rows[full:], topics[full:], packed[full:])

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
                if isinstance(error, sqlite3.OperationalError) and _is_busy(error):
                    raise self._busy() from error
                if isinstance(error, sqlite3.DatabaseError):
                    raise StoreError(f"{self.path}: {error}") from error
                raise
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._copy_dir is not None:
                shutil.rmtree(self._copy_dir, ignore_errors=True)
                self._copy_dir = None


def _writable(path: Path) -> bool:
    """Whether a reader may use the file in place: SQLite's WAL mode writes
    ``-wal``/``-shm`` files beside it while it is open."""
    directory = path.parent if str(path.parent) else Path(".")
    return os.access(path, os.W_OK) and os.access(directory, os.W_OK)


def read_only_target(path: Path) -> tuple[str | Path, Path | None]:
    """How to read write-protected evidence without creating anything
    beside it: ``immutable=1`` when no WAL holds committed pages; else a
    temporary copy of the database and its WAL (the WAL is never silently
    ignored), removed on close."""
    wal = path.with_name(path.name + "-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return f"{path.absolute().as_uri()}?immutable=1", None
    copy_dir = Path(tempfile.mkdtemp(prefix="journal-ro-"))
    try:
        shutil.copyfile(path, copy_dir / path.name)
        shutil.copyfile(wal, copy_dir / wal.name)
    except OSError as e:
        shutil.rmtree(copy_dir, ignore_errors=True)
        raise StoreError(
            f"{path}: write-protected with a WAL file {wal.name} that cannot be "
            f"read through a copy: {e.strerror or e}"
        ) from e
    return copy_dir / path.name, copy_dir


def lock_timeout_from_env() -> int:
    """``JOURNAL_LOCK_TIMEOUT_MS`` in milliseconds (default 30 s)."""
    text = os.environ.get(LOCK_TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_LOCK_TIMEOUT_MS
    if not text.isdigit():
        raise StoreError(
            f"bad {LOCK_TIMEOUT_ENV}={text!r}: expected milliseconds (an integer)"
        )
    return int(text)


def _is_busy(error: sqlite3.DatabaseError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code in _BUSY_CODES or "database is locked" in str(error)
