"""Events: immutable, past-tense facts, one msgspec Struct per tag.

The tag (``"type"`` in the JSON) is what identifies an event in storage, so
renaming or moving a class never changes stored data. The execution id is
not repeated in each payload: it is bound into the hash chain's ``h_0``, and
the sequence number into every link (see `journal.chain`). Schema
evolution follows msgspec's rules: new fields get defaults; a field never
changes type or meaning; anything else is a new tag or an upcaster in
`journal.codec`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from journal.ids import StepId, TenantId
from journal.model import NULL, ExecutionError, ParentLink, StepSource, WaitReason

#: Major version of the event format; part of every flow's schema document.
EVENT_FORMAT_MAJOR: Final = 1


class Event(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    tag_field="type",
):
    """Base of every event: the wall-clock UTC time the fact was recorded."""

    at: datetime


class ExecutionCreated(Event, tag="ExecutionCreated", frozen=True):
    """An execution was created for a tenant (maybe by a flow, maybe a child)."""

    tenant_id: TenantId
    parent: ParentLink | None = None
    flow: str | None = None
    schema_version: str | None = None
    input: msgspec.Raw = NULL


class PlanningStarted(Event, tag="PlanningStarted", frozen=True):
    """The execution began planning its steps."""


class ExecutionStarted(Event, tag="ExecutionStarted", frozen=True):
    """The execution began running."""


class StepAdded(Event, tag="StepAdded", frozen=True):
    """A step was planned ahead of running (Pending)."""

    step_id: StepId
    step_type: str
    name: str
    parent_step_id: StepId | None = None
    callable_id: str | None = None
    callable_type: str | None = None
    source: StepSource | None = None
    input: msgspec.Raw = NULL


class StepStarted(Event, tag="StepStarted", frozen=True):
    """A step began running; carries what StepAdded would for a new step."""

    step_id: StepId
    step_type: str | None = None
    name: str | None = None
    parent_step_id: StepId | None = None
    callable_id: str | None = None
    callable_type: str | None = None
    source: StepSource | None = None
    input: msgspec.Raw = NULL
    call: str | None = None


class StepCompleted(Event, tag="StepCompleted", frozen=True):
    """A running step finished with an output."""

    step_id: StepId
    output: msgspec.Raw = NULL
    duration_ms: int | None = None


class StepFailed(Event, tag="StepFailed", frozen=True):
    """A running step failed with a categorised error."""

    step_id: StepId
    error: ExecutionError
    duration_ms: int | None = None


class StepSkipped(Event, tag="StepSkipped", frozen=True):
    """A pending step was skipped without running."""

    step_id: StepId
    reason: str | None = None


class ExecutionPaused(Event, tag="ExecutionPaused", frozen=True):
    """The execution was paused."""

    reason: str | None = None


class ExecutionResumed(Event, tag="ExecutionResumed", frozen=True):
    """A paused or waiting execution went on (an approval without input)."""


class ExecutionWaiting(Event, tag="ExecutionWaiting", frozen=True):
    """The execution began waiting, for a reason.

    From `journal.wait_for`: what a person is asked (`prompt`), the action
    awaiting approval, the `digest` an approval must name, the deadline, and
    whether an approver must be named.
    """

    reason: WaitReason
    detail: str | None = None
    prompt: str | None = None
    action: msgspec.Raw = NULL
    digest: str | None = None
    timeout_at: datetime | None = None
    require_approver: bool = False


class InputReceived(Event, tag="InputReceived", frozen=True):
    """The input a waiting execution waited for arrived; it runs again.

    For an approval: who approved (or `denied`, with a `reason`), the digest
    they approved and their signature over it (hex); `timed_out` when the
    run went on after the wait's deadline without an answer.
    """

    input: msgspec.Raw = NULL
    approver: str | None = None
    digest: str | None = None
    signature: str | None = None
    denied: bool = False
    reason: str | None = None
    timed_out: bool = False


class ValueRecorded(Event, tag="ValueRecorded", frozen=True):
    """A nondeterministic value (now, random, uuid4) was drawn by flow code."""

    kind: str
    value: msgspec.Raw
    call: str | None = None


class StepInputReplaced(Event, tag="StepInputReplaced", frozen=True):
    """A fork replaced the input of the call with identity `call` (that call
    runs with it, live and on replay)."""

    call: str
    input: msgspec.Raw


class ExecutionCompleted(Event, tag="ExecutionCompleted", frozen=True):
    """The execution finished with an output."""

    output: msgspec.Raw = NULL


class ExecutionFailed(Event, tag="ExecutionFailed", frozen=True):
    """The execution failed."""

    error: ExecutionError


class ExecutionCancelled(Event, tag="ExecutionCancelled", frozen=True):
    """The execution was cancelled."""

    reason: str | None = None


AnyEvent = (
    ExecutionCreated
    | PlanningStarted
    | ExecutionStarted
    | StepAdded
    | StepStarted
    | StepCompleted
    | StepFailed
    | StepSkipped
    | ExecutionPaused
    | ExecutionResumed
    | ExecutionWaiting
    | InputReceived
    | ValueRecorded
    | StepInputReplaced
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionCancelled
)

EVENT_TYPES: Final[tuple[type[Event], ...]] = (
    ExecutionCreated,
    PlanningStarted,
    ExecutionStarted,
    StepAdded,
    StepStarted,
    StepCompleted,
    StepFailed,
    StepSkipped,
    ExecutionPaused,
    ExecutionResumed,
    ExecutionWaiting,
    InputReceived,
    ValueRecorded,
    StepInputReplaced,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionCancelled,
)


def tag_of(event: Event | type[Event]) -> str:
    """The stored type tag of an event or event class."""
    cls = event if isinstance(event, type) else type(event)
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag
