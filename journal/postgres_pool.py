"""PostgreSQL connections: settings, the pool, and what a driver error means.

Settings come from the URL's query parameters (which the journal strips
before the URL reaches libpq; every other parameter, such as ``options``
or ``sslmode``, reaches libpq verbatim), else from the environment, else
the defaults below:

=====================  ================================  =========
URL parameter          environment variable              default
=====================  ================================  =========
pool_min_size          JOURNAL_PG_POOL_MIN_SIZE          1
pool_max_size          JOURNAL_PG_POOL_MAX_SIZE          4
pool_timeout_s         JOURNAL_PG_POOL_TIMEOUT_S         30
pool_max_idle_s        JOURNAL_PG_POOL_MAX_IDLE_S        300
pool_max_lifetime_s    JOURNAL_PG_POOL_MAX_LIFETIME_S    3600
health_check           JOURNAL_PG_HEALTH_CHECK           1
health_check_idle_s    JOURNAL_PG_HEALTH_CHECK_IDLE_S    1
lock_timeout_ms        JOURNAL_LOCK_TIMEOUT_MS           30000
statement_timeout_ms   JOURNAL_PG_STATEMENT_TIMEOUT_MS   0 (none)
retry_attempts         JOURNAL_RETRY_ATTEMPTS            5
retry_delay_ms         JOURNAL_RETRY_DELAY_MS            50
retry_max_delay_ms     JOURNAL_RETRY_MAX_DELAY_MS        2000
=====================  ================================  =========

``connect_timeout`` is libpq's own parameter (10 s unless the URL sets it).
With ``health_check``, a connection that has been idle in the pool for more
than ``health_check_idle_s`` seconds answers an empty query before it is
used (0: every checkout); one used moments ago is trusted, and a failure on
it is left to the retry policy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from journal.errors import (
    CommitUnknownError,
    ConflictError,
    JournalError,
    StoreBusyError,
    StoreError,
    StorePermissionError,
    TransientStoreError,
)
from journal.retry import RETRY_SETTINGS, RetryPolicy

#: URL parameter -> (environment variable, default).
POOL_SETTINGS: dict[str, tuple[str, float]] = {
    "pool_min_size": ("JOURNAL_PG_POOL_MIN_SIZE", 1),
    "pool_max_size": ("JOURNAL_PG_POOL_MAX_SIZE", 4),
    "pool_timeout_s": ("JOURNAL_PG_POOL_TIMEOUT_S", 30),
    "pool_max_idle_s": ("JOURNAL_PG_POOL_MAX_IDLE_S", 300),
    "pool_max_lifetime_s": ("JOURNAL_PG_POOL_MAX_LIFETIME_S", 3600),
    "health_check": ("JOURNAL_PG_HEALTH_CHECK", 1),
    "health_check_idle_s": ("JOURNAL_PG_HEALTH_CHECK_IDLE_S", 1),
    "lock_timeout_ms": ("JOURNAL_LOCK_TIMEOUT_MS", 30_000),
    "statement_timeout_ms": ("JOURNAL_PG_STATEMENT_TIMEOUT_MS", 0),
}
_OURS = frozenset(POOL_SETTINGS) | frozenset(RETRY_SETTINGS)
DEFAULT_CONNECT_TIMEOUT_S = 10
#: SQLSTATEs of a connection the server ended (admin shutdown, crash,
#: cannot connect now); class 08 (connection exception) is matched apart.
_CONNECTION_GONE = frozenset({"57P01", "57P02", "57P03"})


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """The journal's own connection settings (see the module docstring)."""

    values: dict[str, float]
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    @property
    def lock_timeout_ms(self) -> int:
        return int(self.values["lock_timeout_ms"])

    @property
    def statement_timeout_ms(self) -> int:
        return int(self.values["statement_timeout_ms"])


def split_url(
    url: str, environ: Mapping[str, str] = os.environ
) -> tuple[str, PostgresSettings]:
    """The URL libpq gets (our parameters removed) and our settings.

    Other query parameters are kept byte for byte (never decoded and
    re-encoded), so ``options=-csearch_path%3D...`` reaches libpq as given.
    """
    base, sep, query = url.partition("?")
    kept, ours = [], {}
    for piece in query.split("&") if sep else []:
        name, _, value = piece.partition("=")
        if unquote(name) in _OURS:
            ours[unquote(name)] = unquote(value)
        elif piece:
            kept.append(piece)
    values = {
        name: _number(name, ours.get(name, environ.get(env)), default, env)
        for name, (env, default) in POOL_SETTINGS.items()
    }
    if values["pool_max_size"] < max(1, values["pool_min_size"]):
        raise StoreError(
            "bad journal setting pool_max_size: it must be at least 1 and at "
            "least pool_min_size"
        )
    libpq_url = base + ("?" + "&".join(kept) if kept else "")
    retry = RetryPolicy.from_settings(ours, environ)
    return libpq_url, PostgresSettings(values, retry)


