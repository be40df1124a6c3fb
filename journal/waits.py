"""`journal.wait_for`: an entry waits for a person (or another system).

The first time a run reaches a `wait_for`, it records `ExecutionWaiting`
(reason, prompt, action, digest, deadline) and stops cleanly: `flow.run`
returns the execution in state Waiting and the process may exit. When the
execution is resumed (`flow.resume`, `journal resume`), the entry runs again
from the start with every recorded call answered from the record, and the
same `wait_for` returns the input received, or raises `Denied` or
`WaitTimeout`, which the flow handles as it likes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from journal.context import current_frame
from journal.model import Answer, Execution, Wait, WaitReason, is_null
from journal.schema import canonical


class Denied(Exception):
    """The approver denied what the flow waited for."""

    def __init__(self, approver: str | None, reason: str | None) -> None:
        super().__init__(f"denied by {approver}" + (f": {reason}" if reason else ""))
        self.approver = approver
        self.reason = reason


class WaitTimeout(TimeoutError):
    """The wait's deadline passed before anyone answered."""


@dataclass(frozen=True)
class WaitRequest:
    """One `wait_for` call, as the run context sees it."""

    reason: WaitReason
    prompt: str | None
    action: bytes
    timeout: timedelta | None
    require_approver: bool
    type_: Any


def wait_for(
    reason: WaitReason | str,
    *,
    prompt: str | None = None,
    action: Any = None,
    timeout: timedelta | float | None = None,
    require_approver: bool = False,
    type_: Any = Any,
) -> Any:
    """Wait inside an entry (sync or async) for input or an approval.

    Args:
        reason: Why (a `WaitReason`: ``"approval"``, ``"user_input"``, …).
        prompt: What the person is asked.
        action: What awaits approval (any msgspec-encodable value); with the
            prompt, it is bound into the digest an approval must name.
        timeout: How long the wait may last (seconds or a timedelta); a
            resume after it raises `WaitTimeout` here.
        require_approver: Refuse an answer that names no approver.
        type_: The type the received input is decoded into.

    Returns:
        The input received, decoded into `type_`.

    Raises:
        Denied: The approver denied it.
        WaitTimeout: Resumed after the deadline without an answer.
    """
    frame = current_frame()
    if frame is None:
        raise RuntimeError("journal.wait_for() must be called inside a flow's entry")
    if isinstance(timeout, int | float):
        timeout = timedelta(seconds=timeout)
    request = WaitRequest(
        WaitReason(reason),
        prompt,
        canonical(action),
        timeout,
        require_approver,
        type_,
    )
    return frame.run.wait_for(frame, request)


_CHILD_WAIT = "child "


def child_wait_detail(child: Execution) -> str:
    """The detail of the `sub_agent` wait a parent records for a child."""
    return f"{_CHILD_WAIT}{child.id} is {child.state_label}"


def own_waits(execution: Execution) -> list[Wait]:
    """The waits its entry's `wait_for` calls recorded (not those recorded
    for a waiting child): what `wait_for` calls are matched against."""
    return [
        wait
        for wait in execution.waits
        if not (
            wait.reason is WaitReason.SUB_AGENT
            and (wait.detail or "").startswith(_CHILD_WAIT + "exec_")
        )
    ]


def differs(wait: Wait, request: WaitRequest) -> str | None:
    """Why a recorded wait is not this call (None: it is). Compared are the
    reason, the prompt and the action themselves, not the digest (which also
    binds the execution id: a fork's copied waits keep their original's)."""
    recorded, called = wait.reason.value, request.reason.value
    if recorded != called:
        return f"recorded wait_for({recorded}), the code waits for {called}"
    if wait.prompt != request.prompt:
        return (
            f"wait_for({called}): the prompt differs ({request.prompt!r}, "
            f"recorded {wait.prompt!r})"
        )
    if bytes(wait.action) != request.action and not (
        is_null(wait.action) and request.action == b"null"
    ):
        return (
            f"wait_for({called}): the action differs ({request.action.decode()}, "
            f"recorded {bytes(wait.action).decode()})"
        )
    return None


def answer(answer_: Answer, type_: Any) -> Any:
    """What the entry's `wait_for` returns (or raises) for a recorded answer."""
    if answer_.denied:
        raise Denied(answer_.approver, answer_.reason)
    if answer_.timed_out:
        raise WaitTimeout("the wait timed out before anyone answered")
    raw = answer_.input
    return msgspec.json.decode(b"null" if is_null(raw) else bytes(raw), type=type_)
