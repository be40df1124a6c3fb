"""The journal's own figures, on the same workload shapes as the anchors.

Every function returns seconds (best of ``repeat`` where it reads) or bytes,
measured now; nothing is a constant.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

import journal
import replay
from benchmarks._together import run_together
from benchmarks.anchors._disk import settled_db_bytes
from benchmarks.bench_flows import async_flow as bench_async_flow
from benchmarks.bench_flows import flow as bench_flow
from journal import events as ev
from journal.ids import new_step_id

BATCH = 5_000


def _step_events(n_events: int) -> list[ev.Event]:
    """StepStarted/StepCompleted pairs shaped like the anchors' events."""
    now = journal.utc_now()
    out: list[ev.Event] = []
    while len(out) < n_events:
        step_id = new_step_id()
        out.append(
            ev.StepStarted(
                at=now,
                step_id=step_id,
                step_type="ToolNode",
                name="fetch",
                callable_id="bench.fetch",
                input=msgspec.Raw(b'{"i":%d}' % len(out)),
            )
        )
        out.append(
            ev.StepCompleted(
                at=now,
                step_id=step_id,
                output=msgspec.Raw(b'{"ok":true}'),
                duration_ms=1,
            )
        )
    return out[:n_events]


def prepare(j: journal.Journal, n_events: int) -> str:
    """An execution of exactly ``n_events`` events, appended in batches."""
    handle = j.create(flow="bench.synthetic", input={"n": n_events})
    handle.start()
    body = _step_events(max(0, n_events - 3))
    if len(body) % 2:
        body = body[:-1]
        body.append(
            ev.StepAdded(
                at=journal.utc_now(),
                step_id=new_step_id(),
                step_type="ToolNode",
                name="spare",
            )
        )
    for start in range(0, len(body), BATCH):
        handle.record(*body[start : start + BATCH])
    handle.complete({"done": True})
    return str(handle.id)


def read_verify_fold(j: journal.Journal, execution_id: str, repeat: int) -> float:
    """Load every row, verify the whole chain, decode, fold (best of repeat)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        history = j.history(execution_id)  # verifies, decodes and folds
        assert history.state is not None
        best = min(best, time.perf_counter() - t0)
    return best


def head_state(j: journal.Journal, execution_id: str, repeat: int) -> dict[str, float]:
    """The summary (index row) and the full state from the latest snapshot."""
    best_summary = best_get = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        j.summary(execution_id)
        t1 = time.perf_counter()
        j.get(execution_id)
        t2 = time.perf_counter()
        best_summary, best_get = min(best_summary, t1 - t0), min(best_get, t2 - t1)
    return {"summary_s": best_summary, "get_from_snapshot_s": best_get}


def append_single(j: journal.Journal, n_events: int) -> float:
    """One event per durable transaction, through the command API."""
    handle = j.create(flow="bench.single")
    t0 = time.perf_counter()
    handle.start()
    while handle.state.version + 2 <= n_events:
        step = handle.start_step("fetch", "ToolNode", input={"i": 1})
        handle.complete_step(step, {"ok": True})
    return time.perf_counter() - t0


def append_batched(j: journal.Journal, n_events: int) -> float:
    """All events in one transaction (fold-checked, chained, indexed)."""
    body = _step_events(n_events - 2)
    handle = j.create(flow="bench.batched")
    t0 = time.perf_counter()
    handle.record(ev.ExecutionStarted(at=journal.utc_now()), *body)
    return time.perf_counter() - t0


def record_flow(j: journal.Journal, n_steps: int) -> tuple[str, float]:
    """A live run of the bench flow (every event durable as it happens)."""
    t0 = time.perf_counter()
    execution = bench_flow.run(j, n_steps)
    return str(execution.id), time.perf_counter() - t0


def record_async_flow(j: journal.Journal, n_steps: int) -> str:
    """A live run of the async twin of the bench flow."""
    return str(bench_async_flow.run(j, n_steps).id)


def replay_in_process(
    j: journal.Journal,
    execution_id: str,
    repeat: int,
    flow: journal.Flow = bench_flow,
) -> float:
    """verify + fold + schema gate + re-run, in this process (best of repeat)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = replay.replay(j, execution_id, [flow])
        best = min(best, time.perf_counter() - t0)
        if not result.ok:
            raise RuntimeError(result.report())
    return best


def replay_cli(db_url: str, execution_id: str, repeat: int) -> float:
    """``journal replay <id>`` as a whole new process (best of repeat)."""
    script = Path(sys.executable).with_name("journal")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]
    command += [
        "--db",
        db_url,
        "replay",
        execution_id,
        "--flows",
        "benchmarks.bench_flows",
    ]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, env=env, check=False)
        best = min(best, time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(
                f"journal replay exited {done.returncode}: {done.stderr!r}"
            )
    return best


def storage(tmp: Path, n_steps: int) -> dict[str, float]:
    """Bytes on disk per event and per step, beyond the steps' own input/output."""
    empty = tmp / "empty.db"
    journal.open(f"sqlite:///{empty}").close()
    base = settled_db_bytes(empty)
    path = tmp / f"storage-{n_steps}.db"
    with journal.open(f"sqlite:///{path}") as j:
        execution_id, _ = record_flow(j, n_steps)
        execution = j.get(execution_id)
        events = j.summary(execution_id).head_seq
        value_bytes = sum(
            len(s.input) + len(s.output) for s in execution.steps.values()
        )
    total = settled_db_bytes(path) - base
    return {
        "bytes_per_event": total / events,
        "bytes_per_step_beyond_io": (total - value_bytes) / n_steps,
        "bytes_per_step": total / n_steps,
    }


def _writer(url: str, tenant: str, n_events: int, barrier: Any, out: Any) -> None:
    with journal.open(url, tenant=tenant) as j:
        handle = j.create(flow="bench.concurrent")
        handle.start()
        barrier.wait()
        t0 = time.perf_counter()
        while handle.state.version < n_events:
            step = handle.start_step("fetch", "ToolNode", input={"i": 1})
            handle.complete_step(step, {"ok": True})
        out.put((handle.state.version - 2, time.perf_counter() - t0))


def concurrent_writers(
    url: str, writers: int, n_events: int, *, busy: list[float] | None = None
) -> float:
    """Total single-event appends per second, `writers` processes, one
    execution each, all started together (`busy`: see `run_together`)."""
    tenant = f"tenant_bench{os.getpid()}"
    results = run_together(_writer, (url, tenant, n_events), writers, busy=busy)
    events = sum(count for count, _ in results)
    rate: float = events / max(seconds for _, seconds in results)
    return rate
