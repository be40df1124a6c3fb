"""eventsourcing 9.5's stock PostgreSQL application with concurrent writers.

What it measures
    ``concurrent_writers(url, writers, n_events)``: total single-event
    ``app.save`` calls per second when ``writers`` processes, started together
    behind a barrier, each append to their own aggregate.

Why it is a fair anchor
    It is the library's stock path on the same server: ``PERSISTENCE_MODULE=
    eventsourcing.postgres``, default mapper and transcoder, one event per
    save, one aggregate per writer (no conflicts), the same aggregate as the
    ``es_stock`` anchor. Its application recorder takes an EXCLUSIVE lock on
    the events table at every insert (to keep notification ids gap-free),
    which serialises writers of *different* aggregates; the journal measures
    that and lifts it (docs/design.md §6). The tables are created in a schema
    of their own (``es_bench``), so the journal's tables are never touched.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

__all__ = ["concurrent_writers"]

SCHEMA = "es_bench"


def _env(url: str, create: bool = False) -> dict[str, str]:
    parts = urlparse(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_SCHEMA": SCHEMA,
        "CREATE_TABLE": "y" if create else "n",
    }


def _prepare_schema(url: str) -> None:
    """Create the schema and the stock tables once, before the writers start
    (eventsourcing's CREATE TABLE is not safe to race)."""
    import psycopg

    from ._es_model import ExecutionApp

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    ExecutionApp(env=_env(url, create=True)).close()


def _writer(url: str, n_events: int, barrier: Any, out: Any) -> None:
    from ._es_model import Execution, ExecutionApp

    app = ExecutionApp(env=_env(url))
    aggregate = Execution(
        tenant="tenant_bench", flow="bench", schema_version=1, input={"n": n_events}
    )
    app.save(aggregate)
    barrier.wait()
    t0 = time.perf_counter()
    for i in range(n_events):
        aggregate.step_added(step_id=f"s{i}", name="fetch")
        app.save(aggregate)
    out.put(time.perf_counter() - t0)
    app.close()


def concurrent_writers(url: str, writers: int, n_events: int) -> float:
    """Events per second over all writers (each on its own aggregate)."""
    from benchmarks._together import run_together

    _prepare_schema(url)
    seconds = run_together(_writer, (url, n_events), writers)
    rate: float = writers * n_events / max(seconds)
    return rate
