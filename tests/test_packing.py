"""Storage packing: what is stored unpacks to exactly the hashed payload."""

from __future__ import annotations

import zlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import journal
from journal.errors import EventDecodeError
from journal.packing import DICTIONARY_V1, TOKENS_V1, pack, pack_many, unpack

STEP_STARTED = (
    b'{"at":"2026-11-25T19:48:48.696155Z","callable_id":"bench.work",'
    b'"input":{"i":0},"name":"work","step_id":"step_3Mc3f4JBBatowsNXF7JmDFXTa8Z",'
    b'"step_type":"ToolNode","type":"StepStarted"}'
)


@given(st.binary(max_size=2048))
def test_any_bytes_unpack_to_what_was_packed(payload: bytes) -> None:
    assert unpack(pack(payload)) == payload


@given(st.text(max_size=300))
def test_any_json_unpacks_to_what_was_packed_on_the_trusted_path(text: str) -> None:
    payload = msgspec.json.encode({"type": "StepCompleted", "output": text})
    assert unpack(pack(payload, json=True)) == payload


def test_a_step_event_is_stored_in_about_half_its_bytes() -> None:
    packed = pack(STEP_STARTED, json=True)
    assert len(packed) < len(STEP_STARTED) * 0.6
    assert unpack(packed) == STEP_STARTED


def test_a_large_payload_is_deflated() -> None:
    payload = b'{"output":"' + b"refund approved; " * 100 + b'","type":"X"}'
    packed = pack(payload)
    assert packed[0] == 0x01
    assert len(packed) < len(payload) // 4
    assert unpack(packed) == payload


def test_bytes_edited_on_disk_come_back_as_they_are_for_the_chain_to_reject() -> None:
    broken = b"\x01" + b"not deflate at all"
    assert unpack(broken) == broken


def test_the_command_api_refuses_a_raw_value_that_is_not_json() -> None:
    with journal.open("memory://") as journal_:
        handle = journal_.create()
        handle.start()
        with pytest.raises(EventDecodeError, match="is not JSON"):
            handle.start_step("x", input=msgspec.Raw(b'"\x05"'))
        assert journal_.summary(handle.id).head_seq == 2


# --- pack_many: the batch packer against the per-payload packer it replaced --
#
# The oracle is the packer as it was before `pack_many` (one ``replace`` per
# token per payload), written out here with its own copy of the v1 token
# table, so that neither a change to `pack` nor to `TOKENS_V1` can make the
# two sides agree by accident.

_ORACLE_TOKENS = (
    (b'","step_type":"ToolNode","type":"StepStarted"}', b"\x02"),
    (b'","step_type":"LlmNode","type":"StepStarted"}', b"\x03"),
    (b'","step_type":"FunctionNode","type":"StepStarted"}', b"\x04"),
    (b'","type":"StepCompleted"}', b"\x05"),
    (b'{"at":"20', b"\x06"),
    (b'","callable_id":"', b"\x07"),
    (b'","step_id":"step_', b"\x08"),
    (b',"duration_ms":', b"\x0b"),
    (b',"input":', b"\x0c"),
    (b',"name":"', b"\x0e"),
    (b',"output":', b"\x0f"),
    (b'","step_type":"', b"\x10"),
)


def _oracle_pack(payload: bytes, *, json: bool = False) -> bytes:
    if len(payload) >= 512:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -10, 8, 0, DICTIONARY_V1)
        deflated = compressor.compress(payload) + compressor.flush()
        if len(deflated) + 1 < len(payload):
            return b"\x01" + deflated
    if not json and any(byte < 0x20 for byte in payload):
        return b"\x00" + payload
    for text, token in _ORACLE_TOKENS:
        payload = payload.replace(text, token)
    return payload


def test_the_oracle_is_the_v1_token_table() -> None:
    assert _ORACLE_TOKENS == TOKENS_V1


# Pieces that make tokens meet, overlap, nest and straddle payload borders.
_PIECES = [text for text, _ in _ORACLE_TOKENS] + [
    b'"', b",", b":", b"{", b"}", b"20", b"step_", b"\n", b"\x00", b"\x05",
    b"x", b'"type":"StepStarted"}', b'{"at":"2', b'"step_type":"',
]  # fmt: skip
_piece_payloads = st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join)
_payloads = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=3).map(b"".join),
    _piece_payloads,
    st.binary(max_size=700),
    st.text(max_size=200).map(lambda t: msgspec.json.encode({"output": t})),
    st.lists(st.sampled_from(_PIECES), min_size=60, max_size=90).map(b"".join),
)


@settings(max_examples=500)
@given(st.lists(_payloads, max_size=12), st.booleans())
def test_pack_many_writes_exactly_the_bytes_of_the_per_payload_packer(
    payloads: list[bytes], trusted: bool
) -> None:
    expected = [_oracle_pack(p, json=trusted) for p in payloads]
    assert pack_many(payloads, json=trusted) == expected
    assert [pack(p, json=trusted) for p in payloads] == expected


@given(st.lists(_payloads, max_size=12))
def test_what_pack_many_stores_unpacks_to_each_payload(payloads: list[bytes]) -> None:
    assert [unpack(p) for p in pack_many(payloads)] == payloads
    clean = [p for p in payloads if not any(byte < 0x20 for byte in p)]
    assert [unpack(p) for p in pack_many(clean, json=True)] == clean


def test_pack_many_on_the_trusted_path_packs_step_events_in_one_pass() -> None:
    completed = (
        b'{"at":"2026-11-25T19:48:48.696155Z","duration_ms":3,"output":{"ok":true},'
        b'"step_id":"step_3Mc3f4JBBatowsNXF7JmDFXTa8Z","type":"StepCompleted"}'
    )
    big = b'{"output":"' + b"refund approved; " * 100 + b'","type":"X"}'
    batch = [STEP_STARTED, completed, big, b"", STEP_STARTED + b"\n"]
    packed = pack_many(batch, json=True)
    assert packed == [_oracle_pack(p, json=True) for p in batch]
    assert packed[0][:1] + packed[0][-1:] == b"\x06\x02"  # {"at":"20 ... its tail
    assert packed[2][0] == 0x01  # deflated
