"""The audit report: one self-contained HTML file per execution (or per set).

`render_report` turns `Subject`s (an execution's timeline, its chain status,
and a replay result if one was asked for) into one HTML document: CSS and
JavaScript inline, the data as a JSON island, no network and no external
font, so it works from ``file://`` and as an e-mail attachment. A
Content-Security-Policy in the page forbids every fetch, and allows only the
page's own script (by its hash). The output is a pure function of its input
apart from the ``generated at`` line, so the same journal gives the same
bytes.

The page is drawn by ``assets/report.js`` from the JSON island. Long lists
(the timeline and the event table) are virtualised, so 10,000 steps stay
responsive.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import msgspec

from journal.chain import format_head
from journal.model import Execution, ExecutionError, Step, is_null
from journal.timeline import EventRecord, Interval, StepTrace, Timeline
from replay.report import ReplayResult, value_view

FORMAT = "journal-report/1"


@dataclass(frozen=True)
class ChainStatus:
    """Whether an execution's chain verified, and if not, where it broke."""

    verified: bool
    message: str
    seq: int | None = None

    @classmethod
    def ok(cls, head: tuple[int, bytes]) -> ChainStatus:
        return cls(True, f"verified to {format_head(*head)}")


@dataclass(frozen=True)
class Subject:
    """One execution to show: its timeline and what is known about it.

    `binding` is the chain version (``v2`` binds tenant, id, flow, parent
    and origin in its genesis; ``v1`` only the id). `ledger` and `origin`
    are shown when known (a ledger's inclusion status; the execution and
    sequence a fork started from, from the genesis).
    """

    timeline: Timeline
    tenant_id: str
    chain: ChainStatus
    children: Sequence[str] = ()
    replay: ReplayResult | None = None
    ledger: str | None = None
    origin: Mapping[str, Any] | None = None
    source: str | None = None
    alg: str | None = None
    binding: str | None = None
    key_id: str | None = None


@dataclass(frozen=True)
class Page:
    """A report page: its executions and where linked executions live."""

    subjects: Sequence[Subject]
    links: Mapping[str, str] = field(default_factory=dict)
    title: str | None = None


def render_report(page: Page, *, generated_at: str) -> str:
    """The whole HTML document for `page` (deterministic but for one line)."""
    data = {
        "format": FORMAT,
        "executions": [_execution_data(s) for s in page.subjects],
        "links": dict(sorted(page.links.items())),
    }
    island = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    # Inside <script> only "</" and "<!--" can end or confuse the element.
    island = island.replace("</", "<\\/").replace("<!--", "<\\!--")
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    first = page.subjects[0].timeline.execution_id if page.subjects else "report"
    title = page.title or f"Audit report: {first}"
    return (
        _asset("report.html")
        .replace("{{title}}", html.escape(title))
        .replace("{{script_hash}}", f"sha256-{digest}")
        .replace("{{style}}", _asset("report.css"))
        .replace("{{generated_at}}", html.escape(generated_at))
        .replace("{{script}}", script)
        .replace("{{data}}", island)
    )


def render_index(entries: Sequence[tuple[str, Subject]], *, generated_at: str) -> str:
    """An index page linking each execution's own report file."""
    rows = "\n".join(_index_row(href, subject) for href, subject in entries)
    return (
        _asset("index.html")
        .replace("{{style}}", _asset("report.css"))
        .replace("{{generated_at}}", html.escape(generated_at))
        .replace("{{count}}", str(len(entries)))
        .replace("{{rows}}", rows)
    )


def _index_row(href: str, subject: Subject) -> str:
    execution = subject.timeline.execution
    state = execution.state_label if execution else "(did not fold)"
    link = html.escape(subject.timeline.execution_id)
    cells = [
        f'<a href="{html.escape(href)}">{link}</a>',
        html.escape(execution.flow or "-") if execution else "-",
        html.escape(state),
        _iso(execution.started_at) if execution else "-",
        str(len(subject.timeline.steps)),
        ("verified" if subject.chain.verified else "BROKEN: " + subject.chain.message),
    ]
    css = "" if subject.chain.verified else ' class="broken"'
    return f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _asset(name: str) -> str:
    return resources.files("replay").joinpath("assets", name).read_text("utf-8")


