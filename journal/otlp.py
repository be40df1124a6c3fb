"""OpenTelemetry export: executions as OTLP/JSON traces (export only).

`to_otlp` is a pure function of timelines (`journal.timeline`): nothing
here runs while a flow runs or replays. The shape follows OTLP/JSON
(camelCase keys, enums as integers, 64-bit integers as decimal strings, ids
as lowercase hex):

- one trace per root execution; its id is derived from the root's execution
  id, so a child exported on its own still joins its parent's trace;
- one span per execution and one per step; a nested step is a child span of
  its parent step, a child execution a child span of the step that called it
  (else of its parent execution's span), and a retry links to the span of the
  step it retries;
- span ids are derived from the execution id and the step id, so the same
  execution exported twice gives identical ids;
- every span carries the sequence range of its events and the link hash of
  the last one (``journal.seq.first``, ``journal.seq.last``,
  ``journal.event.hash``), and execution spans the chain head, so a span
  leads back to the verifiable record;
- tool and LLM steps carry OpenTelemetry GenAI attributes, semantic
  conventions version `SEMCONV_VERSION` (pinned: those conventions are
  still in development and their names move between versions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from journal.chain import format_head
from journal.model import Execution, ExecutionState, ParentType, Step, StepState
from journal.timeline import StepTrace, Timeline

SEMCONV_VERSION: Final = "1.37.0"
SCHEMA_URL: Final = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
_ID_DOMAIN: Final = b"journal-otlp/v1\0"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

SPAN_KIND_INTERNAL: Final = 1
SPAN_KIND_CLIENT: Final = 3
STATUS_UNSET: Final = 0
STATUS_OK: Final = 1
STATUS_ERROR: Final = 2

Json = dict[str, Any]


def trace_id(root_execution_id: str) -> str:
    """The 16-byte trace id (hex) of the trace rooted at an execution."""
    return _derive(b"trace\0" + root_execution_id.encode(), 16)


def span_id(execution_id: str, step_id: str | None = None) -> str:
    """The 8-byte span id (hex) of an execution, or of one of its steps."""
    key = f"{execution_id}\0{step_id or ''}".encode()
    return _derive(b"span\0" + key, 8)


def _derive(key: bytes, size: int) -> str:
    digest = hashlib.sha256(_ID_DOMAIN + key).digest()[:size]
    if not any(digest):  # all-zero ids are invalid in OTLP
        digest = digest[:-1] + b"\1"
    return digest.hex()


def to_otlp(
    timelines: Sequence[Timeline], *, writer: str = "execution-journal"
) -> Json:
    """An ``ExportTraceServiceRequest`` in OTLP/JSON for these executions.

    Executions that did not fold (no creating event) are left out.
    """
    folded = [t for t in timelines if t.execution is not None]
    roots = _roots(folded)
    resource_spans: list[Json] = []
    for root in dict.fromkeys(roots.values()):
        members = [t for t in folded if roots[t.execution_id] == root]
        spans = [span for t in members for span in _spans(t, trace_id(root))]
        resource_spans.append(_resource(members[0], spans, writer))
    return {"resourceSpans": resource_spans}


def _roots(timelines: Sequence[Timeline]) -> dict[str, str]:
    """Each execution's topmost known ancestor (its trace's root)."""
    parents = {t.execution_id: _parent_execution(t) for t in timelines}
    roots: dict[str, str] = {}
    for execution_id in parents:
        current, seen = execution_id, {execution_id}
        while (parent := parents.get(current)) is not None and parent not in seen:
            seen.add(parent)
            current = parent
            if parent not in parents:
                break
        roots[execution_id] = current
    return roots


def _parent_execution(timeline: Timeline) -> str | None:
    execution = timeline.execution
    if execution is None or execution.parent is None:
        return None
    return execution.parent.parent_execution_id


def _resource(first: Timeline, spans: list[Json], writer: str) -> Json:
    execution = first.execution
    assert execution is not None
    name, _, version = writer.partition(" ")
    scope: Json = {"name": name}
    if version:
        scope["version"] = version
    return {
        "resource": {
            "attributes": _attributes(
                {"service.name": name, "journal.tenant.id": execution.tenant_id}
            )
        },
        "scopeSpans": [{"scope": scope, "spans": spans, "schemaUrl": SCHEMA_URL}],
        "schemaUrl": SCHEMA_URL,
    }


def _spans(timeline: Timeline, trace: str) -> list[Json]:
    execution = timeline.execution
    assert execution is not None
    spans = [_execution_span(timeline, execution, trace)]
    last_at = _last_time(timeline)
    hashes = {record.seq: record.hash.hex() for record in timeline.events}
    for step in timeline.steps:
        spans.append(_step_span(timeline.execution_id, step, trace, hashes, last_at))
    return spans


def _last_time(timeline: Timeline) -> datetime | None:
    times = [record.at for record in timeline.events if record.at is not None]
    return max(times) if times else None


def _execution_span(timeline: Timeline, execution: Execution, trace: str) -> Json:
    head_seq, head_hash = timeline.head
    attributes: dict[str, Any] = {
        "journal.execution.id": execution.id,
        "journal.tenant.id": execution.tenant_id,
        "journal.flow": execution.flow,
        "journal.schema_version": execution.schema_version,
        "journal.state": execution.state_label,
        "journal.head": format_head(head_seq, head_hash),
        "journal.seq.first": timeline.events[0].seq if timeline.events else 0,
        "journal.seq.last": head_seq,
        "journal.event.hash": head_hash.hex(),
    }
    span: Json = {
        "traceId": trace,
        "spanId": span_id(execution.id),
        "name": execution.flow or execution.id,
        "kind": SPAN_KIND_INTERNAL,
        "startTimeUnixNano": _nanos(execution.started_at or execution.created_at),
        "endTimeUnixNano": _nanos(execution.ended_at or _last_time(timeline)),
        "attributes": _attributes(attributes),
        "events": _interval_events(timeline),
        "status": _execution_status(execution),
    }
    parent = _parent_span(execution)
    if parent is not None:
        span["parentSpanId"] = parent
    return span


def _parent_span(execution: Execution) -> str | None:
    link = execution.parent
    if link is None:
        return None
    parent_execution = link.parent_execution_id
    if parent_execution is None:
        return None
    if link.parent_type is ParentType.STEP:
        return span_id(parent_execution, link.parent_id)
    return span_id(parent_execution)


def _interval_events(timeline: Timeline) -> list[Json]:
    events: list[Json] = []
    for interval in timeline.intervals:
        attributes = {
            "journal.wait.reason": interval.reason,
            "journal.wait.detail": interval.detail,
            "journal.wait.approver": interval.approver,
            "journal.wait.outcome": interval.outcome,
            "journal.seq.first": interval.start_seq,
            "journal.seq.last": interval.end_seq,
        }
        events.append(
            {
                "timeUnixNano": _nanos(interval.started_at),
                "name": f"journal.{interval.kind}",
                "attributes": _attributes(attributes),
            }
        )
    return events


def _execution_status(execution: Execution) -> Json:
    if execution.state is ExecutionState.COMPLETED:
        return {"code": STATUS_OK}
    if execution.state is ExecutionState.FAILED:
        message = execution.error.message if execution.error else "failed"
        return {"code": STATUS_ERROR, "message": message}
    return {"code": STATUS_UNSET}


def _step_span(
    execution_id: str,
    trace_: StepTrace,
    trace: str,
    hashes: dict[int, str],
    last_at: datetime | None,
) -> Json:
    step = trace_.step
    name, kind, genai = _genai(step)
    attributes: dict[str, Any] = {
        **genai,
        "journal.execution.id": execution_id,
        "journal.step.id": step.id,
        "journal.step.name": step.name,
        "journal.step.type": step.step_type,
        "journal.step.state": step.state.value,
        "journal.callable.id": step.callable_id,
        "journal.step.call": step.call,
        "journal.seq.first": trace_.first_seq,
        "journal.seq.last": trace_.last_seq,
        "journal.event.hash": hashes.get(trace_.last_seq),
    }
    if step.error is not None:
        attributes["error.type"] = step.error.category.value
        attributes["journal.error.attempt"] = step.error.attempt
    parent = step.parent_step_id
    span: Json = {
        "traceId": trace,
        "spanId": span_id(execution_id, step.id),
        "parentSpanId": span_id(execution_id, parent),
        "name": name,
        "kind": kind,
        "startTimeUnixNano": _nanos(step.started_at),
        "endTimeUnixNano": _nanos(step.ended_at or step.started_at or last_at),
        "attributes": _attributes(attributes),
        "status": _step_status(step),
    }
    if trace_.retry_of is not None:
        span["links"] = [
            {
                "traceId": trace,
                "spanId": span_id(execution_id, trace_.retry_of),
                "attributes": _attributes({"journal.link.type": "retry_of"}),
            }
        ]
    return span


def _genai(step: Step) -> tuple[str, int, dict[str, Any]]:
    """Span name, kind and GenAI attributes for a step (semconv 1.37.0)."""
    if step.step_type == "ToolNode":
        return (
            f"execute_tool {step.name}",
            SPAN_KIND_INTERNAL,
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": step.name,
                "gen_ai.tool.call.id": step.id,
                "gen_ai.tool.type": "function",
            },
        )
    if step.step_type == "LlmNode":
        return (
            f"chat {step.name}",
            SPAN_KIND_CLIENT,
            {"gen_ai.operation.name": "chat"},
        )
    return step.name, SPAN_KIND_INTERNAL, {}


def _step_status(step: Step) -> Json:
    if step.state is StepState.COMPLETED:
        return {"code": STATUS_OK}
    if step.state is StepState.FAILED:
        message = step.error.message if step.error else "failed"
        return {"code": STATUS_ERROR, "message": message}
    return {"code": STATUS_UNSET}


def _nanos(at: datetime | None) -> str:
    if at is None:
        return "0"
    return str((at - _EPOCH) // _MICROSECOND * 1_000)


def _attributes(values: dict[str, Any]) -> list[Json]:
    """OTLP ``KeyValue``s; None values are left out."""
    return [
        {"key": key, "value": _any_value(value)}
        for key, value in values.items()
        if value is not None
    ]


def _any_value(value: Any) -> Json:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}
