"""A recorded execution indexed by call identity, for answering calls.

Every recorded step and helper value gets its identity (see
`journal.context`): stored on the event where the call was made in a
spawned scope, else derived from the order of the record exactly as a run
derives it (the k-th unstored call under the same parent step). Journals
written before identities existed have none stored and derive them all,
so they keep replaying unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from journal.context import join, scope_of
from journal.ids import StepId
from journal.model import Execution, RecordedValue, Step


@dataclass(frozen=True)
class Value:
    """A recorded helper value, and how many calls its scope made before it."""

    recorded: RecordedValue
    call: str
    calls_before: int


@dataclass
class RecordIndex:
    """Identity -> recorded step or value, plus what replay needs around them."""

    execution: Execution
    by_call: dict[str, Step] = field(default_factory=dict)
    call_of: dict[StepId, str] = field(default_factory=dict)
    position: dict[StepId, int] = field(default_factory=dict)
    retries: dict[StepId, list[Step]] = field(default_factory=dict)
    children: dict[StepId, list[Step]] = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    values_by_scope: dict[str, list[Value]] = field(default_factory=dict)

    @classmethod
    def of(cls, execution: Execution) -> RecordIndex:
        """Index `execution`'s started steps and recorded values."""
        index = cls(execution)
        counters: dict[str, int] = {}
        scopes: list[str] = []  # the scope of each started step, in order
        for position, step_id in enumerate(execution.step_order):
            step = execution.steps[step_id]
            call = index._identity(step, counters)
            index.call_of[step_id] = call
            index.position[step_id] = position
            scopes.append(scope_of(call) if not step.is_retry else "\0retry")
            if step.is_retry:
                continue
            index.by_call[call] = step
            if step.parent_step_id is not None:
                index.children.setdefault(step.parent_step_id, []).append(step)
        index._index_values(scopes)
        return index

    def _identity(self, step: Step, counters: dict[str, int]) -> str:
        """A retry attempt shares its call's identity (and body scope)."""
        if step.is_retry and step.source is not None and step.source.triggered_by:
            original = StepId(step.source.triggered_by)
            self.retries.setdefault(original, []).append(step)
            return self.call_of.get(original, "?")
        if step.call is not None:
            return step.call
        parent = step.parent_step_id
        scope = self.call_of.get(parent, "") if parent is not None else ""
        ordinal = counters.get(scope, 0)
        counters[scope] = ordinal + 1
        return join(scope, str(ordinal))

    def nested_calls(self, first: Step) -> int:
        """How many calls the recorded attempts of a call made in its body."""
        attempts = [first, *self.retries.get(first.id, ())]
        return sum(len(self.children.get(a.id, ())) for a in attempts)

    def _index_values(self, scopes: list[str]) -> None:
        derived = 0
        counts: dict[str, int] = {}
        seen = 0  # steps counted into `counts` so far
        for recorded in self.execution.recorded_values:
            while seen < min(recorded.after_steps, len(scopes)):
                counts[scopes[seen]] = counts.get(scopes[seen], 0) + 1
                seen += 1
            if recorded.call is not None:
                call = recorded.call
            else:
                call, derived = f"v{derived}", derived + 1
            value = Value(recorded, call, counts.get(scope_of(call), 0))
            self.values[call] = value
            self.values_by_scope.setdefault(scope_of(call), []).append(value)

    def step_at(self, position: int) -> Step | None:
        """The recorded step at `position` in ``step_order`` (None past it)."""
        order = self.execution.step_order
        return self.execution.steps[order[position]] if position < len(order) else None

    def final_attempt(self, first: Step) -> Step:
        """The last recorded attempt of a call (the first when not retried)."""
        attempts = self.retries.get(first.id)
        return attempts[-1] if attempts else first
