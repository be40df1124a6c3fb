"""eventsourcing's interfaces over our stores: a recorder and a mapper.

`StoreRecorder` makes any journal `Store` an eventsourcing
`AggregateRecorder` (``insert_events`` / ``select_events``), tested with
eventsourcing's own ``AggregateRecorderTestCase``. Events written this way
are chained and indexed like ours. `MsgspecMapper` is the eventsourcing
`Mapper` for our events. This module is the only one that imports
eventsourcing, so reading, verifying and replaying never pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import (
    AggregateRecorder,
    IntegrityError,
    Mapper,
    StoredEvent,
    Transcoder,
)

from journal.codec import decode, encode
from journal.errors import ConflictError, ExecutionNotFoundError
from journal.events import Event, tag_of
from journal.ids import DEFAULT_TENANT
from journal.store import Store, Stored, tag_from_payload


class RecordConflictError(ConflictError, IntegrityError):
    """A version conflict, as both journal and eventsourcing code expect it."""


class StoreRecorder(AggregateRecorder):
    """A journal store seen through eventsourcing's recorder interface."""

    def __init__(self, store: Store, tenant_id: str = DEFAULT_TENANT) -> None:
        self.store = store
        self.tenant_id = tenant_id

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tenant_id = str(kwargs.get("tenant_id", self.tenant_id))
        by_originator: dict[str, list[Stored]] = {}
        for event in stored_events:
            by_originator.setdefault(str(event.originator_id), []).append(
                Stored(event.originator_version, event.topic, event.state)
            )
        try:
            self.store._insert_stored(tenant_id, by_originator)
        except (ConflictError, ExecutionNotFoundError) as e:
            # eventsourcing expects IntegrityError for any refused insert.
            raise RecordConflictError(str(e)) from e
        return None

    def select_events(
        self,
        originator_id: Any,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        rows = self.store._select_stored(str(originator_id), self.tenant_id, gt, lte)
        if desc:
            rows.reverse()
        if limit is not None:
            rows = rows[:limit]
        return [
            StoredEvent(
                originator_id=originator_id,
                originator_version=seq,
                topic=topic if topic is not None else tag_from_payload(payload),
                state=payload,
            )
            for seq, topic, payload in rows
        ]


class _NoTranscoder(Transcoder):
    """The mapper encodes with msgspec; eventsourcing's transcoder is unused."""

    def encode(self, obj: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError


class MsgspecMapper(Mapper[str]):
    """eventsourcing `Mapper` that stores our tag as topic and msgspec bytes.

    The stock mapper stores ``module:Class`` topics and reads ``vars(event)``,
    which a Struct lacks; this one replaces both of its methods, so renaming
    or moving a class never changes stored data. Our events do not repeat the
    execution id and sequence, so `to_stored` takes them explicitly (and
    `to_stored_event` takes an ``(execution_id, seq, event)`` triple).
    """

    def __init__(self) -> None:
        super().__init__(transcoder=_NoTranscoder())

    def to_stored(self, execution_id: str, seq: int, event: Event) -> StoredEvent:
        return StoredEvent(
            originator_id=execution_id,
            originator_version=seq,
            topic=tag_of(event),
            state=encode(event),
        )

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        execution_id, seq, event = domain_event
        return self.to_stored(execution_id, seq, event)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        where = f"{stored_event.originator_id} seq {stored_event.originator_version}: "
        return decode(stored_event.state, where=where)
