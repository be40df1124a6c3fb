"""The execution model, after enact-core 0.0.2's ``kernel::Execution``.

Data and bookkeeping only: no I/O, no clock, no policy. Only the fold
(`journal.fold`) changes an `Execution`; users treat these as values.
Times are wall-clock UTC `datetime`s (enact-core's monotonic instants mean
nothing after a restart). Inputs and outputs are kept as the JSON bytes they
were recorded as (`msgspec.Raw`), decoded on demand into the type you ask for.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import msgspec

from journal.ids import ExecutionId, StepId, TenantId

#: JSON ``null`` as raw bytes: the "no value" of every input and output field.
#: (msgspec cannot decode ``Raw | None``; a null payload is the same fact.)
NULL: Any = msgspec.Raw(b"null")


def is_null(value: msgspec.Raw) -> bool:
    """True when a raw JSON value is absent or ``null``."""
    return bytes(value) in (b"null", b"")


def elapsed_ms(start: datetime | None, end: datetime | None) -> int | None:
    """Milliseconds from `start` to `end`. A time without a zone (refused at
    the door since; a store may hold one from before) counts as UTC, so
    mixed times never make a reader fail."""
    if start is None or end is None:
        return None
    if (start.tzinfo is None) != (end.tzinfo is None):
        start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    return int((end - start).total_seconds() * 1000)


class ExecutionState(enum.StrEnum):
    """Where an execution is in its life; Waiting carries a `WaitReason`."""

    CREATED = "Created"
    PLANNING = "Planning"
    RUNNING = "Running"
    PAUSED = "Paused"
    WAITING = "Waiting"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.CANCELLED}
)


class WaitReason(enum.StrEnum):
    """Why an execution is Waiting."""

    APPROVAL = "approval"
    USER_INPUT = "user_input"
    RATE_LIMIT = "rate_limit"
    EXTERNAL = "external"
    CHECKPOINT = "checkpoint"
    COST_THRESHOLD = "cost_threshold"
    MEMORY_PRESSURE = "memory_pressure"
    SUB_AGENT = "sub_agent"


class StepState(enum.StrEnum):
    """Pending -> Running -> Completed | Failed, and Pending -> Skipped."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class StepType(enum.StrEnum):
    """What a step is (enact-core's NodeType)."""

    LLM_NODE = "LlmNode"
    TOOL_NODE = "ToolNode"
    GRAPH_NODE = "GraphNode"
    FUNCTION_NODE = "FunctionNode"
    CONDITION_NODE = "ConditionNode"


class StepSourceType(enum.StrEnum):
    """How a step came to exist."""

    INITIAL_PLAN = "InitialPlan"
    DISCOVERED = "Discovered"
    RETRY = "Retry"
    USER_GUIDANCE = "UserGuidance"


class ParentType(enum.StrEnum):
    """What caused a sub-execution."""

    USER_MESSAGE = "UserMessage"
    STEP = "Step"
    EXECUTION = "Execution"
    SYSTEM = "System"


class CallableType(enum.StrEnum):
    """What kind of callable a step invokes."""

    FUNCTION = "Function"
    TOOL = "Tool"
    LLM = "Llm"
    AGENT = "Agent"
    FLOW = "Flow"


class ErrorCategory(enum.StrEnum):
    """enact-core's error taxonomy: four retryable, four fatal categories."""

    LLM_ERROR = "LlmError"
    TOOL_ERROR = "ToolError"
    TIMEOUT = "Timeout"
    NETWORK_ERROR = "NetworkError"
    POLICY_VIOLATION = "PolicyViolation"
    QUOTA_EXCEEDED = "QuotaExceeded"
    KERNEL_INTERNAL = "KernelInternal"
    VALIDATION_ERROR = "ValidationError"

    @property
    def is_fatal(self) -> bool:
        return self in _FATAL

    def default_retry_policy(self) -> RetryPolicy:
        """The policy used when a step declares none."""
        return _DEFAULT_POLICIES.get(self, RetryPolicy.fatal())


