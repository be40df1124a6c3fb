"""Two schema documents compared: one `Change` per difference, in words.

Works on documents of any format (format 1 listed fields in order; format 2
keys the fields of a JSON object by wire name and keeps the order only where
the wire does). Paths: ``input.<param>``, ``output``, then ``.field``,
``[]`` for list or set items, ``[i]`` for a tuple position, ``{}`` for dict
values and ``{key}`` for dict keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from journal.schema import canonical

_TYPE_NAMES: dict[tuple[Any, Any], str] = {
    ("integer", None): "int",
    ("number", None): "float",
    ("string", None): "str",
    ("boolean", None): "bool",
    ("null", None): "None",
    ("any", None): "Any",
    ("any", "raw"): "Raw",
    ("ext", None): "Ext",
    ("string", "bytes"): "bytes",
    ("string", "date-time"): "datetime",
    ("string", "time"): "time",
    ("string", "date"): "date",
    ("string", "duration"): "timedelta",
    ("string", "uuid"): "UUID",
    ("string", "decimal"): "Decimal",
}
#: Keys that hold nested types (compared by recursion, not as options).
_STRUCTURE = frozenset(
    {"type", "format", "items", "prefixItems", "keys", "values", "fields"}
    | {"properties", "anyOf", "enum", "recursive"}
)
_LONGEST = 72
#: Options that are either there (true) or not.
_FLAGS = frozenset({"array_like", "forbid_unknown_fields", "omit_defaults"})
#: Options whose removal accepts every value accepted before (a loosening).
_LOOSENING = frozenset(
    {"gt", "ge", "lt", "le", "multiple_of", "pattern", "min_length", "max_length"}
    | {"tz", "forbid_unknown_fields"}
)


@dataclass(frozen=True)
class Change:
    """One difference: where (a step, the entry, a child), the field path,
    and what changed; `alters_values` if recorded values may decode or encode
    differently under it (a loosened constraint does not)."""

    where: str
    what: str
    path: str = ""
    alters_values: bool = False

    def __str__(self) -> str:
        return f"{self.where} {self.path}: {self.what}".replace(" : ", ": ")


def show(value: Any) -> str:
    """A value as a change line shows it: ``'x'``, ``3``, ``true``, ``[1]``."""
    return repr(value) if isinstance(value, str) else canonical(value).decode()


def brief(described: Any) -> str:
    """A type description in a few characters: ``int``, ``list[str]``."""
    text = _brief(described)
    return text if len(text) <= _LONGEST else text[: _LONGEST - 1] + "…"


def _brief(t: Any) -> str:
    if not isinstance(t, dict):
        return "(none)" if t is None else str(t)
    if "anyOf" in t:
        return " | ".join(_brief(option) for option in t["anyOf"])
    if "enum" in t:
        return f"Literal[{', '.join(show(v) for v in t['enum'])}]"
    if "recursive" in t:
        return "(recursive)"
    if t.get("type") == "custom":
        return str(t.get("class", "custom"))
    if "items" in t:
        return f"{'set' if t['type'] == 'set' else 'list'}[{_brief(t['items'])}]"
    if "prefixItems" in t:
        return f"tuple[{', '.join(_brief(i) for i in t['prefixItems'])}]"
    if "values" in t:
        return f"dict[{_brief(t['keys'])}, {_brief(t['values'])}]"
    fields = _fields(t)
    if fields is not None:
        kind = "array" if t.get("type") == "array" else "object"
        return f"{kind}{{{', '.join(fields)}}}"
    name = _TYPE_NAMES.get((t.get("type"), t.get("format")), str(t.get("type")))
    options = {k: v for k, v in t.items() if k not in _STRUCTURE}
    if options:
        name += " (" + ", ".join(f"{k} {show(v)}" for k, v in options.items()) + ")"
    return name


def _fields(t: dict[str, Any]) -> dict[str, Any] | None:
    """A struct-like description's fields by wire name (in wire order)."""
    if "properties" in t:
        return dict(t["properties"])
    if "fields" in t:
        return {
            f["name"]: {k: v for k, v in f.items() if k != "name"} for f in t["fields"]
        }
    return None


