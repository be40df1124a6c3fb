"""Library objects as plain dicts (the --json shapes) and table cells."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from journal.application import RecordedEvent
    from journal.model import Execution, ExecutionError, Step, Wait
    from journal.store import Summary


def decoded(payload: bytes | None) -> Any:
    """Recorded JSON bytes as builtins (None for absent or null)."""
    if payload is None or payload in (b"", b"null"):
        return None
    import msgspec

    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload.decode(errors="replace")


def when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def short_time(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: int | float | None) -> str | None:
    if ms is None:
        return None
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def summary_view(summary: Summary) -> dict[str, Any]:
    """One row of ``journal list --json``."""
    from journal.chain import format_head

    return {
        "execution_id": summary.execution_id,
        "tenant_id": summary.tenant_id,
        "flow": summary.flow,
        "state": summary.state,
        "parent_id": summary.parent_id,
        "steps": summary.step_count,
        "failed_steps": summary.failed_steps,
        "created_at": when(summary.created_at),
        "started_at": when(summary.started_at),
        "ended_at": when(summary.ended_at),
        "duration_ms": summary.duration_ms,
        "schema_version": summary.schema_version,
        "head": format_head(summary.head_seq, summary.head_hash),
    }


def error_view(error: ExecutionError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "category": error.category.value,
        "message": error.message,
        "code": error.code,
        "attempt": error.attempt,
        "exception_type": error.exception_type,
    }


def error_text(error: ExecutionError | None) -> str | None:
    if error is None:
        return None
    return f"{error.category.value}: {error.message}"


def step_view(step: Step, index: int | None) -> dict[str, Any]:
    """A step of ``journal show --json`` (index: its place in step order)."""
    retry_of = step.source.triggered_by if step.is_retry and step.source else None
    return {
        "index": index,
        "step_id": step.id,
        "name": step.name,
        "step_type": step.step_type,
        "callable_id": step.callable_id,
        "state": step.state.value,
        "parent_step_id": step.parent_step_id,
        "retry_of": retry_of,
        "attempt": step.error.attempt if step.error else None,
        "duration_ms": step.duration_ms,
        "started_at": when(step.started_at),
        "ended_at": when(step.ended_at),
        "input": decoded(bytes(step.input)),
        "output": decoded(bytes(step.output)),
        "error": error_view(step.error),
    }


def ordered_steps(execution: Execution) -> list[tuple[int | None, Step]]:
    """Started steps in order, then steps added but never started."""
    started = [(i, s) for i, s in enumerate(execution.ordered_steps())]
    order = set(execution.step_order)
    rest = [(None, s) for sid, s in execution.steps.items() if sid not in order]
    return [*started, *rest]


def execution_view(execution: Execution) -> dict[str, Any]:
    """The execution part of ``journal show --json``."""
    parent = execution.parent
    return {
        "execution_id": execution.id,
        "tenant_id": execution.tenant_id,
        "flow": execution.flow,
        "state": execution.state_label,
        "parent": None
        if parent is None
        else {
            "parent_id": parent.parent_id,
            "parent_type": parent.parent_type.value,
            "execution_id": parent.parent_execution_id,
        },
        "schema_version": execution.schema_version,
        "events": execution.version,
        "created_at": when(execution.created_at),
        "started_at": when(execution.started_at),
        "ended_at": when(execution.ended_at),
        "duration_ms": execution.duration_ms,
        "input": decoded(bytes(execution.input)),
        "output": decoded(bytes(execution.output)),
        "error": error_view(execution.error),
        "recorded_values": [
            {"kind": v.kind, "value": decoded(bytes(v.value))}
            for v in execution.recorded_values
        ],
        "waits": [wait_view(wait) for wait in execution.waits],
    }


def wait_view(wait: Wait) -> dict[str, Any]:
    """One `journal.wait_for` of an execution, and how it was answered."""
    answer = wait.answer
    return {
        "seq": wait.seq,
        "reason": wait.reason.value,
        "prompt": wait.prompt,
        "action": decoded(bytes(wait.action)),
        "digest": wait.digest,
        "timeout_at": when(wait.timeout_at),
        "require_approver": wait.require_approver,
        "answer": None
        if answer is None
        else {
            "at": when(answer.at),
            "input": decoded(bytes(answer.input)),
            "approver": answer.approver,
            "digest": answer.digest,
            "signed": answer.signature is not None,
            "denied": answer.denied,
            "reason": answer.reason,
            "timed_out": answer.timed_out,
        },
    }


def event_view(recorded: RecordedEvent) -> dict[str, Any]:
    """One raw event of ``journal show --events --json``."""
    return {
        "seq": recorded.seq,
        "hash": recorded.hash.hex(),
        "type": type(recorded.event).__struct_config__.tag,
        "payload": decoded(recorded.payload),
    }


def compact(value: Any, width: int = 60) -> str:
    """A value on one line, cut to `width` characters for tables."""
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def binding_fields(summary: Summary) -> dict[str, Any]:
    """The chain's binding and key id, for ``--json``."""
    from journal.binding import binding_of

    return {"binding": binding_of(summary), "key_id": summary.key_id}


def signature_text(summary: Summary) -> str:
    """How the chain is bound and signed, in words."""
    from journal.binding import binding_of

    binding = binding_of(summary)
    if summary.alg == "hmac-sha256":
        return f"{binding} binding, links keyed (v1 hmac-sha256)"
    if summary.key_id:
        return f"{binding} binding, head signed with key {summary.key_id}"
    return f"{binding} binding, unsigned"
