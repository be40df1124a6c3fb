"""Event bytes: canonical msgspec JSON and upcasters.

``payload`` is the event encoded as msgspec JSON with sorted keys. Those
exact bytes are stored, hashed and exported; nothing is ever re-encoded to
check it. Old payloads are upcast on read (the stored bytes, and so the
chain, never change).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import msgspec

from journal.errors import EventDecodeError
from journal.events import AnyEvent, Event, tag_of

_encoder = msgspec.json.Encoder(order="sorted")
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(AnyEvent)

#: Upcasters by legacy tag: each turns an old payload (as builtins) into the
#: builtins of a current event. Register with `upcaster`.
UPCASTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upcaster(
    tag: str,
) -> Callable[
    [Callable[[dict[str, Any]], dict[str, Any]]],
    Callable[[dict[str, Any]], dict[str, Any]],
]:
    """Register a function that upcasts payloads stored under a legacy tag."""

    def register(
        function: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        UPCASTERS[tag] = function
        return function

    return register


@upcaster("StepEnded")
def _step_ended_to_step_completed(old: dict[str, Any]) -> dict[str, Any]:
    """Format 0 (the prototype) called a finished step ``StepEnded`` and kept
    its duration in float seconds (``duration_s``)."""
    new = {k: v for k, v in old.items() if k != "duration_s"}
    new["type"] = "StepCompleted"
    if old.get("duration_s") is not None:
        new["duration_ms"] = round(float(old["duration_s"]) * 1000)
    return new


def encode(event: Event) -> bytes:
    """Canonical bytes of an event: msgspec JSON, keys sorted."""
    return _encoder.encode(event)


def encode_all(events: Sequence[Event]) -> list[bytes]:
    """`encode` of each event, in order (no Python call per event)."""
    return list(map(_encoder.encode, events))


def encode_value(value: object) -> msgspec.Raw:
    """Encode any msgspec-supported value as canonical raw JSON."""
    return msgspec.Raw(_encoder.encode(value))


def decode(payload: bytes, *, where: str = "") -> AnyEvent:
    """Decode stored bytes into the current event type, upcasting if needed."""
    try:
        return cast(AnyEvent, _decoder.decode(payload))
    except msgspec.DecodeError as first_error:
        return _decode_slow(payload, where, first_error)
    except RecursionError as e:  # the door refuses these; a stored one says so
        raise EventDecodeError(f"{where}the event nests too deeply to read") from e


def _decode_slow(payload: bytes, where: str, error: Exception) -> AnyEvent:
    try:
        raw = msgspec.json.decode(payload)
    except msgspec.DecodeError as e:
        raise EventDecodeError(f"{where}undecodable event payload: {e}") from e
    if isinstance(raw, dict):
        upcast = UPCASTERS.get(str(raw.get("type")))
        if upcast is not None:
            try:
                # Through JSON again, not msgspec.convert: a `Raw` field (an
                # output, an input) cannot be converted from builtins.
                return cast(AnyEvent, _decoder.decode(_encoder.encode(upcast(raw))))
            except (msgspec.DecodeError, ValueError, TypeError) as e:
                raise EventDecodeError(f"{where}cannot upcast event: {e}") from e
    raise EventDecodeError(f"{where}not a known event: {error}") from error


def json_problem(raw: bytes) -> str | None:
    """None if `raw` is exactly one JSON value, else what is wrong with it."""
    try:
        msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        return str(e)
    return None


def _raw_fields(cls: type[Event]) -> tuple[str, ...]:
    """The fields of an event class whose values are raw JSON."""
    found = _RAW_FIELDS.get(cls)
    if found is None:
        hints = msgspec.structs.fields(cls)
        found = tuple(f.name for f in hints if f.type is msgspec.Raw)
        _RAW_FIELDS[cls] = found
    return found


_RAW_FIELDS: dict[type[Event], tuple[str, ...]] = {}
_any_json = msgspec.json.Decoder()


def check_raw_values(where: str, events: Sequence[Event]) -> None:
    """Refuse events whose raw values (inputs, outputs, recorded values) are
    not JSON: the one check on the way into a store, so that no value handed
    in unchecked can make a history undecodable. Only the raw fields are
    decoded (everything else the encoder wrote itself).

    Raises:
        EventDecodeError: Naming `where`, the event's tag and the field.
    """
    known = _RAW_FIELDS
    for event in events:
        names = known.get(type(event))
        if names is None:
            names = _raw_fields(type(event))
        for name in names:
            value: msgspec.Raw = getattr(event, name)
            try:
                _any_json.decode(value)
            except msgspec.DecodeError as e:
                raise EventDecodeError(
                    f"{where}: {tag_of(event)}.{name} is not valid JSON ({e})"
                ) from e
