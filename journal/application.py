"""The Journal: tenant-scoped reads, verification, folding and appends.

``journal.open(url, tenant=...)`` returns a `Journal`. Reads verify the
hash chain before decoding (stored bytes are hashed as they are); `get` may
start from a snapshot (a cache), `verify` and `history` never do.
"""

from __future__ import annotations

import builtins
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from journal import codec
from journal import events as ev
from journal.binding import cheap_status, decode_rows, summarize, verify_history
from journal.chain import ChainPoint, Genesis, genesis_preimage, parse_genesis
from journal.errors import (
    ChainIntegrityError,
    EventDecodeError,
    InvalidTransitionError,
    JournalError,
)
from journal.fold import apply_in_place, fold
from journal.ids import (
    DEFAULT_TENANT,
    ExecutionId,
    TenantId,
    parse_execution_id,
    parse_tenant_id,
)
from journal.keys import Keyring
from journal.leases import HEARTBEAT_EVERY_S, STALE_AFTER_S, Lease, new_owner
from journal.model import Execution, ParentLink
from journal.packing import CONTROL_BYTE
from journal.retry import append_with_retry
from journal.store import ListFilter, Row, Store, Summary, not_found
from journal.urls import DEFAULT_URL, open_store
from journal.validation import CONTROL, check_events, classify

if TYPE_CHECKING:
    from journal.commands import ExecutionHandle

log = logging.getLogger("journal")
SNAPSHOT_EVERY = 10_000
_LINK_BYTES = 32  # a snapshot blob starts with the chain link at its version


def crosses_snapshot_point(before: int, after: int, every: int) -> bool:
    """True if a snapshot point lies in (before, after].

    The points are ``every`` x 1, 1.5, 2, 3, 4, 6, 8, …: geometric, so the
    total cost of snapshotting an execution stays linear in its size (each
    snapshot encodes the whole state), and a fold from the latest snapshot
    covers at most a third of the events.
    """
    if after < every:
        return False
    point = every
    while point <= after:
        if point > before:
            return True
        half_step = point + point // 2
        if before < half_step <= after:
            return True
        point *= 2
    return False


_snapshot_decoder = msgspec.json.Decoder(Execution)
_snapshot_encoder = msgspec.json.Encoder()


