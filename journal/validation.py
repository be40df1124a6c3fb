"""Bad data stops at the door: what the store cannot hold or the fold cannot
handle is refused before anything is written (docs/design.md §11).

Every event appended and every event imported is checked:

* times (``at``, an error's ``occurred_at``) carry a zone and lie, in UTC,
  between 0001-01-01 and 9999-12-31 (what Python, SQLite's text and
  PostgreSQL's ``timestamptz`` all hold: ``0001-01-01T00:00:00+14:00`` is
  year 0 in UTC, and refused);
* JSON nests at most `MAX_DEPTH` levels (deeper values end in recursion
  limits of decoders and printers);
* integers fit in 64 signed bits (what the SQL columns and most JSON readers
  hold); floats are finite by construction (msgspec writes ``null`` for
  them and refuses ``1e400`` on reading);
* (a raw value, `msgspec.Raw`, must be JSON: `journal.codec.check_raw_values`
  refuses it beside these checks);
* a payload is at most `MAX_PAYLOAD_BYTES` (which also bounds what
  `journal.packing.unpack` will inflate).

The checks cost little on the hot path: one byte translation of the whole
batch (`classify`, shared with the append's control-byte check) decides
whether the exact (decoding) checks are needed at all, and a time from the
journal's own clock (UTC) needs two comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from journal import events as ev
from journal.errors import InvalidValueError
from journal.packing import MAX_PAYLOAD_BYTES

#: The deepest JSON nesting an event may hold (arrays and objects).
MAX_DEPTH: Final = 100
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1
EARLIEST: Final = datetime(1, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

#: One pass maps each byte to its class: digits to "0", opening brackets to
#: "[", control bytes (0x00-0x1F) to `CONTROL`, the rest to " ". Then 19
#: digits in a row (the only way to write an integer beyond 64 bits), the
#: bracket count and a control byte are C-speed searches.
CONTROL: Final = b"\x00"
_CLASSES = bytes(
    0x30
    if 0x30 <= b <= 0x39
    else 0x5B
    if b in (0x5B, 0x7B)
    else CONTROL[0]
    if b < 0x20
    else 0x20
    for b in range(256)
)
_LONG_DIGITS = b"0" * 19
#: Events that carry an `ExecutionError` (whose ``occurred_at`` is a time).
_WITH_ERROR = frozenset({ev.StepFailed, ev.ExecutionFailed})


def _suspicious(payload: bytes) -> bool:
    """True when the exact checks must run: deep enough brackets, or a run
    of 19 digits (both upper bounds: strings may hold them)."""
    classes = payload.translate(_CLASSES)
    return classes.count(b"[") > MAX_DEPTH or _LONG_DIGITS in classes


def classify(payloads: Sequence[bytes]) -> bytes:
    """The byte classes of a batch of payloads, one translation for all
    (joined by a space, which is neither a digit, a bracket nor a control
    byte): ``CONTROL in classify(p)`` says whether any holds a control byte,
    and `check_events` takes it instead of translating again."""
    return b" ".join(payloads).translate(_CLASSES)


def check_events(
    events: Sequence[ev.Event],
    payloads: Sequence[bytes],
    where: Callable[[int], str],
    classes: bytes | None = None,
) -> None:
    """Check events about to be stored and their canonical payloads.

    ``where(i)`` names event i in a message (``exec_… event 3``,
    ``file.jsonl:7``); it is called only on a refusal. ``classes`` is
    ``classify(payloads)`` when the caller already has it. Raises
    `InvalidValueError` naming the place and the field.
    """
    # One translation of the whole batch: no 19-digit run anywhere means no
    # payload can hold an integer beyond 64 bits.
    if classes is None:
        classes = classify(payloads)
    long_digits = _LONG_DIGITS in classes
    for i, (event, payload) in enumerate(zip(events, payloads, strict=True)):
        at = event.at
        if (
            not long_digits
            and at.tzinfo is UTC  # what the journal's own clock makes: the fast path
            and 1 < at.year < 9999
            and type(event) not in _WITH_ERROR
            and (
                len(payload) <= 2 * MAX_DEPTH
                # `_suspicious` without its digit search (the batch has none)
                or (
                    len(payload) <= MAX_PAYLOAD_BYTES
                    and payload.count(b"[") + payload.count(b"{") <= MAX_DEPTH
                )
            )
        ):
            continue
        try:
            check_payload(payload, "")
            for field, value in _times(event):
                check_time(value, f"{ev.tag_of(event)}.{field}: ")
        except InvalidValueError as e:
            raise InvalidValueError(f"{where(i)}: {e}") from None


def check_payload(payload: bytes, where: str = "") -> None:
    """Size, nesting depth and integer range of one JSON document; `where`
    (``"file:3: "``) starts a refusal's message."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidValueError(
            f"{where}the payload is {len(payload):,} bytes, over the "
            f"{MAX_PAYLOAD_BYTES:,}-byte limit"
        )
    if _suspicious(payload):
        _check_exactly(payload, where)


def check_time(value: datetime, where: str = "") -> None:
    """A time with a zone, within the range every backend holds (in UTC)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(f"{where}the time {value.isoformat()} has no zone")
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise InvalidValueError(
            f"{where}the time {value.isoformat()} is outside "
            "0001-01-01..9999-12-31 in UTC"
        )


def _times(event: ev.Event) -> Iterator[tuple[str, datetime]]:
    yield "at", event.at
    error = getattr(event, "error", None)
    occurred = getattr(error, "occurred_at", None)
    if isinstance(occurred, datetime):
        yield "error.occurred_at", occurred


def _check_exactly(payload: bytes, where: str) -> None:
    if _depth_upper_bound(payload) > MAX_DEPTH:
        raise InvalidValueError(
            f"{where}the value nests deeper than {MAX_DEPTH} levels"
        )
    try:
        value = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return  # not JSON at all: the decoder names that, where it is read
    for number in _integers(value):
        if not INT_MIN <= number <= INT_MAX:
            text = str(number)
            shown = text if len(text) <= 24 else f"{text[:24]}…"
            raise InvalidValueError(
                f"{where}the integer {shown} does not fit in 64 signed bits"
            )


def _depth_upper_bound(payload: bytes) -> int:
    """The deepest nesting of brackets outside JSON strings (exact for JSON)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _integers(value: Any) -> Iterator[int]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
