"""The events and fold of the ``raw_sqlite`` anchor (needs msgspec).

Kept apart so that ``raw_sqlite`` imports msgspec only when a function runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

TENANT = "tenant_bench"
_TS = "2024-05-01T12:00:00.000000Z"


# --- events: a tagged union of frozen Structs, as docs/design.md §4 has ---


class ExecutionCreated(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    at: str
    tenant: str
    flow: str
    schema_version: int
    input: dict[str, Any]


class ExecutionStarted(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    at: str
    tenant: str
    worker: str


class StepAdded(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    at: str
    tenant: str
    step_id: str
    name: str


class StepStarted(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    at: str
    tenant: str
    step_id: str
    name: str
    attempt: int
    input: dict[str, Any]


class StepCompleted(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    at: str
    tenant: str
    step_id: str
    attempt: int
    output: dict[str, Any]


class ExecutionCompleted(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    at: str
    tenant: str
    output: dict[str, Any]


Event = (
    ExecutionCreated
    | ExecutionStarted
    | StepAdded
    | StepStarted
    | StepCompleted
    | ExecutionCompleted
)

encoder = msgspec.json.Encoder(order="sorted")
decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def make_events(n_events: int) -> list[Event]:
    """The journal-shaped event list with exactly ``n_events`` events (>= 3)."""
    if n_events < 3:
        raise ValueError("need at least 3 events (created, started, completed)")
    body = n_events - 3
    n_steps, planned = divmod(body, 2)
    events: list[Event] = [
        ExecutionCreated(
            at=_TS,
            tenant=TENANT,
            flow="bench.linear",
            schema_version=1,
            input={"n_steps": n_steps, "seed": 42},
        ),
        ExecutionStarted(at=_TS, tenant=TENANT, worker="bench-worker-1"),
    ]
    if planned:
        events.append(StepAdded(at=_TS, tenant=TENANT, step_id="s000000", name="add"))
    for i in range(n_steps):
        step_id = f"s{i:06d}"
        events.append(
            StepStarted(
                at=_TS,
                tenant=TENANT,
                step_id=step_id,
                name="add",
                attempt=1,
                input={"i": i, "x": i * 3},
            )
        )
        events.append(
            StepCompleted(
                at=_TS,
                tenant=TENANT,
                step_id=step_id,
                attempt=1,
                output={"i": i, "y": i * 3 + 1},
            )
        )
    events.append(
        ExecutionCompleted(at=_TS, tenant=TENANT, output={"n_steps": n_steps})
    )
    assert len(events) == n_events
    return events


# --- the fold: a small match-based reducer into a dict-of-steps state ---


def new_state() -> dict[str, Any]:
    return {"status": "new", "flow": None, "steps": {}, "output": None, "events": 0}


def evolve(state: dict[str, Any], event: Event) -> None:
    steps: dict[str, dict[str, Any]] = state["steps"]
    match event:
        case StepStarted(step_id=sid, name=name, attempt=attempt, input=inp):
            step = steps.get(sid)
            if step is None:
                steps[sid] = {
                    "name": name,
                    "status": "running",
                    "attempt": attempt,
                    "input": inp,
                    "output": None,
                }
            else:
                step["status"] = "running"
                step["attempt"] = attempt
                step["input"] = inp
        case StepCompleted(step_id=sid, output=out):
            step = steps[sid]
            step["status"] = "completed"
            step["output"] = out
        case StepAdded(step_id=sid, name=name):
            steps[sid] = {
                "name": name,
                "status": "planned",
                "attempt": 0,
                "input": None,
                "output": None,
            }
        case ExecutionCreated(flow=flow):
            state["status"] = "created"
            state["flow"] = flow
        case ExecutionStarted():
            state["status"] = "running"
        case ExecutionCompleted(output=out):
            state["status"] = "completed"
            state["output"] = out
    state["events"] += 1


def fold(events: Iterator[Event] | list[Event]) -> dict[str, Any]:
    """Fold events into the dict-of-steps state."""
    state = new_state()
    for event in events:
        evolve(state, event)
    return state