def _number(name: str, text: str | None, default: float, env: str) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise StoreError(
            f"bad journal setting {name}={text!r} (or {env}): expected a number >= 0"
        )
    return value


def make_pool(conninfo: str, settings: PostgresSettings) -> Any:
    """A closed `psycopg_pool.ConnectionPool` (call ``open(wait=True)``).

    Each new connection gets the lock and statement timeouts (set in
    autocommit, so that configuring sends no COMMIT). The pool drops
    connections returned broken; the store checks a connection idle for a
    while as it leaves the pool (``health_check``, ``health_check_idle_s``).
    """
    from psycopg_pool import ConnectionPool

    def configure(conn: Any) -> None:
        conn.autocommit = True
        conn.execute(
            "SELECT set_config('lock_timeout', %s, false)",
            (f"{settings.lock_timeout_ms}ms",),
        )
        if settings.statement_timeout_ms:
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (f"{settings.statement_timeout_ms}ms",),
            )
        conn.autocommit = False

    kwargs: dict[str, Any] = {}
    if "connect_timeout" not in conninfo:
        kwargs["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
    return ConnectionPool(
        conninfo,
        kwargs=kwargs,
        min_size=int(settings["pool_min_size"]),
        max_size=int(settings["pool_max_size"]),
        timeout=settings["pool_timeout_s"],
        max_idle=settings["pool_max_idle_s"],
        max_lifetime=settings["pool_max_lifetime_s"],
        configure=configure,
        open=False,
        name="journal",
    )


def translate(
    error: BaseException, settings: PostgresSettings, *, committing: bool
) -> BaseException:
    """The journal error a driver or pool error means (ours pass through).

    ``committing``: the error came while COMMIT was under way, so a lost
    connection leaves the outcome unknown.
    """
    import psycopg
    from psycopg_pool import PoolTimeout

    errors = psycopg.errors
    if isinstance(error, JournalError) or not isinstance(
        error, psycopg.Error | PoolTimeout
    ):
        return error
    text = " ".join(str(error).split())
    if isinstance(error, errors.UniqueViolation):
        return ConflictError(f"conflicting write: {text}")
    if isinstance(error, errors.LockNotAvailable):
        return StoreBusyError(
            f"PostgreSQL: waited more than {settings.lock_timeout_ms} ms for a lock "
            "another writer holds (lock_timeout_ms, JOURNAL_LOCK_TIMEOUT_MS)"
        )
    if isinstance(error, errors.QueryCanceled):
        return StoreBusyError(
            f"PostgreSQL: a statement was cancelled after "
            f"{settings.statement_timeout_ms} ms (statement_timeout_ms, "
            f"JOURNAL_PG_STATEMENT_TIMEOUT_MS): {text}"
        )
    if isinstance(error, PoolTimeout):
        return StoreBusyError(
            f"PostgreSQL: no connection free within {settings['pool_timeout_s']:g} "
            f"s (pool_max_size {settings['pool_max_size']:g}, pool_timeout_s): "
            "the server is unreachable or every connection is in use"
        )
    if isinstance(error, errors.InsufficientPrivilege):
        return StorePermissionError(f"PostgreSQL: {text}")
    if isinstance(error, errors.TransactionRollback):  # deadlock, serialization
        return TransientStoreError(f"PostgreSQL rolled the transaction back: {text}")
    if _connection_gone(error):
        if committing:
            return CommitUnknownError(
                f"PostgreSQL connection lost while committing: {text}"
            )
        return TransientStoreError(f"PostgreSQL connection lost: {text}")
    return StoreError(f"PostgreSQL error: {text}")


def _connection_gone(error: BaseException) -> bool:
    import psycopg

    if not isinstance(error, psycopg.OperationalError):
        return False
    state = getattr(error, "sqlstate", None)
    return state is None or state.startswith("08") or state in _CONNECTION_GONE
