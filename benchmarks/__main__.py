"""The benchmark: the journal's figures beside the anchors', in one run.

Usage: ``python -m benchmarks [--quick] [--json FILE] [--no-postgres]``

Prints a Markdown table (figure, anchor, ratio, target, met?) and writes
every raw figure to a JSON file. Anchors that are not installed (the
``bench`` extra) are reported as missing, never invented.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import bench_flows, ours
from benchmarks.anchors import available
from benchmarks.ledger import bench_ledger

PG_URL = os.environ.get(
    "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


class Table:
    """Rows of (figure, ours, anchor, ratio, target, verdict)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        figure: str,
        ours_value: str,
        anchor: str = "",
        ratio: float | None = None,
        target: str = "",
        met: bool | None = None,
    ) -> None:
        self.rows.append(
            {
                "figure": figure,
                "ours": ours_value,
                "anchor": anchor,
                "ratio": None if ratio is None else round(ratio, 2),
                "target": target,
                "met": met,
            }
        )
        print(f"  {figure}: {ours_value}  [{anchor}]", file=sys.stderr, flush=True)

    def markdown(self) -> str:
        lines = [
            "| figure | ours | anchor (same run) | ratio | target | met |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in self.rows:
            met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
            ratio = "" if r["ratio"] is None else f"{r['ratio']}x"
            lines.append(
                f"| {r['figure']} | {r['ours']} | {r['anchor']} | {ratio} | "
                f"{r['target']} | {met} |"
            )
        return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def bench_read(
    tmp: Path,
    table: Table,
    sizes: list[int],
    repeat: int,
    have: dict[str, bool],
    raw: dict[str, Any],
) -> None:
    import journal
    from benchmarks.anchors import es_stock, raw_sqlite

    for n in sizes:
        with journal.open(f"sqlite:///{tmp / f'read-{n}.db'}") as j:
            execution_id = ours.prepare(j, n)
            mine = ours.read_verify_fold(j, execution_id, repeat)
        floor_db = tmp / f"raw-{n}.db"
        raw_sqlite.prepare(floor_db, n)
        floor = raw_sqlite.read_verify_fold(floor_db, repeat=repeat)
        raw[f"read_{n}"] = {
            "ours_s": mine,
            "raw_s": floor,
            "ours_us_per_event": mine / n * 1e6,
        }
        target = n == 10_000  # docs/design.md §12 sets the targets at 10,000 events
        table.add(
            f"read+verify+fold {n:,} events (SQLite)",
            f"{_ms(mine)} ({mine / n * 1e6:.2f} µs/event)",
            f"raw SQLite+SHA-256+msgspec {_ms(floor)}",
            mine / floor,
            "≤ 2x raw" if target else "",
            mine / floor <= 2 if target else None,
        )
        if have["es_stock"] and n <= 10_000:
            es_db = tmp / f"es-{n}.db"
            originator = es_stock.prepare(es_db, n)
            stock = es_stock.repository_get(es_db, originator, repeat)
            raw[f"read_{n}"]["es_repository_get_s"] = stock
            table.add(
                f"  vs eventsourcing repository.get {n:,} events",
                _ms(mine),
                f"eventsourcing stock {_ms(stock)}",
                stock / mine,
                "≥ 5x faster" if target else "",
                stock / mine >= 5 if target else None,
            )


def bench_million(tmp: Path, table: Table, n: int, raw: dict[str, Any]) -> None:
    import journal
    from benchmarks.anchors import raw_sqlite

    with journal.open(f"sqlite:///{tmp / 'million.db'}") as j:
        t0 = time.perf_counter()
        execution_id = ours.prepare(j, n)
        build = time.perf_counter() - t0
        heads = ours.head_state(j, execution_id, 5)
        whole = ours.read_verify_fold(j, execution_id, 1)
    floor_db = tmp / "raw-million.db"
    raw_sqlite.prepare(floor_db, n)
    floor = raw_sqlite.read_verify_fold(floor_db, repeat=1)
    raw["million"] = {
        "events": n,
        "build_s": build,
        "read_s": whole,
        "raw_read_s": floor,
        **heads,
    }
    table.add(
        f"read+verify+fold {n:,} events (SQLite)",
        f"{_ms(whole)} ({whole / n * 1e6:.2f} µs/event)",
        f"raw SQLite+SHA-256+msgspec {_ms(floor)}",
        whole / floor,
        "≤ 2x raw; linear",
        whole / floor <= 2,
    )
    table.add(
        f"head summary of a {n:,}-event execution",
        _ms(heads["summary_s"]),
        f"built in {build:.0f} s; full state from snapshot "
        f"{_ms(heads['get_from_snapshot_s'])}",
        None,
        "< 5 ms",
        heads["summary_s"] < 0.005,
    )


def bench_replay(
    tmp: Path,
    table: Table,
    steps: list[int],
    repeat: int,
    have: dict[str, bool],
    raw: dict[str, Any],
) -> None:
    import journal

    temporal: Any = None
    if have["temporal"]:
        from benchmarks.anchors import temporal as temporal_anchor

        temporal = temporal_anchor
    for n in steps:
        url = f"sqlite:///{tmp / f'replay-{n}.db'}"
        with journal.open(url) as j:
            execution_id, live = ours.record_flow(j, n)
            mine = ours.replay_in_process(j, execution_id, repeat)
        entry: dict[str, Any] = {"ours_s": mine, "live_run_s": live}
        anchor, ratio, met = "temporalio not installed", None, None
        if temporal is not None:
            t_unsandboxed = temporal.replay_seconds(n, False, repeat)
            entry["temporal_unsandboxed_s"] = t_unsandboxed
            anchor = f"Temporal Replayer (unsandboxed) {_ms(t_unsandboxed)}"
            ratio = t_unsandboxed / mine
            met = ratio >= 50 if n == max(steps) else None
        table.add(
            f"re-run replay {n:,} steps in-process",
            _ms(mine),
            anchor,
            ratio,
            "≥ 50x faster" if n == max(steps) else "",
            met,
        )
        if n == max(steps):
            with journal.open(url) as j:
                async_id = ours.record_async_flow(j, n)
                mine_async = ours.replay_in_process(
                    j, async_id, repeat, bench_flows.async_flow
                )
            entry["async_s"] = mine_async
            table.add(
                f"re-run replay {n:,} async steps in-process",
                _ms(mine_async),
                f"the same steps, sync: {_ms(mine)}",
                mine_async / mine,
                "≤ 2x the sync replay",
                mine_async / mine <= 2,
            )
            whole = ours.replay_cli(url, execution_id, repeat)
            entry["cli_s"] = whole
            ratio = met = None
            anchor = "temporalio not installed"
            if temporal is not None:
                ratio = entry["temporal_unsandboxed_s"] / whole
                met = ratio >= 5
                anchor = (
                    f"Temporal in-process replay {_ms(entry['temporal_unsandboxed_s'])}"
                )
            table.add(
                f"`journal replay <id>` whole process, {n:,} steps",
                _ms(whole),
                anchor,
                ratio,
                "≥ 5x faster",
                met,
            )
        raw[f"replay_{n}"] = entry


def bench_append(
    tmp: Path,
    table: Table,
    n_single: int,
    n_batched: int,
    have: dict[str, bool],
    raw: dict[str, Any],
) -> None:
    import journal
    from benchmarks.anchors import es_stock, raw_sqlite

    # fsync times vary run to run: both sides get the best of 3, interleaved.
    batched = floor = float("inf")
    with journal.open(f"sqlite:///{tmp / 'append.db'}") as j:
        for _ in range(3):
            batched = min(batched, ours.append_batched(j, n_batched))
            floor = min(
                floor, raw_sqlite.append_batched(tmp / "raw-append.db", n_batched)
            )
        single = ours.append_single(j, n_single)
    raw["append_sqlite"] = {
        "batched_s": batched,
        "single_s": single,
        "raw_batched_s": floor,
    }
    table.add(
        f"append {n_batched:,} events batched (SQLite)",
        _ms(batched),
        f"raw SQLite+chain {_ms(floor)}",
        batched / floor,
        "≤ 2x raw",
        batched / floor <= 2,
    )
    mine_rate = n_single / single
    if have["es_stock"]:
        es_single = es_stock.append_single(tmp / "es-append.db", n_single)
        es_rate = n_single / es_single
        raw["append_sqlite"]["es_single_s"] = es_single
        table.add(
            "durable single-event appends (SQLite)",
            f"{mine_rate:,.0f} events/s",
            f"eventsourcing app.save {es_rate:,.0f} events/s",
            mine_rate / es_rate,
            "≥ 1x",
            mine_rate >= es_rate,
        )


def bench_postgres(
    table: Table, n: int, have: dict[str, bool], raw: dict[str, Any]
) -> None:
    with fresh_postgres_schema(PG_URL) as url:
        _bench_postgres(url, table, n, have, raw)


def _bench_postgres(
    url: str, table: Table, n: int, have: dict[str, bool], raw: dict[str, Any]
) -> None:
    import journal

    with journal.open(url, tenant=f"tenant_bench{os.getpid()}") as j:
        batched = ours.append_batched(j, n)
        single = ours.append_single(j, min(n, 1000))
    raw["append_postgres"] = {"batched_s": batched, "single_s": single}
    table.add(
        f"append {n:,} events batched (PostgreSQL)", _ms(batched), "", None, "", None
    )
    table.add(
        "single-event appends (PostgreSQL)",
        f"{min(n, 1000) / single:,.0f} events/s",
        "",
        None,
        "",
        None,
    )
    rates: dict[int, float] = {}
    stock: dict[int, float] = {}
    for writers in (1, 4, 8):
        rates[writers] = ours.concurrent_writers(url, writers, 400)
        if have["es_stock"]:
            from benchmarks.anchors import es_postgres

            stock[writers] = es_postgres.concurrent_writers(PG_URL, writers, 400)
    raw["postgres_writers"] = {"ours": rates, "eventsourcing_stock": stock}
    table.add(
        "concurrent writers, one execution each (PostgreSQL)",
        ", ".join(f"{w}: {r:,.0f}/s" for w, r in rates.items()),
        "1 writer (ratio: 4 writers / 1)",
        rates[4] / rates[1],
        "scales with writers (2 cores)",
        rates[4] / rates[1] >= 1.3,
    )
    if stock:
        table.add(
            "  vs eventsourcing stock PostgreSQL recorder (table lock per insert)",
            f"8 writers: {rates[8]:,.0f}/s",
            "eventsourcing " + ", ".join(f"{w}: {r:,.0f}/s" for w, r in stock.items()),
            rates[8] / stock[8],
            "",
            None,
        )


@contextmanager
def fresh_postgres_schema(url: str) -> Iterator[str]:
    """A schema of this run's own (the journal never deletes: the run's
    store is dropped whole afterwards, with eventsourcing's benchmark
    schema); yields a URL whose ``search_path`` is that schema."""
    import psycopg

    schema = f"journal_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute("DROP SCHEMA IF EXISTS es_bench CASCADE")


def bench_storage(
    tmp: Path, table: Table, n: int, have: dict[str, bool], raw: dict[str, Any]
) -> None:
    mine = ours.storage(tmp, n)
    raw["storage"] = mine
    parts = []
    if have["langgraph_anchor"]:
        from benchmarks.anchors import langgraph_anchor

        lg = langgraph_anchor.bytes_per_step(tmp / "lg.sqlite", n)
        raw["storage"]["langgraph_bytes_per_step"] = lg
        parts.append(f"LangGraph {lg:,.0f} B/step")
    if have["temporal"]:
        from benchmarks.anchors import temporal

        tb = temporal.history_bytes(n) / n
        raw["storage"]["temporal_json_bytes_per_step"] = tb
        parts.append(f"Temporal JSON {tb:,.0f} B/step")
    table.add(
        f"storage per step beyond its input/output ({n:,} steps)",
        f"{mine['bytes_per_step_beyond_io']:.0f} B "
        f"({mine['bytes_per_event']:.0f} B/event)",
        "; ".join(parts),
        None,
        "≤ 300 B",
        mine["bytes_per_step_beyond_io"] <= 300,
    )


def bench_report(tmp: Path, table: Table, n: int, raw: dict[str, Any]) -> None:
    from benchmarks import report_html

    figures = report_html.measure(tmp, n)
    raw["report"] = figures
    size = (
        f"{figures['file_bytes'] / 1e6:.1f} MB, rendered in {_ms(figures['render_s'])}"
    )
    if "open_to_interactive_s" not in figures:
        table.add(f"audit report, {n:,} steps", size, "no chromium: not opened")
        return
    seconds = figures["open_to_interactive_s"]
    table.add(
        f"audit report, {n:,} steps: open to interactive (headless Chromium)",
        f"{seconds * 1000:.0f} ms; {size}",
        f"{figures['rows_in_document']:.0f} timeline rows in the document",
        None,
        "≤ 3 s; < 10 MB",
        seconds <= 3 and figures["file_bytes"] < 10_000_000,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="finish in under a minute")
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/latest.json")
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    have = available()
    table, raw = Table(), {"available": have}
    repeat = 3 if args.quick else 5
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="journal-bench-") as name:
        tmp = Path(name)
        read_sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
        bench_read(tmp, table, read_sizes, repeat, have, raw)
        bench_replay(tmp, table, [10, 100, 1_000], repeat, have, raw)
        bench_append(tmp, table, 200 if args.quick else 1_000, 10_000, have, raw)
        if not args.no_postgres:
            bench_postgres(table, 2_000 if args.quick else 10_000, have, raw)
        bench_storage(tmp, table, 1_000, have, raw)
        if args.no_postgres:
            bench_ledger(tmp, table.add, raw, None, args.quick)
        else:
            with fresh_postgres_schema(PG_URL) as pg_url:
                bench_ledger(tmp, table.add, raw, pg_url, args.quick)
        bench_report(tmp, table, 10_000, raw)
        if not args.quick:
            bench_million(tmp, table, 1_000_000, raw)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"Taken {meta['date']} on {meta['machine']}, Python {meta['python']}"
        f"{' (--quick)' if args.quick else ''}, {meta['seconds']} s\n"
    )
    print(table.markdown())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"meta": meta, "table": table.rows, "raw": raw}, indent=2)
    )
    print(f"\nraw figures: {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
