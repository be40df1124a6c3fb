"""Run every available anchor once and print its figures as JSON.

Usage: ``python -m benchmarks.anchors [--quick] [--repeat N] [--json FILE]``.

A smoke run of the anchors alone, to check an installation of the ``bench``
extra and to see the anchors' figures on the machine at hand. The benchmark's
own entry command prints these beside the journal's figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import available


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def run(sizes: list[int], events: list[int], repeat: int) -> dict[str, Any]:
    """Measure every available anchor; return the figures as a JSON-able dict."""
    have = available()
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.platform(),
        "available": have,
    }
    with tempfile.TemporaryDirectory(prefix="anchors-") as tmp_name:
        tmp = Path(tmp_name)
        rows: list[dict[str, Any]]
        if have["raw_sqlite"]:
            from . import raw_sqlite as raw

            rows = []
            for n in events:
                db = tmp / f"raw-{n}.db"
                per_event = raw.bytes_per_event(db, n)
                rows.append(
                    {
                        "events": n,
                        "read_verify_fold_ms": _ms(
                            raw.read_verify_fold(db, repeat=repeat)
                        ),
                        "append_batched_ms": _ms(
                            raw.append_batched(tmp / f"raw-b-{n}.db", n)
                        ),
                        "bytes_per_event": round(per_event, 1),
                    }
                )
            for row, n in zip(rows, events, strict=True):
                if n <= 1000:
                    row["append_single_ms"] = _ms(
                        raw.append_single(tmp / f"raw-s-{n}.db", n)
                    )
            out["raw_sqlite"] = rows
        if have["es_stock"]:
            from . import es_stock as es

            rows = []
            for n in events:
                db = tmp / f"es-{n}.db"
                per_event = es.bytes_per_event(db, n)
                oid = es.prepare(db, n)
                row = {
                    "events": n,
                    "repository_get_ms": _ms(es.repository_get(db, oid, repeat)),
                    "select_events_ms": _ms(es.select_events(db, oid, repeat)),
                    "append_batched_ms": _ms(
                        es.append_batched(tmp / f"es-b-{n}.db", n)
                    ),
                    "bytes_per_event": round(per_event, 1),
                }
                if n <= 1000:
                    row["append_single_ms"] = _ms(
                        es.append_single(tmp / f"es-s-{n}.db", n)
                    )
                rows.append(row)
            out["es_stock"] = rows
        if have["temporal"]:
            from . import temporal

            rows = []
            for n in sizes:
                rows.append(
                    {
                        "steps": n,
                        "events": 6 * n + 5,
                        "replay_unsandboxed_ms": _ms(
                            temporal.replay_seconds(n, False, repeat)
                        ),
                        "replay_sandboxed_ms": _ms(
                            temporal.replay_seconds(n, True, repeat)
                        ),
                        "parse_json_ms": _ms(temporal.parse_seconds(n)),
                        "history_json_bytes": temporal.history_bytes(n),
                        "history_proto_bytes": temporal.history_proto_bytes(n),
                    }
                )
            out["temporal"] = rows
            # Provokes a nondeterminism error on purpose: proof that the
            # determinism check is on for the histories measured above.
            error = temporal.check_nondeterminism(3)
            out["temporal_nondeterminism_check"] = error[:200]
        if have["langgraph_anchor"]:
            from . import langgraph_anchor as lg

            rows = []
            for shape in ("loop", "linear"):
                for n in sizes:
                    db = tmp / f"lg-{shape}-{n}.sqlite"
                    per_step = lg.bytes_per_step(db, n, shape=shape)
                    rows.append(
                        {
                            "shape": shape,
                            "steps": n,
                            "record_ms": _ms(lg.record_seconds(db, n, shape=shape)),
                            "read_ms": _ms(lg.read_seconds(db, n, repeat, shape=shape)),
                            "bytes_per_step": round(per_step, 1),
                        }
                    )
            out["langgraph"] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--repeat", type=int, default=3, help="best of N reads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = [10, 100] if args.quick else [10, 100, 1000]
    events = [1000] if args.quick else [1000, 10000]
    figures = run(sizes, events, args.repeat)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
