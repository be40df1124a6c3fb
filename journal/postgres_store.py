"""The server backend for teams: PostgreSQL (see `journal.sqlstore`).

Connections come from a pool (`journal.postgres_pool`: settings, what each
driver error means). Every transaction takes a pooled connection, checked
as it leaves the pool, and returns it; a connection the server dropped is
replaced, so the store keeps working after a failover, an idle timeout or
``pg_terminate_backend``. A failure before COMMIT is a
`TransientStoreError` (nothing written: retried by reads and by
`journal.retry.append_with_retry`); a connection lost during COMMIT is a
`CommitUnknownError`, which the append path resolves against the stored
head. Lock and statement timeouts raise `StoreBusyError` (exit 12).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from journal.errors import StoreError
from journal.follow import LOG_CHANNEL
from journal.keys import Keyring
from journal.postgres_pool import make_pool, split_url, translate
from journal.retry import retry_call
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
    """The server for teams: many processes and machines append concurrently.

    ``url`` may carry the journal's pool, timeout and retry settings as
    query parameters (see `journal.postgres_pool`); they are removed before
    the URL reaches libpq.
    """

    BLOB = "BYTEA"

    P = "%s"
    LOCK_ROW = " FOR UPDATE"

    def __init__(
        self, url: str, *, create: bool = True, keyring: Keyring | None = None
    ) -> None:
        self.url = url
        self.keyring = keyring or Keyring.from_env()
        self._conninfo, self.settings = split_url(url)
        self.retry_policy = self.settings.retry
        self._pool = make_pool(self._conninfo, self.settings)
        self._local = threading.local()  # the connection of an open transaction
        self._open_pool()
        try:
            retry_call(lambda: self._prepare(create), self.retry_policy)
        except BaseException:
            self._pool.close()
            raise

    def _open_pool(self) -> None:
        from psycopg_pool import PoolTimeout

        try:
            self._pool.open(wait=True, timeout=self.settings["pool_timeout_s"])
        except PoolTimeout:
            self._pool.close()
            raise StoreError(
                f"cannot reach PostgreSQL at {redact_url(self.url)}: "
                f"{self._why_unreachable()}"
            ) from None

    def _why_unreachable(self) -> str:
        """The server's own reason, from one direct connection attempt."""
        import psycopg

        try:
            psycopg.connect(self._conninfo, connect_timeout=5).close()
        except psycopg.Error as e:
            return " ".join(str(e).split())
        return f"no connection within {self.settings['pool_timeout_s']:g} s"

    def _prepare(self, create: bool) -> None:
        with self._transaction(write=False) as cur:
            self.layout = self._read_layout(cur)
        if self.layout == 0 and create:
            self._create()  # a new store: needs DDL rights, once
        elif self.layout == 0:
            raise StoreError(f"{redact_url(self.url)} holds no journal tables")
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
        """One transaction on a pooled connection. A transaction opened
        inside another one on the same thread joins it (a savepoint on the
        same connection), as with a single connection: it never waits on
        locks its own outer transaction holds."""
        outer = getattr(self._local, "conn", None)
        if outer is not None:
            with self._nested(outer) as cur:
                yield cur
            return
        conn = self._checked_connection()
        self._local.conn = conn
        committing = False
        try:
            with conn.transaction():  # BEGIN now: a nested block is a savepoint
                with conn.cursor() as cur:
                    yield cur
                committing = True  # leaving the block sends COMMIT
        except BaseException as error:
            _rollback_quietly(conn)
            mapped = self._mapped(error, committing=committing)
            if mapped is error:
                raise
            raise mapped from error
        finally:
            self._local.conn = None
            self._pool.putconn(conn)

    @contextmanager
    def _nested(self, conn: Any) -> Iterator[Any]:
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except BaseException as error:
            mapped = self._mapped(error, committing=False)
            if mapped is error:
                raise
            raise mapped from error

    def _checked_connection(self) -> Any:
        """A pooled connection; with ``health_check``, one that answered.

        A connection that fails its check is dropped (the pool replaces it)
        and the next one tried, as many times as the pool holds connections;
        then `TransientStoreError` leaves the waiting to the retry policy
        (the pool's own check would back off for seconds).
        """
        from psycopg_pool import ConnectionPool

        for _ in range(int(self.settings["pool_max_size"]) + 1):
            try:
                conn = self._pool.getconn()
            except Exception as error:
                raise self._mapped(error, committing=False) from error
            if not self.settings["health_check"]:
                return conn
            try:
                ConnectionPool.check_connection(conn)
            except Exception as error:
                self._pool.putconn(conn)  # broken: the pool discards it
                failure = error
                continue
            return conn
        raise self._mapped(failure, committing=False) from failure

    def _mapped(self, error: BaseException, *, committing: bool) -> BaseException:
        return translate(error, self.settings, committing=committing)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled psycopg connection, returned to the pool afterwards.

        For code beside the store that needs its own statements; driver
        errors are raised as journal errors (see `journal.postgres_pool`).
        """
        try:
            with self._pool.connection() as conn:
                yield conn
        except BaseException as error:
            mapped = self._mapped(error, committing=False)
            if mapped is error:
                raise
            raise mapped from error

    def dedicated_connection(self, *, autocommit: bool = True) -> Any:
        """A new connection outside the pool (for ``LISTEN``), opened with
        the store's retry policy; the caller closes it.

        It gets the store's lock timeout. When it is lost, call this again:
        opening is retried with backoff, and a `TransientStoreError` is
        raised only when every try failed.
        """
        import psycopg

        def connect() -> Any:
            try:
                conn = psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=int(self.settings["pool_timeout_s"]) or 1,
                )
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, false)",
                    (f"{self.settings.lock_timeout_ms}ms",),
                )
            except psycopg.Error as error:
                raise self._mapped(error, committing=False) from error
            conn.autocommit = autocommit
            return conn

        return retry_call(connect, self.retry_policy)

    def _sequencer_lock(self, cur: Any, wait: bool) -> bool:
        if wait:
            cur.execute(f"SELECT pg_advisory_xact_lock({_LOG_LOCK})", (_LOG_LOCK_ID,))
            return True
        cur.execute(f"SELECT pg_try_advisory_xact_lock({_LOG_LOCK})", (_LOG_LOCK_ID,))
        return bool(cur.fetchone()[0])

    def _notify_log(self, cur: Any) -> None:
        cur.execute(f"NOTIFY {LOG_CHANNEL}")

    def close(self) -> None:
        self._pool.close()


def _rollback_quietly(conn: Any) -> None:
    """Roll back before the connection goes back (a broken one cannot)."""
    if conn.broken or conn.closed:
        return
    # A failed rollback leaves the connection broken: the pool replaces it.
    with suppress(Exception):
        conn.rollback()
