"""The server backend for teams: PostgreSQL (see `journal.sqlstore`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from journal.chain import Hasher
from journal.errors import ConflictError, StoreError
from journal.sql_leases import LEASES_DDL
from journal.sql_log import LOG_DDL, LOGGED_SEQ_COLUMN
from journal.sqlstore import SQLStore, redact_url

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
    head_hash BYTEA NOT NULL,
    logged_seq BIGINT NOT NULL DEFAULT -1)""",
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
    LEASES_DDL,
    *LOG_DDL,
]
_SCHEMA_LOCK_ID = 0x6A6F75726E616C  # "journal": serialises concurrent CREATEs
_LOG_LOCK_ID = 0x6A6C6F67  # "jlog": one sequencer round at a time per schema
_LOG_LOCK = "%s, hashtext(current_schema())"
#: The channel a sequencer round notifies (``LISTEN journal_log``).
LOG_CHANNEL = "journal_log"


class PostgresStore(SQLStore):
    """The server for teams: many processes and machines append concurrently."""

    P = "%s"
    LOCK_ROW = " FOR UPDATE"
    SKIP_LOCKED = " SKIP LOCKED"

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
            raise StoreError(
                f"cannot reach PostgreSQL at {redact_url(url)}: {e}"
            ) from e
        with self._transaction(write=True) as cur:
            if create:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
                self._add_log_column(cur)
                for statement in _POSTGRES_SCHEMA:
                    cur.execute(statement)
            else:
                cur.execute("SELECT to_regclass('journal_events') IS NOT NULL")
                if not cur.fetchone()[0]:
                    raise StoreError(f"{redact_url(url)} holds no journal tables")
                cur.execute("SELECT to_regclass('journal_leases') IS NOT NULL")
                if not cur.fetchone()[0]:  # written before leases existed
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
                    cur.execute(LEASES_DDL)
                cur.execute("SELECT to_regclass('journal_log') IS NOT NULL")
                if not cur.fetchone()[0]:  # written before the log existed
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
                    self._add_log_column(cur)
                    for statement in LOG_DDL:
                        cur.execute(statement)

    @staticmethod
    def _add_log_column(cur: Any) -> None:
        """Journals written before the log lack its column. ALTER only then:
        it would lock the table against every writer on each open."""
        cur.execute(
            "SELECT to_regclass('journal_executions') IS NOT NULL "
            "AND to_regclass('journal_log') IS NULL"
        )
        if cur.fetchone()[0]:
            cur.execute(
                f"ALTER TABLE journal_executions ADD COLUMN {LOGGED_SEQ_COLUMN}"
            )

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

    def _sequencer_lock(self, cur: Any, wait: bool) -> bool:
        if wait:
            cur.execute(f"SELECT pg_advisory_xact_lock({_LOG_LOCK})", (_LOG_LOCK_ID,))
            return True
        cur.execute(f"SELECT pg_try_advisory_xact_lock({_LOG_LOCK})", (_LOG_LOCK_ID,))
        return bool(cur.fetchone()[0])

    def _notify_log(self, cur: Any) -> None:
        cur.execute(f"NOTIFY {LOG_CHANNEL}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
