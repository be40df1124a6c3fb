"""The tenant ledger: an append-only Merkle tree of execution heads.

Per tenant, an RFC 6962 tree (`journal.merkle`) whose leaves are head
records (`journal.chain.head_record`: tenant, execution id, flow, state,
head sequence and keyless head link), one for each execution whose head
advanced since the previous seal round. Each round ends with a checkpoint
(`journal.checkpoint`) of origin ``<ledger origin>/<tenant>``, signed with
the Ed25519 key in the file ``JOURNAL_LEDGER_KEY_FILE``, which never enters
the database. The tables live in the journal's store (`journal.sql_ledger`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from journal.checkpoint import Checkpoint, open_checkpoint
from journal.errors import LedgerIntegrityError, SigningKeyError
from journal.merkle import MerkleTree, leaf_hash, verify_consistency
from journal.signednote import Signer, Verifier, carries_signature_by, check_key_name

__all__ = [
    "KEY_FILE_ENV",
    "Consistency",
    "LedgerHead",
    "check_ledger_key",
    "check_origin",
    "ledger_problems",
    "load_signer",
    "open_tenant_checkpoint",
    "prove_consistency",
    "store_problems",
    "tenant_origin",
    "write_key_file",
]

#: The variable naming the ledger's private key file.
KEY_FILE_ENV = "JOURNAL_LEDGER_KEY_FILE"


@dataclass(frozen=True)
class LedgerHead:
    """The last sealed head of one execution, and its leaf."""

    tenant_id: str
    execution_id: str
    head_seq: int
    head_link: bytes
    leaf_index: int


def check_origin(name: str) -> str:
    """Return a valid ledger origin, else raise ``ValueError``.

    A name (``example.com/journal``), never a URL: no scheme, no credentials.
    """
    check_key_name(name)
    if "://" in name or "@" in name:
        raise ValueError(f"origin {name!r} must be a name, not a URL")
    return name


def tenant_origin(origin: str, tenant_id: str) -> str:
    """The origin line of a tenant's checkpoints."""
    return f"{origin}/{tenant_id}"


def load_signer(path: str | None = None) -> Signer:
    """The ledger's signing key, from `path` or ``JOURNAL_LEDGER_KEY_FILE``.

    Raises:
        SigningKeyError: no key file is named, or it cannot be read or parsed.
    """
    path = path or os.environ.get(KEY_FILE_ENV)
    if not path:
        raise SigningKeyError(f"no ledger key: set {KEY_FILE_ENV} to its file")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SigningKeyError(f"cannot read ledger key {path}: {exc.strerror}") from exc
    return Signer.from_private_key_text(text)


def check_ledger_key(
    verifier: Verifier, origin: str, latest_note: str | None = None
) -> None:
    """Refuse the key of another ledger: named otherwise than `origin`, or
    not the key that signed the ledger's latest checkpoint `latest_note`
    (a new key under the same name would sign checkpoints that no kept
    checkpoint's verifier key accepts).

    Raises:
        SigningKeyError: the wrong key (exit 10).
    """
    if verifier.name != origin:
        raise SigningKeyError(
            f"wrong ledger key: {KEY_FILE_ENV} holds the key of {verifier.name!r}, "
            f"this ledger is {origin!r}"
        )
    if latest_note is not None and not carries_signature_by(latest_note, verifier):
        raise SigningKeyError(
            f"wrong ledger key: the ledger's checkpoints are signed by another "
            f"key named {origin!r}, not by key {verifier.key_id:08x} in {KEY_FILE_ENV}"
        )


def write_key_file(path: Path, signer: Signer) -> None:
    """Write a new private key file, readable by its owner only; never
    overwrite one.

    Raises:
        FileExistsError: `path` exists.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    descriptor = os.open(path, flags, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(signer.private_key_text + "\n")


def open_tenant_checkpoint(note: str, verifier: Verifier, tenant_id: str) -> Checkpoint:
    """Verify a tenant's signed checkpoint and return it.

    Raises:
        LedgerIntegrityError: bad signature, or a checkpoint of another log.
    """
    checkpoint = open_checkpoint(note, verifier)
    if checkpoint.origin != tenant_origin(verifier.name, tenant_id):
        raise LedgerIntegrityError(
            f"checkpoint of {checkpoint.origin!r} is not the ledger of {tenant_id}"
        )
    return checkpoint


@dataclass(frozen=True)
class Consistency:
    """A consistency proof between two checkpoints of one tenant's tree."""

    old: Checkpoint
    new: Checkpoint
    proof: list[bytes]


def prove_consistency(
    leaves: list[bytes], old: Checkpoint, new: Checkpoint
) -> Consistency:
    """Prove from the stored `leaves` that `old` is a prefix of `new`, and
    check the proof as an auditor would.

    Raises:
        LedgerIntegrityError: the stored tree does not have `new`'s root, or
            its first ``old.size`` leaves do not have `old`'s root.
    """
    tree = MerkleTree([leaf_hash(leaf) for leaf in leaves])
    if new.size > tree.size or tree.root(new.size) != new.root:
        raise LedgerIntegrityError(
            f"the stored ledger does not have the root of checkpoint {new.size}"
        )
    if old.size > new.size:
        raise LedgerIntegrityError(
            f"the kept checkpoint ({old.size}) is larger than the current ({new.size})"
        )
    proof = [] if old.size == 0 else tree.consistency_proof(old.size, new.size)
    if old.size == 0:
        if old.root != MerkleTree().root():
            raise LedgerIntegrityError("an empty checkpoint with a non-empty root")
    else:
        verify_consistency(old.size, new.size, old.root, new.root, proof)
    return Consistency(old, new, proof)


def store_problems(
    sealed: dict[str, LedgerHead],
    lookup: Callable[[str, int], tuple[int, bytes | None] | None],
) -> list[tuple[str, str]]:
    """What the store no longer holds of what the ledger sealed.

    `lookup(execution_id, seq)` gives the execution's current head sequence
    and the link stored at `seq` (None if absent), or None if the execution
    is gone. Returns (execution id, problem) pairs: deleted, truncated
    behind its sealed head, or rewritten (another link at the sealed head).
    """
    problems = []
    for execution_id, head in sorted(sealed.items()):
        found = lookup(execution_id, head.head_seq)
        if found is None:
            problems.append((execution_id, f"sealed at {head.head_seq}, now deleted"))
            continue
        head_seq, link = found
        if head_seq < head.head_seq or link is None:
            problems.append(
                (execution_id, f"truncated: head {head_seq}, sealed {head.head_seq}")
            )
        elif link != head.head_link:
            problems.append(
                (
                    execution_id,
                    f"rewritten: event {head.head_seq} is not the one sealed",
                )
            )
    return problems


def ledger_problems(
    leaves: list[bytes], checkpoints: list[tuple[int, bytes, str]]
) -> list[str]:
    """Checkpoints whose root the stored leaves no longer give."""
    tree = MerkleTree([leaf_hash(leaf) for leaf in leaves])
    problems = []
    for size, root, _ in checkpoints:
        if size > tree.size or tree.root(size) != root:
            problems.append(f"the stored leaves do not give checkpoint {size}'s root")
    return problems
