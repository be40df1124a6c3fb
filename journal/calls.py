"""Inside a step: the stable identity of the call being made.

`step_key()` gives an idempotency key for the step call running now. It is
the same every time that call is made for that execution: in the first run,
after a crash when the call is made again (the one place an effect may run
twice is a step whose ``StepStarted`` was recorded without an end), and for
every retry attempt of the call. Pass it to the systems your effects reach
(a payment API's idempotency key, a unique constraint) so that a repeated
call is recognised there.
"""

from __future__ import annotations

from contextvars import ContextVar

current_step_key: ContextVar[str | None] = ContextVar("journal_step_key", default=None)


def call_key(execution_id: str, call: str | tuple[int, ...]) -> str:
    """The key of the call with identity `call` in an execution (see
    `journal.context`; a tuple of ordinals is the same identity spelled out:
    the call's and its parents', in the order the entry made them)."""
    if isinstance(call, tuple):
        call = ".".join(str(n) for n in call)
    return f"{execution_id}:{call}"


def step_key() -> str:
    """The idempotency key of the step call running now.

    Raises:
        RuntimeError: Called outside a step of a run.
    """
    key = current_step_key.get()
    if key is None:
        raise RuntimeError("journal.step_key() must be called inside a step of a run")
    return key
