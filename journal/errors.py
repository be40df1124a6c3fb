"""Every error the journal raises on purpose, each with its CLI exit code.

The exit code lives on the class (click's ``ClickException.exit_code``
pattern); the CLI maps one to the other in a single place.
"""

from __future__ import annotations


class JournalError(Exception):
    """Root of every error the journal raises on purpose."""

    exit_code = 1
    #: For replay failures raised on request: the `ReplayResult` behind it.
    result: object | None = None


class InvalidIdError(JournalError, ValueError):
    """An id has the wrong prefix or body."""


class EventDecodeError(JournalError, ValueError):
    """Stored or imported bytes do not decode into a known event."""


class InvalidValueError(JournalError, ValueError):
    """A value the store cannot hold or the fold cannot handle (a time
    without a zone or out of range, nesting too deep, an integer beyond 64
    bits, a raw value that is not JSON): refused before anything is written.
    Names where it is (execution and event, or file and line) and the field."""


class InvalidTransitionError(JournalError):
    """A command or event is not allowed in the execution's current state."""


class StateNotAllowedError(InvalidTransitionError):
    """A command the execution's state does not allow (for example resuming
    a completed execution)."""

    exit_code = 8


class FlowDefinitionError(JournalError, TypeError):
    """Flow code is wired wrongly (e.g. calls into a flow it does not declare)."""


class StoreError(JournalError):
    """The store is missing, unreachable or unusable."""


class StoreBusyError(StoreError):
    """A lock wait or statement timed out: the store is busy (try again)."""

    exit_code = 12


class StorePermissionError(StoreError):
    """The store refused this user a statement (a read-only role writing)."""


class StoreUnreachableError(StoreError):
    """The store's server could not be reached when the store was opened
    (exit 1 like any store error; a long-running follower that was already
    running waits for it instead)."""


class TransientStoreError(StoreError):
    """The connection failed before anything was committed (lost, reset,
    a deadlock or serialization failure): nothing was written, so the
    operation is safe to retry on a new connection."""


class CommitUnknownError(StoreError):
    """The connection was lost while a write was committing: it may or may
    not be stored. Resolved against the stored head before any retry
    (`journal.retry.append_with_retry`), never retried blindly."""


class ApprovalRefusedError(JournalError):
    """An approval or input was refused: wrong digest, after the wait's
    timeout, no approver where one is required, or a bad signature."""

    exit_code = 9


class SigningKeyError(JournalError):
    """The signing key a command needs is not available (not in the keyring,
    missing, malformed) or is the wrong one (a ledger key of another ledger),
    or an unsigned write into a signed store was refused. Never carries key
    bytes."""

    exit_code = 10


class ImportFormatError(JournalError, ValueError):
    """An export file is malformed (names the file and line)."""


class TenantMismatchError(JournalError):
    """A file or command names a tenant other than the one in force."""


class ExecutionNotFoundError(JournalError, KeyError):
    """No such execution in this tenant (another tenant's is not found too)."""

    exit_code = 3

    def __str__(self) -> str:
        # KeyError.__str__ quotes its argument; we want the plain sentence.
        return str(self.args[0]) if self.args else "execution not found"


class ConflictError(JournalError):
    """Someone else appended first, or another history already has that id.

    Through eventsourcing's recorder interface it is raised as
    `journal.recorder.RecordConflictError`, which is also eventsourcing's
    `IntegrityError` (a version conflict there; a broken chain is
    `ChainIntegrityError`).
    """

    exit_code = 7


class LeaseLostError(ConflictError):
    """This process no longer holds the execution's lease (another took it)."""

    exit_code = 11


class ChainIntegrityError(JournalError):
    """The hash chain is broken; names the first bad sequence number."""

    exit_code = 6

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class LedgerIntegrityError(ChainIntegrityError):
    """A proof, a checkpoint signature or a sealed head does not check out."""


class ReplayError(JournalError):
    """Replay could not confirm that today's code does what was recorded."""


class SchemaMismatchError(ReplayError):
    """The recorded schema_version is not one the loaded flow accepts."""

    exit_code = 4


class NondeterminismError(ReplayError):
    """The re-run diverged from the recorded execution."""

    exit_code = 5


class FlowNotLoadedError(ReplayError):
    """No loaded flow matches the execution's recorded flow name."""
