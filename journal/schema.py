"""A flow's schema document and its hash (``schema_version``).

The document describes types *structurally* (field names, JSON types with
formats, required or optional), never by class name or docstring, so that
renaming a class or editing a docstring changes nothing while ``str`` ->
``datetime``, ``int`` -> ``float`` or a new required field changes the hash.
It is canonical JSON (sorted keys, no whitespace), so the hash is the same in
every process under any ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from msgspec import inspect as mi

_encoder = msgspec.json.Encoder(order="sorted")

_SCALARS: dict[type[mi.Type], dict[str, str]] = {
    mi.AnyType: {"type": "any"},
    mi.NoneType: {"type": "null"},
    mi.BoolType: {"type": "boolean"},
    mi.IntType: {"type": "integer"},
    mi.FloatType: {"type": "number"},
    mi.StrType: {"type": "string"},
    mi.BytesType: {"type": "string", "format": "bytes"},
    mi.ByteArrayType: {"type": "string", "format": "bytes"},
    mi.MemoryViewType: {"type": "string", "format": "bytes"},
    mi.DateTimeType: {"type": "string", "format": "date-time"},
    mi.TimeType: {"type": "string", "format": "time"},
    mi.DateType: {"type": "string", "format": "date"},
    mi.TimeDeltaType: {"type": "string", "format": "duration"},
    mi.UUIDType: {"type": "string", "format": "uuid"},
    mi.DecimalType: {"type": "string", "format": "decimal"},
    mi.RawType: {"type": "any", "format": "raw"},
}


def describe_type(annotation: Any) -> dict[str, Any]:
    """A structural, name-free description of a type msgspec can encode."""
    try:
        info = mi.type_info(annotation)
    except (TypeError, ValueError) as e:
        raise TypeError(f"cannot describe type {annotation!r}: {e}") from e
    return _describe(info, ())


def _describe(info: mi.Type, seen: tuple[int, ...]) -> dict[str, Any]:
    scalar = _SCALARS.get(type(info))
    if scalar is not None:
        return dict(scalar)
    if isinstance(info, mi.UnionType):
        options = [_describe(t, seen) for t in info.types]
        return {"anyOf": sorted(options, key=_encoder.encode)}
    if isinstance(info, mi.LiteralType):
        return {"enum": sorted(info.values, key=repr)}
    if isinstance(info, mi.EnumType):
        return {"enum": sorted((m.value for m in info.cls), key=repr)}
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        kind = "set" if isinstance(info, mi.SetType | mi.FrozenSetType) else "array"
        return {"type": kind, "items": _describe(info.item_type, seen)}
    if isinstance(info, mi.TupleType):
        return {
            "type": "array",
            "prefixItems": [_describe(t, seen) for t in info.item_types],
        }
    if isinstance(info, mi.DictType):
        return {
            "type": "object",
            "keys": _describe(info.key_type, seen),
            "values": _describe(info.value_type, seen),
        }
    if isinstance(
        info, mi.StructType | mi.DataclassType | mi.TypedDictType | mi.NamedTupleType
    ):
        return _describe_fields(info, seen)
    if isinstance(info, mi.CustomType):
        return {"type": "custom"}
    raise TypeError(f"cannot describe type {info!r}")


def _describe_fields(info: Any, seen: tuple[int, ...]) -> dict[str, Any]:
    marker = id(info)
    if marker in seen:
        return {"recursive": len(seen) - seen.index(marker)}
    inner = (*seen, marker)
    fields = [
        {
            "name": field.encode_name,
            "required": field.required,
            "type": _describe(field.type, inner),
        }
        for field in info.fields
    ]
    described: dict[str, Any] = {"type": "object", "fields": fields}
    if isinstance(info, mi.NamedTupleType):
        described["type"] = "array"
    tag = getattr(info, "tag", None)
    if tag is not None:
        described["tag"] = {"field": info.tag_field, "value": tag}
    return described


def canonical(document: Any) -> bytes:
    """Canonical JSON bytes of a document (sorted keys, compact)."""
    return _encoder.encode(document)


def schema_hash(document: Any) -> str:
    """``sha256:`` + the hex SHA-256 of the canonical document."""
    return "sha256:" + hashlib.sha256(canonical(document)).hexdigest()


def document_matches(expected_hash: str | None, document: bytes) -> bool:
    """True if a stored or carried document really has this hash."""
    try:
        return expected_hash == schema_hash(msgspec.json.decode(document))
    except msgspec.DecodeError:
        return False


def diff_documents(recorded: Any, current: Any) -> list[str]:
    """What changed between two flow documents, one readable line each."""
    if not isinstance(recorded, dict) or not isinstance(current, dict):
        return ["the recorded schema document is not available"]
    lines: list[str] = []
    for key in ("flow", "event_format"):
        if recorded.get(key) != current.get(key):
            lines.append(f"{key}: {recorded.get(key)!r} -> {current.get(key)!r}")
    _diff_signature("entry", recorded.get("entry"), current.get("entry"), lines)
    old_steps = {s["callable_id"]: s for s in recorded.get("steps", [])}
    new_steps = {s["callable_id"]: s for s in current.get("steps", [])}
    for callable_id in sorted(old_steps.keys() - new_steps.keys()):
        lines.append(f"step {callable_id}: removed")
    for callable_id in sorted(new_steps.keys() - old_steps.keys()):
        lines.append(f"step {callable_id}: added")
    for callable_id in sorted(old_steps.keys() & new_steps.keys()):
        old, new = old_steps[callable_id], new_steps[callable_id]
        for key in ("name", "step_type", "pure"):
            if old.get(key) != new.get(key):
                lines.append(
                    f"step {callable_id}: {key} {old.get(key)!r} -> {new.get(key)!r}"
                )
        _diff_signature(f"step {callable_id}", old, new, lines)
    old_children = {c["flow"]: c for c in recorded.get("children", [])}
    new_children = {c["flow"]: c for c in current.get("children", [])}
    for name in sorted(old_children.keys() - new_children.keys()):
        lines.append(f"child flow {name}: no longer used")
    for name in sorted(new_children.keys() - old_children.keys()):
        lines.append(f"child flow {name}: now used")
    for name in sorted(old_children.keys() & new_children.keys()):
        _diff_signature(
            f"child flow {name}", old_children[name], new_children[name], lines
        )
    return lines or ["the documents differ only in form"]


def _diff_signature(where: str, old: Any, new: Any, lines: list[str]) -> None:
    if old == new:
        return
    if not isinstance(old, dict) or not isinstance(new, dict):
        lines.append(f"{where}: changed")
        return
    old_params = {p["name"]: p for p in old.get("params", [])}
    new_params = {p["name"]: p for p in new.get("params", [])}
    for name in sorted(old_params.keys() | new_params.keys()):
        before, after = old_params.get(name), new_params.get(name)
        if before != after:
            lines.append(f"{where}: input {name}: {_brief(before)} -> {_brief(after)}")
    if old.get("returns") != new.get("returns"):
        lines.append(
            f"{where}: output type: {_brief(old.get('returns'))} -> "
            f"{_brief(new.get('returns'))}"
        )


def _brief(value: Any) -> str:
    if value is None:
        return "(none)"
    return canonical(value).decode()
