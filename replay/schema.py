"""The schema gate and what a schema mismatch says, one line per change.

A recorded execution names the hash of the schema document it was recorded
under. The gate accepts it when today's flow, described under *that
document's format*, has the same hash (so an execution recorded under format
1 is gated with format 1's rules), or when the flow ``accepts=`` the hash.
Otherwise the stored document is compared with today's, one line per change:
the step, the field path and old -> new::

    refund.total output.amount: int -> float
    refund.fetch_order input.order_id: default 'x' added
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from journal.flow import Flow, ValueUpcaster
from journal.schema import SCHEMA_FORMAT, SCHEMA_FORMATS, format_of
from replay.schema_diff import Change, diff_documents

SchemaLookup = Callable[[str], bytes | None]

UPCASTER_HELP = (
    "an upcaster(callable_id, kind, value) -> value rewrites each recorded "
    "value (kind: input, output or value; see the README)"
)


@dataclass(frozen=True)
class GateResult:
    """What the schema gate decided for one recorded execution."""

    accepted: bool
    schema_format: int | None = None
    upcaster: ValueUpcaster | None = None
    changes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def gate(
    flow: Flow, recorded: str | None, current: str, lookup: SchemaLookup
) -> GateResult:
    """Decide whether `flow` may re-run an execution recorded under `recorded`.

    `current` is the flow's `schema_version` (computed once per replay).
    """
    if recorded is None:
        return GateResult(False, changes=("the execution recorded no schema_version",))
    if recorded == current:
        return GateResult(True, SCHEMA_FORMAT)
    for older in reversed(SCHEMA_FORMATS[:-1]):
        if recorded == flow.schema_version_for(older):
            return GateResult(True, older, notes=(_older_note(older),))
    stored = _stored_document(recorded, lookup)
    if recorded in flow.accepted_hashes:
        return _accepted(flow, recorded, stored)
    if stored is None:
        return GateResult(
            False, changes=(f"the recorded document {recorded} is not stored",)
        )
    schema_format = format_of(stored)
    if schema_format not in SCHEMA_FORMATS:
        return GateResult(
            False,
            schema_format,
            changes=(
                f"recorded under schema document format {schema_format}, which "
                f"this code does not know (it knows {_formats()})",
            ),
        )
    changes = diff_documents(stored, flow.schema_document_for(schema_format))
    notes = [] if schema_format == SCHEMA_FORMAT else [_older_note(schema_format)]
    notes.append(
        f"to accept it: Flow({flow.name!r}, accepts={{{recorded!r}: upcaster}})"
    )
    notes.append(UPCASTER_HELP)
    return GateResult(
        False, schema_format, changes=tuple(map(str, changes)), notes=tuple(notes)
    )


def _accepted(flow: Flow, recorded: str, stored: Any) -> GateResult:
    upcaster = flow.accepted_hashes[recorded]
    schema_format = None if stored is None else format_of(stored)
    how = "with its upcaster" if upcaster is not None else "without an upcaster"
    accepted = (f"accepted: Flow({flow.name!r}) accepts {recorded} {how}",)
    if upcaster is not None or stored is None or schema_format not in SCHEMA_FORMATS:
        return GateResult(True, schema_format, upcaster, notes=accepted)
    assert schema_format is not None
    changes = diff_documents(stored, flow.schema_document_for(schema_format))
    altering = [change for change in changes if change.alters_values]
    if not altering:
        return GateResult(True, schema_format, notes=accepted)
    return GateResult(
        False,
        schema_format,
        changes=tuple(map(str, altering)),
        notes=(
            f"Flow({flow.name!r}) accepts {recorded} without an upcaster, but "
            f"{'this change alters' if len(altering) == 1 else 'these changes alter'}"
            " recorded values: give it one",
            UPCASTER_HELP,
        ),
    )


def _stored_document(recorded: str, lookup: SchemaLookup) -> Any:
    stored = lookup(recorded)
    if stored is None:
        return None
    try:
        return msgspec.json.decode(stored)
    except msgspec.DecodeError:
        return None


def _older_note(schema_format: int) -> str:
    return (
        f"recorded under schema document format {schema_format}: gated with "
        f"format {schema_format}'s rules (today's is format {SCHEMA_FORMAT})"
    )


def _formats() -> str:
    return ", ".join(map(str, SCHEMA_FORMATS))


__all__ = ["Change", "GateResult", "diff_documents", "gate"]
