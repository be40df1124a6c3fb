"""The per-execution hash chain (DESIGN.md §6).

``h_0 = H("journal-chain/v1\\0" + execution_id)`` and
``h_n = H(h_{n-1} + seq_n as 8-byte big-endian + payload_n)``, where H is
SHA-256, or HMAC-SHA-256 keyed with ``JOURNAL_SIGNING_KEY`` when it is set.
Verification hashes the stored bytes as they are, then decodes; it never
re-encodes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from journal.errors import ChainIntegrityError

SHA256 = "sha256"
HMAC_SHA256 = "hmac-sha256"
SIGNING_KEY_ENV = "JOURNAL_SIGNING_KEY"
_GENESIS_PREFIX = b"journal-chain/v1\0"
_SEQ_BYTES = [i.to_bytes(8, "big") for i in range(4096)]


def _seq_bytes(seq: int) -> bytes:
    return _SEQ_BYTES[seq] if 0 <= seq < 4096 else seq.to_bytes(8, "big")


class Row(NamedTuple):
    """One stored event: its sequence number, stored bytes and chain link."""

    seq: int
    payload: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class Hasher:
    """Computes chain links with SHA-256 or, given a key, HMAC-SHA-256."""

    key: bytes | None = None

    @classmethod
    def from_env(cls) -> Hasher:
        key = os.environ.get(SIGNING_KEY_ENV)
        return cls(key.encode() if key else None)

    @property
    def alg(self) -> str:
        return HMAC_SHA256 if self.key else SHA256

    def genesis(self, execution_id: str) -> bytes:
        return self._digest(_GENESIS_PREFIX + execution_id.encode())

    def link(self, previous: bytes, seq: int, payload: bytes) -> bytes:
        return self._digest(previous + _seq_bytes(seq) + payload)

    def digest_function(self) -> Callable[[bytes], bytes]:
        """A fast ``bytes -> digest`` function for hot loops."""
        key = self.key
        if key:
            return lambda data: hmac.new(key, data, hashlib.sha256).digest()
        sha256 = hashlib.sha256
        return lambda data: sha256(data).digest()

    def _digest(self, data: bytes) -> bytes:
        if self.key:
            return hmac.new(self.key, data, hashlib.sha256).digest()
        return hashlib.sha256(data).digest()

    def check_alg(self, execution_id: str, recorded_alg: str) -> None:
        """Refuse to verify a chain with another algorithm than ours.

        With a key set, a chain that claims plain SHA-256 is refused: someone
        with database access but not the key could otherwise recompute it.
        """
        if recorded_alg == self.alg:
            return
        if recorded_alg == HMAC_SHA256:
            why = f"it was signed (hmac-sha256) and {SIGNING_KEY_ENV} is not set"
        else:
            why = (
                f"it claims {recorded_alg} but {SIGNING_KEY_ENV} is set: refusing "
                "an unsigned chain"
            )
        raise ChainIntegrityError(f"{execution_id}: cannot verify: {why}", seq=1)


def format_head(seq: int, digest: bytes) -> str:
    """The printable head of a chain: ``N:HEX``."""
    return f"{seq}:{digest.hex()}"


def parse_head(text: str) -> tuple[int, bytes]:
    """Parse ``N:HEX``; raise ValueError if it is not that shape."""
    count, sep, hex_digest = text.strip().partition(":")
    if not sep or not count.isdigit() or len(hex_digest) != 64:
        raise ValueError(f"expected N:HEX (64 hex digits), got {text!r}")
    return int(count), bytes.fromhex(hex_digest)


def chain_rows(
    hasher: Hasher,
    execution_id: str,
    previous: bytes | None,
    first_seq: int,
    payloads: Sequence[bytes],
) -> list[Row]:
    """Link new payloads onto a chain whose last link is `previous`."""
    link = hasher.genesis(execution_id) if previous is None else previous
    digest = hasher.digest_function()
    rows = []
    for seq, payload in enumerate(payloads, start=first_seq):
        link = digest(link + _seq_bytes(seq) + payload)
        rows.append(Row(seq, payload, link))
    return rows


def verify_links(
    hasher: Hasher,
    execution_id: str,
    rows: Iterable[tuple[int, bytes, bytes]],
) -> tuple[int, bytes]:
    """Check (seq, payload, stored hash) rows; return the head (N, h_N).

    Raises `ChainIntegrityError` naming the first sequence number that is
    missing, out of place, or whose stored hash does not match its bytes.
    """
    previous = hasher.genesis(execution_id)
    expected_seq = 1
    digest = hasher.digest_function()
    seq_bytes = _seq_bytes
    for seq, payload, stored in rows:
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "out of order"
            raise ChainIntegrityError(
                f"{execution_id}: chain broken at seq {expected_seq}: event {what} "
                f"(found seq {seq})",
                seq=expected_seq,
            )
        previous = digest(previous + seq_bytes(seq) + payload)
        if previous != stored:
            raise ChainIntegrityError(
                f"{execution_id}: chain broken at seq {seq}: stored hash does not "
                "match the event's bytes",
                seq=seq,
            )
        expected_seq += 1
    return expected_seq - 1, previous


def continue_links(
    hasher: Hasher, execution_id: str, rows: Sequence[tuple[int, bytes, bytes]]
) -> tuple[int, bytes]:
    """Check that rows 2.. continue the link of row 1 (a stored row already
    trusted); return the head. For catching up, not for verification."""
    digest = hasher.digest_function()
    previous_seq, previous = rows[0][0], rows[0][2]
    for seq, payload, stored in rows[1:]:
        if seq != previous_seq + 1:
            raise ChainIntegrityError(
                f"{execution_id}: chain broken at seq {previous_seq + 1}: "
                f"event missing (found seq {seq})",
                seq=previous_seq + 1,
            )
        previous = digest(previous + _seq_bytes(seq) + payload)
        if previous != stored:
            raise ChainIntegrityError(
                f"{execution_id}: chain broken at seq {seq}: stored hash does not "
                "match the event's bytes",
                seq=seq,
            )
        previous_seq = seq
    return previous_seq, previous


def check_head(
    execution_id: str, actual: tuple[int, bytes], expected: tuple[int, bytes]
) -> None:
    """Compare a chain's head with one printed earlier (catches truncation)."""
    if actual == expected:
        return
    # Same length: the last event differs; else the first missing/extra one.
    same_length = actual[0] == expected[0]
    seq = actual[0] if same_length else min(actual[0], expected[0]) + 1
    raise ChainIntegrityError(
        f"{execution_id}: head is {format_head(*actual)}, expected "
        f"{format_head(*expected)}",
        seq=seq,
    )
