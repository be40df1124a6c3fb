"""The run context a step call finds, and the identity of every call.

A call's identity is fixed when the call is made, never by when it
finishes: the *scope* it was made in plus its ordinal there. The entry's
own task is the root scope (``""``); a step's body is the scope named by
the step's call; a task or thread job spawned inside a run is a scope of
its own, ``<spawner's scope>.t<n>`` with ``n`` the spawn ordinal. Calls are
``<scope>.<k>`` (``3``, ``3.0``, ``t1.0``); the attempts of a retried call
share its identity and its body scope; recorded helper values are
``<scope>.v<k>``. Identities made in the root or a
step body follow from the record's order and are not stored; those made in
a spawned scope are stored on the event (``call``). See docs/design.md.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextvars import Context, ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from journal.errors import FlowDefinitionError

if TYPE_CHECKING:
    from journal.flow import Flow, StepDef
    from journal.ids import StepId
    from journal.waits import WaitRequest


class RunContext(Protocol):
    """What a step call or helper talks to inside a run (live or replay)."""

    @property
    def finished(self) -> bool:
        """True once the run is over (a leftover task is then not in it)."""

    def call_step(
        self,
        frame: Frame,
        step: StepDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Record or match one (synchronous) step call; return its output."""

    async def call_step_async(
        self,
        frame: Frame,
        step: StepDef,
        call: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Record or match one ``async def`` step call, whose identity `call`
        was taken when the call was made; return its output."""

    def draw_value(
        self, frame: Frame, kind: str, make: Callable[[], Any], type_: Any
    ) -> Any:
        """Record or replay a nondeterministic value."""

    def wait_for(self, frame: Frame, request: WaitRequest) -> Any:
        """Answer a `journal.wait_for` from the record, or record the wait
        and halt the run."""

    def refused(self, error: FlowDefinitionError) -> None:
        """A call into this run's flow was refused (made outside the run)."""

    def run_child(
        self,
        frame: Frame,
        child: Flow,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Record or match a sub-flow call."""


def join(scope: str, part: str) -> str:
    """``scope.part``, or `part` alone in the root scope."""
    return f"{scope}.{part}" if scope else part


def scope_of(call: str) -> str:
    """The scope a call or value identity was made in."""
    head, _, _ = call.rpartition(".")
    return head


def owner_now() -> object:
    """The asyncio task running this code, else this thread's id."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return task if task is not None else threading.get_ident()


@dataclass(eq=False)
class Frame:
    """One scope of a run: the ordinals of the calls made in it so far.

    `step` is the step whose body this scope runs in (the parent of the
    calls made here); `explicit` is true in spawned scopes, whose call
    identities are stored with the events.
    """

    run: RunContext
    scope: str = ""
    step: StepId | None = None
    explicit: bool = False
    owner: object | None = None
    calls: int = 0
    values: int = 0
    spawns: int = 0
    started: int = 0

    def next_call(self) -> str:
        """The identity of the next call made in this scope."""
        call = join(self.scope, str(self.calls))
        self.calls += 1
        return call

    def next_value(self) -> str:
        """The identity of the next recorded value drawn in this scope."""
        value = join(self.scope, f"v{self.values}")
        self.values += 1
        return value

    def body(self, call: str, step_id: StepId | None) -> Frame:
        """The scope of a step's body (it runs in the task running it)."""
        return Frame(self.run, call, step_id, False, owner_now())

    def spawn(self, owner: object | None = None) -> Frame:
        """The scope of a task or thread job spawned from this one, now."""
        child = join(self.scope, f"t{self.spawns}")
        self.spawns += 1
        return Frame(self.run, child, self.step, True, owner)

    def stored_call(self, call: str) -> str | None:
        """What the event starting `call` stores of its identity: nothing
        where the record's order implies it (the next call of this scope to
        start, in a scope that is not spawned), else the identity."""
        if self.explicit or call.rpartition(".")[2] != str(self.started):
            return call
        self.started += 1
        return None

    def stored_value(self, call: str) -> str | None:
        """What a recorded helper value stores of its identity."""
        return call if self.explicit else None

    def answered(self, stored: str | None) -> None:
        """A call answered from the record: keep `started` as live kept it."""
        if stored is None and not self.explicit:
            self.started += 1


_frame: ContextVar[Frame | None] = ContextVar("journal_frame", default=None)


def current_frame() -> Frame | None:
    """The frame of the run this code is in, or None outside any run.

    A task that inherited its spawner's frame without passing through the
    run's task factory (someone else replaced it) gets a scope of its own
    at its first call. A thread that inherited the context by other means
    (``asyncio.to_thread``, a copied context) is refused: its spawn ordinal
    would depend on timing.
    """
    frame = _frame.get()
    if frame is None or frame.run.finished:
        return None
    owner = owner_now()
    if frame.owner is None:
        frame.owner = owner  # a job's first call on its own thread or task
    elif frame.owner is not owner and frame.owner != owner:
        if isinstance(owner, int):
            raise FlowDefinitionError(
                "a journaled call was made on a thread that copied the run's "
                "context by other means: use journal.run_in_thread(fn, ...) or "
                "journal.executor() so that its identity is fixed when spawned"
            )
        frame = frame.spawn(owner)
        _frame.set(frame)
    return frame


def enter(frame: Frame) -> Callable[[], None]:
    """Make `frame` current in this context; returns the undo."""
    token = _frame.set(frame)
    return lambda: _frame.reset(token)


def spawned_context() -> Context:
    """A copy of this context for a task or thread job spawned now.

    Inside a run the copy holds a new spawned scope, its ordinal taken at
    this moment (program order), never when the job first runs.
    """
    from contextvars import copy_context

    context = copy_context()
    frame = current_frame()
    if frame is not None:
        context.run(_frame.set, frame.spawn())
    return context


# --- which flows have a run active in this process ---------------------------

_active_lock = threading.Lock()
_active: dict[int, list[RunContext]] = {}


def mark_active(flows: list[Flow], run: RunContext, active: bool) -> None:
    """Register (or unregister) a run (live or replay) of these flows."""
    with _active_lock:
        for flow in flows:
            runs = _active.setdefault(id(flow), [])
            if active:
                runs.append(run)
            else:
                runs.remove(run)
                if not runs:
                    del _active[id(flow)]


def refuse_outside_run(step: StepDef) -> None:
    """A step called without a run context while its flow runs is refused;
    the runs of its flow are told, so that no ``except`` in the entry can
    hide it (live: the run fails; replay: it diverges)."""
    with _active_lock:
        runs = list(_active.get(id(step.flow), ()))
    if not runs:
        return
    error = FlowDefinitionError(
        f"step {step.callable_id} was called without the run's context while a "
        f"run of flow {step.flow.name!r} is active (on another thread?): it "
        "would run unrecorded. Call it through journal.run_in_thread(fn, ...) "
        "or a journal.executor() pool, which carry the run's context"
    )
    for run in runs:
        run.refused(error)
    raise error
