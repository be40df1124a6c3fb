"""LangGraph with its SQLite checkpointer recording and reading an N-step run.

What it measures
    * ``record_seconds(path, n)``: ``graph.invoke`` of an ``n``-step graph (each
      step a trivial function adding a small number to the state) with a
      ``langgraph.checkpoint.sqlite.SqliteSaver`` on the file at ``path``. By
      default ``durability="sync"``: each step's checkpoint is committed before
      the next step starts, which is what a durable execution record means (the
      library's own default, ``"async"``, writes it while the next step runs).
    * ``read_seconds(path, n)``: reading that run back: ``get_state`` (the head)
      plus the whole ``get_state_history`` (every checkpoint, newest first).
    * ``bytes_per_step(path, n)``: bytes on disk (database file plus WAL, after a
      WAL checkpoint) of a fresh database holding one ``n``-step run, minus the
      same file with the empty schema, divided by ``n``.

Two shapes of the same N-step run (``shape=``)
    * ``"loop"`` (the default): one node that runs N times, a conditional edge
      sending it back to itself until the counter reaches N. Each checkpoint
      has the same size, so cost per step is constant: this is LangGraph at its
      best for a long sequential run, and the shape to print ratios against.
    * ``"linear"``: N distinct nodes chained ``START -> step_0 -> ... -> END``.
      Each checkpoint's ``channel_versions`` and ``versions_seen`` keep one
      entry per node channel seen so far, so checkpoint k holds O(k) entries:
      storage and ``get_state_history`` grow quadratically with N (measured
      here: about 3.3 KB/step at N=10, 10.5 KB at N=100, 84 KB at N=1000).
      Kept for completeness; a ratio against it flatters the journal.

Why it is a fair anchor
    LangGraph's checkpointer is how a LangGraph user gets a durable,
    inspectable record of a run. An N-step graph is the journal's N-step
    execution: one checkpoint per super-step (so one per step, plus the input
    and start checkpoints) and the node's channel writes. The state is two
    small integers (a total and a step counter) so that the figures are the
    checkpointer's overhead, not the user's data. The saver is the stock one
    with its stock serializer; its connection is a plain ``sqlite3`` connection
    in WAL mode with SQLite's default ``synchronous=FULL``, as the journal uses.
    The recursion limit is raised to fit N steps (LangGraph counts one per
    super-step).

Graph compilation and opening the connection are outside the timed region.
langgraph is imported inside the functions, so importing this module never
needs it.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from langgraph.checkpoint.sqlite import SqliteSaver

__all__ = [
    "bytes_per_step",
    "read_seconds",
    "record",
    "record_seconds",
]

Durability = Literal["sync", "async", "exit"]
Shape = Literal["linear", "loop"]


class LinearState(TypedDict):
    total: int
    i: int


class _AddStep:
    """Node ``i`` of the linear shape: add ``i`` to the total."""

    def __init__(self, i: int) -> None:
        self.i = i

    def __call__(self, state: LinearState) -> dict[str, int]:
        return {"total": state["total"] + self.i, "i": self.i + 1}


def _loop_step(state: LinearState) -> dict[str, int]:
    i = state["i"]
    return {"total": state["total"] + i, "i": i + 1}


def _graph(n_steps: int, saver: SqliteSaver, shape: Shape) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(LinearState)
    if shape == "linear":
        previous = START
        for i in range(n_steps):
            name = f"step_{i:06d}"
            builder.add_node(name, _AddStep(i))
            builder.add_edge(previous, name)
            previous = name
        builder.add_edge(previous, END)
    else:

        def again(state: LinearState) -> str:
            return "step" if state["i"] < n_steps else END

        builder.add_node("step", _loop_step)
        builder.add_edge(START, "step")
        builder.add_conditional_edges("step", again, ["step", END])
    return builder.compile(checkpointer=saver)


def _thread_id(n_steps: int, shape: Shape) -> str:
    return f"bench-{shape}-{n_steps}"


def _config(thread_id: str, n_steps: int) -> dict[str, Any]:
    return {
        "configurable": {"thread_id": thread_id},
        "recursion_limit": n_steps + 10,
    }


@contextmanager
def _saver(path: str | os.PathLike[str]) -> Iterator[SqliteSaver]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    with closing(sqlite3.connect(os.fspath(path), check_same_thread=False)) as conn:
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver


def _expected_total(n_steps: int) -> int:
    return n_steps * (n_steps - 1) // 2


def record(
    path: str | os.PathLike[str],
    n_steps: int,
    thread_id: str | None = None,
    durability: Durability = "sync",
    shape: Shape = "loop",
) -> float:
    """Record one ``n_steps`` run on thread ``thread_id``; return the seconds taken."""
    thread = thread_id or _thread_id(n_steps, shape)
    with _saver(path) as saver:
        graph = _graph(n_steps, saver, shape)
        config = _config(thread, n_steps)
        t0 = time.perf_counter()
        out = graph.invoke({"total": 0, "i": 0}, config, durability=durability)
        elapsed = time.perf_counter() - t0
    if out["total"] != _expected_total(n_steps):
        raise AssertionError(f"graph returned {out!r}")
    return elapsed


def record_seconds(
    path: str | os.PathLike[str],
    n_steps: int,
    durability: Durability = "sync",
    shape: Shape = "loop",
) -> float:
    """Seconds to run and checkpoint an ``n_steps`` graph.

    Each call records a new thread in the database at ``path``.
    """
    with _saver(path) as saver:
        row = saver.conn.execute(
            "SELECT COUNT(DISTINCT thread_id) FROM checkpoints"
        ).fetchone()
    thread = f"{_thread_id(n_steps, shape)}-{row[0]:06d}"
    return record(path, n_steps, thread, durability, shape)


def read_seconds(
    path: str | os.PathLike[str],
    n_steps: int,
    repeat: int = 1,
    shape: Shape = "loop",
) -> float:
    """Seconds for ``get_state`` plus the full ``get_state_history`` of a run.

    Reads the thread ``record(path, n_steps, shape=shape)`` writes, recording it
    first (untimed) if the database at ``path`` does not hold it. Best of
    ``repeat``.
    """
    thread = _thread_id(n_steps, shape)
    with _saver(path) as saver:
        graph = _graph(n_steps, saver, shape)
        config = _config(thread, n_steps)
        if not graph.get_state(config).values:
            record(path, n_steps, thread, shape=shape)
        best = float("inf")
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            head = graph.get_state(config)
            history = list(graph.get_state_history(config))
            best = min(best, time.perf_counter() - t0)
    if head.values.get("total") != _expected_total(n_steps):
        raise AssertionError(f"head state is {head.values!r}")
    # input checkpoint (step -1), start checkpoint (step 0), one per node.
    if len(history) != n_steps + 2:
        raise AssertionError(f"{len(history)} checkpoints for {n_steps} steps")
    return best


def bytes_per_step(
    path: str | os.PathLike[str],
    n_steps: int,
    durability: Durability = "sync",
    shape: Shape = "loop",
) -> float:
    """On-disk bytes per step of one ``n_steps`` run in a fresh database at ``path``.

    ``path`` must not exist yet. The empty-schema size (measured on a temporary
    file) is subtracted, so the figure is what each step adds.
    """
    from ._disk import settled_db_bytes

    if Path(os.fspath(path)).exists():
        raise FileExistsError(f"{path} exists; bytes_per_step needs a fresh file")
    record(path, n_steps, durability=durability, shape=shape)
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.sqlite"
        with _saver(empty):
            pass
        baseline = settled_db_bytes(empty)
    return (settled_db_bytes(path) - baseline) / n_steps
