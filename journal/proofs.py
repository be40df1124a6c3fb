"""Ledger proofs in an export's header, and checking them offline.

``journal export --proof`` puts into each block's ``proofs`` field::

    {"ledger": {"leaf": "<the leaf's canonical JSON, verbatim>",
                "index": I, "proof": ["<base64 hash>", ...],
                "checkpoint": "<the signed checkpoint note>"}}

``journal verify --file EXPORT --pubkey KEY.pub`` then checks, with no store
and no secret: the checkpoint's Ed25519 signature under the public key, the
inclusion proof of the leaf in the checkpoint's tree, and that the leaf is
this block's execution (tenant, id, flow) at a head its exported chain
passes through (the link at the sealed sequence is the sealed link).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import msgspec

from journal.chain import HeadRecord, Row, canonical_json
from journal.checkpoint import Checkpoint
from journal.errors import LedgerIntegrityError
from journal.ledger import open_tenant_checkpoint
from journal.merkle import MerkleTree, leaf_hash, verify_inclusion
from journal.signednote import Verifier

__all__ = ["LedgerProof", "check_proof", "make_proof"]


class LedgerProof(msgspec.Struct, kw_only=True):
    """The ``proofs.ledger`` object of an export header."""

    leaf: str
    index: int
    proof: list[str]
    checkpoint: str


class Proofs(msgspec.Struct, kw_only=True):
    """The ``proofs`` field of an export header."""

    ledger: LedgerProof | None = None


_leaf_decoder = msgspec.json.Decoder(HeadRecord)
_proofs_decoder = msgspec.json.Decoder(Proofs)


def make_proof(leaves: Sequence[bytes], index: int, size: int, note: str) -> bytes:
    """The ``proofs`` JSON for leaf `index` in the tree of the first `size`
    leaves, whose signed checkpoint is `note`."""
    tree = MerkleTree([leaf_hash(leaf) for leaf in leaves[:size]])
    proof = LedgerProof(
        leaf=leaves[index].decode(),
        index=index,
        proof=[base64.b64encode(p).decode() for p in tree.inclusion_proof(index)],
        checkpoint=note,
    )
    return canonical_json(Proofs(ledger=proof))


def check_proof(
    raw: bytes,
    *,
    tenant_id: str,
    execution_id: str,
    flow: str | None,
    rows: Sequence[Row],
    verifier: Verifier,
) -> tuple[HeadRecord, Checkpoint]:
    """Check a block's ``proofs`` offline; return the sealed head record and
    the checkpoint it is proved against.

    Raises:
        LedgerIntegrityError: naming what failed (no proof, the checkpoint's
            signature, the inclusion proof, or a leaf of another execution or
            head).
    """
    where = f"{execution_id}: ledger proof"
    if raw.strip() in (b"", b"null"):
        raise LedgerIntegrityError(
            f"{execution_id}: the export carries no ledger proof"
        )
    try:
        proofs = _proofs_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise LedgerIntegrityError(f"{where}: malformed: {exc}") from exc
    if proofs.ledger is None:
        raise LedgerIntegrityError(
            f"{execution_id}: the export carries no ledger proof"
        )
    found = proofs.ledger
    try:
        checkpoint = open_tenant_checkpoint(found.checkpoint, verifier, tenant_id)
    except LedgerIntegrityError as exc:
        raise LedgerIntegrityError(f"{where}: checkpoint: {exc}") from exc
    leaf = found.leaf.encode()
    try:
        path = [base64.b64decode(p, validate=True) for p in found.proof]
        verify_inclusion(
            found.index, checkpoint.size, leaf_hash(leaf), path, checkpoint.root
        )
    except (binascii.Error, LedgerIntegrityError) as exc:
        raise LedgerIntegrityError(f"{where}: inclusion: {exc}") from exc
    record = _check_leaf(leaf, where, tenant_id, execution_id, flow, rows)
    return record, checkpoint


def _check_leaf(
    leaf: bytes,
    where: str,
    tenant_id: str,
    execution_id: str,
    flow: str | None,
    rows: Sequence[Row],
) -> HeadRecord:
    try:
        record = _leaf_decoder.decode(leaf)
    except msgspec.DecodeError as exc:
        raise LedgerIntegrityError(f"{where}: the leaf is not a head record") from exc
    if (record.tenant_id, record.execution_id, record.flow) != (
        tenant_id,
        execution_id,
        flow,
    ):
        raise LedgerIntegrityError(f"{where}: the leaf is another execution's")
    if not 1 <= record.head_seq <= len(rows):
        raise LedgerIntegrityError(
            f"{where}: the sealed head {record.head_seq} is beyond the exported chain"
        )
    if rows[record.head_seq - 1].hash.hex() != record.head:
        raise LedgerIntegrityError(
            f"{where}: the exported chain does not pass through the sealed head "
            f"{record.head_seq}"
        )
    return record
