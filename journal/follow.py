"""Following the store-wide log: rounds, reads, and waiting in between.

`follow_log` yields every entry above a position, forever: it runs a
sequencer round (`journal.sql_log`), reads, and when there is nothing new
waits to be woken (PostgreSQL: a round's ``NOTIFY`` on `LOG_CHANNEL`) or for
the next poll. Whatever wakes it, it catches up by reading, so a lost
notification only delays it by `POLL_SECONDS`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from journal.log import LogEntry
from journal.store import Store

__all__ = ["LOG_CHANNEL", "POLL_SECONDS", "Waiter", "follow_log", "waiter_for"]

#: How often a follower runs a round when nothing wakes it.
POLL_SECONDS = 0.05
#: The channel a PostgreSQL round notifies.
LOG_CHANNEL = "journal_log"
PAGE = 500


class Waiter:
    """Waits for the next poll, or until stopped."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def wait(self, timeout: float) -> None:
        """Return after `timeout` seconds, or earlier when woken or stopped."""
        self.stopping.wait(timeout)

    def close(self) -> None:
        """Stop waiting for good."""
        self.stopping.set()


class _Listener(Waiter):
    """A PostgreSQL connection that LISTENs to the rounds' channel.

    The connection comes from `PostgresStore.dedicated_connection` (outside
    the pool, opened with the store's retry policy, the journal's own URL
    parameters removed before libpq sees them).
    """

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._conn: Any = conn
        self._conn.execute(f"LISTEN {LOG_CHANNEL}")

    def wait(self, timeout: float) -> None:
        with self._lock:
            if self._conn is not None:
                for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                    break
                return
        super().wait(timeout)

    def close(self) -> None:
        super().close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def waiter_for(store: Store) -> Waiter:
    """A waiter that PostgreSQL rounds wake, or a plain poll elsewhere."""
    dedicated_connection = getattr(store, "dedicated_connection", None)
    if dedicated_connection is not None:  # PostgreSQL
        return _Listener(dedicated_connection())
    return Waiter()


def follow_log(
    store: Store,
    after: int = 0,
    *,
    tenant_id: str | None = None,
    journal_only: bool = True,
    waiter: Waiter | None = None,
) -> Iterator[LogEntry]:
    """Yield the log's entries above `after`, waiting for new ones until the
    waiter is closed (of one tenant or all; the journal's own events only,
    unless `journal_only` is False)."""
    waiter = waiter or waiter_for(store)
    try:
        while not waiter.stopping.is_set():
            store.sequence_log()
            entries = store.read_log(
                after, PAGE, tenant_id=tenant_id, journal_only=journal_only
            )
            yield from entries
            if entries:
                after = entries[-1].position
            if len(entries) < PAGE:
                waiter.wait(POLL_SECONDS)
    finally:
        waiter.close()
