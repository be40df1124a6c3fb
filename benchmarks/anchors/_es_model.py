"""The eventsourcing-side model of the ``es_stock`` anchor.

Kept in its own module, imported only by ``es_stock``'s functions, because
eventsourcing resolves event classes by topic (``module:QualName``): they must be
defined at module level, and importing this module needs eventsourcing.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Execution(Aggregate):
    """An execution as a user of eventsourcing would write it: stock Aggregate."""

    @event("Created")
    def __init__(
        self, tenant: str, flow: str, schema_version: int, input: dict[str, Any]
    ) -> None:
        self.tenant = tenant
        self.flow = flow
        self.schema_version = schema_version
        self.input = input
        self.status = "created"
        self.steps: dict[str, dict[str, Any]] = {}
        self.output: dict[str, Any] | None = None

    @event("Started")
    def start(self, worker: str) -> None:
        self.status = "running"
        self.worker = worker

    @event("StepAdded")
    def step_added(self, step_id: str, name: str) -> None:
        self.steps[step_id] = {
            "name": name,
            "status": "planned",
            "attempt": 0,
            "input": None,
            "output": None,
        }

    @event("StepStarted")
    def step_started(
        self, step_id: str, name: str, attempt: int, input: dict[str, Any]
    ) -> None:
        step = self.steps.get(step_id)
        if step is None:
            self.steps[step_id] = {
                "name": name,
                "status": "running",
                "attempt": attempt,
                "input": input,
                "output": None,
            }
        else:
            step["status"] = "running"
            step["attempt"] = attempt
            step["input"] = input

    @event("StepCompleted")
    def step_completed(
        self, step_id: str, attempt: int, output: dict[str, Any]
    ) -> None:
        step = self.steps[step_id]
        step["status"] = "completed"
        step["output"] = output

    @event("Completed")
    def complete(self, output: dict[str, Any]) -> None:
        self.status = "completed"
        self.output = output


class ExecutionApp(Application[UUID]):
    """A stock Application: default transcoder, default mapper, no snapshots."""
