"""A census of stored executions taken from the events table, not an index.

`journal verify --all` walks it so that no execution can hide: an execution
whose entry in the time index is damaged is still reached through its events
(and the executions row they point at by key), and events whose executions
row is missing altogether are reported as orphans of the tenant their first
event names.
"""

from __future__ import annotations

from dataclasses import dataclass

from journal.errors import JournalError


@dataclass(frozen=True)
class Orphan:
    """Stored events under a key that has no executions-index row."""

    key: int
    #: The tenant the first event names; None when it does not decode.
    tenant_id: str | None
    events: int

    def describe(self) -> str:
        """One line for a report."""
        whose = self.tenant_id or "an unreadable first event"
        return (
            f"{self.events} stored events under key {self.key} have no "
            f"executions-index row (first event: {whose})"
        )


@dataclass(frozen=True)
class Census:
    """What the events table holds for one tenant."""

    #: Ids of this tenant's executions that have stored events.
    execution_ids: tuple[str, ...]
    #: Events without an index row that belong (or may belong) to the tenant.
    orphans: tuple[Orphan, ...] = ()


def first_event_tenant(payload: bytes) -> str | None:
    """The tenant an execution's first stored payload names, if it decodes."""
    from journal import events as ev
    from journal.codec import decode

    try:
        event = decode(payload)
    except JournalError:
        return None
    return event.tenant_id if isinstance(event, ev.ExecutionCreated) else None
