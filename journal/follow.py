"""Following the store-wide log: rounds, reads, and waiting in between.

`follow_log` yields every entry above a position, forever: it runs a
sequencer round (`journal.sql_log`), reads, and when there is nothing new
waits to be woken (PostgreSQL: a round's ``NOTIFY`` on `LOG_CHANNEL`) or for
the next poll. Whatever wakes it, it catches up by reading, so a lost
notification only delays it by `POLL_SECONDS`, and a lost ``LISTEN``
connection is replaced (`_Listener`) without missing or repeating anything.
On a read-only store it numbers nothing and ends at what is numbered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from journal.errors import StorePermissionError, TransientStoreError
from journal.log import LogEntry
from journal.store import Store

__all__ = ["LOG_CHANNEL", "POLL_SECONDS", "Waiter", "follow_log", "waiter_for"]

#: How often a follower runs a round when nothing wakes it.
POLL_SECONDS = 0.05
#: The channel a PostgreSQL round notifies.
LOG_CHANNEL = "journal_log"
PAGE = 500
#: New connections a lost LISTEN connection is replaced with, at most, when
#: each is lost again before its LISTEN answered.
_LISTEN_TRIES = 3

log = logging.getLogger("journal.follow")


class Waiter:
    """Waits for the next poll, or until stopped."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        #: How many times a lost connection was replaced (PostgreSQL).
        self.reconnects = 0

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
    parameters removed before libpq sees them). When it is lost (the server
    restarted, ``pg_terminate_backend``, a network cut), the next wait opens
    a new one and LISTENs again, then returns at once so that the follower
    catches up by reading: nothing committed meanwhile is missed, and since
    it reads above the last position it delivered, nothing comes twice.
    Opening is retried with backoff; when every try failed, the
    `TransientStoreError` ends the follower.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._connect = connect
        self._conn: Any = self._listen()

    def _listen(self) -> Any:
        """A new connection that LISTENs (a connection lost before its LISTEN
        answered is replaced too, a bounded number of times)."""
        import psycopg

        for attempt in range(1, _LISTEN_TRIES + 1):
            conn = self._connect()  # TransientStoreError once every try failed
            try:
                conn.execute(f"LISTEN {LOG_CHANNEL}")
            except psycopg.Error as error:
                conn.close()
                if attempt == _LISTEN_TRIES:
                    raise TransientStoreError(
                        f"LISTEN {LOG_CHANNEL} failed on {attempt} new "
                        f"connections: {' '.join(str(error).split())}"
                    ) from error
                continue
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

    def wait(self, timeout: float) -> None:
        import psycopg

        with self._lock:
            if self.stopping.is_set():
                return
            if self._conn is not None:
                try:
                    for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                        break
                    return
                except psycopg.Error as error:
                    log.warning(
                        "the LISTEN connection was lost (%s); reconnecting",
                        " ".join(str(error).split()),
                    )
                    self._conn.close()
                    self._conn = None
            # Reopened before returning: the caller's catch-up read then
            # happens while LISTENing, so a round after it wakes us.
            self._conn = self._listen()
            self.reconnects += 1

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
        return _Listener(dedicated_connection)
    return Waiter()


def follow_log(
    store: Store,
    after: int = 0,
    *,
    tenant_id: str | None = None,
    journal_only: bool = True,
    waiter: Waiter | None = None,
    wait: bool = True,
    on_refused: Callable[[StorePermissionError], None] | None = None,
) -> Iterator[LogEntry]:
    """Yield the log's entries above `after`, waiting for new ones until the
    waiter is closed (of one tenant or all; the journal's own events only,
    unless `journal_only` is False).

    Without `wait` it runs one round, waiting for a running one, so that
    everything committed before the call is numbered, and ends once it has
    yielded everything numbered. On a read-only store it runs no round (a
    round writes): it yields what earlier rounds numbered and ends there,
    since such a store cannot change while it is open
    (`LogStore.unnumbered` counts what it left out).

    A user the server refuses a round (a read-only PostgreSQL role) follows
    what others' rounds number (followers, the sealer, subscriptions): the
    refusal is handed to `on_refused` once and no round is tried again.
    """
    waiting = wait and not store.read_only
    if waiting:
        waiter = waiter or waiter_for(store)
    elif waiter is not None:
        waiter.close()
        waiter = None
    numbering = not store.read_only

    def number(wait_for_round: bool) -> None:
        nonlocal numbering
        try:
            store.sequence_log(wait=wait_for_round)
        except StorePermissionError as refused:
            numbering = False
            if on_refused is not None:
                on_refused(refused)

    if not waiting and numbering:
        number(True)
    try:
        while waiter is None or not waiter.stopping.is_set():
            if waiting and numbering:
                number(False)
            entries = store.read_log(
                after, PAGE, tenant_id=tenant_id, journal_only=journal_only
            )
            yield from entries
            if entries:
                after = entries[-1].position
            if len(entries) < PAGE:
                if waiter is None:
                    return
                waiter.wait(POLL_SECONDS)
    finally:
        if waiter is not None:
            waiter.close()
