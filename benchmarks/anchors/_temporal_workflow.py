"""The Temporal workflow of the ``temporal`` anchor: N sequential activities.

Kept in its own module, imported only by ``temporal``'s functions: the SDK's
sandbox re-imports a workflow's module by name, so the workflow must be defined
at module level in a module that imports temporalio.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

WORKFLOW_NAME = "LinearWorkflow"
ACTIVITY_NAME = "add"


@workflow.defn(name=WORKFLOW_NAME)
class LinearWorkflow:
    """Run ``n_steps`` activities one after the other, threading a total."""

    @workflow.run
    async def run(self, n_steps: int) -> int:
        total = 0
        for i in range(n_steps):
            total = await workflow.execute_activity(
                ACTIVITY_NAME,
                args=[total, i],
                result_type=int,
                start_to_close_timeout=timedelta(seconds=10),
            )
        return total