def _execution_data(subject: Subject) -> dict[str, Any]:
    timeline = subject.timeline
    execution = timeline.execution
    t0 = _start_time(timeline)
    index = timeline.step_index()
    data: dict[str, Any] = {
        "id": timeline.execution_id,
        "tenant": subject.tenant_id,
        "source": subject.source,
        "alg": subject.alg,
        "head": format_head(*timeline.head) if timeline.events else None,
        "chain": {
            "verified": subject.chain.verified,
            "message": subject.chain.message,
            "seq": subject.chain.seq,
        },
        "ledger": subject.ledger,
        "origin": subject.origin,
        "binding": subject.binding,
        "key_id": subject.key_id,
        "children": list(subject.children),
        "fold_error": timeline.fold_error,
        "t0": _iso(t0),
        "step_fields": STEP_FIELDS,
        "steps": [_step_data(t, index, t0) for t in timeline.steps],
        "events": [_event_data(r, index, t0) for r in timeline.events],
        "intervals": [_interval_data(i, t0) for i in timeline.intervals],
        "replay": _replay_data(subject.replay, timeline),
    }
    if execution is not None:
        data |= _execution_fields(execution, t0)
    return data


def _execution_fields(execution: Execution, t0: datetime | None) -> dict[str, Any]:
    parent = execution.parent
    return {
        "flow": execution.flow,
        "state": execution.state_label,
        "schema_version": execution.schema_version,
        "created_at": _iso(execution.created_at),
        "started_at": _iso(execution.started_at),
        "ended_at": _iso(execution.ended_at),
        "end_ms": _offset(execution.ended_at or execution.updated_at, t0),
        "duration_ms": execution.duration_ms,
        "parent": None
        if parent is None
        else {
            "id": parent.parent_id,
            "type": parent.parent_type.value,
            "execution_id": parent.parent_execution_id,
        },
        "input": _value(execution.input),
        "output": _value(execution.output),
        "error": _error(execution.error),
    }


def _start_time(timeline: Timeline) -> datetime | None:
    execution = timeline.execution
    if execution is not None and execution.created_at is not None:
        return execution.created_at
    return next((r.at for r in timeline.events if r.at is not None), None)


#: The fields of a step row in the data island, in order (arrays keep a
#: 10,000-step file small; the page turns them back into objects).
STEP_FIELDS = [
    "id",
    "name",
    "type",
    "state",
    "start",
    "end",
    "duration_ms",
    "depth",
    "parent",
    "retry_of",
    "callable_id",
    "source",
]


def _step_data(
    trace: StepTrace, index: dict[Any, int], t0: datetime | None
) -> list[Any]:
    """A step's row; its input, output and error are read from its events."""
    step = trace.step
    return [
        step.id,
        step.name,
        step.step_type,
        step.state.value,
        _offset(step.started_at, t0),
        _offset(step.ended_at, t0),
        step.duration_ms,
        trace.depth,
        index.get(step.parent_step_id, -1),
        -1 if trace.retry_of is None else index.get(trace.retry_of, -1),
        step.callable_id,
        _source(step),
    ]


def _source(step: Step) -> dict[str, Any] | None:
    if step.source is None:
        return None
    return msgspec.to_builtins(step.source)  # type: ignore[no-any-return]


def _event_data(
    record: EventRecord, index: dict[Any, int], t0: datetime | None
) -> list[Any]:
    """``[seq, ms from start, tag, step index or -1, hash, payload]``.

    The payload is embedded as the JSON it is (a string if it is not JSON),
    once: the page reads each step's input, output and error from it.
    """
    step = -1 if record.step_id is None else index.get(record.step_id, -1)
    payload = value_view(record.payload)
    return [
        record.seq,
        _offset(record.at, t0),
        record.tag,
        step,
        record.hash.hex(),
        payload,
    ]


def _interval_data(interval: Interval, t0: datetime | None) -> dict[str, Any]:
    return {
        "kind": interval.kind,
        "reason": interval.reason,
        "detail": interval.detail,
        "approver": interval.approver,
        "outcome": interval.outcome,
        "start": _offset(interval.started_at, t0),
        "end": _offset(interval.ended_at, t0),
        "start_seq": interval.start_seq,
        "end_seq": interval.end_seq,
    }


def _replay_data(result: ReplayResult | None, timeline: Timeline) -> Any:
    if result is None:
        return None
    data = result.to_dict()
    data.pop("duration_ms", None)  # a timing would make the file differ per run
    divergence = result.divergence
    execution = timeline.execution
    if divergence is not None and execution is not None:
        order = execution.step_order
        step_id = order[divergence.index] if divergence.index < len(order) else None
        found = -1 if step_id is None else timeline.step_index().get(step_id, -1)
        data["divergence"]["step"] = found
    return data


def _value(raw: msgspec.Raw) -> Any:
    return None if is_null(raw) else value_view(bytes(raw))


def _error(error: ExecutionError | None) -> Any:
    return None if error is None else msgspec.to_builtins(error)


def _offset(at: datetime | None, t0: datetime | None) -> float | None:
    if at is None or t0 is None:
        return None
    return round((at - t0).total_seconds() * 1000, 3)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")
