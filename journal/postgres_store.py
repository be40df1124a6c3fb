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
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from journal.errors import StoreError, StoreUnreachableError
from journal.follow import LOG_CHANNEL
from journal.keys import Keyring
from journal.leases import Lease
from journal.postgres_append import (
    APPEND_CALL,
    APPEND_FUNCTION_DDL,
    HAS_APPEND_FUNCTION,
    HeadCache,
    plan_call,
)
from journal.postgres_ddl import LOG_DDL, POSTGRES_SCHEMA, POSTGRES_V2
from journal.postgres_pool import make_pool, split_url, translate
from journal.retry import retry_call
from journal.sqlstore import LAYOUT, SQLStore, redact_url
from journal.store import Summary

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
        # When each pooled connection last finished a transaction.
        self._used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._heads = HeadCache()
        self._append_function = False
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
            raise StoreUnreachableError(
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
        if self.layout >= LAYOUT:
            self._append_function = self._add_append_function()

    def _add_log_tables(self) -> None:
        """A store written before the log gets its tables on open."""
        with self._transaction(write=False) as cur:
            cur.execute("SELECT to_regclass('journal_log_marks') IS NOT NULL")
            if cur.fetchone()[0]:
                return
        with self._transaction(write=True) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
            for statement in LOG_DDL:
                cur.execute(statement)

    def _add_append_function(self) -> bool:
        """Whether ``journal_append`` is there; a store made before it gets
        it on open when this user may create it (else appends take the
        transaction path)."""
        with self._transaction(write=False) as cur:
            cur.execute(HAS_APPEND_FUNCTION)
            if cur.fetchone()[0]:
                return True
        try:
            with self._transaction(write=True) as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
                cur.execute(APPEND_FUNCTION_DDL)
        except StoreError:
            return False
        return True

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
                for statement in POSTGRES_SCHEMA + POSTGRES_V2:
                    cur.execute(statement)
        self.layout = LAYOUT

    def migrate(self) -> int:
        """Bring a first-round store to the current layout (as the tables'
        owner); return the layout it had. Idempotent."""
        before = self.layout
        if before < LAYOUT:
            with self._transaction(write=True) as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
                for statement in POSTGRES_V2:
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
            self._put(conn)

    def _append_known_head(
        self,
        summary: Summary,
        expected_seq: int,
        payloads: Sequence[bytes],
        topics: Sequence[str | None] | None,
        lease: Lease | None,
    ) -> Summary | None:
        """The append in one autocommit call of ``journal_append`` when this
        process remembers the head it follows (see `journal.postgres_append`);
        None when it does not, or the server found the guess wrong."""
        if (
            not self._append_function
            or topics is not None  # the generic recorder's events
            or getattr(self._local, "conn", None)  # join the open transaction
        ):
            return None
        remembered = self._heads.get(summary.execution_id)
        if remembered is None or remembered[1].seq != expected_seq:
            return None
        planned = plan_call(
            self.keyring,
            self._signed_seen,
            remembered,
            summary,
            expected_seq,
            payloads,
            lease,
            lambda new: self._summary_params(new)[2:],
        )
        if planned is None:
            return None
        new, params = planned
        conn = self._checked_connection()
        try:
            conn.autocommit = True  # the call is its own transaction
            answer = conn.execute(APPEND_CALL, params).fetchone()[0]
        except BaseException as error:
            self._heads.forget(summary.execution_id)
            mapped = self._mapped(error, committing=True)
            if mapped is error:
                raise
            raise mapped from error
        finally:
            with suppress(Exception):  # a broken one is dropped by the pool
                conn.autocommit = False
            self._put(conn)
        if answer is not None:  # 'stale', 'lease' or 'signed': nothing written
            self._heads.forget(summary.execution_id)
            return None
        self._heads.remember(remembered[0], new)
        return new

    def _remember_head(self, key: int, summary: Summary) -> None:
        self._heads.remember(key, summary)

    def _put(self, conn: Any) -> None:
        """Back to the pool, noting when it was last used."""
        self._used[conn] = time.monotonic()
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
        """A pooled connection; with ``health_check``, one that answered if
        it sat idle longer than ``health_check_idle_s``.

        A connection that fails its check is dropped (the pool replaces it)
        and the next one tried, as many times as the pool holds connections;
        then `TransientStoreError` leaves the waiting to the retry policy
        (the pool's own check would back off for seconds).
        """
        from psycopg_pool import ConnectionPool

        settings = self.settings
        for _ in range(int(settings["pool_max_size"]) + 1):
            try:
                conn = self._pool.getconn()
            except Exception as error:
                raise self._mapped(error, committing=False) from error
            if not settings["health_check"]:
                return conn
            used = self._used.get(conn)
            idle = settings["health_check_idle_s"]
            if used is not None and time.monotonic() - used <= idle:
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