_FATAL = frozenset(
    {
        ErrorCategory.POLICY_VIOLATION,
        ErrorCategory.QUOTA_EXCEEDED,
        ErrorCategory.KERNEL_INTERNAL,
        ErrorCategory.VALIDATION_ERROR,
    }
)


class Backoff(enum.StrEnum):
    """How the delay grows between attempts (always deterministic: no jitter)."""

    NONE = "none"
    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Whether and how a failed step is retried."""

    retryable: bool = False
    max_retries: int = 0
    backoff: Backoff = Backoff.EXPONENTIAL
    base_delay_ms: int = 0
    max_delay_ms: int = 0
    deterministic: bool = True

    @classmethod
    def fatal(cls) -> RetryPolicy:
        return cls(retryable=False, max_retries=0, backoff=Backoff.NONE)

    @classmethod
    def retrying(
        cls,
        max_retries: int,
        *,
        backoff: Backoff = Backoff.EXPONENTIAL,
        base_delay_ms: int = 0,
        max_delay_ms: int = 0,
    ) -> RetryPolicy:
        return cls(
            retryable=max_retries > 0,
            max_retries=max_retries,
            backoff=backoff,
            base_delay_ms=base_delay_ms,
            max_delay_ms=max_delay_ms,
        )

    def should_retry(self, attempt: int) -> bool:
        """True if a failure on `attempt` (counted from 1) gets another try."""
        return self.retryable and attempt <= self.max_retries

    def delay_for_attempt(self, attempt: int) -> int:
        """Milliseconds to wait before `attempt` + 1; deterministic."""
        if self.backoff is Backoff.NONE or self.base_delay_ms <= 0:
            return 0
        if self.backoff is Backoff.FIXED:
            delay = self.base_delay_ms
        elif self.backoff is Backoff.LINEAR:
            delay = self.base_delay_ms * attempt
        else:
            delay = self.base_delay_ms * (2 ** (attempt - 1))
        return min(delay, self.max_delay_ms) if self.max_delay_ms > 0 else delay


_DEFAULT_POLICIES = {
    ErrorCategory.LLM_ERROR: RetryPolicy.retrying(
        3, base_delay_ms=500, max_delay_ms=8_000
    ),
    ErrorCategory.TOOL_ERROR: RetryPolicy.retrying(
        2, base_delay_ms=200, max_delay_ms=2_000
    ),
    ErrorCategory.TIMEOUT: RetryPolicy.retrying(
        2, base_delay_ms=1_000, max_delay_ms=10_000
    ),
    ErrorCategory.NETWORK_ERROR: RetryPolicy.retrying(
        3, base_delay_ms=250, max_delay_ms=5_000
    ),
}


class ExecutionError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A categorised failure of a step or an execution."""

    category: ErrorCategory
    message: str
    code: str | None = None
    attempt: int = 1
    step_id: StepId | None = None
    provider: str | None = None
    http_status: int | None = None
    details: dict[str, Any] | None = None
    occurred_at: datetime | None = None
    retry_policy: RetryPolicy | None = None
    exception_type: str | None = None

    @property
    def is_fatal(self) -> bool:
        return self.category.is_fatal

    @property
    def effective_retry_policy(self) -> RetryPolicy:
        if self.retry_policy is not None:
            return self.retry_policy
        return self.category.default_retry_policy()


