"""Hypothesis strategies for ids, model values and every event type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import strategies as st

from journal import events as ev
from journal.codec import encode_value
from journal.ids import ExecutionId, StepId, TenantId
from journal.model import (
    Backoff,
    ErrorCategory,
    ExecutionError,
    ParentLink,
    ParentType,
    RetryPolicy,
    StepSource,
    StepSourceType,
    StepType,
    WaitReason,
)

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_BODY = (1 << 160) - 1


def base62_body(value: int) -> str:
    """27 base62 digits of `value` (written here, not taken from journal.ids)."""
    digits = []
    for _ in range(27):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


bodies = st.integers(min_value=0, max_value=MAX_BODY).map(base62_body)
execution_ids = bodies.map(lambda body: ExecutionId("exec_" + body))
step_ids = bodies.map(lambda body: StepId("step_" + body))
tenant_ids = st.from_regex(r"tenant_[a-z0-9_-]{1,64}", fullmatch=True).map(TenantId)

utc_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC),
)

_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | _int64
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
raw_values = json_values.map(encode_value)
short_text = st.text(max_size=30)
optional_text = st.none() | short_text
step_types = st.sampled_from([t.value for t in StepType]) | st.text(
    min_size=1, max_size=12
)

retry_policies = st.builds(
    RetryPolicy,
    retryable=st.booleans(),
    max_retries=st.integers(min_value=0, max_value=10),
    backoff=st.sampled_from(Backoff),
    base_delay_ms=st.integers(min_value=0, max_value=60_000),
    max_delay_ms=st.integers(min_value=0, max_value=600_000),
    deterministic=st.booleans(),
)
execution_errors = st.builds(
    ExecutionError,
    category=st.sampled_from(ErrorCategory),
    message=short_text,
    code=optional_text,
    attempt=st.integers(min_value=1, max_value=100),
    step_id=st.none() | step_ids,
    provider=optional_text,
    http_status=st.none() | st.integers(min_value=100, max_value=599),
    details=st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    occurred_at=st.none() | utc_datetimes,
    retry_policy=st.none() | retry_policies,
    exception_type=optional_text,
)
step_sources = st.builds(
    StepSource,
    source_type=st.sampled_from(StepSourceType),
    triggered_by=optional_text,
    reason=optional_text,
    depth=st.none() | st.integers(min_value=0, max_value=50),
)
parent_links = st.builds(
    ParentLink,
    parent_id=short_text,
    parent_type=st.sampled_from(ParentType),
    execution_id=st.none() | execution_ids,
)
wait_reasons = st.sampled_from(WaitReason)
_optional_step_ids = st.none() | step_ids

#: One strategy per event class; test_properties checks it covers them all.
EVENTS: dict[type[ev.Event], st.SearchStrategy[ev.Event]] = {
    ev.ExecutionCreated: st.builds(
        ev.ExecutionCreated,
        at=utc_datetimes,
        tenant_id=tenant_ids,
        parent=st.none() | parent_links,
        flow=optional_text,
        schema_version=optional_text,
        input=raw_values,
    ),
    ev.PlanningStarted: st.builds(ev.PlanningStarted, at=utc_datetimes),
    ev.ExecutionStarted: st.builds(ev.ExecutionStarted, at=utc_datetimes),
    ev.StepAdded: st.builds(
        ev.StepAdded,
        at=utc_datetimes,
        step_id=step_ids,
        step_type=step_types,
        name=short_text,
        parent_step_id=_optional_step_ids,
        callable_id=optional_text,
        callable_type=optional_text,
        source=st.none() | step_sources,
        input=raw_values,
    ),
    ev.StepStarted: st.builds(
        ev.StepStarted,
        at=utc_datetimes,
        step_id=step_ids,
        step_type=st.none() | step_types,
        name=optional_text,
        parent_step_id=_optional_step_ids,
        callable_id=optional_text,
        callable_type=optional_text,
        source=st.none() | step_sources,
        input=raw_values,
    ),
    ev.StepCompleted: st.builds(
        ev.StepCompleted,
        at=utc_datetimes,
        step_id=step_ids,
        output=raw_values,
        duration_ms=st.none() | st.integers(min_value=0, max_value=10**9),
    ),
    ev.StepFailed: st.builds(
        ev.StepFailed,
        at=utc_datetimes,
        step_id=step_ids,
        error=execution_errors,
        duration_ms=st.none() | st.integers(min_value=0, max_value=10**9),
    ),
    ev.StepSkipped: st.builds(
        ev.StepSkipped, at=utc_datetimes, step_id=step_ids, reason=optional_text
    ),
    ev.ExecutionPaused: st.builds(
        ev.ExecutionPaused, at=utc_datetimes, reason=optional_text
    ),
    ev.ExecutionResumed: st.builds(ev.ExecutionResumed, at=utc_datetimes),
    ev.ExecutionWaiting: st.builds(
        ev.ExecutionWaiting,
        at=utc_datetimes,
        reason=wait_reasons,
        detail=optional_text,
        prompt=optional_text,
        action=raw_values,
        digest=optional_text,
        timeout_at=st.none() | utc_datetimes,
        require_approver=st.booleans(),
    ),
    ev.InputReceived: st.builds(
        ev.InputReceived,
        at=utc_datetimes,
        input=raw_values,
        approver=optional_text,
        digest=optional_text,
        signature=optional_text,
        denied=st.booleans(),
        reason=optional_text,
        timed_out=st.booleans(),
    ),
    ev.StepInputReplaced: st.builds(
        ev.StepInputReplaced, at=utc_datetimes, call=short_text, input=raw_values
    ),
    ev.ValueRecorded: st.builds(
        ev.ValueRecorded,
        at=utc_datetimes,
        kind=st.sampled_from(["now", "random", "uuid4"]) | short_text,
        value=raw_values,
    ),
    ev.ExecutionCompleted: st.builds(
        ev.ExecutionCompleted, at=utc_datetimes, output=raw_values
    ),
    ev.ExecutionFailed: st.builds(
        ev.ExecutionFailed, at=utc_datetimes, error=execution_errors
    ),
    ev.ExecutionCancelled: st.builds(
        ev.ExecutionCancelled, at=utc_datetimes, reason=optional_text
    ),
}

any_event: st.SearchStrategy[ev.Event] = st.one_of(*EVENTS.values())


def raw(value: object) -> msgspec.Raw:
    """A value as the canonical raw JSON the journal stores."""
    return encode_value(value)
