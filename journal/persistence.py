"""An eventsourcing persistence module over the journal's store-wide log.

Select it like eventsourcing's own ``sqlite`` and ``postgres`` modules::

    PERSISTENCE_MODULE=journal.persistence
    JOURNAL_DB=sqlite:///journal.db      # or postgresql://…, or memory://NAME

(eventsourcing also reads each variable prefixed with the upper-cased
application or projection name, e.g. ``SEALER_JOURNAL_DB``). Then
eventsourcing's ``ApplicationSubscription``, ``Projection`` and
``ProjectionRunner`` follow the journal unchanged: the application recorder
is the log (`journal.log`; notification ids are positions), a tracking
recorder keeps one row per follower in the same store, and the mapper hands
a projection a `LoggedEvent` (execution id, sequence, link and event).
``memory://NAME`` is one named store per process, so a runner that builds
its own application from the environment reaches the same one.

Subscriptions run a sequencer round (`journal.sql_log`) and read. On
PostgreSQL they also ``LISTEN`` to the channel a round notifies, so a round
run by another process wakes them; whatever wakes them, they catch up by
reading, so a lost notification only delays them by one poll interval
(`POLL_SECONDS`). Writers never ``NOTIFY``: PostgreSQL serialises the commits
of notifying transactions, which would put back the store-wide lock that
writers of different executions must not share.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    Mapper,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
    Transcoder,
    WaitInterruptedError,
)

from journal.codec import decode
from journal.errors import ConflictError
from journal.events import Event
from journal.follow import PAGE, POLL_SECONDS, waiter_for
from journal.log import LogEntry
from journal.recorder import RecordConflictError, StoreRecorder
from journal.store import Store, tag_from_payload
from journal.urls import DEFAULT_URL, open_store

__all__ = [
    "POLL_SECONDS",
    "JournalFactory",
    "JournalLog",
    "JournalNotification",
    "LogMapper",
    "LogRecorder",
    "LoggedEvent",
    "StoreTrackingRecorder",
]


@dataclass(frozen=True)
class JournalNotification(Notification):
    """A notification that also carries the tenant and the chain link."""

    tenant_id: str
    link: bytes
    generic: bool


@dataclass(frozen=True)
class LoggedEvent:
    """What a projection receives: one event at its place in the log.

    ``event`` is None for events written through eventsourcing's generic
    interface (their bytes are in ``payload``).
    """

    position: int
    tenant_id: str
    execution_id: str
    seq: int
    link: bytes
    payload: bytes
    event: Event | None


def _notification(entry: LogEntry) -> JournalNotification:
    return JournalNotification(
        originator_id=entry.execution_id,
        originator_version=entry.seq,
        topic=entry.topic or tag_from_payload(entry.payload),
        state=entry.payload,
        id=entry.position,
        tenant_id=entry.tenant_id,
        link=entry.link,
        generic=entry.topic is not None,
    )


class LogRecorder(StoreRecorder, ApplicationRecorder):
    """The store-wide log as eventsourcing's application recorder."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        super().insert_events(stored_events, **kwargs)
        self.store.sequence_log(wait=True)
        # One insert's events of one execution were numbered as one range.
        first: dict[str, tuple[int, int]] = {}
        positions = []
        for stored in stored_events:
            execution_id, seq = str(stored.originator_id), stored.originator_version
            if execution_id not in first:
                position = self.store.position_of(execution_id, seq)
                if position is None:  # pragma: no cover - a waiting round numbers all
                    raise RecordConflictError(
                        f"{execution_id} seq {seq} has no position"
                    )
                first[execution_id] = (position, seq)
            position, first_seq = first[execution_id]
            positions.append(position + seq - first_seq)
        return positions

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        self.store.sequence_log()
        after = (start or 1) - 1 if inclusive_of_start else (start or 0)
        entries = self.store.read_log(after, limit, stop=stop, topics=topics)
        return [_notification(entry) for entry in entries]

    def max_notification_id(self) -> int | None:
        self.store.sequence_log()
        return self.store.max_position()

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return LogSubscription(self, gt=gt, topics=topics)


