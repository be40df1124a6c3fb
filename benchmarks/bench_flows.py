"""The flows the benchmarks record and replay: N sequential tool steps.

The same shape as the Temporal anchor (N sequential activities, each taking
and returning a small value) and the LangGraph anchor (N node runs);
`async_flow` is the same steps as ``async def``, awaited one by one.
"""

from __future__ import annotations

from journal import Flow

flow = Flow("bench")


@flow.step(step_type="ToolNode")
def work(i: int) -> int:
    """One activity: takes a small value, returns a small value."""
    return i + 1


@flow.entry
def main(n: int) -> int:
    total = 0
    for i in range(n):
        total += work(i)
    return total


async_flow = Flow("bench_async")


@async_flow.step(step_type="ToolNode")
async def work_async(i: int) -> int:
    """The same activity, awaited."""
    return i + 1


@async_flow.entry
async def main_async(n: int) -> int:
    total = 0
    for i in range(n):
        total += await work_async(i)
    return total
