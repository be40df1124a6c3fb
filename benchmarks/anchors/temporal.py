"""Temporal's Python SDK ``Replayer`` replaying N sequential activities, in-process.

What it measures
    * ``replay_seconds(n, sandboxed)``: one
      ``Replayer(...).replay_workflow(history)`` of a workflow that ran ``n``
      activities one after the other, with the SDK's sandbox on or off
      (``UnsandboxedWorkflowRunner``). The history is parsed before the clock
      starts (``parse_seconds`` times that separately); constructing the
      ``Replayer`` and the replay itself (the Rust core's state machines, the
      Python workflow re-run, its determinism checks) are inside.
    * ``history_bytes(n)``: the size of that history as ``temporal workflow show
      --output json`` prints it (two-space indent); ``history_proto_bytes(n)``
      its size as serialised protobuf, closer to what a server stores.

Why it is a fair anchor
    This is what "deterministic replay" costs in the best-known workflow engine
    for exactly the shape the journal re-runs: N steps, each a recorded result
    the code consumes without calling out. No server runs here and the test
    server cannot be downloaded, so ``build_history`` writes the history by hand
    in the exact JSON shape the CLI prints, following the SDK's own replayer test
    fixtures (``tests/worker/test_replayer_*.json`` in temporalio/sdk-python):
    ``WorkflowExecutionStarted``, a first workflow task (scheduled, started,
    completed), then per activity ``ActivityTaskScheduled/Started/Completed``
    followed by a workflow task (scheduled, started, completed), then
    ``WorkflowExecutionCompleted``: 6N+5 events. The first
    ``WorkflowTaskCompleted`` carries ``sdkMetadata.coreUsedFlags`` as a real
    worker writes it; without flag 1 (IdAndTypeDeterminismChecks) the core does
    not compare activity types and ids on replay, so the check would be off.
    ``check_nondeterminism`` proves it is on: the same history with one activity
    type renamed must raise ``NondeterminismError``.

temporalio is imported inside the functions (the workflow lives in
``_temporal_workflow``), so importing this module never needs it.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from temporalio.client import WorkflowHistory

__all__ = [
    "build_history",
    "check_nondeterminism",
    "history_bytes",
    "history_json",
    "history_proto_bytes",
    "parse_seconds",
    "replay_once",
    "replay_seconds",
]

WORKFLOW_ID = "bench-linear-workflow"
RUN_ID = "0190b5a4-0000-7000-8000-00000000be0c"
TASK_QUEUE = "bench-task-queue"
STICKY_QUEUE = "bench-host-8c2f0e5d7a9b4c1e9f3a6b2d4e8c0a17"
IDENTITY = "4242@bench-host"
BUILD_ID = "0c855b04e3042bf2a95a64b03e25690c"
# Flags a current Python worker records on its first workflow task: 1 =
# IdAndTypeDeterminismChecks, 2 = UpsertSearchAttributeOnPatch,
# 3 = MoveTerminalCommands.
CORE_USED_FLAGS = [1, 3, 2]
_JSON_PLAIN = base64.b64encode(b"json/plain").decode()
_T0 = datetime(2025, 5, 28, 16, 32, 33, tzinfo=UTC)


def _payloads(*values: Any) -> dict[str, Any]:
    """A ``Payloads`` message of JSON values, as the default data converter writes."""
    return {
        "payloads": [
            {
                "metadata": {"encoding": _JSON_PLAIN},
                "data": base64.b64encode(
                    json.dumps(value, separators=(",", ":")).encode()
                ).decode(),
            }
            for value in values
        ]
    }


def _queue(sticky: bool) -> dict[str, str]:
    if sticky:
        return {
            "name": STICKY_QUEUE,
            "kind": "TASK_QUEUE_KIND_STICKY",
            "normalName": TASK_QUEUE,
        }
    return {"name": TASK_QUEUE, "kind": "TASK_QUEUE_KIND_NORMAL"}


def build_history(n_steps: int, activity_name: str | None = None) -> dict[str, Any]:
    """The ``temporal workflow show --output json`` history of N sequential activities.

    ``activity_name`` overrides the recorded activity type (to provoke a
    nondeterminism error); by default it is the workflow's own.
    """
    if n_steps < 1:
        raise ValueError("n_steps must be at least 1")
    if activity_name is None:
        from ._temporal_workflow import ACTIVITY_NAME

        activity_name = ACTIVITY_NAME
    from ._temporal_workflow import WORKFLOW_NAME

    events: list[dict[str, Any]] = []
    task_id = 1049340
    size = 0  # historySizeBytes: a plausible running figure; replay ignores it

    def add(event_type: str, attr_key: str, attrs: dict[str, Any]) -> int:
        nonlocal task_id
        event_id = len(events) + 1
        at = _T0 + timedelta(milliseconds=3 * event_id)
        events.append(
            {
                "eventId": str(event_id),
                "eventTime": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "eventType": event_type,
                "taskId": str(task_id),
                attr_key: attrs,
            }
        )
        task_id += 4
        return event_id

    def workflow_task(sticky: bool, first: bool) -> int:
        nonlocal size
        scheduled = add(
            "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
            "workflowTaskScheduledEventAttributes",
            {"taskQueue": _queue(sticky), "startToCloseTimeout": "10s", "attempt": 1},
        )
        size += 640
        started = add(
            "EVENT_TYPE_WORKFLOW_TASK_STARTED",
            "workflowTaskStartedEventAttributes",
            {
                "scheduledEventId": str(scheduled),
                "identity": IDENTITY,
                "requestId": f"00000000-0000-4000-8000-{scheduled:012d}",
                "historySizeBytes": str(size),
                "workerVersion": {"buildId": BUILD_ID},
            },
        )
        sdk_metadata: dict[str, Any] = {}
        if first:
            import temporalio

            sdk_metadata = {
                "coreUsedFlags": list(CORE_USED_FLAGS),
                "sdkName": "temporal-python",
                "sdkVersion": temporalio.__version__,
            }
        return add(
            "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
            "workflowTaskCompletedEventAttributes",
            {
                "scheduledEventId": str(scheduled),
                "startedEventId": str(started),
                "identity": IDENTITY,
                "workerVersion": {"buildId": BUILD_ID},
                "sdkMetadata": sdk_metadata,
                "meteringMetadata": {},
            },
        )

    add(
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "workflowExecutionStartedEventAttributes",
        {
            "workflowType": {"name": WORKFLOW_NAME},
            "taskQueue": _queue(False),
            "input": _payloads(n_steps),
            "workflowTaskTimeout": "10s",
            "originalExecutionRunId": RUN_ID,
            "identity": IDENTITY,
            "firstExecutionRunId": RUN_ID,
            "attempt": 1,
            "firstWorkflowTaskBackoff": "0s",
            "workflowId": WORKFLOW_ID,
            "priority": {},
        },
    )
    completed = workflow_task(sticky=False, first=True)
    total = 0
    for i in range(n_steps):
        scheduled = add(
            "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
            "activityTaskScheduledEventAttributes",
            {
                "activityId": str(i + 1),
                "activityType": {"name": activity_name},
                "taskQueue": _queue(False),
                "header": {},
                "input": _payloads(total, i),
                "scheduleToCloseTimeout": "0s",
                "scheduleToStartTimeout": "0s",
                "startToCloseTimeout": "10s",
                "heartbeatTimeout": "0s",
                "workflowTaskCompletedEventId": str(completed),
                "retryPolicy": {
                    "initialInterval": "1s",
                    "backoffCoefficient": 2.0,
                    "maximumInterval": "100s",
                },
                "useWorkflowBuildId": True,
                "priority": {},
            },
        )
        started = add(
            "EVENT_TYPE_ACTIVITY_TASK_STARTED",
            "activityTaskStartedEventAttributes",
            {
                "scheduledEventId": str(scheduled),
                "identity": IDENTITY,
                "requestId": f"00000000-0000-4000-9000-{scheduled:012d}",
                "attempt": 1,
                "workerVersion": {"buildId": BUILD_ID},
            },
        )
        total += i
        add(
            "EVENT_TYPE_ACTIVITY_TASK_COMPLETED",
            "activityTaskCompletedEventAttributes",
            {
                "result": _payloads(total),
                "scheduledEventId": str(scheduled),
                "startedEventId": str(started),
                "identity": IDENTITY,
            },
        )
        completed = workflow_task(sticky=True, first=False)
    add(
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
        "workflowExecutionCompletedEventAttributes",
        {"result": _payloads(total), "workflowTaskCompletedEventId": str(completed)},
    )
    assert len(events) == 6 * n_steps + 5
    return {"events": events}


def history_json(n_steps: int, activity_name: str | None = None) -> str:
    """The history as the CLI prints it (two-space indented JSON)."""
    return json.dumps(build_history(n_steps, activity_name), indent=2)


def history_bytes(n_steps: int) -> int:
    """Bytes of the CLI-shaped JSON history of ``n_steps`` activities."""
    return len(history_json(n_steps).encode())


def history_proto_bytes(n_steps: int) -> int:
    """Bytes of the same history serialised as a ``temporal.api.history.v1`` proto."""
    from temporalio.api.history.v1 import History

    history = _parse(history_json(n_steps))
    return len(History(events=history.events).SerializeToString())


def _parse(text: str) -> WorkflowHistory:
    from temporalio.client import WorkflowHistory

    return WorkflowHistory.from_json(WORKFLOW_ID, text)


def parse_seconds(n_steps: int) -> float:
    """Seconds for ``WorkflowHistory.from_json`` on the CLI-shaped JSON text."""
    text = history_json(n_steps)
    t0 = time.perf_counter()
    _parse(text)
    return time.perf_counter() - t0


async def _replay(
    history: WorkflowHistory, sandboxed: bool, quiet: bool = False
) -> Any:
    """One stock replay; ``quiet`` uses a runtime whose core logs nothing."""
    from temporalio.runtime import Runtime, TelemetryConfig
    from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

    from ._temporal_workflow import LinearWorkflow

    runtime = Runtime(telemetry=TelemetryConfig(logging=None)) if quiet else None
    if sandboxed:
        replayer = Replayer(workflows=[LinearWorkflow], runtime=runtime)
    else:
        replayer = Replayer(
            workflows=[LinearWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
            runtime=runtime,
        )
    return await replayer.replay_workflow(history)


def replay_once(
    n_steps: int, sandboxed: bool = False, activity_name: str | None = None
) -> None:
    """Replay the built history once; raise whatever the Replayer raises."""
    history = _parse(history_json(n_steps, activity_name))
    asyncio.run(_replay(history, sandboxed))


def replay_seconds(n_steps: int, sandboxed: bool, repeat: int = 1) -> float:
    """Seconds for one in-process replay of ``n_steps`` activities (best of ``repeat``).

    Before the clock starts: the history is built and parsed, and one replay of
    a one-activity history warms the SDK's runtime (the Rust core's thread pool,
    and with the sandbox its restricted import of the workflow module), so the
    figure is the steady-state cost of a replay, not process start-up.
    """
    history = _parse(history_json(n_steps))
    warm = _parse(history_json(1))

    async def run() -> float:
        await _replay(warm, sandboxed)
        best = float("inf")
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            await _replay(history, sandboxed)
            best = min(best, time.perf_counter() - t0)
        return best

    return asyncio.run(run())


def check_nondeterminism(n_steps: int = 3, sandboxed: bool = False) -> str:
    """Prove the determinism check is on; return the error the SDK raised.

    The faithful history must replay cleanly, and the same history with the
    recorded activity type renamed must raise ``NondeterminismError`` (replayed
    on a runtime with the core's logging off, so the expected failure does not
    print a warning).
    """
    from temporalio.workflow import NondeterminismError

    replay_once(n_steps, sandboxed)
    bad = copy.deepcopy(build_history(n_steps))
    for event in bad["events"]:
        attrs = event.get("activityTaskScheduledEventAttributes")
        if attrs is not None:
            attrs["activityType"]["name"] = "renamed_activity"
            break
    history = _parse(json.dumps(bad, indent=2))
    try:
        asyncio.run(_replay(history, sandboxed, quiet=True))
    except NondeterminismError as err:
        return str(err)
    raise AssertionError(
        "renamed activity type replayed without a nondeterminism error"
    )