class LogSubscription(Subscription[LogRecorder]):
    """Follows the log (`journal.follow`): a round and a read, then a wait
    that a PostgreSQL round's NOTIFY or the next poll ends."""

    def __init__(
        self, recorder: LogRecorder, gt: int | None = None, topics: Sequence[str] = ()
    ) -> None:
        super().__init__(recorder, gt=gt, topics=topics)
        self._pending: deque[Notification] = deque()
        self._waiter = waiter_for(recorder.store)

    def stop(self) -> None:
        super().stop()
        self._waiter.close()

    def __next__(self) -> Notification:
        while not self._has_been_stopped:
            if not self._pending:
                self._pending.extend(self._fetch())
            if self._pending:
                found = self._pending.popleft()
                self._last_notification_id = found.id
                return found
            self._waiter.wait(POLL_SECONDS)
        raise StopIteration

    def _fetch(self) -> Sequence[Notification]:
        return self._recorder.select_notifications(
            self._last_notification_id or 0,
            PAGE,
            topics=self._topics,
            inclusive_of_start=False,
        )


#: How a tracking recorder's `wait` polls: the first pause, doubling to the
#: longest.
_FIRST_PAUSE_S = 0.005
_LONGEST_PAUSE_S = 0.05


class StoreTrackingRecorder(TrackingRecorder):
    """eventsourcing's tracking recorder: one row per follower in the store."""

    #: Prefixed to the followed application's name in the tracking table, so
    #: that each kind of view keeps its own position.
    view_name = ""

    def __init__(self, store: Store) -> None:
        self.store = store

    def tracking_key(self, application_name: str) -> str:
        """The tracking table's key for this view following `application_name`."""
        if not self.view_name:
            return application_name
        return f"{self.view_name}:{application_name}"

    def insert_tracking(self, tracking: Tracking) -> None:
        try:
            self.store.insert_tracking(
                self.tracking_key(tracking.application_name), tracking.notification_id
            )
        except ConflictError as e:
            raise RecordConflictError(str(e)) from e

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.store.max_tracking_id(self.tracking_key(application_name))

    def wait(
        self,
        application_name: str,
        notification_id: int | None,
        timeout: float = 1.0,
        interrupt: threading.Event | None = None,
    ) -> None:
        """As eventsourcing's `TrackingRecorder.wait`, polling every 5 ms at
        first and at most every 50 ms: its 100-800 ms steps added up to most
        of a second to a one-shot `journal seal` after the round was stored."""
        deadline = time.monotonic() + timeout
        pause = _FIRST_PAUSE_S
        while not self.has_tracking_id(application_name, notification_id):
            remaining = deadline - time.monotonic()
            if remaining < 0:
                raise TimeoutError(
                    f"Timed out waiting for notification {notification_id} "
                    f"from application '{application_name}' to be processed"
                )
            if interrupt is None:
                time.sleep(min(pause, remaining))
            elif interrupt.wait(timeout=min(pause, remaining)):
                raise WaitInterruptedError
            pause = min(pause * 2, _LONGEST_PAUSE_S)


class _NoTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError


class LogMapper(Mapper[str]):
    """Maps a notification of the log to a `LoggedEvent`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(transcoder=_NoTranscoder())

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        raise NotImplementedError("journal events are written by the journal")

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        if not isinstance(stored_event, JournalNotification):
            raise TypeError("the log mapper reads the journal's notifications")
        generic = stored_event.generic
        where = f"{stored_event.originator_id} seq {stored_event.originator_version}: "
        return LoggedEvent(
            position=stored_event.id,
            tenant_id=stored_event.tenant_id,
            execution_id=str(stored_event.originator_id),
            seq=stored_event.originator_version,
            link=stored_event.link,
            payload=stored_event.state,
            event=None if generic else decode(stored_event.state, where=where),
        )


class JournalFactory(InfrastructureFactory[TrackingRecorder]):
    """eventsourcing's infrastructure factory for a journal store."""

    JOURNAL_DB = "JOURNAL_DB"

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.store = open_store(self.env.get(self.JOURNAL_DB) or DEFAULT_URL)

    def mapper(
        self, transcoder: Transcoder | None = None, mapper_class: Any = None
    ) -> Mapper[Any]:
        return LogMapper()

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return StoreRecorder(self.store)

    def application_recorder(self) -> ApplicationRecorder:
        return LogRecorder(self.store)

    def tracking_recorder(
        self, tracking_recorder_class: type[TrackingRecorder] | None = None
    ) -> TrackingRecorder:
        cls = tracking_recorder_class or StoreTrackingRecorder
        return cls(self.store)  # type: ignore[call-arg]

    def process_recorder(self) -> ProcessRecorder:
        raise NotImplementedError("the journal has no process recorder")

    def close(self) -> None:
        self.store.close()


class JournalLog(Application[str]):
    """The journal seen as an eventsourcing application: follow it with
    ``ProjectionRunner(application_class=JournalLog, …)``."""

    name = "journal"
