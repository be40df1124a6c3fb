"""Storage packing: payloads are compacted on disk, never in the chain.

The hash chain, the export and every reader see the canonical payload; only
the SQL column holds the packed form, so packing can change without touching
any stored hash. Two codecs, chosen by size:

* small payloads (the common step events, ~160 bytes): the frequent pieces
  of the event format (keys, tags, id prefixes) are replaced by single
  control bytes. Compact JSON never contains a raw byte below 0x20, so the
  substitution is exactly reversible; it costs ~1 µs and saves about half;
* large payloads (over `_DEFLATE_FROM` bytes, i.e. big inputs or outputs):
  raw DEFLATE with a preset dictionary, where its set-up cost pays off.

The first stored byte says which: ``0x01`` DEFLATE (dictionary v1);
``0x00`` raw bytes kept as they are (bytes that contain control characters,
e.g. through eventsourcing's generic interface); anything else: token form,
expanded on read (a no-op for plain JSON). A value edited on disk that no
longer unpacks is returned as it is, so the chain check reports it at its
sequence number instead of crashing; so is one that would inflate beyond
`MAX_PAYLOAD_BYTES` (inflation stops there).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

#: The largest payload the journal stores (`journal.validation` refuses
#: bigger ones on append and import); `unpack` never inflates beyond it, so
#: a crafted row cannot be a decompression bomb.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
_DEFLATED = 0x01
_RAW = 0x00
_DEFLATE_FROM = 512
_WBITS = -10  # raw DEFLATE, 1 KiB window: covers the whole dictionary
#: A raw control byte: compact JSON never holds one (it escapes them).
CONTROL_BYTE = re.compile(rb"[\x00-\x1f]")

#: Token table v1: never edit or reorder (stored rows depend on it); extend
#: only with new control bytes. Longer, more specific entries come first.
#: Only the two events every step writes: each entry costs one ``replace``
#: per row on every read, so rare events (failures, retries) get none.
TOKENS_V1: tuple[tuple[bytes, bytes], ...] = tuple(
    zip(
        (
            b'","step_type":"ToolNode","type":"StepStarted"}',
            b'","step_type":"LlmNode","type":"StepStarted"}',
            b'","step_type":"FunctionNode","type":"StepStarted"}',
            b'","type":"StepCompleted"}',
            b'{"at":"20',
            b'","callable_id":"',
            b'","step_id":"step_',
            b',"duration_ms":',
            b',"input":',
            b',"name":"',
            b',"output":',
            b'","step_type":"',
        ),
        (bytes((c,)) for c in (*range(2, 9), 11, 12, *range(14, 32))),
        strict=False,
    )
)
_EXPAND = tuple(reversed(TOKENS_V1))

#: DEFLATE preset dictionary v1 (for large payloads): never edit.
DICTIONARY_V1 = (
    b'"parent":{"parent_id":"step_","parent_type":"Step","execution_id":"exec_'
    b'"tenant_id":"tenant_default","flow":"","schema_version":"sha256:'
    b'"error":{"attempt":1,"category":"ToolError","exception_type":"builtins.'
    b'"message":"","occurred_at":"2026-"type":"ExecutionCompleted"}'
    b'{"at":"2026-11-25T00:00:00.000000Z","callable_id":"","input":{"'
    b'"name":"","step_id":"step_","step_type":"ToolNode","type":"StepStarted"}'
    b'{"at":"2026-11-25T00:00:00.000000Z","duration_ms":0,"output":{"'
    b'"step_id":"step_","type":"StepCompleted"}'
)


def pack(payload: bytes, *, json: bool = False) -> bytes:
    """The bytes to store for a payload.

    ``json=True`` promises compact JSON from our encoder (it escapes every
    control character), which skips the check for raw control bytes.
    """
    if len(payload) >= _DEFLATE_FROM:
        compressor = zlib.compressobj(
            6, zlib.DEFLATED, _WBITS, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY_V1
        )
        packed = compressor.compress(payload) + compressor.flush()
        if len(packed) + 1 < len(payload):
            return b"\x01" + packed
    if not json and CONTROL_BYTE.search(payload) is not None:
        return b"\x00" + payload
    for text, token in TOKENS_V1:
        payload = payload.replace(text, token)
    return payload


def pack_many(payloads: Sequence[bytes], *, json: bool = False) -> list[bytes]:
    """``[pack(p, json=json) for p in payloads]``, the token form computed
    once for the whole batch.

    The small payloads are joined by ``\n`` and each token replaced once in
    the joined bytes, then split again. No token text holds ``\n`` nor is any
    token ``\n``, so no match spans two payloads and a replace neither makes
    nor removes a separator: every part is exactly its payload's token form.
    A payload holding ``\n`` itself (or any control byte, without ``json``)
    is packed alone; if the parts do not come out one per payload, all are.
    """
    alone: dict[int, bytes] = {}
    small: Sequence[bytes] = payloads
    if not json or max(map(len, payloads), default=0) >= _DEFLATE_FROM:
        small = []
        for i, payload in enumerate(payloads):
            if len(payload) >= _DEFLATE_FROM or (
                not json and CONTROL_BYTE.search(payload) is not None
            ):
                alone[i] = pack(payload, json=json)
            else:
                small.append(payload)
    joined = b"\n".join(small)
    for text, token in TOKENS_V1:
        # = joined.replace(text, token), in one search pass (replace counts
        # the matches first, then searches again).
        joined = token.join(joined.split(text))
    parts = joined.split(b"\n") if small else []
    if len(parts) != len(small):  # a payload held "\n" (json promised none)
        return [pack(payload, json=json) for payload in payloads]
    if not alone:
        return parts
    rest = iter(parts)
    return [alone[i] if i in alone else next(rest) for i in range(len(payloads))]


def unpack(stored: bytes) -> bytes:
    """The payload a stored value holds (itself, if it does not unpack)."""
    if not stored:
        return b""
    first = stored[0]
    if first == _RAW:
        return stored[1:]
    if first == _DEFLATED:
        try:
            inflater = zlib.decompressobj(_WBITS, DICTIONARY_V1)
            payload = inflater.decompress(stored[1:], MAX_PAYLOAD_BYTES + 1)
        except zlib.error:
            return stored
        if len(payload) > MAX_PAYLOAD_BYTES or inflater.unconsumed_tail:
            return stored  # inflates past the limit: not a row we wrote
        return payload if inflater.eof and not inflater.unused_data else stored
    for text, token in _EXPAND:
        stored = stored.replace(token, text)
    return stored
