"""The store interface, its row types, and the in-memory backend.

Every store can be used as an eventsourcing `AggregateRecorder` through
`journal.recorder.StoreRecorder` (tested with eventsourcing's own recorder
test case; kept in its own module so that reading and replaying never pay
for importing eventsourcing). A store keeps, in the same transaction as the
events:

* the hash chain: each row holds its link ``h_n``, computed *inside* the
  append transaction from the previous row's link, so no writer can store a
  broken chain and no read-modify-write race exists;
* the executions index (tenant, state, flow, times, counts, head), used for
  listing without scanning events and for O(1) summaries;
* snapshots (a cache of folded state; never trusted by verify or replay) and
  schema documents, stored once per hash.

Every read and write is tenant-scoped: another tenant's execution is
reported exactly as a missing one.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

import msgspec

from journal.chain import Hasher, chain_rows
from journal.chain import Row as Row  # re-exported: stores speak in rows
from journal.errors import ConflictError, ExecutionNotFoundError
from journal.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class Summary:
    """The executions-index row: what listing and summaries read."""

    execution_id: str
    tenant_id: str
    state: str = "Created"
    flow: str | None = None
    parent_id: str | None = None
    schema_version: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    step_count: int = 0
    failed_steps: int = 0
    output: bytes | None = None
    error: bytes | None = None
    alg: str = "sha256"
    head_seq: int = 0
    head_hash: bytes = b""

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return int((self.ended_at - self.started_at).total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class History:
    """A whole execution as stored: its summary and every row in order."""

    summary: Summary
    rows: list[Row]


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which executions `list_summaries` returns (newest first)."""

    state: str | None = None
    flow: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    parent_id: str | None = None


class Stored(NamedTuple):
    """An event written through eventsourcing's interface."""

    version: int
    topic: str | None
    state: bytes


class _TagOnly(msgspec.Struct):
    type: str = ""


_tag_decoder = msgspec.json.Decoder(_TagOnly)


def tag_from_payload(payload: bytes) -> str:
    """The event tag inside a payload (used when no topic was stored)."""
    try:
        return _tag_decoder.decode(payload).type
    except msgspec.DecodeError:
        return ""


def not_found(execution_id: str, tenant_id: str) -> ExecutionNotFoundError:
    return ExecutionNotFoundError(
        f"execution {execution_id} not found in tenant {tenant_id}"
    )


def stale(execution_id: str, expected: int, actual: int) -> ConflictError:
    return ConflictError(
        f"{execution_id}: append expected head seq {expected} but the store has "
        f"{actual}: a concurrent writer appended first"
    )


#: The index state of an execution written through eventsourcing's generic
#: recorder interface (its events are not the journal's, so not folded).
GENERIC_STATE = "Recorded"


class Head(NamedTuple):
    """An execution's owner, chain algorithm and current head, as stored."""

    tenant_id: str
    alg: str
    seq: int
    hash: bytes
    state: str = GENERIC_STATE


def plan_append(
    hasher: Hasher,
    summary: Summary,
    expected_seq: int,
    head: Head | None,
    payloads: Sequence[bytes],
) -> tuple[list[Row], Summary]:
    """Check an append against the stored head; chain its rows.

    The one decision every backend makes inside its append transaction:
    not found (absent, or another tenant's), conflict (a stale head, or an
    id taken on create), else the new rows and the index row with its head.
    """
    execution_id, tenant_id = summary.execution_id, summary.tenant_id
    if head is None:
        if expected_seq != 0:
            raise not_found(execution_id, tenant_id)
        previous, alg = None, hasher.alg
    else:
        if head.tenant_id != tenant_id:
            if expected_seq == 0:
                raise ConflictError(f"{execution_id} already exists")
            raise not_found(execution_id, tenant_id)
        if head.seq != expected_seq:
            raise stale(execution_id, expected_seq, head.seq)
        previous, alg = head.hash, head.alg
    rows = chain_rows(hasher, execution_id, previous, expected_seq + 1, payloads)
    return rows, replace(
        summary, alg=alg, head_seq=rows[-1].seq, head_hash=rows[-1].hash
    )


def plan_insert_stored(
    hasher: Hasher,
    execution_id: str,
    tenant_id: str,
    head: Head | None,
    events: list[Stored],
) -> list[Row]:
    """Check and chain events written through eventsourcing's interface.

    Only into executions of this tenant that were written the same way:
    the journal's own executions change only through its commands (which
    fold every event and keep the index row true).
    """
    if head is not None and head.tenant_id != tenant_id:
        raise not_found(execution_id, tenant_id)
    if head is not None and head.state != GENERIC_STATE:
        raise ConflictError(
            f"{execution_id} is a journal execution ({head.state}): append "
            "through the journal's commands, not the generic recorder"
        )
    check_contiguous(execution_id, events)
    first = events[0].version
    if head is not None and first != head.seq + 1:
        raise stale(execution_id, first - 1, head.seq)
    previous = head.hash if head is not None else None
    return chain_rows(hasher, execution_id, previous, first, [e.state for e in events])


