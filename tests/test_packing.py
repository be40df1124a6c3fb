"""Storage packing: what is stored unpacks to exactly the hashed payload."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import journal
from journal.errors import EventDecodeError
from journal.packing import pack, unpack

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
