"""The server backend for teams: PostgreSQL (see `journal.sqlstore`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from journal.errors import ConflictError, StoreError
from journal.follow import LOG_CHANNEL
from journal.keys import Keyring
from journal.sql_leases import LEASES_DDL
from journal.sql_log import log_ddl
from journal.sqlstore import LAYOUT, SQLStore, redact_url

_LOG_DDL = log_ddl("BIGINT")
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
    genesis BYTEA,
    key_id TEXT,
    head_mac BYTEA)""",
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
]
# What `journal migrate` adds to a first-round store, and `init` to a new one.
_POSTGRES_V2 = [
    "ALTER TABLE journal_executions ADD COLUMN IF NOT EXISTS genesis BYTEA",
    "ALTER TABLE journal_executions ADD COLUMN IF NOT EXISTS key_id TEXT",
    "ALTER TABLE journal_executions ADD COLUMN IF NOT EXISTS head_mac BYTEA",
    LEASES_DDL,  # operational (recovery), outside the chain
    """CREATE TABLE IF NOT EXISTS journal_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL)""",
    """CREATE OR REPLACE FUNCTION journal_refuse() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$""",
    """CREATE OR REPLACE FUNCTION journal_index_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.exec_key IS DISTINCT FROM OLD.exec_key
        OR NEW.execution_id IS DISTINCT FROM OLD.execution_id
        OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id
        OR NEW.flow IS DISTINCT FROM OLD.flow
        OR NEW.parent_id IS DISTINCT FROM OLD.parent_id
        OR NEW.created_at IS DISTINCT FROM OLD.created_at
        OR NEW.alg IS DISTINCT FROM OLD.alg
        OR NEW.genesis IS DISTINCT FROM OLD.genesis
        OR NEW.head_seq <= OLD.head_seq
        OR NOT EXISTS (SELECT 1 FROM journal_events e
                       WHERE e.exec_key = NEW.exec_key AND e.seq = NEW.head_seq
                       AND e.hash = NEW.head_hash) THEN
        RAISE EXCEPTION 'journal_executions: only an append may change an index row';
    END IF;
    RETURN NEW;
END $$""",
    "DROP TRIGGER IF EXISTS journal_events_append_only ON journal_events",
    "CREATE TRIGGER journal_events_append_only BEFORE UPDATE OR DELETE "
    "ON journal_events FOR EACH ROW EXECUTE FUNCTION journal_refuse()",
    "DROP TRIGGER IF EXISTS journal_events_no_truncate ON journal_events",
    "CREATE TRIGGER journal_events_no_truncate BEFORE TRUNCATE "
    "ON journal_events FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse()",
    "DROP TRIGGER IF EXISTS journal_executions_no_delete ON journal_executions",
    "CREATE TRIGGER journal_executions_no_delete BEFORE DELETE "
    "ON journal_executions FOR EACH ROW EXECUTE FUNCTION journal_refuse()",
    "DROP TRIGGER IF EXISTS journal_executions_no_truncate ON journal_executions",
    "CREATE TRIGGER journal_executions_no_truncate BEFORE TRUNCATE "
    "ON journal_executions FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse()",
    "DROP TRIGGER IF EXISTS journal_executions_append_only ON journal_executions",
    "CREATE TRIGGER journal_executions_append_only BEFORE UPDATE "
    "ON journal_executions FOR EACH ROW EXECUTE FUNCTION journal_index_append_only()",
    "INSERT INTO journal_meta (name, value) VALUES ('layout', '2') "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    *_LOG_DDL,  # the store-wide log (journal.sql_log)
]
_SCHEMA_LOCK_ID = 0x6A6F75726E616C  # "journal": serialises concurrent CREATEs
_LOG_LOCK_ID = 0x6A6C6F67  # "jlog": one sequencer round at a time per schema
_LOG_LOCK = "%s, hashtext(current_schema())"


class PostgresStore(SQLStore):
    """The server for teams: many processes and machines append concurrently."""

    BLOB = "BYTEA"

    P = "%s"
    LOCK_ROW = " FOR UPDATE"

    def __init__(
        self, url: str, *, create: bool = True, keyring: Keyring | None = None
    ) -> None:
        import psycopg  # lazily: SQLite users never pay for it

        self._psycopg = psycopg
        self.url = url
        self.keyring = keyring or Keyring.from_env()
        self._lock = threading.RLock()
        try:
            self._conn = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreError(
                f"cannot reach PostgreSQL at {redact_url(url)}: {e}"
            ) from e
        with self._transaction(write=False) as cur:
            self.layout = self._read_layout(cur)
        if self.layout == 0 and create:
            self._create()  # a new store: needs DDL rights, once
        elif self.layout == 0:
            raise StoreError(f"{redact_url(url)} holds no journal tables")
        elif self.layout >= LAYOUT:
            self._add_log_tables()

    def _add_log_tables(self) -> None:
        """A store written before the log gets its tables on open."""
        with self._transaction(write=False) as cur:
            cur.execute("SELECT to_regclass('journal_log_marks') IS NOT NULL")
            if cur.fetchone()[0]:
                return
        with self._transaction(write=True) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
            for statement in _LOG_DDL:
                cur.execute(statement)

    def _read_layout(self, cur: Any) -> int:
        """0: no journal tables; 1: a first-round store; else journal_meta's."""
        cur.execute(
            "SELECT to_regclass('journal_events') IS NOT NULL, "
            "to_regclass('journal_meta') IS NOT NULL"
        )
        events, meta = cur.fetchone()
        if not events:
            return 0
        if not meta:
            return 1
        cur.execute("SELECT value FROM journal_meta WHERE name = 'layout'")
        found = cur.fetchone()
        return int(found[0]) if found else 1

    def _create(self) -> None:
        with self._transaction(write=True) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
            if self._read_layout(cur) == 0:
                for statement in _POSTGRES_SCHEMA + _POSTGRES_V2:
                    cur.execute(statement)
        self.layout = LAYOUT

    def migrate(self) -> int:
        """Bring a first-round store to the current layout (as the tables'
        owner); return the layout it had. Idempotent."""
        before = self.layout
        if before < LAYOUT:
            with self._transaction(write=True) as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
                for statement in _POSTGRES_V2:
                    cur.execute(statement)
            self.layout = LAYOUT
        return before

    @contextmanager
    def _snapshot(self) -> Iterator[Any]:
        with self._transaction(write=False) as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield cur

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