def generic_summary(
    hasher: Hasher, execution_id: str, tenant_id: str, rows: Sequence[Row]
) -> Summary:
    """The index row of a new execution written through eventsourcing's
    interface (its events are not folded: only owner, chain and head)."""
    return Summary(
        execution_id=execution_id,
        tenant_id=tenant_id,
        state=GENERIC_STATE,
        alg=hasher.alg,
        head_seq=rows[-1].seq,
        head_hash=rows[-1].hash,
    )


class Store(ABC):
    """What every backend provides; see the module docstring."""

    url: str
    hasher: Hasher
    #: How transient failures are retried (see `journal.retry`).
    retry_policy: RetryPolicy = RetryPolicy()

    @abstractmethod
    def append(
        self,
        summary: Summary,
        expected_seq: int,
        payloads: Sequence[bytes],
        topics: Sequence[str | None] | None = None,
    ) -> Summary:
        """Append payloads after `expected_seq`; return the new index row.

        `summary` describes the execution after these events; its head fields
        are filled in by the store. Raises `ConflictError` when the head is
        no longer `expected_seq` (or, at 0, when the id exists), and
        `ExecutionNotFoundError` when the id belongs to another tenant.
        """

    @abstractmethod
    def get_summary(self, execution_id: str, tenant_id: str) -> Summary | None:
        """The index row, or None if absent in this tenant."""

    @abstractmethod
    def load_rows(
        self, execution_id: str, tenant_id: str, after: int = 0, upto: int | None = None
    ) -> list[Row]:
        """Rows in sequence order (empty if absent in this tenant)."""

    @abstractmethod
    def list_summaries(self, tenant_id: str, where: ListFilter) -> list[Summary]:
        """Index rows of a tenant, newest first."""

    @abstractmethod
    def save_snapshot(
        self, execution_id: str, tenant_id: str, seq: int, state: bytes
    ) -> None:
        """Cache folded state at `seq` (replacing any other snapshot)."""

    @abstractmethod
    def load_snapshot(
        self, execution_id: str, tenant_id: str, upto: int | None = None
    ) -> tuple[int, bytes] | None:
        """The latest snapshot at or before `upto`: (seq, state)."""

    @abstractmethod
    def put_schema(self, schema_hash: str, document: bytes) -> None:
        """Store a schema document once per hash."""

    @abstractmethod
    def get_schema(self, schema_hash: str) -> bytes | None:
        """A stored schema document, or None."""

    @abstractmethod
    def import_histories(self, histories: Sequence[History]) -> list[str]:
        """Write whole histories in one transaction; return ids written.

        Rows are stored with the hashes they carry (the caller verified
        them). A history already present with identical rows is skipped; a
        different one under the same id raises `ConflictError` and nothing
        is written.
        """

    def close(self) -> None:  # noqa: B027 - optional: not every store holds any
        """Release connections."""

    # what journal.recorder.StoreRecorder (eventsourcing's interface) uses ---

    @abstractmethod
    def _insert_stored(
        self, tenant_id: str, by_originator: dict[str, list[Stored]]
    ) -> None:
        """Insert eventsourcing stored events atomically (chained like ours)."""

    @abstractmethod
    def _select_stored(
        self, execution_id: str, tenant_id: str, gt: int | None, lte: int | None
    ) -> list[tuple[int, str | None, bytes]]:
        """(seq, topic, payload) rows in ascending order."""


def check_contiguous(execution_id: str, events: list[Stored]) -> None:
    """Versions in one insert must be distinct and consecutive."""
    versions = [e.version for e in events]
    if versions != list(range(versions[0], versions[0] + len(versions))):
        raise ConflictError(f"{execution_id}: versions {versions} are not consecutive")


@dataclass
class _MemoryExecution:
    summary: Summary
    rows: list[Row] = field(default_factory=list)
    topics: list[str | None] = field(default_factory=list)
    snapshots: dict[int, bytes] = field(default_factory=dict)


