"""The store-wide log: every stored event at a position, in one order per store.

A position is a positive integer. Followers read ``position > last seen``;
positions increase in the order followers receive them and are never filled
in behind a follower (see `journal.sql_log` for how the SQL backends number
rows that commit out of order). Within one execution, positions follow the
sequence numbers. The log is what eventsourcing follows through
`journal.persistence` (its notification ids are our positions).

Events written through eventsourcing's generic recorder interface are in the
log too (eventsourcing's own test cases write them), with their topic set;
``journal_only`` readers (`journal follow`, the ledger) skip them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from journal.errors import ConflictError

__all__ = ["LogEntry", "LogStore", "MemoryLog"]


class LogEntry(NamedTuple):
    """One event at its position in the store-wide log."""

    position: int
    tenant_id: str
    execution_id: str
    seq: int
    topic: str | None
    payload: bytes
    link: bytes


class LogStore:
    """The log and tracking methods every store provides."""

    #: Opened read-only (a write-protected SQLite file): the store cannot
    #: change while it is open, and no round may run on it, so followers read
    #: what is numbered and stop there.
    read_only: bool = False

    def sequence_log(self, *, wait: bool = False) -> int:
        """Give positions to what has committed since; return how many.

        Stores that number events as they are written return 0.
        """
        return 0

    def unnumbered(
        self, *, tenant_id: str | None = None, journal_only: bool = False
    ) -> int:
        """How many committed events no round has numbered yet (of one tenant
        or all; the journal's own only when `journal_only`).

        Stores that number events as they are written return 0.
        """
        return 0

    def read_log(
        self,
        after: int,
        limit: int,
        *,
        stop: int | None = None,
        tenant_id: str | None = None,
        topics: Sequence[str] = (),
        journal_only: bool = False,
    ) -> list[LogEntry]:
        """Up to `limit` entries with positions above `after` (at most `stop`),
        of one tenant or all, of some topics or all, and only the journal's
        own events (no topic) when `journal_only`."""
        raise NotImplementedError

    def max_position(self) -> int | None:
        """The largest position handed out, or None before the first."""
        raise NotImplementedError

    def position_of(self, execution_id: str, seq: int) -> int | None:
        """The position of one event, if it has one yet."""
        raise NotImplementedError

    def insert_tracking(self, application_name: str, notification_id: int) -> None:
        """Record a follower's position; `ConflictError` unless it advances."""
        raise NotImplementedError

    def max_tracking_id(self, application_name: str) -> int | None:
        """A follower's recorded position, or None."""
        raise NotImplementedError


class _Logged(Protocol):
    @property
    def tenant_id(self) -> str: ...

    @property
    def execution_id(self) -> str: ...

    def event(self, index: int) -> tuple[str | None, bytes, bytes, int]:
        """(topic, payload, link, seq) of the event at `index`."""
        ...


class MemoryLog(LogStore):
    """The log of `journal.store.MemoryStore`: positions given as written
    (one lock serialises its writers, so nothing commits out of order)."""

    _lock: threading.RLock

    def __init__(self) -> None:
        self._log: list[tuple[_Logged, int]] = []
        self._positions: dict[tuple[str, int], int] = {}
        self._tracking: dict[str, int] = {}

    def _log_appended(self, owner: _Logged, first_index: int, count: int) -> None:
        for index in range(first_index, first_index + count):
            self._log.append((owner, index))
            seq = owner.event(index)[3]
            self._positions[(owner.execution_id, seq)] = len(self._log)

    def read_log(
        self,
        after: int,
        limit: int,
        *,
        stop: int | None = None,
        tenant_id: str | None = None,
        topics: Sequence[str] = (),
        journal_only: bool = False,
    ) -> list[LogEntry]:
        found: list[LogEntry] = []
        with self._lock:
            end = len(self._log) if stop is None else min(stop, len(self._log))
            for position in range(max(after, 0) + 1, end + 1):
                owner, index = self._log[position - 1]
                topic, payload, link, seq = owner.event(index)
                if (
                    (tenant_id is None or owner.tenant_id == tenant_id)
                    and (not topics or topic in topics)
                    and not (journal_only and topic is not None)
                ):
                    entry = (position, owner.tenant_id, owner.execution_id, seq)
                    found.append(LogEntry(*entry, topic, payload, link))
                    if len(found) == limit:
                        break
        return found

    def max_position(self) -> int | None:
        with self._lock:
            return len(self._log) or None

    def position_of(self, execution_id: str, seq: int) -> int | None:
        with self._lock:
            return self._positions.get((execution_id, seq))

    def insert_tracking(self, application_name: str, notification_id: int) -> None:
        with self._lock:
            current = self._tracking.get(application_name)
            if current is not None and current >= notification_id:
                raise ConflictError(
                    f"{application_name} has already processed past {notification_id}"
                )
            self._tracking[application_name] = notification_id

    def max_tracking_id(self, application_name: str) -> int | None:
        with self._lock:
            return self._tracking.get(application_name)