def utc_now() -> datetime:
    """Wall-clock UTC now (what every event's ``at`` holds)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """A decoded event with its place in the chain."""

    seq: int
    hash: bytes
    payload: bytes
    event: ev.AnyEvent


@dataclass(frozen=True, slots=True)
class VerifiedHistory:
    """A whole execution, its chain verified: summary, rows, decoded events."""

    summary: Summary
    rows: list[Row]
    events: list[ev.AnyEvent]
    state: Execution | None = None  # the fold (None: not a journal execution)

    @property
    def head(self) -> tuple[int, bytes]:
        return (self.rows[-1].seq, self.rows[-1].hash) if self.rows else (0, b"")


class Journal:
    """A tenant's view of one store. Use as a context manager to close it."""

    def __init__(
        self,
        store: Store,
        tenant: str = DEFAULT_TENANT,
        *,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        self.store = store
        self.tenant_id: TenantId = parse_tenant_id(tenant)
        self.snapshot_every = snapshot_every
        self._stored_schemas: dict[str, bytes] = {}  # written by this journal
        #: How often a run's heartbeat renews its lease (seconds).
        self.heartbeat_every_s = float(
            os.environ.get("JOURNAL_HEARTBEAT_S") or HEARTBEAT_EVERY_S
        )
        #: The time-to-live this journal's leases get (None: three heartbeats).
        self.lease_ttl_s: float | None = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    def with_tenant(self, tenant: str) -> Journal:
        """The same store seen by another tenant."""
        return Journal(self.store, tenant, snapshot_every=self.snapshot_every)

    # --- reads ---------------------------------------------------------

    def summary(self, execution_id: str) -> Summary:
        """The index row of an execution (O(1)); not found across tenants."""
        found = self.store.get_summary(parse_execution_id(execution_id), self.tenant_id)
        if found is None:
            raise not_found(execution_id, self.tenant_id)
        return found

    def list(self, where: ListFilter | None = None) -> builtins.list[Summary]:
        """This tenant's executions, newest first."""
        return self.store.list_summaries(self.tenant_id, where or ListFilter())

    def statuses(self, summaries: Sequence[Summary]) -> dict[str, str]:
        """`journal.binding.cheap_status` of each index row (one query)."""
        ids = [s.execution_id for s in summaries]
        last = self.store.last_links(self.tenant_id, ids)
        keyring = self.store.keyring
        return {
            s.execution_id: cheap_status(s, last.get(s.execution_id), keyring)
            for s in summaries
        }

    def history(
        self, execution_id: str, *, expect_head: tuple[int, bytes] | None = None
    ) -> VerifiedHistory:
        """Every event, the whole chain verified first, then decoded (the
        index row and the events read together, in one snapshot)."""
        return self._history(parse_execution_id(execution_id), expect_head)

    def history_of(
        self, summary: Summary, *, expect_head: tuple[int, bytes] | None = None
    ) -> VerifiedHistory:
        """`history` for an index row already in hand (from `summary`/`list`):
        the row and the events are read again, together, in one snapshot."""
        return self._history(summary.execution_id, expect_head)

    def _history(
        self, execution_id: str, expect_head: tuple[int, bytes] | None
    ) -> VerifiedHistory:
        found = self.store.load_history(execution_id, self.tenant_id)
        if found is None:
            raise not_found(execution_id, self.tenant_id)
        _, events, state = verify_history(
            found.summary, found.rows, self.store.keyring, expect_head=expect_head
        )
        self._check_points(found.summary)
        return VerifiedHistory(found.summary, found.rows, events, state)

    def _check_points(self, summary: Summary) -> None:
        """The parent head and fork origin the genesis names are links of
        those chains, where they are stored in this tenant."""
        if summary.genesis is None:
            return
        genesis = parse_genesis(summary.genesis, summary.execution_id)
        for role, point in (("parent", genesis.parent), ("origin", genesis.origin)):
            if point is None or point.seq is None or point.link is None:
                continue
            rows = self.store.load_rows(
                point.execution_id, self.tenant_id, point.seq - 1, point.seq
            )
            if rows and rows[0].hash.hex() != point.link:
                raise ChainIntegrityError(
                    f"{summary.execution_id}: the genesis names {role} "
                    f"{point.execution_id} at seq {point.seq} with link "
                    f"{point.link[:16]}…, but that event's link is "
                    f"{rows[0].hash.hex()[:16]}…",
                    seq=1,
                )

    def verify(
        self, execution_id: str, *, expect_head: tuple[int, bytes] | None = None
    ) -> tuple[int, bytes]:
        """The full check (`journal.binding.verify_history`): the chain, its
        genesis, the exact head, the MAC and the fold against the index row,
        all read in one snapshot. Returns the head (N, h_N) or raises."""
        return self.history(execution_id, expect_head=expect_head).head

    def events(self, execution_id: str) -> builtins.list[RecordedEvent]:
        """Decoded events with their sequence numbers and links (verified)."""
        history = self.history(execution_id)
        return [
            RecordedEvent(row.seq, row.hash, row.payload, event)
            for row, event in zip(history.rows, history.events, strict=True)
        ]

    def get(self, execution_id: str, *, at: int | None = None) -> Execution:
        """The state after event `at` (default: the head), folded.

        Starts from the latest snapshot at or before `at` when there is one:
        snapshots are a cache. Use `history` or `verify` for proof.
        """
        summary = self.summary(execution_id)
        if at is not None and not 1 <= at <= summary.head_seq:
            raise InvalidTransitionError(
                f"{execution_id}: no event {at} (it has 1..{summary.head_seq})"
            )
        start, rows = self._snapshot_and_rows(summary.execution_id, at)
        after = start.version if start is not None else 0
        if rows and rows[0].seq != after + 1:
            raise ChainIntegrityError(
                f"{execution_id}: chain broken at seq {after + 1}: event missing",
                seq=after + 1,
            )
        return fold(
            ExecutionId(summary.execution_id),
            decode_rows(summary.execution_id, rows),
            start,
        )

    def _snapshot_and_rows(
        self, execution_id: str, at: int | None
    ) -> tuple[Execution | None, builtins.list[Row]]:
        """The latest usable snapshot at or before `at`, and the rows after it.

        A snapshot records the chain link at its version; one whose link is
        not the stored event's there (the history was edited, or the
        snapshot was), or that does not decode, is ignored: it is a cache.
        """
        found = self.store.load_snapshot(execution_id, self.tenant_id, at)
        if found is None:
            return None, self.store.load_rows(execution_id, self.tenant_id, 0, at)
        seq, blob = found
        # One read from the snapshot's own event on: its link, then the rest.
        rows = self.store.load_rows(execution_id, self.tenant_id, seq - 1, at)
        state = _decode_snapshot(blob, execution_id, seq, rows)
        if state is None:
            return None, self.store.load_rows(execution_id, self.tenant_id, 0, at)
        return state, rows[1:]

    # --- writes --------------------------------------------------------

    def append(
        self,
        expected: int,
        after: Execution,
        new: Sequence[ev.Event],
        *,
        lease: Lease | None = None,
        origin: ChainPoint | None = None,
    ) -> Summary:
        """Append `new` after seq `expected`; `after` is the state they lead to
        (the caller folded them, which checked every transition). With a
        `lease`, the store refuses the append (`LeaseLostError`) unless the
        lease is still the execution's current one.

        At ``expected == 0`` the chain's v2 genesis is made here: it binds
        the tenant, id, flow, the parent's current head (for a child) and
        `origin` (for a fork: the execution and sequence it continues).
        """
        if after.tenant_id != self.tenant_id:
            # A state folded under another tenant: as if the id did not exist.
            raise not_found(after.id, self.tenant_id)
        payloads = codec.encode_all(new)
        classes = classify(payloads)  # one pass for both checks below
        if CONTROL in classes:
            # Only a raw value handed in unchecked can do this (our encoder
            # escapes control characters); storage packing relies on it.
            pairs = zip(new, payloads, strict=True)
            bad = next(e for e, p in pairs if CONTROL_BYTE.search(p))
            raise EventDecodeError(
                f"{after.id}: a raw value in {ev.tag_of(bad)} is not JSON "
                "(it holds a control byte)"
            )
        check_events(
            new, payloads, lambda i: f"{after.id} event {expected + i + 1}", classes
        )
        codec.check_raw_values(str(after.id), new)
        summary = summarize(after)
        if expected == 0:
            summary = replace(summary, genesis=self.genesis_for(summary, origin))
        written = append_with_retry(
            self.store, summary, expected, payloads, lease=lease
        )
        if crosses_snapshot_point(expected, after.version, self.snapshot_every):
            self._cache_snapshot(after, written.head_hash)
        return written

    def _cache_snapshot(self, execution: Execution, link: bytes) -> None:
        """Snapshot after a committed append: a cache, so a failure is
        logged and the append still reported as committed."""
        try:
            self.save_snapshot(execution, link)
        except JournalError as error:
            log.warning(
                "%s: events up to seq %d are stored; caching a snapshot failed: %s",
                execution.id,
                execution.version,
                error,
            )

    def catch_up(self, state: Execution) -> Execution:
        """Fold onto `state` (in place) the events stored after its version.

        Reads only those rows: a handle that lost a race pays for the
        events it missed, not for the whole history. Like `get`, it trusts
        the stored rows (`verify` and `history` check the chain).
        """
        rows = self.store.load_rows(state.id, self.tenant_id, state.version)
        if rows and rows[0].seq != state.version + 1:
            raise ChainIntegrityError(
                f"{state.id}: chain broken at seq {state.version + 1}: event missing",
                seq=state.version + 1,
            )
        for event in decode_rows(state.id, rows):
            apply_in_place(state, event)
        return state

    def genesis_for(self, summary: Summary, origin: ChainPoint | None = None) -> bytes:
        """The v2 genesis preimage of a new execution (see `append`)."""
        parent = None
        if summary.parent_id is not None:
            found = self.store.get_summary(summary.parent_id, self.tenant_id)
            parent = ChainPoint(
                execution_id=summary.parent_id,
                seq=found.head_seq if found else None,
                link=found.head_hash.hex() if found else None,
            )
        return genesis_preimage(
            Genesis(
                tenant_id=summary.tenant_id,
                execution_id=summary.execution_id,
                flow=summary.flow,
                parent=parent,
                origin=origin,
            )
        )

    def save_snapshot(self, execution: Execution, link: bytes | None = None) -> None:
        """Cache folded state with the chain link at its version (used by
        `get`, never by verify or replay)."""
        if link is None:
            rows = self.store.load_rows(
                execution.id, self.tenant_id, execution.version - 1, execution.version
            )
            if len(rows) != 1:
                return  # no such event stored: nothing to cache
            link = rows[0].hash
        self.store.save_snapshot(
            execution.id,
            self.tenant_id,
            execution.version,
            link + _snapshot_encoder.encode(execution),
        )

    def put_schema(self, schema_hash: str, document: bytes) -> None:
        """Store a schema document under its hash (refused if it is not)."""
        from journal.schema import document_matches

        if self._stored_schemas.get(schema_hash) == document:
            return  # every live run stores its flow's document: once is enough
        if not document_matches(schema_hash, document):
            raise EventDecodeError(f"schema document does not hash to {schema_hash}")
        self.store.put_schema(schema_hash, document)
        self._stored_schemas[schema_hash] = document

    def get_schema(self, schema_hash: str) -> bytes | None:
        return self.store.get_schema(schema_hash)

    def events_after(self, execution_id: str, seq: int) -> builtins.list[ev.AnyEvent]:
        """The decoded events after `seq` (not verified: for a writer that
        already holds the history up to `seq` and was told it moved on)."""
        rows = self.store.load_rows(
            parse_execution_id(execution_id), self.tenant_id, seq
        )
        return decode_rows(execution_id, rows)

    # --- leases (operational, outside the chain: see journal.leases) -------

    def acquire_lease(
        self, execution_id: str, *, stale_after_s: float = STALE_AFTER_S
    ) -> Lease | None:
        """Take an execution's lease for this process, if no live holder
        has it: one released, or not renewed for `stale_after_s` nor within
        its holder's time-to-live, is taken over with the next token."""
        ttl_s = self.lease_ttl_s
        if ttl_s is None:
            ttl_s = 3 * self.heartbeat_every_s
        return self.store.acquire_lease(
            parse_execution_id(execution_id),
            self.tenant_id,
            new_owner(),
            int(stale_after_s * 1000),
            int(ttl_s * 1000),
        )

    # --- commands (see journal.commands) ---------------------------------

    def create(
        self,
        *,
        flow: str | None = None,
        input: Any = None,
        parent: ParentLink | None = None,
        schema_version: str | None = None,
        execution_id: str | None = None,
        lease: Lease | None = None,
    ) -> ExecutionHandle:
        """Create an execution of this tenant (records ``ExecutionCreated``).

        Args:
            flow: The flow's name, when a flow records it.
            input: The execution's input (any msgspec-encodable value).
            parent: The parent link of a child execution.
            schema_version: The flow's ``sha256:…`` schema hash.
            execution_id: An explicit id (``exec_…``); new if not given.
            lease: The lease the first append must hold.

        Returns:
            An `ExecutionHandle` with the commands (``start``, ``add_step``,
            ``complete``, …).
        """
        from journal.commands import ExecutionHandle

        return ExecutionHandle.create(
            self,
            flow=flow,
            input=input,
            parent=parent,
            schema_version=schema_version,
            execution_id=execution_id,
            lease=lease,
        )

    def handle(self, execution_id: str) -> ExecutionHandle:
        """An `ExecutionHandle` on an existing execution of this tenant."""
        from journal.commands import ExecutionHandle

        return ExecutionHandle(self, self.get(execution_id))


def _decode_snapshot(
    blob: bytes, execution_id: str, seq: int, rows: Sequence[Row]
) -> Execution | None:
    link, body = blob[:_LINK_BYTES], blob[_LINK_BYTES:]
    if not rows or rows[0].seq != seq or rows[0].hash != link:
        return None
    try:
        state = _snapshot_decoder.decode(body)
    except msgspec.DecodeError:
        return None
    return state if (state.id, state.version) == (execution_id, seq) else None


def open(
    url: str = DEFAULT_URL,
    *,
    tenant: str = DEFAULT_TENANT,
    create: bool = True,
    snapshot_every: int = SNAPSHOT_EVERY,
    keyring: Keyring | None = None,
) -> Journal:
    """Open a journal: ``journal.open("sqlite:///runs.db", tenant="tenant_acme")``."""
    tenant_id = parse_tenant_id(tenant)
    return Journal(
        open_store(url, create=create, keyring=keyring),
        tenant_id,
        snapshot_every=snapshot_every,
    )
