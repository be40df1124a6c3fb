"""Identifiers: prefixed, time-sortable, validated on parse.

Generated ids are a prefix plus a KSUID-like body: 27 base62 characters
encoding 4 bytes of seconds since the KSUID epoch and 16 random bytes, so ids
sort by creation second. Tenant ids are names that users choose.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from typing import NewType

from journal.errors import InvalidIdError

ExecutionId = NewType("ExecutionId", str)
StepId = NewType("StepId", str)
EventId = NewType("EventId", str)
TenantId = NewType("TenantId", str)

EXECUTION_PREFIX = "exec_"
STEP_PREFIX = "step_"
EVENT_PREFIX = "evt_"
TENANT_PREFIX = "tenant_"
DEFAULT_TENANT = TenantId("tenant_default")

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 27
_KSUID_EPOCH = 1_400_000_000
_MAX_BODY_VALUE = (1 << 160) - 1
_BODY_RE = re.compile(r"[0-9A-Za-z]{27}")
_TENANT_RE = re.compile(r"tenant_[a-z0-9_-]{1,64}")


def _encode_base62(value: int) -> str:
    chars = []
    for _ in range(_BODY_LENGTH):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _decode_base62(body: str) -> int:
    value = 0
    for char in body:
        value = value * 62 + _ALPHABET.index(char)
    return value


def new_body(now: float | None = None) -> str:
    """Return a fresh 27-character, time-sortable base62 body."""
    seconds = int(time.time() if now is None else now) - _KSUID_EPOCH
    timestamp = max(0, min(seconds, 0xFFFFFFFF))
    value = (timestamp << 128) | int.from_bytes(os.urandom(16), "big")
    return _encode_base62(value)


def _parse(value: object, prefix: str, kind: str) -> str:
    if not isinstance(value, str) or not value.startswith(prefix):
        raise InvalidIdError(
            f"invalid {kind} id {value!r}: expected {prefix}<27 base62>"
        )
    body = value[len(prefix) :]
    if not _BODY_RE.fullmatch(body) or _decode_base62(body) > _MAX_BODY_VALUE:
        raise InvalidIdError(
            f"invalid {kind} id {value!r}: the body must be 27 base62 characters"
        )
    return value


def new_execution_id() -> ExecutionId:
    """Generate a new execution id (``exec_…``)."""
    return ExecutionId(EXECUTION_PREFIX + new_body())


def derived_execution_id(parent_id: str, call: str) -> ExecutionId:
    """A child execution's id, derived from its parent's id and the identity
    of the call that runs it, so a resumed parent finds its child again.

    The body keeps the parent's creation second (ids still sort by time),
    then 16 bytes of SHA-256 over the parent id and the call identity.
    """
    parent_body = _parse(parent_id, EXECUTION_PREFIX, "execution")[
        len(EXECUTION_PREFIX) :
    ]
    timestamp = _decode_base62(parent_body) >> 128
    digest = hashlib.sha256(f"{parent_id}\0{call}".encode()).digest()[:16]
    value = (timestamp << 128) | int.from_bytes(digest, "big")
    return ExecutionId(EXECUTION_PREFIX + _encode_base62(value))


def new_step_id() -> StepId:
    """Generate a new step id (``step_…``)."""
    return StepId(STEP_PREFIX + new_body())


def new_event_id() -> EventId:
    """Generate a new event id (``evt_…``)."""
    return EventId(EVENT_PREFIX + new_body())


def parse_execution_id(value: object) -> ExecutionId:
    """Validate an execution id; raise `InvalidIdError` naming the value."""
    return ExecutionId(_parse(value, EXECUTION_PREFIX, "execution"))


def parse_step_id(value: object) -> StepId:
    """Validate a step id; raise `InvalidIdError` naming the value."""
    return StepId(_parse(value, STEP_PREFIX, "step"))


def parse_event_id(value: object) -> EventId:
    """Validate an event id; raise `InvalidIdError` naming the value."""
    return EventId(_parse(value, EVENT_PREFIX, "event"))


def parse_tenant_id(value: object) -> TenantId:
    """Validate a tenant id (``tenant_`` + 1-64 of ``[a-z0-9_-]``)."""
    if not isinstance(value, str) or not _TENANT_RE.fullmatch(value):
        raise InvalidIdError(
            f"invalid tenant id {value!r}: expected tenant_ followed by 1-64 of "
            "[a-z0-9_-]"
        )
    return TenantId(value)


def id_timestamp(value: str) -> int:
    """Return the creation time (unix seconds) encoded in a generated id."""
    body = value[value.index("_") + 1 :]
    if not _BODY_RE.fullmatch(body):
        raise InvalidIdError(f"invalid id {value!r}: no 27-character body")
    return (_decode_base62(body) >> 128) + _KSUID_EPOCH
