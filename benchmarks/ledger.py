"""The store-wide log and the ledger: sealing throughput, follower lag under
concurrent writers, the writers' scaling, and the bytes the log adds per step.

Run on its own with ``python -m benchmarks.ledger [POSTGRES_URL]`` (a schema
of its own is created in the database and dropped afterwards), or as part of
``python -m benchmarks``.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import journal
from benchmarks import ours
from benchmarks.anchors._disk import settled_db_bytes
from journal.follow import Waiter, follow_log
from journal.ledger import KEY_FILE_ENV, write_key_file
from journal.sealer import run_sealer
from journal.signednote import Signer
from journal.sqlstore import SQLStore
from journal.urls import open_store

ORIGIN = "bench.ledger"


def _steps(j: journal.Journal, executions: int, steps: int) -> None:
    for _ in range(executions):
        handle = j.create(flow="bench.ledger")
        handle.start()
        for n in range(steps):
            handle.complete_step(handle.start_step("s", input=n), {"n": n})


def sealing(url: str, tmp: Path, heads: int) -> dict[str, float]:
    """Heads sealed per second: `heads` executions, one sealing pass."""
    key = tmp / f"ledger-{secrets.token_hex(4)}.key"
    write_key_file(key, Signer.generate(ORIGIN))
    os.environ[KEY_FILE_ENV] = str(key)
    store = open_store(url)
    assert isinstance(store, SQLStore)
    store.init_ledger(ORIGIN)
    with journal.open(url, tenant="tenant_benchledger") as j:
        _steps(j, heads, 2)
    store.sequence_log(wait=True)
    target = store.max_position()
    store.close()
    t0 = time.perf_counter()
    report = run_sealer(url, target)
    seconds = time.perf_counter() - t0
    return {
        "heads": report.leaves,
        "seconds": seconds,
        "heads_per_s": report.leaves / seconds,
    }


def _writer(url: str, steps: int, barrier: Any, out: Any) -> None:
    """Append steps; report when each append had committed (wall clock)."""
    with journal.open(url, tenant=f"tenant_benchlag{os.getpid()}") as j:
        handle = j.create(flow="bench.lag")
        handle.start()
        barrier.wait()
        committed = []
        for n in range(steps):
            step = handle.start_step("s", input=n)
            committed.append((str(handle.id), handle.state.version, time.time()))
            handle.complete_step(step, {"n": n})
            committed.append((str(handle.id), handle.state.version, time.time()))
        out.put(committed)


def follower_lag(url: str, writers: int, steps: int) -> dict[str, float]:
    """Seconds from an append's commit (as its writer saw it return) to a
    follower receiving the event, while `writers` processes append (median
    and 95th percentile)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(writers + 1)
    out = context.Queue()
    processes = [
        context.Process(target=_writer, args=(url, steps, barrier, out))
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    store = open_store(url)
    start = store.max_position() or 0
    received: dict[tuple[str, int], float] = {}
    waiter = Waiter()

    def follow() -> None:
        for entry in follow_log(store, start, waiter=waiter):
            received[(entry.execution_id, entry.seq)] = time.time()

    thread = threading.Thread(target=follow)
    thread.start()
    barrier.wait()
    committed = [item for _ in processes for item in out.get(timeout=600)]
    for process in processes:
        process.join()
    deadline = time.monotonic() + 60
    while len(received) < writers * (2 + 2 * steps) and time.monotonic() < deadline:
        time.sleep(0.05)
    waiter.close()
    thread.join()
    store.close()
    lags = sorted(
        max(0.0, received[(eid, seq)] - at)
        for eid, seq, at in committed
        if (eid, seq) in received
    )
    return {
        "events": len(lags),
        "median_s": statistics.median(lags),
        "p95_s": lags[int(len(lags) * 0.95) - 1],
    }


def writers_ratio(url: str, events: int) -> dict[str, float]:
    """Appends per second of 1 and of 4 writers, one execution each, and
    what each append cost in CPU (writers and server, from the cores busy
    during the run): equal costs mean the writers did not contend, so the
    rate is what the cores allow."""
    busy: list[float] = []
    one = ours.concurrent_writers(url, 1, events, busy=busy)
    four = ours.concurrent_writers(url, 4, events, busy=busy)
    return {
        "one": one,
        "four": four,
        "ratio": four / one,
        "cores_busy_one": busy[0],
        "cores_busy_four": busy[1],
        "cpu_ms_per_append_one": busy[0] / one * 1000,
        "cpu_ms_per_append_four": busy[1] / four * 1000,
    }


def log_bytes(tmp: Path, steps: int) -> dict[str, float]:
    """Bytes per step the log adds on SQLite: numbered once at the end,
    after every append of one execution, and with four executions
    interleaving appends and a round after each (the worst case)."""

    def run(name: str, executions: int, every: bool) -> int:
        url = f"sqlite:///{tmp / name}"
        with journal.open(url) as j:
            handles = [j.create(flow="bench.log") for _ in range(executions)]
            for handle in handles:
                handle.start()
            for n in range(steps // executions):
                for handle in handles:
                    step = handle.start_step("s", input=n)
                    if every:
                        j.store.sequence_log()
                    handle.complete_step(step, {"n": n})
                    if every:
                        j.store.sequence_log()
            j.store.sequence_log()
        return settled_db_bytes(tmp / name)

    once = run("once.db", 1, False)
    return {
        "one_execution_round_per_append": (run("every.db", 1, True) - once) / steps,
        "four_interleaved_round_per_append": (
            run("four-every.db", 4, True) - run("four-once.db", 4, False)
        )
        / steps,
    }


def main(postgres_url: str) -> None:
    """Print every figure (SQLite, and PostgreSQL in a schema of its own)."""
    import psycopg

    schema = f"bench_ledger_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_url else "?"
    pg = f"{postgres_url}{separator}options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            print("log bytes per step (SQLite):", log_bytes(tmp, 1000))
            print("sealing (SQLite):", sealing(f"sqlite:///{tmp / 's.db'}", tmp, 1000))
            print("sealing (PostgreSQL):", sealing(pg, tmp, 1000))
            print("writers (PostgreSQL):", writers_ratio(pg, 400))
            print("follower lag, 8 writers (PostgreSQL):", follower_lag(pg, 8, 100))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.environ.get(
            "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        )
    )


def bench_ledger(
    tmp: Path,
    add: Callable[..., None],
    raw: dict[str, Any],
    postgres_url: str | None,
    quick: bool,
) -> None:
    """The ledger's rows of ``python -m benchmarks`` (`add` is `Table.add`)."""
    heads = 200 if quick else 1000
    log = log_bytes(tmp, 1000)
    sqlite = sealing(f"sqlite:///{tmp / 'ledger.db'}", tmp, heads)
    raw["ledger"] = {"log_bytes": log, "sealing_sqlite": sqlite}
    worst = log["four_interleaved_round_per_append"]
    add(
        "bytes per step the log adds (SQLite; 4 executions, a round per append)",
        f"{worst:.0f} B (one execution: {log['one_execution_round_per_append']:.0f} B)",
        "storage per step beyond its input/output",
        None,
        "within ≤ 300 B/step",
        None,
    )
    add(f"sealing {heads:,} heads (SQLite)", f"{sqlite['heads_per_s']:,.0f} heads/s")
    if postgres_url is None:
        return
    pg = sealing(postgres_url, tmp, heads)
    ratio = writers_ratio(postgres_url, 400)
    lag = follower_lag(postgres_url, 8, 50 if quick else 100)
    raw["ledger"] |= {"sealing_postgres": pg, "writers": ratio, "follower_lag": lag}
    add(f"sealing {heads:,} heads (PostgreSQL)", f"{pg['heads_per_s']:,.0f} heads/s")
    add(
        "writers with the log (PostgreSQL): 4 writers / 1",
        f"1: {ratio['one']:,.0f}/s, 4: {ratio['four']:,.0f}/s",
        "1 writer",
        ratio["ratio"],
        "≥ 2.5x",
        ratio["ratio"] >= 2.5,
    )
    add(
        "  CPU per append (writers + server), 4 writers / 1",
        f"1: {ratio['cpu_ms_per_append_one']:.2f} ms "
        f"({ratio['cores_busy_one']:.2f} cores busy), "
        f"4: {ratio['cpu_ms_per_append_four']:.2f} ms "
        f"({ratio['cores_busy_four']:.2f} cores busy)",
        "1 writer",
        ratio["cpu_ms_per_append_four"] / ratio["cpu_ms_per_append_one"],
    )
    add(
        "follower lag under 8 writers (PostgreSQL)",
        f"median {lag['median_s'] * 1000:.0f} ms, p95 {lag['p95_s'] * 1000:.0f} ms",
    )
