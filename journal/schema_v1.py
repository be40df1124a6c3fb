"""Schema document format 1, frozen: how documents were built before format 2.

Executions recorded before format 2 carry the hash of a format-1 document.
To gate them, today's code is described again under format 1's rules and
hashed; so this module must never change (a change here would turn every
such recording into a schema mismatch). Format 1 names field types and
required-ness only: no constraints, defaults, Struct options, custom type
names or retry policies, and struct fields in declaration order.
"""

from __future__ import annotations

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


def describe_type_v1(annotation: Any) -> dict[str, Any]:
    """A type as format 1 described it.

    ``Annotated`` metadata is looked through: format 1 could not describe it
    at all, so no format-1 document depends on it.
    """
    try:
        info = mi.type_info(annotation)
    except (TypeError, ValueError) as e:
        raise TypeError(f"cannot describe type {annotation!r}: {e}") from e
    return _describe(info, ())


def _describe(info: mi.Type, seen: tuple[int, ...]) -> dict[str, Any]:
    if isinstance(info, mi.Metadata):
        return _describe(info.type, seen)
    scalar = _SCALARS.get(type(info))
    if scalar is not None:
        return dict(scalar)
    if isinstance(info, mi.UnionType):
        options = [_describe(t, seen) for t in info.types]
        return {"anyOf": sorted(options, key=_sort_key)}
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


def _sort_key(document: dict[str, Any]) -> bytes:
    return _encoder.encode(document)
