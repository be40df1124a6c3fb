"""Step failures: the public `StepError` and how exceptions are recorded.

Below both live runs and replay: the same mapping from an exception to an
`ExecutionError` serves recording (live) and comparing (replay), so a pure
step that raises is judged by the rules it was recorded under.
"""

from __future__ import annotations

from typing import Any

import msgspec

from journal import application
from journal.model import ErrorCategory, ExecutionError, StepType


class StepError(Exception):
    """A step failed for good: carries the `ExecutionError` that was recorded.

    Raise it from a step to choose the category; the entry sees it when
    retries are exhausted, live and on replay alike.
    """

    def __init__(
        self,
        message: str = "",
        *,
        category: ErrorCategory | str = ErrorCategory.TOOL_ERROR,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        error: ExecutionError | None = None,
    ) -> None:
        if error is None:
            error = ExecutionError(
                category=ErrorCategory(category),
                message=message,
                code=code,
                details=details,
            )
        super().__init__(error.message)
        self.error = error

    @property
    def category(self) -> ErrorCategory:
        """The recorded error's category."""
        return self.error.category


def categorize(exc: BaseException, step_type: str) -> ErrorCategory:
    """The mapping from an exception to an error category (docs/design.md §7).

    `StepError` keeps its own; `TimeoutError` is Timeout, `ConnectionError`
    NetworkError, `PermissionError` PolicyViolation, validation errors
    ValidationError; anything else LlmError in an LlmNode, else ToolError.
    """
    if isinstance(exc, StepError):
        return exc.category
    if isinstance(exc, TimeoutError):
        return ErrorCategory.TIMEOUT
    if isinstance(exc, ConnectionError):
        return ErrorCategory.NETWORK_ERROR
    if isinstance(exc, PermissionError):
        return ErrorCategory.POLICY_VIOLATION
    if (
        isinstance(exc, msgspec.ValidationError)
        or type(exc).__name__ == "ValidationError"
    ):
        return ErrorCategory.VALIDATION_ERROR
    if step_type == StepType.LLM_NODE:
        return ErrorCategory.LLM_ERROR
    return ErrorCategory.TOOL_ERROR


def error_from(exc: BaseException, step_type: str, **fields: Any) -> ExecutionError:
    """The `ExecutionError` recorded for an exception raised by a step or entry."""
    if isinstance(exc, StepError):
        return msgspec.structs.replace(
            exc.error, occurred_at=application.utc_now(), **fields
        )
    return ExecutionError(
        category=categorize(exc, step_type),
        message=_message(exc),
        occurred_at=application.utc_now(),
        exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        **fields,
    )


def _message(exc: BaseException) -> str:
    """An exception's message; a group's names each of its members (a
    TaskGroup's failures, in the order they happened), so that replay
    compares what failed, not only how many."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, BaseExceptionGroup):
        members = "; ".join(_member(e) for e in exc.exceptions)
        message = f"{message}: {members}"
    return message


def _member(exc: BaseException) -> str:
    if isinstance(exc, StepError):
        return f"{exc.category.value}: {exc.error.message}"
    return f"{type(exc).__name__}: {_message(exc)}"


def same_error(a: ExecutionError | None, b: ExecutionError | None) -> bool:
    """Errors compare by what they say, never by ids, attempts or times."""
    if a is None or b is None:
        return a is b
    return (a.category, a.message, a.code, a.exception_type) == (
        b.category,
        b.message,
        b.code,
        b.exception_type,
    )