def diff_documents(recorded: Any, current: Any) -> list[Change]:
    """What changed between two flow documents of the same format."""
    if not isinstance(recorded, dict) or not isinstance(current, dict):
        return [Change("the recorded schema document", "not available")]
    changes: list[Change] = []
    for key in ("flow", "event_format", "schema_format"):
        if recorded.get(key) != current.get(key):
            before, after = show(recorded.get(key)), show(current.get(key))
            changes.append(Change("document", f"{before} -> {after}", key))
    flow = str(current.get("flow"))
    _diff_signature(
        f"{flow} (entry)", recorded.get("entry"), current.get("entry"), changes
    )
    _diff_steps(recorded.get("steps", []), current.get("steps", []), changes)
    old_children = {c["flow"]: c for c in recorded.get("children", [])}
    new_children = {c["flow"]: c for c in current.get("children", [])}
    for name in sorted(old_children.keys() - new_children.keys()):
        changes.append(Change(f"child flow {name}", "no longer used"))
    for name in sorted(new_children.keys() - old_children.keys()):
        changes.append(Change(f"child flow {name}", "now used"))
    for name in sorted(old_children.keys() & new_children.keys()):
        where = f"child flow {name}"
        _diff_signature(where, old_children[name], new_children[name], changes)
    return changes or [Change("the documents", "differ only in form")]


def _diff_steps(old: list[Any], new: list[Any], changes: list[Change]) -> None:
    old_steps = {s["callable_id"]: s for s in old}
    new_steps = {s["callable_id"]: s for s in new}
    for callable_id in sorted(old_steps.keys() - new_steps.keys()):
        changes.append(Change(callable_id, "step removed"))
    for callable_id in sorted(new_steps.keys() - old_steps.keys()):
        changes.append(Change(callable_id, "step added"))
    for callable_id in sorted(old_steps.keys() & new_steps.keys()):
        before, after = old_steps[callable_id], new_steps[callable_id]
        for key in ("name", "step_type", "pure"):
            if before.get(key) != after.get(key):
                what = f"{show(before.get(key))} -> {show(after.get(key))}"
                changes.append(Change(callable_id, what, key))
        _diff_retry(callable_id, before.get("retry"), after.get("retry"), changes)
        _diff_signature(callable_id, before, after, changes)


