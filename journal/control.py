"""Operators' commands on executions: pause and cancel, through the store.

They append `ExecutionPaused` / `ExecutionCancelled` without the running
process's lease (an operator is not a runner). The running process notices
at its next write: a step that was in flight still records its output (its
write commutes with the pause, see `journal.commands`), and the next step
start is refused, which halts the run cleanly. A command the execution's
state does not allow raises `StateNotAllowedError` (exit 8).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from journal.errors import ConflictError, InvalidTransitionError, StateNotAllowedError
from journal.model import Execution, ExecutionState
from journal.store import ListFilter

if TYPE_CHECKING:
    from journal.application import Journal
    from journal.commands import ExecutionHandle

#: How often an operator's command is retried when a runner appended first.
_TRIES = 50


def _command(
    journal_: Journal,
    execution_id: str,
    verb: str,
    act: Callable[[ExecutionHandle], Execution],
) -> Execution:
    """Apply `act` on the current head; retry when a runner wrote first."""
    for _ in range(_TRIES):
        handle = journal_.handle(execution_id)
        state = handle.state
        try:
            return act(handle)
        except ConflictError:
            continue
        except InvalidTransitionError as e:
            raise StateNotAllowedError(
                f"{execution_id} is {state.state_label}: cannot {verb} it"
                + _hint(state, verb)
            ) from e
    raise ConflictError(f"{execution_id}: {verb} kept losing to concurrent writers")


def _hint(state: Execution, verb: str) -> str:
    if verb == "pause" and state.state is ExecutionState.WAITING:
        return " (a waiting execution is already stopped: resume or cancel it)"
    if state.is_terminal:
        return " (it has ended)"
    return ""


def pause(journal_: Journal, execution_id: str, reason: str | None = None) -> Execution:
    """Pause a running execution; its process stops at its next step."""
    return _command(journal_, execution_id, "pause", lambda h: h.pause(reason))


def cancel(
    journal_: Journal,
    execution_id: str,
    reason: str | None = None,
    *,
    cascade: bool = True,
) -> list[Execution]:
    """Cancel an execution (running, paused, waiting or not yet started) and,
    unless `cascade` is False, its unfinished children, depth first.

    Returns every execution cancelled, the one named first.
    """
    cancelled = [_command(journal_, execution_id, "cancel", lambda h: h.cancel(reason))]
    if cascade:
        cancelled += _cancel_children(journal_, execution_id, reason)
    return cancelled


def _cancel_children(
    journal_: Journal, parent_id: str, reason: str | None
) -> list[Execution]:
    done: list[Execution] = []
    for child in journal_.list(ListFilter(parent_id=parent_id)):
        if child.state in ("Completed", "Failed", "Cancelled"):
            continue
        why = f"parent {parent_id} cancelled" + (f": {reason}" if reason else "")
        try:
            done += cancel(journal_, child.execution_id, why)
        except StateNotAllowedError:
            continue  # it ended meanwhile
    return done
