"""The store interface and its row types (the in-memory backend is
`journal.memory_store`; the SQL ones `journal.sqlite_store` and
`journal.postgres_store`).

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

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

import msgspec

from journal.census import Census
from journal.chain import (
    HMAC_SHA256,
    SHA256,
    ChainPoint,
    Digest,
    Genesis,
    chain_rows,
    genesis_link,
    genesis_preimage,
    head_record,
    sha256,
)
from journal.chain import Row as Row  # re-exported: stores speak in rows
from journal.errors import ConflictError, ExecutionNotFoundError, SigningKeyError
from journal.keys import SIGNING_KEY_ENV, Keyring
from journal.leases import Lease, LeaseStore
from journal.log import LogStore
from journal.model import elapsed_ms
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
    genesis: bytes | None = None  # v2: the preimage of h_0, verbatim
    key_id: str | None = None  # the id of the key that signed the head
    head_mac: bytes | None = None

    def head_record(self) -> bytes:
        """The canonical head record (what the MAC covers, a ledger leaf)."""
        return head_record(
            self.tenant_id,
            self.execution_id,
            self.flow,
            self.state,
            self.head_seq,
            self.head_hash,
        )

    @property
    def duration_ms(self) -> int | None:
        return elapsed_ms(self.started_at, self.ended_at)


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
    """An execution's owner, chain and current head, as stored."""

    tenant_id: str
    alg: str
    seq: int
    hash: bytes
    state: str = GENERIC_STATE
    genesis: bytes | None = None
    key_id: str | None = None


def head_of(summary: Summary) -> Head:
    """The head an index row records."""
    return Head(
        summary.tenant_id,
        summary.alg,
        summary.head_seq,
        summary.head_hash,
        summary.state,
        summary.genesis,
        summary.key_id,
    )


def default_genesis(summary: Summary, parent_head: tuple[int, bytes] | None) -> bytes:
    """The v2 genesis preimage of a new execution with no origin."""
    parent = None
    if summary.parent_id is not None:
        seq, link = parent_head if parent_head else (None, None)
        parent = ChainPoint(
            execution_id=summary.parent_id, seq=seq, link=link.hex() if link else None
        )
    return genesis_preimage(
        Genesis(
            tenant_id=summary.tenant_id,
            execution_id=summary.execution_id,
            flow=summary.flow,
            parent=parent,
        )
    )


def _continue_from(keyring: Keyring, execution_id: str, head: Head) -> Digest:
    """The link digest to extend a stored chain with."""
    if head.genesis is not None or head.alg != HMAC_SHA256:
        return sha256
    if keyring.current is None:  # a first-round chain keyed with HMAC
        raise SigningKeyError(
            f"{execution_id}: a v1 hmac-sha256 chain: appending needs the key it "
            f"was signed with in {SIGNING_KEY_ENV}"
        )
    return keyring.current.v1_digest()


def sign(
    summary: Summary, keyring: Keyring, *, signed_by: str | None, store_signed: bool
) -> Summary:
    """The index row with its head MAC (v2 chains), or unsigned when no key
    is set: refused if the chain (`signed_by`, its key id) or the store was
    signed, unless the keyring allows unsigned writes."""
    if summary.genesis is None:
        return summary  # v1: the links themselves are keyed, or not
    key = keyring.current
    if key is not None:
        mac = key.head_mac(summary.head_record())
        return replace(summary, key_id=key.key_id, head_mac=mac)
    if (signed_by or store_signed) and not keyring.allow_unsigned:
        what = (
            f"its chain is signed with key {signed_by}"
            if signed_by
            else ("the store holds signed chains")
        )
        raise SigningKeyError(
            f"{summary.execution_id}: refusing an unsigned write: {what} and "
            f"{SIGNING_KEY_ENV} is not set (or pass --allow-unsigned)"
        )
    return replace(summary, key_id=None, head_mac=None)


def plan_append(
    keyring: Keyring,
    summary: Summary,
    expected_seq: int,
    head: Head | None,
    payloads: Sequence[bytes],
    *,
    store_signed: bool = False,
) -> tuple[list[Row], Summary]:
    """Check an append against the stored head; chain its rows; sign.

    The one decision every backend makes inside its append transaction:
    not found (absent, or another tenant's), conflict (a stale head, or an
    id taken on create), else the new rows and the index row with its head
    (and, with a key, its MAC). A new execution's genesis is
    `summary.genesis` when the caller set one, else `default_genesis`.
    """
    execution_id, tenant_id = summary.execution_id, summary.tenant_id
    if head is None:
        if expected_seq != 0:
            raise not_found(execution_id, tenant_id)
        genesis = summary.genesis or default_genesis(summary, None)
        digest: Digest = sha256
        previous, alg = genesis_link(genesis), SHA256
        signed_by = None
        summary = replace(summary, genesis=genesis)
    else:
        if head.tenant_id != tenant_id:
            if expected_seq == 0:
                raise ConflictError(f"{execution_id} already exists")
            raise not_found(execution_id, tenant_id)
        if head.seq != expected_seq:
            raise stale(execution_id, expected_seq, head.seq)
        digest = _continue_from(keyring, execution_id, head)
        previous, alg, signed_by = head.hash, head.alg, head.key_id
        summary = replace(summary, genesis=head.genesis)
    rows = chain_rows(previous, expected_seq + 1, payloads, digest)
    new = replace(summary, alg=alg, head_seq=rows[-1].seq, head_hash=rows[-1].hash)
    return rows, sign(new, keyring, signed_by=signed_by, store_signed=store_signed)


