"""The embedded default backend: one SQLite file (see `journal.sqlstore`)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from journal.chain import Hasher
from journal.errors import ConflictError, StoreBusyError, StoreError
from journal.sqlstore import SQLStore

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
        hasher: Hasher | None = None,
        url: str | None = None,
        lock_timeout_ms: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.lock_timeout_ms = (
            lock_timeout_ms if lock_timeout_ms is not None else lock_timeout_from_env()
        )
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
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.lock_timeout_ms / 1000,
            )
            if create:
                self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            if create:
                self._conn.executescript(_SQLITE_SCHEMA)
            else:
                self._require_tables()
        except sqlite3.DatabaseError as e:
            if _is_busy(e):
                raise self._busy() from e
            raise StoreError(f"cannot open journal {self.path}: {e}") from e

    def _busy(self) -> StoreBusyError:
        return StoreBusyError(
            f"{self.path}: the database is locked by another writer; waited "
            f"{self.lock_timeout_ms} ms (JOURNAL_LOCK_TIMEOUT_MS)"
        )

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
