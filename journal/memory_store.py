"""The in-memory backend: for tests and the library's own examples.

The same contract as the SQL backends (`journal.store.Store`), kept in this
process: one lock, one dict of executions.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from journal.errors import ConflictError
from journal.keys import Keyring
from journal.leases import Lease, MemoryLeases
from journal.log import MemoryLog
from journal.store import (
    History,
    ListFilter,
    Row,
    Store,
    Stored,
    Summary,
    advanced,
    generic_summary,
    head_of,
    plan_append,
    plan_insert_stored,
    sign_imported,
)


@dataclass
class _MemoryExecution:
    summary: Summary
    rows: list[Row] = field(default_factory=list)
    topics: list[str | None] = field(default_factory=list)
    snapshots: dict[int, bytes] = field(default_factory=dict)

    @property
    def tenant_id(self) -> str:
        return self.summary.tenant_id

    @property
    def execution_id(self) -> str:
        return self.summary.execution_id

    def event(self, index: int) -> tuple[str | None, bytes, bytes, int]:
        row = self.rows[index]
        return self.topics[index], row.payload, row.hash, row.seq


class MemoryStore(MemoryLeases, MemoryLog, Store):
    """A store in this process's memory: for tests and examples."""

    def __init__(self, url: str = "memory://", keyring: Keyring | None = None) -> None:
        MemoryLeases.__init__(self)
        MemoryLog.__init__(self)
        self.url = url
        self.keyring = keyring or Keyring.from_env()
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
        *,
        lease: Lease | None = None,
    ) -> Summary:
        with self._lock:
            self._fence(lease)
            existing = self._executions.get(summary.execution_id)
            head = None if existing is None else head_of(existing.summary)
            rows, new = plan_append(
                self.keyring,
                summary,
                expected_seq,
                head,
                payloads,
                store_signed=self._signed(),
            )
            target = existing or _MemoryExecution(new)
            target.summary = new
            target.rows.extend(rows)
            target.topics.extend(topics or [None] * len(rows))
            self._executions[summary.execution_id] = target
            self._log_appended(target, len(target.rows) - len(rows), len(rows))
            return new

    def _signed(self) -> bool:
        return any(e.summary.key_id for e in self._executions.values())

    def get_summary(self, execution_id: str, tenant_id: str) -> Summary | None:
        with self._lock:
            found = self._owned(execution_id, tenant_id)
            return found.summary if found else None

    def load_history(self, execution_id: str, tenant_id: str) -> History | None:
        with self._lock:
            found = self._owned(execution_id, tenant_id)
            return History(found.summary, list(found.rows)) if found else None

    def last_links(
        self, tenant_id: str, execution_ids: Sequence[str]
    ) -> dict[str, tuple[int, bytes]]:
        with self._lock:
            found = (self._owned(i, tenant_id) for i in execution_ids)
            return {
                e.summary.execution_id: (e.rows[-1].seq, e.rows[-1].hash)
                for e in found
                if e is not None and e.rows
            }

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

    def import_histories(
        self, histories: Sequence[History], schemas: Mapping[str, bytes] | None = None
    ) -> list[str]:
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
            signed = self._signed()
            for history in to_write.values():
                summary = sign_imported(self.keyring, history.summary, signed)
                written = _MemoryExecution(
                    summary, list(history.rows), [None] * len(history.rows)
                )
                self._executions[history.summary.execution_id] = written
                self._log_appended(written, 0, len(history.rows))
            for schema_hash, document in (schemas or {}).items():
                self._schemas.setdefault(schema_hash, document)
            return list(to_write)

    def _insert_stored(
        self, tenant_id: str, by_originator: dict[str, list[Stored]]
    ) -> None:
        with self._lock:
            planned = []
            for execution_id, events in by_originator.items():
                existing = self._executions.get(execution_id)
                head = None if existing is None else head_of(existing.summary)
                rows = plan_insert_stored(
                    self.keyring, execution_id, tenant_id, head, events
                )
                planned.append((execution_id, existing, rows, events))
            signed = self._signed()
            for execution_id, existing, rows, events in planned:
                if existing is None:
                    summary = generic_summary(
                        self.keyring, execution_id, tenant_id, rows, store_signed=signed
                    )
                else:
                    summary = advanced(
                        self.keyring, existing.summary, rows, store_signed=signed
                    )
                target = existing or _MemoryExecution(summary)
                target.summary = summary
                target.rows.extend(rows)
                target.topics.extend(e.topic for e in events)
                self._executions[execution_id] = target
                self._log_appended(target, len(target.rows) - len(rows), len(rows))

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
