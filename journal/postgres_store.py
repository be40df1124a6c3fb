"""The server backend for teams: PostgreSQL (see `journal.sqlstore`).

Connections come from a pool (`journal.postgres_pool`: settings, health
checks, what each driver error means). Every transaction takes a pooled
connection and returns it; a connection the server dropped is replaced, so
the store keeps working after a failover, an idle timeout or
``pg_terminate_backend``. A failure before COMMIT is a
`TransientStoreError` (nothing written: retried by reads and by
`journal.retry.append_with_retry`); a connection lost during COMMIT is a
`CommitUnknownError`, which the append path resolves against the stored
head. Lock and statement timeouts raise `StoreBusyError` (exit 12).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from journal.chain import Hasher
from journal.errors import StoreError
from journal.postgres_pool import make_pool, split_url, translate
from journal.retry import retry_call
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
    """The server for teams: many processes and machines append concurrently.

    ``url`` may carry the journal's pool, timeout and retry settings as
    query parameters (see `journal.postgres_pool`); they are removed before
    the URL reaches libpq.
    """

    P = "%s"
    LOCK_ROW = " FOR UPDATE"

    def __init__(
        self, url: str, *, create: bool = True, hasher: Hasher | None = None
    ) -> None:
        self.url = url
        self.hasher = hasher or Hasher.from_env()
        self._conninfo, self.settings = split_url(url)
        self.retry_policy = self.settings.retry
        self._pool = make_pool(self._conninfo, self.settings)
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
        with self._transaction(write=True) as cur:
            if create:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
                for statement in _POSTGRES_SCHEMA:
                    cur.execute(statement)
            else:
                cur.execute("SELECT to_regclass('journal_events') IS NOT NULL")
                if not cur.fetchone()[0]:
                    raise StoreError(f"{redact_url(self.url)} holds no journal tables")

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Any]:
        conn = self._checked_connection()
        committing = False
        try:
            with conn.cursor() as cur:
                yield cur
            committing = True
            conn.commit()
        except BaseException as error:
            _rollback_quietly(conn)
            mapped = self._mapped(error, committing=committing)
            if mapped is error:
                raise
            raise mapped from error
        finally:
            self._pool.putconn(conn)

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

        It gets the store's lock and statement timeouts. When it is lost,
        call this again: opening is retried with backoff, and a
        `TransientStoreError` is raised only when every try failed.
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

    def close(self) -> None:
        self._pool.close()


def _rollback_quietly(conn: Any) -> None:
    """Roll back before the connection goes back (a broken one cannot)."""
    if conn.broken or conn.closed:
        return
    # A failed rollback leaves the connection broken: the pool replaces it.
    with suppress(Exception):
        conn.rollback()
