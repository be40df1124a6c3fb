"""An execution's history laid out in time: steps, their events, waits.

A pure function of stored rows (sequence, link, payload): what the audit
report and the OpenTelemetry export both draw. It tolerates a history that
does not verify or fold, so that a broken chain can still be shown: each
row is decoded on its own (an undecodable one stays as bytes), and the fold
stops at the first event the state machine refuses, naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from journal import codec
from journal import events as ev
from journal.chain import Row
from journal.errors import EventDecodeError, InvalidTransitionError
from journal.fold import apply_in_place, begin
from journal.ids import ExecutionId, StepId
from journal.model import Execution, Step

_STEP_EVENTS = (
    ev.StepAdded,
    ev.StepStarted,
    ev.StepCompleted,
    ev.StepFailed,
    ev.StepSkipped,
)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event: its place in the chain, and what it says if it decodes."""

    seq: int
    hash: bytes
    payload: bytes
    event: ev.AnyEvent | None
    tag: str
    step_id: StepId | None = None

    @property
    def at(self) -> datetime | None:
        return None if self.event is None else self.event.at


@dataclass(frozen=True, slots=True)
class StepTrace:
    """A step with where it sits: nesting depth, retry link, its events."""

    step: Step
    depth: int
    seqs: tuple[int, ...]
    retry_of: StepId | None = None

    @property
    def first_seq(self) -> int:
        return self.seqs[0] if self.seqs else 0

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0


@dataclass(frozen=True, slots=True)
class Interval:
    """A time the execution was not running: waiting (with why) or paused."""

    kind: str
    reason: str | None
    started_at: datetime
    ended_at: datetime | None
    start_seq: int
    end_seq: int | None
    detail: str | None = None
    approver: str | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class Timeline:
    """What a reader is shown of one execution, derived from its rows."""

    execution_id: str
    execution: Execution | None
    events: list[EventRecord]
    steps: list[StepTrace] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    fold_error: str | None = None

    @property
    def head(self) -> tuple[int, bytes]:
        return (self.events[-1].seq, self.events[-1].hash) if self.events else (0, b"")

    def step_index(self) -> dict[StepId, int]:
        """Each step's position in `steps` (the tree order shown)."""
        return {trace.step.id: i for i, trace in enumerate(self.steps)}


def build_timeline(execution_id: str, rows: Sequence[Row]) -> Timeline:
    """Decode, fold and lay out `rows`; never raises for bad content."""
    records = [_record(row) for row in rows]
    execution, fold_error = _fold(ExecutionId(execution_id), records)
    if execution is None:
        return Timeline(execution_id, None, records, fold_error=fold_error)
    return Timeline(
        execution_id,
        execution,
        records,
        steps=_step_traces(execution, records),
        intervals=_intervals(records),
        fold_error=fold_error,
    )


def _record(row: Row) -> EventRecord:
    try:
        event = codec.decode(row.payload)
    except EventDecodeError:
        return EventRecord(row.seq, row.hash, row.payload, None, "(undecodable)")
    step_id = event.step_id if isinstance(event, _STEP_EVENTS) else None
    return EventRecord(row.seq, row.hash, row.payload, event, ev.tag_of(event), step_id)


def _fold(
    execution_id: ExecutionId, records: list[EventRecord]
) -> tuple[Execution | None, str | None]:
    first = records[0].event if records else None
    if not isinstance(first, ev.ExecutionCreated):
        return None, "the first event does not create the execution"
    state = begin(execution_id, first)
    for record in records[1:]:
        if record.event is None:
            return state, f"seq {record.seq}: the event does not decode"
        try:
            apply_in_place(state, record.event)
        except InvalidTransitionError as e:
            return state, f"seq {record.seq}: {e}"
    return state, None


def _step_traces(execution: Execution, records: list[EventRecord]) -> list[StepTrace]:
    seqs: dict[StepId, list[int]] = {}
    for record in records:
        if record.step_id is not None:
            seqs.setdefault(record.step_id, []).append(record.seq)
    children: dict[StepId | None, list[Step]] = {}
    for step in execution.steps.values():  # in the order steps were added
        parent = step.parent_step_id
        children.setdefault(parent if parent in execution.steps else None, []).append(
            step
        )
    traces: list[StepTrace] = []
    stack = [(step, 0) for step in reversed(children.get(None, []))]
    while stack:  # depth first, without recursion (nesting may be deep)
        step, depth = stack.pop()
        retry_of = None
        if step.is_retry and step.source is not None and step.source.triggered_by:
            retry_of = StepId(step.source.triggered_by)
        traces.append(StepTrace(step, depth, tuple(seqs.get(step.id, ())), retry_of))
        stack.extend(
            (child, depth + 1) for child in reversed(children.get(step.id, []))
        )
    return traces


def _intervals(records: list[EventRecord]) -> list[Interval]:
    intervals: list[Interval] = []
    open_: tuple[str, EventRecord] | None = None
    for record in records:
        event = record.event
        if isinstance(event, ev.ExecutionWaiting | ev.ExecutionPaused):
            kind = "waiting" if isinstance(event, ev.ExecutionWaiting) else "paused"
            open_ = (kind, record)
        elif open_ is not None and isinstance(
            event,
            ev.ExecutionResumed
            | ev.InputReceived
            | ev.ExecutionFailed
            | ev.ExecutionCancelled,
        ):
            intervals.append(_interval(open_[0], open_[1], record))
            open_ = None
    if open_ is not None:
        intervals.append(_interval(open_[0], open_[1], None))
    return intervals


def _interval(kind: str, start: EventRecord, end: EventRecord | None) -> Interval:
    began = start.event
    assert began is not None
    reason = getattr(began, "reason", None)
    ended = None if end is None else end.event
    return Interval(
        kind=kind,
        reason=None if reason is None else str(reason),
        started_at=began.at,
        ended_at=None if ended is None else ended.at,
        start_seq=start.seq,
        end_seq=None if end is None else end.seq,
        detail=getattr(began, "detail", None) or getattr(began, "prompt", None),
        approver=getattr(ended, "approver", None),
        outcome=_outcome(ended),
    )


def _outcome(ended: ev.AnyEvent | None) -> str | None:
    """How a wait ended: approved, denied, timed out, resumed, or still open."""
    if isinstance(ended, ev.InputReceived):
        if ended.denied:
            return "denied"
        if ended.timed_out:
            return "timed out"
        return "approved" if ended.approver else "input received"
    return None if ended is None else ev.tag_of(ended)