class ParentLink(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The causal origin of a sub-execution.

    When the parent is a step, `execution_id` names the execution that holds
    it, so children can be listed (and exported) with their parent.
    """

    parent_id: str
    parent_type: ParentType
    execution_id: str | None = None

    @property
    def parent_execution_id(self) -> str | None:
        if self.parent_type is ParentType.EXECUTION:
            return self.parent_id
        return self.execution_id


class StepSource(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Why a step exists: planned, discovered, a retry, or user guidance."""

    source_type: StepSourceType = StepSourceType.INITIAL_PLAN
    triggered_by: str | None = None
    reason: str | None = None
    depth: int | None = None

    @classmethod
    def retry(cls, original: StepId, attempt: int) -> StepSource:
        return cls(
            source_type=StepSourceType.RETRY,
            triggered_by=original,
            reason=f"attempt {attempt}",
        )


class RecordedValue(msgspec.Struct, frozen=True):
    """A nondeterministic value drawn inside a run (``now``, ``random``…).

    `after_steps`: how many steps had started when it was drawn, so replay
    can tell a draw that moved across a step call.
    """

    kind: str
    value: msgspec.Raw
    after_steps: int = 0
    call: str | None = None


class Step(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One unit of work inside an execution.

    `call` is the call's identity when it is not implied by the record's
    order (a call made in a spawned task or thread); `ended_seq` is the
    sequence number of the event that ended the step, so that replay can
    answer concurrent calls in the order they finished.
    """

    id: StepId
    step_type: str
    name: str
    state: StepState = StepState.PENDING
    parent_step_id: StepId | None = None
    input: msgspec.Raw = NULL
    output: msgspec.Raw = NULL
    error: ExecutionError | None = None
    duration_ms: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    source: StepSource | None = None
    callable_id: str | None = None
    callable_type: str | None = None
    call: str | None = None
    ended_seq: int | None = None

    @property
    def is_retry(self) -> bool:
        return self.source is not None and self.source.source_type is (
            StepSourceType.RETRY
        )


class Answer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How a wait was answered: input, approval, denial or timeout."""

    at: datetime
    input: msgspec.Raw = NULL
    approver: str | None = None
    digest: str | None = None
    signature: str | None = None
    denied: bool = False
    reason: str | None = None
    timed_out: bool = False


class Wait(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One time the execution waited (`journal.wait_for`), and its answer."""

    reason: WaitReason
    at: datetime
    seq: int
    after_steps: int = 0
    detail: str | None = None
    prompt: str | None = None
    action: msgspec.Raw = NULL
    digest: str | None = None
    timeout_at: datetime | None = None
    require_approver: bool = False
    answer: Answer | None = None


class Execution(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An execution, as rebuilt by folding its events."""

    id: ExecutionId
    tenant_id: TenantId
    state: ExecutionState = ExecutionState.CREATED
    wait_reason: WaitReason | None = None
    parent: ParentLink | None = None
    steps: dict[StepId, Step] = msgspec.field(default_factory=dict)
    step_order: list[StepId] = msgspec.field(default_factory=list)
    schema_version: str | None = None
    flow: str | None = None
    input: msgspec.Raw = NULL
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    output: msgspec.Raw = NULL
    error: ExecutionError | None = None
    pause_reason: str | None = None
    cancel_reason: str | None = None
    recorded_values: list[RecordedValue] = msgspec.field(default_factory=list)
    received_inputs: list[msgspec.Raw] = msgspec.field(default_factory=list)
    waits: list[Wait] = msgspec.field(default_factory=list)
    #: Inputs a fork replaced, by call identity (see `journal.fork`).
    replaced_inputs: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)
    failed_step_count: int = 0
    version: int = 0

    @property
    def duration_ms(self) -> int | None:
        return elapsed_ms(self.started_at, self.ended_at)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def can_resume(self) -> bool:
        return self.state in (ExecutionState.PAUSED, ExecutionState.WAITING)

    @property
    def is_active(self) -> bool:
        return self.state in (ExecutionState.RUNNING, ExecutionState.WAITING)

    @property
    def state_label(self) -> str:
        """``Waiting(approval)`` for a waiting execution, else the state name."""
        if self.state is ExecutionState.WAITING and self.wait_reason is not None:
            return f"Waiting({self.wait_reason.value})"
        return self.state.value

    def get_step(self, step_id: StepId) -> Step | None:
        return self.steps.get(step_id)

    def ordered_steps(self) -> list[Step]:
        """Started steps in the order they started (the order replay follows)."""
        return [self.steps[step_id] for step_id in self.step_order]

    def decode_output(self, type_: type[Any] = object) -> Any:
        """Decode the recorded output into `type_` (builtins by default)."""
        return msgspec.json.decode(self.output, type=type_)
