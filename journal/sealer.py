"""The sealer: an eventsourcing `Projection` that seals heads into the ledger.

`ProjectionRunner` runs it over `journal.persistence.JournalLog`; it collects
the executions whose events it receives and, at the end of each round (the
log's last position when the round began), writes one leaf per execution
whose head advanced, a signed checkpoint per tenant, and its tracking record,
in one transaction (`journal.sql_ledger`). Killed at any moment, it resumes
from its tracking record and seals that round again, once.

The ledger key must be this ledger's: named as its origin and, once a
checkpoint is stored, the key that signed it (else `SigningKeyError`).

A head is sealed only if the whole chain verifies and, when the execution
was sealed before, the chain still passes through the sealed head (the link
at the sealed sequence is the sealed link). A history rewritten behind a
sealed head is reported in `Sealer.refused` and never sealed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection, ProjectionRunner

from journal.application import Journal
from journal.chain import head_record
from journal.checkpoint import Checkpoint, sign_checkpoint
from journal.errors import (
    CommitUnknownError,
    JournalError,
    StoreBusyError,
    StoreError,
    StoreUnreachableError,
    TransientStoreError,
)
from journal.ledger import LedgerHead, check_ledger_key, load_signer, tenant_origin
from journal.merkle import MerkleTree, leaf_hash
from journal.persistence import JournalLog, LoggedEvent, StoreTrackingRecorder
from journal.retry import RetryPolicy
from journal.signednote import Signer
from journal.sqlstore import SQLStore

__all__ = ["LedgerView", "SealReport", "Sealer", "run_sealer", "sealer_runner"]


log = logging.getLogger("journal.sealer")
#: The failures after which `run_sealer` with `follow` starts a new runner.
_RESTARTABLE = (TransientStoreError, CommitUnknownError, StoreBusyError)

#: How long a one-shot seal waits for the sealer to reach its target.
SEAL_TIMEOUT_S = 3600.0


class LedgerView(StoreTrackingRecorder):
    """The sealer's view: the ledger tables and its tracking record."""

    view_name = "sealer"

    @property
    def sql(self) -> SQLStore:
        """The store, which must be an SQL one (the ledger lives in it)."""
        if not isinstance(self.store, SQLStore):
            raise StoreError("the ledger needs a SQLite or PostgreSQL store")
        return self.store


@dataclass
class SealReport:
    """What a sealer did: rounds, leaves, and the heads it refused."""

    rounds: int = 0
    leaves: int = 0
    refused: list[str] = field(default_factory=list)


class Sealer(Projection[LedgerView]):
    """Seals execution heads into each tenant's ledger, round by round."""

    name = "sealer"

    def __init__(self, view: LedgerView, signer: Signer | None = None) -> None:
        super().__init__(view)
        try:
            self.store = view.sql
            self.origin = self.store.ledger_origin()
            self.signer = signer or load_signer()
            check_ledger_key(
                self.signer.verifier, self.origin, self.store.latest_checkpoint_note()
            )
        except JournalError:
            # Refused before the runner exists: nothing else closes the view.
            view.store.close()
            raise
        self.report = SealReport()
        # Each tenant's tree as this sealer last left it (see `_tree`).
        self._trees: dict[str, MerkleTree] = {}
        self._changed: dict[str, str] = {}
        self._round_end: int | None = None

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Note the event's execution; at the round's end, seal the round."""
        if self._round_end is None:
            self._round_end = self.store.max_position() or 0
        if isinstance(domain_event, LoggedEvent) and domain_event.event is not None:
            self._changed[domain_event.execution_id] = domain_event.tenant_id
        if tracking.notification_id >= self._round_end:
            self._seal(tracking)
            self._changed, self._round_end = {}, None

    def _seal(self, tracking: Tracking) -> None:
        sealed = self.store.sealed_heads(execution_ids=list(self._changed))
        new: dict[str, list[tuple[LedgerHead, bytes, LedgerHead | None]]] = {}
        for execution_id, tenant_id in sorted(self._changed.items()):
            found = self._advanced(execution_id, tenant_id, sealed.get(execution_id))
            if found is not None:
                new.setdefault(tenant_id, []).append(found)
        leaves, checkpoints = [], []
        trees: dict[str, MerkleTree] = {}
        for tenant_id, items in sorted(new.items()):
            tree = trees[tenant_id] = self._tree(tenant_id)
            for head, leaf, before in items:
                head = LedgerHead(
                    tenant_id,
                    head.execution_id,
                    head.head_seq,
                    head.head_link,
                    tree.size,
                )
                tree.append_hash(leaf_hash(leaf))
                leaves.append((head, leaf, before))
            checkpoint = Checkpoint(
                tenant_origin(self.origin, tenant_id), tree.size, tree.root()
            )
            note = sign_checkpoint(checkpoint, self.signer)
            checkpoints.append((tenant_id, tree.size, checkpoint.root, note))
        key = self.view.tracking_key(tracking.application_name)
        self.store.seal_round(leaves, checkpoints, (key, tracking.notification_id))
        self._trees.update(trees)  # a round not stored fails `_tree`'s check
        self.report.rounds += 1
        self.report.leaves += len(leaves)

    def _tree(self, tenant_id: str) -> MerkleTree:
        """The tenant's tree: the one this sealer left, if it still is the
        latest checkpointed one (same size and root: no other sealer added
        to it since), else rebuilt from the stored leaves. A round then
        costs what it adds, not the whole ledger."""
        kept = self._trees.get(tenant_id)
        latest = self.store.latest_tree_head(tenant_id)
        if kept is not None and latest == (kept.size, kept.root()):
            return kept
        return MerkleTree([leaf_hash(x) for x in self.store.ledger_leaves(tenant_id)])

    def _advanced(
        self, execution_id: str, tenant_id: str, before: LedgerHead | None
    ) -> tuple[LedgerHead, bytes, LedgerHead | None] | None:
        """The head to seal, if it advanced and extends the sealed one."""
        try:
            history = Journal(self.store, tenant_id).history(execution_id)
        except JournalError as exc:
            self.report.refused.append(f"{execution_id}: not sealed: {exc}")
            return None
        seq, link = history.head
        if before is not None:
            if seq < before.head_seq or (
                history.rows[before.head_seq - 1].hash != before.head_link
            ):
                self.report.refused.append(
                    f"{execution_id}: not sealed: its history no longer passes "
                    f"through the sealed head {before.head_seq} (rewritten)"
                )
                return None
            if seq == before.head_seq:
                return None
        summary = history.summary
        leaf = head_record(
            tenant_id, execution_id, summary.flow, summary.state, seq, link
        )
        return LedgerHead(tenant_id, execution_id, seq, link, -1), leaf, before


def sealer_runner(url: str) -> ProjectionRunner[JournalLog, LedgerView]:
    """A started `ProjectionRunner` of the sealer over the store at `url`."""
    env = {"PERSISTENCE_MODULE": "journal.persistence", "JOURNAL_DB": url}
    return ProjectionRunner(
        application_class=JournalLog,
        projection_class=Sealer,
        view_class=LedgerView,
        env=env,
    )


def run_sealer(
    url: str,
    target: int | None,
    *,
    follow: bool = False,
    restart: RetryPolicy | None = None,
    on_restart: Callable[[StoreError, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SealReport:
    """Run the sealer until it has sealed up to position `target` (or, with
    `follow`, until interrupted); return its report.

    With `follow` it outlives the store going away: when the runner stops
    on a failure the store may recover from (a lost connection, a commit
    whose outcome is unknown, a busy store), a new runner resumes from the
    sealer's tracking record, as after a crash, after a backoff (`restart`:
    the default retry delays, 50 ms doubling to 2 s, with no limit on
    tries). Each restart is told to `on_restart` (the failure and the wait;
    by default a warning on the ``journal.sealer`` logger). Any other error
    ends it.
    """
    if not follow:
        return _run_once(url, target, follow=False, report=SealReport())
    policy = restart or RetryPolicy()
    report = SealReport()
    failures = 0
    while True:
        try:
            return _run_once(url, None, follow=True, report=report)
        except StoreError as error:
            # Unreachable: while it is away, not when it never answered.
            away = isinstance(error, StoreUnreachableError) and failures > 0
            if not (isinstance(error, _RESTARTABLE) or away):
                raise
            failures += 1
            delay = policy.delay(failures)
            (on_restart or _log_restart)(error, delay)
            sleep(delay)


def _log_restart(error: StoreError, delay: float) -> None:
    log.warning(
        "sealer stopped (%s); resuming from its tracking record in %.1f s",
        error,
        delay,
    )


def _run_once(
    url: str, target: int | None, *, follow: bool, report: SealReport
) -> SealReport:
    """One runner; what its sealer did is added to `report`, even when it
    stops on an error.

    The runner's view store is closed here: eventsourcing's runner closes
    the application it built, not the view's infrastructure.
    """
    runner = sealer_runner(url)
    try:
        with runner:
            if follow:
                runner.run_forever()
            elif target is not None:
                runner.wait(target, timeout=SEAL_TIMEOUT_S)
    finally:
        sealer = runner.projection
        assert isinstance(sealer, Sealer)
        report.rounds += sealer.report.rounds
        report.leaves += sealer.report.leaves
        report.refused.extend(sealer.report.refused)
        runner.view.store.close()
    return report
