"""The per-execution hash chain (byte rules in docs/design.md §5).

Chain v2 (every new execution)::

    genesis preimage = "journal-chain/v2\\0" + canonical JSON of
        {"execution_id", "flow", "origin", "parent", "tenant_id"}
    h_0 = SHA-256(genesis preimage)
    h_n = SHA-256(h_{n-1} + seq_n as 8-byte big-endian + payload_n)

``parent`` and ``origin`` are null or a `ChainPoint` ``{"execution_id",
"link", "seq"}`` (``link`` hex or null): the parent's head when a child was
created, and for a fork the execution and sequence it continues from.
Canonical JSON is msgspec JSON with sorted keys and no whitespace; the
preimage is stored and exported verbatim, so no verifier re-encodes it.

Links are keyless: anyone recomputes them offline. A signing key adds a MAC
over the *head record* (`HeadRecord`, see `journal.keys`), kept with the
index row and updated in the append transaction.

Chain v1 (first-round stores, read and appended to as they are):
``h_0 = H("journal-chain/v1\\0" + execution_id)``, H being SHA-256 or, for
``alg = "hmac-sha256"``, HMAC-SHA-256 keyed with the signing key. Its
genesis binds only the execution id: reported as the weaker v1 binding.

API for other modules: `Genesis`, `ChainPoint`, `genesis_preimage`,
`parse_genesis`, `genesis_link`, `HeadRecord`, `head_record`, `chain_rows`,
`verify_links`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import NamedTuple, cast

import msgspec

from journal.errors import ChainIntegrityError

SHA256 = "sha256"
HMAC_SHA256 = "hmac-sha256"
V1_PREFIX = b"journal-chain/v1\0"
V2_PREFIX = b"journal-chain/v2\0"
_SEQ_BYTES = [i.to_bytes(8, "big") for i in range(4096)]
Digest = Callable[[bytes], bytes]


def _seq_bytes(seq: int) -> bytes:
    return _SEQ_BYTES[seq] if 0 <= seq < 4096 else seq.to_bytes(8, "big")


def sha256(data: bytes) -> bytes:
    """The link digest of chain v2 (and of unsigned v1 chains)."""
    return hashlib.sha256(data).digest()


class Row(NamedTuple):
    """One stored event: its sequence number, stored bytes and chain link."""

    seq: int
    payload: bytes
    hash: bytes


class ChainPoint(msgspec.Struct, frozen=True, kw_only=True):
    """A point in another execution's chain: its id, sequence and link."""

    execution_id: str
    seq: int | None = None
    link: str | None = None  # hex


class Genesis(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a v2 chain's first link binds."""

    tenant_id: str
    execution_id: str
    flow: str | None = None
    parent: ChainPoint | None = None
    origin: ChainPoint | None = None


class HeadRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An execution's head as the MAC and the store-wide ledger see it."""

    tenant_id: str
    execution_id: str
    flow: str | None
    state: str
    head_seq: int
    head: str  # hex of the keyless link h_N


_canonical = msgspec.json.Encoder(order="sorted")
_genesis_decoder = msgspec.json.Decoder(Genesis)


def canonical_json(value: object) -> bytes:
    """msgspec JSON, keys sorted, no whitespace (the canonical form)."""
    return _canonical.encode(value)


def genesis_preimage(genesis: Genesis) -> bytes:
    """The exact bytes whose SHA-256 is h_0 of a v2 chain."""
    return V2_PREFIX + canonical_json(genesis)


def parse_genesis(preimage: bytes, execution_id: str = "") -> Genesis:
    """Read a stored preimage (never re-encoded); refuse a malformed one."""
    if not preimage.startswith(V2_PREFIX):
        raise ChainIntegrityError(
            f"{execution_id}: the genesis does not start with journal-chain/v2",
            seq=1,
        )
    try:
        return _genesis_decoder.decode(preimage[len(V2_PREFIX) :])
    except msgspec.DecodeError as e:
        raise ChainIntegrityError(
            f"{execution_id}: the genesis is malformed: {e}", seq=1
        ) from e


def genesis_link(preimage: bytes) -> bytes:
    """h_0 of a v2 chain."""
    return sha256(preimage)


def v1_genesis_link(execution_id: str, digest: Digest = sha256) -> bytes:
    """h_0 of a first-round (v1) chain."""
    return digest(V1_PREFIX + execution_id.encode())


def head_record(
    tenant_id: str,
    execution_id: str,
    flow: str | None,
    state: str,
    head_seq: int,
    head_link: bytes,
) -> bytes:
    """The canonical JSON of a `HeadRecord` (what a head MAC covers and
    what a ledger leaf holds)."""
    return canonical_json(
        HeadRecord(
            tenant_id=tenant_id,
            execution_id=execution_id,
            flow=flow,
            state=state,
            head_seq=head_seq,
            head=head_link.hex(),
        )
    )


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
    previous: bytes,
    first_seq: int,
    payloads: Sequence[bytes],
    digest: Digest = sha256,
) -> list[Row]:
    """Link new payloads onto a chain whose last link (or h_0) is `previous`."""
    link = previous
    links: list[bytes] = []
    append = links.append
    if digest is sha256:  # the common case, without a Python call per link
        new = hashlib.sha256
        for seq, payload in enumerate(payloads, start=first_seq):
            link = new(link + seq.to_bytes(8, "big") + payload).digest()
            append(link)
    else:
        for seq, payload in enumerate(payloads, start=first_seq):
            link = digest(link + _seq_bytes(seq) + payload)
            append(link)
    seqs = range(first_seq, first_seq + len(payloads))
    # `tuple.__new__` makes each Row in C (`Row(...)` is a Python call).
    return cast(
        "list[Row]",
        list(map(tuple.__new__, repeat(Row), zip(seqs, payloads, links, strict=True))),
    )


def verify_links(
    first: bytes,
    execution_id: str,
    rows: Iterable[tuple[int, bytes, bytes]],
    digest: Digest = sha256,
) -> tuple[int, bytes]:
    """Check (seq, payload, stored hash) rows from h_0 = `first`; return the
    head (N, h_N).

    Raises `ChainIntegrityError` naming the first sequence number that is
    missing, out of place, or whose stored hash does not match its bytes.
    """
    previous = first
    expected_seq = 1
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
