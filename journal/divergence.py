"""Divergences: where and how a re-run first differed from its record.

Built by the run context (`journal.runtime`) when a call does not match the
record, shown by replay's reports. Values are compared as canonical JSON,
steps by their comparable parts, never by ids, times or durations.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import msgspec

from journal.model import Step


def step_view(step: Step | None) -> dict[str, Any] | None:
    """The comparable parts of a recorded step (never ids, times, durations)."""
    if step is None:
        return None
    view: dict[str, Any] = {
        "name": step.name,
        "callable_id": step.callable_id,
        "step_type": step.step_type,
        "state": step.state.value,
    }
    if step.error is not None:
        view["error"] = f"{step.error.category.value}: {step.error.message}"
    return view


def value_view(payload: bytes) -> Any:
    """Decode JSON bytes for display (the raw text if they do not decode)."""
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload.decode(errors="replace")


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, default=str).splitlines()


@dataclass(frozen=True)
class Divergence:
    """Where and how the re-run first differed from the record.

    `index` is the position in the record's ``step_order`` of the recorded
    call with the same call identity (for a call the record lacks: where
    the record ends); `call` is that identity when it is not the plain
    sequential one (see docs/design.md, "Call identity").
    """

    index: int
    reason: str
    recorded_step: dict[str, Any] | None = None
    recorded_value: Any = None
    produced_step: dict[str, Any] | None = None
    produced_value: Any = None
    call: str | None = None

    @property
    def diff(self) -> str:
        """A unified diff of recorded against produced (step and value).

        Only the step fields both sides have are compared: a call that was
        not matched has no state yet, which is not a difference.
        """
        recorded_step, produced_step = self.recorded_step, self.produced_step
        if recorded_step is not None and produced_step is not None:
            shared = recorded_step.keys() & produced_step.keys()
            recorded_step = {k: v for k, v in recorded_step.items() if k in shared}
            produced_step = {k: v for k, v in produced_step.items() if k in shared}
        recorded = {"step": recorded_step, "value": self.recorded_value}
        produced = {"step": produced_step, "value": self.produced_value}
        lines = difflib.unified_diff(
            _pretty(recorded), _pretty(produced), "recorded", "produced", lineterm=""
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The divergence as builtins (for ``--json``), with its diff."""
        view: dict[str, Any] = {
            "index": self.index,
            "reason": self.reason,
            "recorded_step": self.recorded_step,
            "recorded_value": self.recorded_value,
            "produced_step": self.produced_step,
            "produced_value": self.produced_value,
            "diff": self.diff,
        }
        if self.call is not None:
            view["call"] = self.call
        return view
