"""Two processes append to one long execution: is either of them starved?

Usage: ``python -m benchmarks.shared_writer [--seconds S] [--events N]
[--writers W] [--db URL]`` (default: 10 s, 2,400 events, 2 writers, the
test PostgreSQL server, in a schema of its own that is dropped afterwards).

Each writer appends one step at a time to the same execution, which holds
N events before they start. A writer that loses a race gets
`ConflictError`. Two ways to carry on are measured, one after the other:

* ``reload``: reload the whole execution (what a handle did before it
  could catch up: about 16 ms at 2,400 events on PostgreSQL);
* ``catch_up``: the handle's own way: read only the events after its head.

Prints appends per second of each writer in each mode, and the slowest
writer's rate: a starved writer is one whose rate falls to (near) zero.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from typing import Any

import journal
from benchmarks._together import run_together
from journal import events as ev
from journal.application import utc_now
from journal.errors import ConflictError
from journal.ids import new_step_id

SERVER = os.environ.get(
    "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def writer(
    url: str,
    tenant: str,
    execution_id: str,
    mode: str,
    seconds: float,
    barrier: Any,
    out: Any,
) -> None:
    """Append steps for `seconds`; put (mode, stored, conflicts) on `out`."""
    with journal.open(url, tenant=tenant) as journal_:
        handle = journal_.handle(execution_id)
        barrier.wait()
        stored = conflicts = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                handle.start_step("step", "ToolNode")
                stored += 1
            except ConflictError:
                conflicts += 1
                if mode == "reload":
                    handle = journal_.handle(execution_id)
        out.put((mode, stored, conflicts))


def long_execution(url: str, tenant: str, events: int) -> str:
    """A running execution holding `events` events."""
    with journal.open(url, tenant=tenant) as journal_:
        handle = journal_.create(flow="shared")
        handle.start()
        steps = [
            ev.StepStarted(
                at=utc_now(), step_id=new_step_id(), name="p", step_type="ToolNode"
            )
            for _ in range(events - 2)
        ]
        handle.record(*steps)
        return str(handle.id)


def measure(url: str, seconds: float, events: int, writers: int) -> dict[str, Any]:
    """Appends per second of each writer, per mode."""
    figures: dict[str, Any] = {}
    for mode in ("reload", "catch_up"):
        tenant = f"tenant_shared{secrets.token_hex(4)}"
        execution_id = long_execution(url, tenant, events)
        results = run_together(
            writer, (url, tenant, execution_id, mode, seconds), writers
        )
        figures[mode] = [
            {"appends_per_s": stored / seconds, "conflicts": conflicts}
            for _mode, stored, conflicts in results
        ]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--events", type=int, default=2400)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--db", default=None, help="default: a fresh schema")
    args = parser.parse_args(argv)
    schema = None
    url = args.db
    if url is None:
        import psycopg

        schema = f"bench_shared_{secrets.token_hex(4)}"
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in SERVER else "?"
        url = f"{SERVER}{sep}options=-csearch_path%3D{schema}"
    try:
        figures = measure(url, args.seconds, args.events, args.writers)
    finally:
        if schema is not None:
            with psycopg.connect(SERVER, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    print(
        f"{args.writers} writers on one execution of {args.events:,} events, "
        f"{args.seconds:g} s per mode"
    )
    for mode, rows in figures.items():
        rates = ", ".join(
            f"{r['appends_per_s']:,.0f}/s ({r['conflicts']} conflicts)" for r in rows
        )
        slowest = min(r["appends_per_s"] for r in rows)
        print(f"  {mode:9} slowest {slowest:,.0f} appends/s; each: {rates}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
