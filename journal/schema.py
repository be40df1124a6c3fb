"""A flow's schema document and its hash (``schema_version``).

The document holds everything that changes what a flow accepts on the wire
or how a step behaves, and nothing else:

- in: names, JSON types and formats, required or optional, default values,
  ``msgspec.Meta`` constraints (bounds, ``multiple_of``, ``pattern``,
  lengths, ``tz``), the Struct options that change the encoding
  (``array_like``, ``forbid_unknown_fields``, ``omit_defaults``, renamed
  fields by their wire names, tags), the field order of ``array_like``
  Structs and named tuples, custom types by qualified name, step types,
  purity and retry policies;
- out: class names of untagged Structs, docstrings, ``Meta`` descriptions,
  titles and examples, the field order of keyed Structs (their fields are a
  JSON object, so they are keyed by wire name), module paths.

It is canonical JSON (sorted keys, no whitespace), so the hash is the same in
every process under any ``PYTHONHASHSEED``. The document names its own format
(``schema_format``); format 1 (`journal.schema_v1`) had no such key.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from msgspec import inspect as mi

from journal.schema_v1 import describe_type_v1

#: The format of the documents this code writes.
SCHEMA_FORMAT = 2
#: Every format a recorded document may have (oldest first).
SCHEMA_FORMATS = (1, 2)

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
    mi.ExtType: {"type": "ext"},
}

#: The constraint attributes of msgspec's type infos that reach the wire.
_CONSTRAINTS = (
    "gt",
    "ge",
    "lt",
    "le",
    "multiple_of",
    "pattern",
    "min_length",
    "max_length",
    "tz",
)

_SEQUENCES = mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType
_FIELDED = mi.StructType | mi.DataclassType | mi.TypedDictType | mi.NamedTupleType


def describe_type(annotation: Any, schema_format: int = SCHEMA_FORMAT) -> Any:
    """A structural, class-name-free description of a type msgspec can encode.

    Raises:
        TypeError: msgspec cannot encode the type.
    """
    if schema_format == 1:
        return describe_type_v1(annotation)
    try:
        info = mi.type_info(annotation)
    except (TypeError, ValueError) as e:
        raise TypeError(f"cannot describe type {annotation!r}: {e}") from e
    return _describe(info, ())


def _describe(info: mi.Type, seen: tuple[int, ...]) -> dict[str, Any]:
    if isinstance(info, mi.Metadata):  # descriptions, titles, examples: out
        return _describe(info.type, seen)
    scalar = _SCALARS.get(type(info))
    if scalar is not None:
        return {**scalar, **_constraints(info)}
    if isinstance(info, mi.UnionType):
        options = [_describe(t, seen) for t in info.types]
        return {"anyOf": sorted(options, key=_encoder.encode)}
    if isinstance(info, mi.LiteralType):
        return {"enum": sorted(info.values, key=repr)}
    if isinstance(info, mi.EnumType):
        return {"enum": sorted((m.value for m in info.cls), key=repr)}
    if isinstance(info, _SEQUENCES):
        kind = "set" if isinstance(info, mi.SetType | mi.FrozenSetType) else "array"
        items = _describe(info.item_type, seen)
        return {"type": kind, "items": items, **_constraints(info)}
    if isinstance(info, mi.TupleType):
        return {
            "type": "array",
            "prefixItems": [_describe(t, seen) for t in info.item_types],
        }
    if isinstance(info, mi.DictType | mi.FrozenDictType):
        return {
            "type": "object",
            "keys": _describe(info.key_type, seen),
            "values": _describe(info.value_type, seen),
            **_constraints(info),
        }
    if isinstance(info, _FIELDED):
        return _describe_fields(info, seen)
    if isinstance(info, mi.CustomType):
        return {"type": "custom", "class": info.cls.__qualname__}
    raise TypeError(f"cannot describe type {info!r}")


def _constraints(info: mi.Type) -> dict[str, Any]:
    return {
        name: value
        for name in _CONSTRAINTS
        if (value := getattr(info, name, None)) is not None
    }


def _describe_fields(info: Any, seen: tuple[int, ...]) -> dict[str, Any]:
    marker = id(info)
    if marker in seen:
        return {"recursive": len(seen) - seen.index(marker)}
    inner = (*seen, marker)
    fields = [(f.encode_name, _describe_field(f, inner)) for f in info.fields]
    described: dict[str, Any]
    if isinstance(info, mi.NamedTupleType) or getattr(info, "array_like", False):
        # Positions are the wire format: order matters, names are kept.
        described = {
            "type": "array",
            "fields": [{"name": name, **field} for name, field in fields],
        }
    else:  # a JSON object: keyed by wire name, declaration order is out
        described = {"type": "object", "properties": dict(fields)}
    described.update(_struct_options(info))
    return described


def _describe_field(field: mi.Field, seen: tuple[int, ...]) -> dict[str, Any]:
    described = {"required": field.required, "type": _describe(field.type, seen)}
    if field.default is not msgspec.NODEFAULT:
        described["default"] = describe_default(field.default)
    elif field.default_factory is not msgspec.NODEFAULT:
        described["default"] = describe_default(field.default_factory, factory=True)
    return described


def _struct_options(info: Any) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if getattr(info, "tag", None) is not None:
        options["tag"] = {"field": info.tag_field, "value": info.tag}
    if getattr(info, "forbid_unknown_fields", False):
        options["forbid_unknown_fields"] = True
    if isinstance(info, mi.StructType):
        if info.array_like:
            options["array_like"] = True
        if info.cls.__struct_config__.omit_defaults:
            options["omit_defaults"] = True
    return options


def describe_default(value: Any, *, factory: bool = False) -> Any:
    """A default value as JSON builtins (a factory is called once for it)."""
    try:
        return msgspec.to_builtins(value() if factory else value, order="sorted")
    except Exception:  # any unencodable default: name its type instead
        made = value if factory else type(value)
        return {"unencodable": getattr(made, "__qualname__", repr(made))}


def signature_document(
    parameters: Iterable[inspect.Parameter],
    param_types: Mapping[str, Any],
    return_type: Any,
    schema_format: int = SCHEMA_FORMAT,
) -> dict[str, Any]:
    """A callable's part of a schema document: its parameters and return."""
    params = []
    for p in parameters:
        described = {
            "name": p.name,
            "required": p.default is inspect.Parameter.empty,
            "type": describe_type(param_types[p.name], schema_format),
        }
        if schema_format >= 2 and p.default is not inspect.Parameter.empty:
            described["default"] = describe_default(p.default)
        params.append(described)
    return {"params": params, "returns": describe_type(return_type, schema_format)}


def retry_document(policy: Any) -> Any:
    """A step's declared retry policy (a `RetryPolicy`), every field named;
    ``"by error category"`` when the step declares none."""
    if policy is None:
        return "by error category"
    return {
        name: msgspec.to_builtins(getattr(policy, name))
        for name in policy.__struct_fields__
    }


def format_of(document: Any) -> int:
    """The format of a stored document (format 1 had no ``schema_format``)."""
    if isinstance(document, dict):
        value = document.get("schema_format", 1)
        if isinstance(value, int):
            return value
    return 1


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