class MemoryStore(Store):
    """A store in this process's memory: for tests and examples."""

    def __init__(self, url: str = "memory://", hasher: Hasher | None = None) -> None:
        self.url = url
        self.hasher = hasher or Hasher.from_env()
        self._lock = threading.RLock()
        self._executions: dict[str, _MemoryExecution] = {}
        self._schemas: dict[str, bytes] = {}

    def _owned(self, execution_id: str, tenant_id: str) -> _MemoryExecution | None:
        found = self._executions.get(execution_id)
        return found if found and found.summary.tenant_id == tenant_id else None

    def append(
        self,
        summary: Summary,
        expected_seq: int,
        payloads: Sequence[bytes],
        topics: Sequence[str | None] | None = None,
    ) -> Summary:
        with self._lock:
            existing = self._executions.get(summary.execution_id)
            head = None if existing is None else _head_of(existing.summary)
            rows, new = plan_append(self.hasher, summary, expected_seq, head, payloads)
            target = existing or _MemoryExecution(new)
            target.summary = new
            target.rows.extend(rows)
            target.topics.extend(topics or [None] * len(rows))
            self._executions[summary.execution_id] = target
            return new

    def get_summary(self, execution_id: str, tenant_id: str) -> Summary | None:
        with self._lock:
            found = self._owned(execution_id, tenant_id)
            return found.summary if found else None

    def load_rows(
        self, execution_id: str, tenant_id: str, after: int = 0, upto: int | None = None
    ) -> list[Row]:
        with self._lock:
            found = self._owned(execution_id, tenant_id)
            if found is None:
                return []
            return [
                r
                for r in found.rows
                if r.seq > after and (upto is None or r.seq <= upto)
            ]

    def list_summaries(self, tenant_id: str, where: ListFilter) -> list[Summary]:
        with self._lock:
            found = [
                e.summary
                for e in self._executions.values()
                if e.summary.tenant_id == tenant_id and _matches(e.summary, where)
            ]
        found.sort(key=lambda s: (s.created_at or datetime.min, s.execution_id))
        found.reverse()
        return found[: where.limit] if where.limit is not None else found

    def save_snapshot(
        self, execution_id: str, tenant_id: str, seq: int, state: bytes
    ) -> None:
        with self._lock:
            found = self._owned(execution_id, tenant_id)
            if found is not None:
                found.snapshots = {seq: state}

    def load_snapshot(
        self, execution_id: str, tenant_id: str, upto: int | None = None
    ) -> tuple[int, bytes] | None:
        with self._lock:
            found = self._owned(execution_id, tenant_id)
            if found is None:
                return None
            seqs = [s for s in found.snapshots if upto is None or s <= upto]
            return (max(seqs), found.snapshots[max(seqs)]) if seqs else None

    def put_schema(self, schema_hash: str, document: bytes) -> None:
        with self._lock:
            self._schemas.setdefault(schema_hash, document)

    def get_schema(self, schema_hash: str) -> bytes | None:
        with self._lock:
            return self._schemas.get(schema_hash)

    def import_histories(self, histories: Sequence[History]) -> list[str]:
        with self._lock:
            to_write: dict[str, History] = {}
            for history in histories:
                execution_id = history.summary.execution_id
                found = self._executions.get(execution_id)
                existing = to_write.get(execution_id) or (
                    History(found.summary, found.rows) if found else None
                )
                if existing is None:
                    to_write[execution_id] = history
                elif existing.rows != history.rows or (
                    existing.summary.tenant_id != history.summary.tenant_id
                ):
                    raise ConflictError(
                        f"{execution_id}: a different history already exists "
                        "under this id"
                    )
            for history in to_write.values():
                self._executions[history.summary.execution_id] = _MemoryExecution(
                    history.summary,
                    list(history.rows),
                    [None] * len(history.rows),
                )
            return list(to_write)

    def _insert_stored(
        self, tenant_id: str, by_originator: dict[str, list[Stored]]
    ) -> None:
        with self._lock:
            planned = []
            for execution_id, events in by_originator.items():
                existing = self._executions.get(execution_id)
                head = None if existing is None else _head_of(existing.summary)
                rows = plan_insert_stored(
                    self.hasher, execution_id, tenant_id, head, events
                )
                planned.append((execution_id, existing, rows, events))
            for execution_id, existing, rows, events in planned:
                if existing is None:
                    summary = generic_summary(
                        self.hasher, execution_id, tenant_id, rows
                    )
                else:
                    last = rows[-1]
                    summary = replace(
                        existing.summary, head_seq=last.seq, head_hash=last.hash
                    )
                target = existing or _MemoryExecution(summary)
                target.summary = summary
                target.rows.extend(rows)
                target.topics.extend(e.topic for e in events)
                self._executions[execution_id] = target

    def _select_stored(
        self, execution_id: str, tenant_id: str, gt: int | None, lte: int | None
    ) -> list[tuple[int, str | None, bytes]]:
        with self._lock:
            found = self._owned(execution_id, tenant_id)
            if found is None:
                return []
            return [
                (row.seq, topic, row.payload)
                for row, topic in zip(found.rows, found.topics, strict=True)
                if (gt is None or row.seq > gt) and (lte is None or row.seq <= lte)
            ]


def _head_of(summary: Summary) -> Head:
    return Head(
        summary.tenant_id,
        summary.alg,
        summary.head_seq,
        summary.head_hash,
        summary.state,
    )


def _matches(summary: Summary, where: ListFilter) -> bool:
    created = summary.created_at
    return (
        (where.state is None or _state_matches(summary.state, where.state))
        and (where.flow is None or summary.flow == where.flow)
        and (where.parent_id is None or summary.parent_id == where.parent_id)
        and (where.since is None or (created is not None and created >= where.since))
        and (where.until is None or (created is not None and created < where.until))
    )


def _state_matches(state: str, wanted: str) -> bool:
    """``Waiting`` matches every ``Waiting(reason)``."""
    return state == wanted or state.startswith(wanted + "(")
