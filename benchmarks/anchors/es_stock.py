"""eventsourcing 9.5's stock path: what a user of that library gets without us.

What it measures
    * ``repository_get``: ``app.repository.get(id)`` of one ``Execution``
      aggregate (select, ``StoredEvent`` objects, default JSON transcoder,
      topic resolution, per-event mutate), the stock read-and-fold.
    * ``select_events``: ``app.recorder.select_events(id)`` alone (the SQLite
      recorder's select turned into ``StoredEvent`` objects, nothing decoded).
    * ``append_single``: N separate ``app.save(aggregate)`` calls, one new event
      each (each one a durable SQLite transaction).
    * ``append_batched``: the same N events collected and saved in one call.

Why it is a fair anchor
    The aggregate is a plain ``Aggregate`` subclass with ``@event`` methods,
    persisted by a plain ``Application`` with ``PERSISTENCE_MODULE=
    eventsourcing.sqlite`` and ``SQLITE_DBNAME=<path>``: default mapper, default
    JSON transcoder, UUID originator ids, no snapshots, no cache, as the
    library's documentation shows it. The events are the journal's events with
    the journal's payloads (``Created``, ``Started``, ``StepStarted`` /
    ``StepCompleted`` pairs, ``Completed``; one ``StepAdded`` when the count
    needs an odd number of body events), and the aggregate folds into the same
    dict-of-steps state. eventsourcing runs SQLite in WAL mode with
    ``synchronous=FULL``, as the journal does. It has no hash chain: the journal
    does strictly more work per event than this anchor.

Application construction (opening the database) is outside the timed region.
eventsourcing is imported inside the functions (via ``_es_model``), so importing
this module never needs it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from ._es_model import Execution, ExecutionApp

__all__ = [
    "append_batched",
    "append_single",
    "bytes_per_event",
    "prepare",
    "repository_get",
    "select_events",
]

TENANT = "tenant_bench"
PREPARE_BATCH = 1000


def _app(path: str | os.PathLike[str]) -> ExecutionApp:
    from ._es_model import ExecutionApp

    return ExecutionApp(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": os.fspath(path),
        }
    )


def _new_execution(n_steps: int) -> Execution:
    from ._es_model import Execution

    return Execution(
        tenant=TENANT,
        flow="bench.linear",
        schema_version=1,
        input={"n_steps": n_steps, "seed": 42},
    )


def _body(n_events: int) -> list[tuple[str, dict[str, Any]]]:
    """The method names and arguments that trigger events 2..n of the shape."""
    if n_events < 3:
        raise ValueError("need at least 3 events (created, started, completed)")
    n_steps, planned = divmod(n_events - 3, 2)
    calls: list[tuple[str, dict[str, Any]]] = [("start", {"worker": "bench-worker-1"})]
    if planned:
        calls.append(("step_added", {"step_id": "s000000", "name": "add"}))
    for i in range(n_steps):
        step_id = f"s{i:06d}"
        calls.append(
            (
                "step_started",
                {
                    "step_id": step_id,
                    "name": "add",
                    "attempt": 1,
                    "input": {"i": i, "x": i * 3},
                },
            )
        )
        calls.append(
            (
                "step_completed",
                {"step_id": step_id, "attempt": 1, "output": {"i": i, "y": i * 3 + 1}},
            )
        )
    calls.append(("complete", {"output": {"n_steps": n_steps}}))
    return calls


def prepare(path: str | os.PathLike[str], n_events: int) -> UUID:
    """Record one execution of ``n_events`` events; return its originator id.

    Events are saved in batches of ``PREPARE_BATCH`` (one ``app.save`` each).
    """
    app = _app(path)
    try:
        agg = _new_execution((n_events - 3) // 2)
        pending = 1
        for name, kwargs in _body(n_events):
            getattr(agg, name)(**kwargs)
            pending += 1
            if pending >= PREPARE_BATCH:
                app.save(agg)
                pending = 0
        app.save(agg)
        return agg.id
    finally:
        app.close()


def repository_get(
    path: str | os.PathLike[str], originator_id: UUID, repeat: int = 1
) -> float:
    """Seconds for ``app.repository.get(originator_id)`` (best of ``repeat``)."""
    app = _app(path)
    try:
        best = float("inf")
        agg: Any = None
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            agg = app.repository.get(originator_id)
            best = min(best, time.perf_counter() - t0)
        if agg.status != "completed":
            raise AssertionError(f"aggregate ended in {agg.status!r}")
    finally:
        app.close()
    return best


def select_events(
    path: str | os.PathLike[str], originator_id: UUID, repeat: int = 1
) -> float:
    """Seconds for the recorder's ``select_events`` alone (best of ``repeat``)."""
    app = _app(path)
    try:
        best = float("inf")
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            stored = app.recorder.select_events(originator_id)
            best = min(best, time.perf_counter() - t0)
        if not stored:
            raise LookupError(f"no events for {originator_id} in {path}")
    finally:
        app.close()
    return best


def append_single(path: str | os.PathLike[str], n_events: int) -> float:
    """Seconds for ``n_events`` separate ``app.save`` calls, one new event each.

    The first call saves the newly created aggregate (its ``Created`` event);
    each later call triggers one event on it and saves it.
    """
    app = _app(path)
    try:
        calls = _body(n_events)
        t0 = time.perf_counter()
        agg = _new_execution((n_events - 3) // 2)
        app.save(agg)
        for name, kwargs in calls:
            getattr(agg, name)(**kwargs)
            app.save(agg)
        elapsed = time.perf_counter() - t0
        if agg.version != n_events:
            raise AssertionError(f"saved {agg.version} events, wanted {n_events}")
    finally:
        app.close()
    return elapsed


def append_batched(path: str | os.PathLike[str], n_events: int) -> float:
    """Seconds to trigger ``n_events`` events and save them in one ``app.save``."""
    app = _app(path)
    try:
        calls = _body(n_events)
        t0 = time.perf_counter()
        agg = _new_execution((n_events - 3) // 2)
        for name, kwargs in calls:
            getattr(agg, name)(**kwargs)
        app.save(agg)
        elapsed = time.perf_counter() - t0
    finally:
        app.close()
    return elapsed


def bytes_per_event(path: str | os.PathLike[str], n_events: int) -> float:
    """On-disk bytes per event of one aggregate in a fresh database at ``path``.

    ``path`` must not exist yet. The empty-schema size (measured on a temporary
    file) is subtracted, so the figure is what each event adds.
    """
    from ._disk import bytes_added_per_item

    return bytes_added_per_item(
        path,
        n_events,
        lambda p: prepare(p, n_events),
        lambda empty: _app(empty).close(),
    )
