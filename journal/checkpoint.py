"""Transparency log checkpoints (c2sp.org/tlog-checkpoint) as signed notes.

A checkpoint's note text is three lines: the origin (the log's name), the tree
size in decimal, and the base64 RFC 6962 root hash. The ledger signs it with
the key whose name is the origin, so a verifier key names the log it checks.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from journal.errors import LedgerIntegrityError
from journal.merkle import HASH_SIZE
from journal.signednote import Signer, Verifier, check_key_name, open_note, sign_note

__all__ = ["Checkpoint", "open_checkpoint", "sign_checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size and its root hash."""

    origin: str
    size: int
    root: bytes

    @property
    def text(self) -> str:
        """The checkpoint's note text (three lines, each ending in a newline)."""
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint's note text (extension lines are refused).

        Raises:
            LedgerIntegrityError: the text is not a checkpoint.
        """
        lines = text.split("\n")
        if len(lines) != 4 or lines[3] != "":
            raise LedgerIntegrityError(
                "a checkpoint has three lines: origin, size, root"
            )
        origin, size_text, root_text = lines[:3]
        if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
            raise LedgerIntegrityError(f"checkpoint tree size {size_text!r} is invalid")
        try:
            check_key_name(origin)
            root = base64.b64decode(root_text, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise LedgerIntegrityError(f"bad checkpoint: {exc}") from exc
        if len(root) != HASH_SIZE:
            raise LedgerIntegrityError("the checkpoint's root hash is not 32 bytes")
        return cls(origin, int(size_text), root)


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """Return ``checkpoint`` as a note signed by ``signer`` (named as its
    origin, or as the origin's first part).

    Raises:
        ValueError: the signer's name is not the checkpoint's origin.
    """
    if not _under(checkpoint.origin, signer.name):
        raise ValueError(f"key {signer.name!r} does not sign log {checkpoint.origin!r}")
    return sign_note(checkpoint.text, signer)


def _under(origin: str, key_name: str) -> bool:
    """A log's key signs its own origin and the logs named under it
    (``<key name>/<tenant>``: one key, one tree per tenant)."""
    return origin == key_name or origin.startswith(key_name + "/")


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Verify a signed checkpoint and return it.

    Raises:
        LedgerIntegrityError: the signature does not verify, or the origin is
            not the verifier key's name.
    """
    checkpoint = Checkpoint.parse(open_note(note, verifier))
    if not _under(checkpoint.origin, verifier.name):
        raise LedgerIntegrityError(
            f"checkpoint of log {checkpoint.origin!r} is not signed for that log"
        )
    return checkpoint