def _diff_retry(where: str, old: Any, new: Any, changes: list[Change]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                what = f"{show(old.get(key))} -> {show(new.get(key))}"
                changes.append(Change(where, what, f"retry.{key}"))
        return
    changes.append(Change(where, f"{_policy(old)} -> {_policy(new)}", "retry"))


def _policy(policy: Any) -> str:
    if isinstance(policy, dict):
        return "max_retries " + show(policy.get("max_retries"))
    return str(policy)


def _diff_signature(where: str, old: Any, new: Any, changes: list[Change]) -> None:
    if old == new:
        return
    if not isinstance(old, dict) or not isinstance(new, dict):
        changes.append(Change(where, "changed"))
        return
    old_params = {p["name"]: p for p in old.get("params", [])}
    new_params = {p["name"]: p for p in new.get("params", [])}
    _diff_members(where, "input", old_params, new_params, changes)
    if list(old_params) != list(new_params) and old_params.keys() == new_params.keys():
        what = f"parameter order {', '.join(old_params)} -> {', '.join(new_params)}"
        changes.append(Change(where, what, "input", alters_values=True))
    diff_types(where, "output", old.get("returns"), new.get("returns"), changes)


def _diff_members(
    where: str,
    path: str,
    old: dict[str, Any],
    new: dict[str, Any],
    changes: list[Change],
) -> None:
    """Parameters or fields: added, removed, required, default, type."""
    for name in [*old, *(n for n in new if n not in old)]:
        before, after = old.get(name), new.get(name)
        at = f"{path}.{name}"
        if before == after:
            continue
        if before is None or after is None:
            member = after if before is None else before
            assert member is not None
            required = "required" if member.get("required") else "optional"
            state = "added" if before is None else "removed"
            what = f"{state} ({required} {brief(member.get('type'))})"
            changes.append(Change(where, what, at, alters_values=True))
            continue
        explained = ("default" in before) != ("default" in after)  # by _diff_default
        if before.get("required") != after.get("required") and not explained:
            loosened = bool(before.get("required"))
            what = "required -> optional" if loosened else "optional -> required"
            changes.append(Change(where, what, at, alters_values=not loosened))
        _diff_default(where, at, before, after, changes)
        diff_types(where, at, before.get("type"), after.get("type"), changes)


def _diff_default(
    where: str, at: str, old: dict[str, Any], new: dict[str, Any], changes: list[Change]
) -> None:
    if old.get("default") == new.get("default"):
        return
    if "default" not in old:  # a loosening: recorded values decode as before
        changes.append(Change(where, f"default {show(new['default'])} added", at))
        return
    if "default" not in new:
        what = f"default {show(old['default'])} removed"
    else:
        what = f"default {show(old['default'])} -> {show(new['default'])}"
    changes.append(Change(where, what, at, alters_values=True))


def diff_types(
    where: str, path: str, old: Any, new: Any, changes: list[Change]
) -> None:
    """The changes between two type descriptions at `path`."""
    if old == new:
        return
    before = len(changes)
    if isinstance(old, dict) and isinstance(new, dict):
        _diff_nested(where, path, old, new, changes)
    if len(changes) == before:
        what = f"{brief(old)} -> {brief(new)}"
        changes.append(Change(where, what, path, alters_values=True))


def _diff_nested(
    where: str,
    path: str,
    old: dict[str, Any],
    new: dict[str, Any],
    changes: list[Change],
) -> None:
    if old.get("type") != new.get("type") or old.get("format") != new.get("format"):
        return  # another kind of value: one line, old -> new
    old_fields, new_fields = _fields(old), _fields(new)
    if old_fields is not None and new_fields is not None:
        _diff_members(where, path, old_fields, new_fields, changes)
        reordered = list(old_fields) != list(new_fields)
        same_names = old_fields.keys() == new_fields.keys()
        if reordered and same_names and old.get("type") == "array":
            what = f"field order {', '.join(old_fields)} -> {', '.join(new_fields)}"
            changes.append(Change(where, what, path, alters_values=True))
    elif "items" in old and "items" in new:
        diff_types(where, f"{path}[]", old["items"], new["items"], changes)
    elif "values" in old and "values" in new:
        diff_types(where, f"{path}{{key}}", old["keys"], new["keys"], changes)
        diff_types(where, f"{path}{{}}", old["values"], new["values"], changes)
    elif "prefixItems" in old and len(old["prefixItems"]) == len(
        new.get("prefixItems", ())
    ):
        for i, (a, b) in enumerate(
            zip(old["prefixItems"], new["prefixItems"], strict=True)
        ):
            diff_types(where, f"{path}[{i}]", a, b, changes)
    elif _STRUCTURE & (old.keys() | new.keys()) - {"type", "format"}:
        return  # unions, enums, recursion: one line, old -> new
    _diff_options(where, path, old, new, changes)


def _diff_options(
    where: str,
    path: str,
    old: dict[str, Any],
    new: dict[str, Any],
    changes: list[Change],
) -> None:
    """Constraints, Struct options, tags, custom class names."""
    old, new = _flat_tag(old), _flat_tag(new)
    for key in sorted((old.keys() | new.keys()) - _STRUCTURE):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key not in old:
            what = f"{key} added" if key in _FLAGS else f"{key} {show(b)} added"
        elif key not in new:
            what = f"{key} removed" if key in _FLAGS else f"{key} {show(a)} removed"
        else:
            what = f"{key} {show(a)} -> {show(b)}"
        loosened = key not in new and key in _LOOSENING
        changes.append(Change(where, what, path, alters_values=not loosened))


def _flat_tag(described: dict[str, Any]) -> dict[str, Any]:
    """``tag: {field, value}`` as two options, ``tag`` and ``tag_field``."""
    tag = described.get("tag")
    if not isinstance(tag, dict):
        return described
    return {**described, "tag": tag.get("value"), "tag_field": tag.get("field")}