def sign_imported(keyring: Keyring, summary: Summary, store_signed: bool) -> Summary:
    """An imported index row, signed with this store's current key (the
    history's chain was verified when its file was read)."""
    return sign(summary, keyring, signed_by=summary.key_id, store_signed=store_signed)


def plan_insert_stored(
    keyring: Keyring,
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
    payloads = [e.state for e in events]
    if head is None:
        genesis = generic_genesis(execution_id, tenant_id)
        return chain_rows(genesis_link(genesis), first, payloads)
    digest = _continue_from(keyring, execution_id, head)
    return chain_rows(head.hash, first, payloads, digest)


def generic_genesis(execution_id: str, tenant_id: str) -> bytes:
    """The genesis of an execution written through eventsourcing's interface."""
    return genesis_preimage(Genesis(tenant_id=tenant_id, execution_id=execution_id))


def generic_summary(
    keyring: Keyring,
    execution_id: str,
    tenant_id: str,
    rows: Sequence[Row],
    *,
    store_signed: bool = False,
) -> Summary:
    """The signed index row of a new execution written through
    eventsourcing's interface (not folded: only owner, chain and head)."""
    summary = Summary(
        execution_id=execution_id,
        tenant_id=tenant_id,
        state=GENERIC_STATE,
        alg=SHA256,
        head_seq=rows[-1].seq,
        head_hash=rows[-1].hash,
        genesis=generic_genesis(execution_id, tenant_id),
    )
    return sign(summary, keyring, signed_by=None, store_signed=store_signed)


def advanced(
    keyring: Keyring, summary: Summary, rows: Sequence[Row], *, store_signed: bool
) -> Summary:
    """A generic execution's index row after more rows (re-signed)."""
    moved = replace(summary, head_seq=rows[-1].seq, head_hash=rows[-1].hash)
    return sign(moved, keyring, signed_by=summary.key_id, store_signed=store_signed)


class Store(LeaseStore, LogStore, ABC):
    """What every backend provides; see the module docstring."""

    url: str
    keyring: Keyring
    #: How transient failures are retried (see `journal.retry`).
    retry_policy: RetryPolicy = RetryPolicy()

    @abstractmethod
    def append(
        self,
        summary: Summary,
        expected_seq: int,
        payloads: Sequence[bytes],
        topics: Sequence[str | None] | None = None,
        *,
        lease: Lease | None = None,
    ) -> Summary:
        """Append payloads after `expected_seq`; return the new index row.

        `summary` describes the execution after these events; its head fields
        are filled in by the store. Raises `ConflictError` when the head is
        no longer `expected_seq` (or, at 0, when the id exists), and
        `ExecutionNotFoundError` when the id belongs to another tenant. With
        a `lease`, raises `LeaseLostError` (checked first) unless its token
        is still the execution's current one.
        """

    @abstractmethod
    def get_summary(self, execution_id: str, tenant_id: str) -> Summary | None:
        """The index row, or None if absent in this tenant."""

    @abstractmethod
    def load_history(self, execution_id: str, tenant_id: str) -> History | None:
        """The index row and every event row, read in ONE consistent
        snapshot (so the head check is exact), or None if absent."""

    @abstractmethod
    def last_links(
        self, tenant_id: str, execution_ids: Sequence[str]
    ) -> dict[str, tuple[int, bytes]]:
        """The stored last event row (seq, link) of each execution."""

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
    def import_histories(
        self, histories: Sequence[History], schemas: Mapping[str, bytes] | None = None
    ) -> list[str]:
        """Write whole histories in one transaction; return ids written.

        Rows are stored with the hashes they carry (the caller verified
        them); `schemas` (documents by hash, each checked by the caller) are
        written in the same transaction. A history already present with
        identical rows is skipped; a different one under the same id raises
        `ConflictError` and nothing is written.
        """

    def census(self, tenant_id: str) -> Census:
        """This tenant's executions as the events table holds them, found
        without the time index (see `journal.census`). A store with no
        separate index answers from its executions."""
        where = ListFilter()
        ids = [s.execution_id for s in self.list_summaries(tenant_id, where)]
        return Census(tuple(ids))

    def close(self) -> None:
        """Release connections."""

    def migrate(self) -> int:
        """Bring the store's tables to the current layout (``journal
        migrate``, run as their owner); return the layout it had."""
        return 2

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
