"""Option and argument types: times, states, chain heads, ids, store URLs.

A value typed on the command line (or given through the option's
environment variable) that these types refuse is a usage error: exit 2,
with click's "Invalid value for ..." message.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import click

if TYPE_CHECKING:  # click 8.5 made ParamType generic; older clicks are not.
    _TimeType: TypeAlias = click.ParamType[datetime, Any]
    _HeadType: TypeAlias = click.ParamType[tuple[int, bytes], Any]
    _StateType: TypeAlias = click.ParamType[str, Any]
else:
    _TimeType = _HeadType = _StateType = click.ParamType

_TextType = _StateType

_RELATIVE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class TimeParam(_TimeType):
    """An ISO 8601 time (UTC unless it says otherwise) or an age: 30m, 24h, 7d."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        match = _RELATIVE.fullmatch(text)
        if match:
            amount, unit = int(match[1]), _UNITS[match[2]]
            return datetime.now(UTC) - timedelta(**{unit: amount})
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is not an ISO time or an age like 24h", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class StateParam(_StateType):
    """An execution state: Created … Cancelled, or Waiting(reason)."""

    name = "STATE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        from journal.model import ExecutionState, WaitReason

        states = [state.value for state in ExecutionState]
        waiting = [f"Waiting({reason.value})" for reason in WaitReason]
        by_lower = {name.lower(): name for name in (*states, *waiting)}
        found = by_lower.get(str(value).strip().lower())
        if found is None:
            self.fail(
                f"{value!r} is not a state; use one of {', '.join(states)} "
                "or Waiting(reason)",
                param,
                ctx,
            )
        return found


class HeadParam(_HeadType):
    """A chain head as ``verify`` prints it: ``N:HEX``."""

    name = "N:HEX"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, bytes]:
        if isinstance(value, tuple):
            return value
        from journal.chain import parse_head

        try:
            return parse_head(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


def check_tenant(value: str) -> str:
    """The tenant id, or `ValueError` (an `InvalidIdError`) saying why not."""
    from journal.ids import parse_tenant_id

    return str(parse_tenant_id(value))


def check_db_url(value: str) -> str:
    """The store URL, or `ValueError` saying no backend accepts it."""
    from journal.errors import StoreError
    from journal.urls import check_url

    try:
        return check_url(value)
    except StoreError as e:
        raise ValueError(str(e)) from e


def check_execution_id(value: str) -> str:
    """The execution id, or `ValueError` (an `InvalidIdError`) saying why not."""
    from journal.ids import parse_execution_id

    return str(parse_execution_id(value))


class _CheckedText(_TextType):
    """A string checked by a function that raises `ValueError` to refuse it."""

    def __init__(self, name: str, check: Any) -> None:
        self.name = name
        self._check = check

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        try:
            checked: str = self._check(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)
        return checked


#: ``--tenant``: ``tenant_`` + 1-64 of ``[a-z0-9_-]``.
TENANT = _CheckedText("ID", check_tenant)
#: ``--db``: sqlite:///..., a bare path, postgresql://..., memory://.
DB_URL = _CheckedText("URL", check_db_url)
#: An ``EXECUTION_ID`` argument: ``exec_`` + 27 base62.
EXECUTION_ID = _CheckedText("EXECUTION_ID", check_execution_id)


class JournalFilesParam(click.Path):
    """An export file, or a folder holding at least one ``*.jsonl``: a
    missing path or an empty folder is a usage error (exit 2), as it is for
    the pytest plugin's ``--journal-replay``."""

    def __init__(self) -> None:
        super().__init__(exists=True, path_type=Path)

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        path = Path(os.fsdecode(super().convert(value, param, ctx)))
        if path.is_dir() and next(path.rglob("*.jsonl"), None) is None:
            self.fail(f"{str(path)!r}: no *.jsonl file in this folder", param, ctx)
        return path


#: ``replay --file``: an export file or a folder of them.
JOURNAL_FILES = JournalFilesParam()


def filter_options(function: Any) -> Any:
    """``--flow --state --since --until --limit`` (for list and --all)."""
    options = (
        click.option("--flow", "flow_name", metavar="NAME", help="Only this flow."),
        click.option(
            "--state", type=StateParam(), help="Only this state (Completed…)."
        ),
        click.option("--since", type=TimeParam(), help="Created at or after."),
        click.option("--until", type=TimeParam(), help="Created before."),
        click.option("--limit", type=click.IntRange(min=1), help="At most N."),
    )
    for option in reversed(options):
        function = option(function)
    return function


def list_filter(
    flow_name: str | None,
    state: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
) -> Any:
    """A `journal.ListFilter` (`state` comes canonical from `StateParam`)."""
    from journal.store import ListFilter

    return ListFilter(
        state=state, flow=flow_name, since=since, until=until, limit=limit
    )


def any_filter(*values: object) -> bool:
    return any(value is not None for value in values)


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _split_duration(text: str) -> tuple[str, float]:
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return text[: -len(unit)], _DURATION_UNITS[unit]
    return text, 1.0


def check_duration(value: str) -> str:
    """``30s``, ``500ms``, ``5m``, ``1h`` or plain seconds; `ValueError` if not."""
    text = value.strip()
    number, _unit = _split_duration(text)
    try:
        seconds = float(number)
    except ValueError:
        raise ValueError(f"{value!r} is not a duration (30s, 500ms, 5m)") from None
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration cannot be negative")
    return text


def seconds_of(text: str) -> float:
    """The seconds a checked duration stands for."""
    number, unit = _split_duration(text)
    return float(number) * unit


def check_json(value: str) -> str:
    """A JSON document as typed; `ValueError` saying where it breaks."""
    import msgspec

    try:
        msgspec.json.decode(value)
    except msgspec.DecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    return value


#: ``--older-than``, ``--every``: ``30s``, ``500ms``, ``5m``, ``1h``.
DURATION = _CheckedText("DURATION", check_duration)
#: ``--input``: a JSON document.
JSON_TEXT = _CheckedText("JSON", check_json)
