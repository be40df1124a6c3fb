"""Export files with a valid chain around chosen payloads.

A forged file passes every chain, count and head check, so what a test puts
into the payloads is what the importer's (and replay's) value checks see.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import journal
from journal.chain import chain_rows, format_head, genesis_link


def template(url: str = "memory://", tenant: str = "tenant_default") -> dict[str, Any]:
    """A small execution's export: its header and payloads, as builtins.

    The execution is Created, Running, then Completed with output ``1``.
    """
    from journal.export import export_lines

    with journal.open(url, tenant=tenant) as journal_:
        handle = journal_.create()
        handle.start()
        handle.complete(1)
        header, *lines = (
            json.loads(line) for line in export_lines(journal_, handle.id)
        )
    return {"header": header, "payloads": [line["payload"] for line in lines]}


def forged_lines(header: dict[str, Any], payloads: Sequence[bytes]) -> list[bytes]:
    """One block whose chain, count and head fit `payloads` exactly."""
    genesis = header["genesis"].encode()
    rows = chain_rows(genesis_link(genesis), 1, list(payloads))
    head = (rows[-1].seq, rows[-1].hash) if rows else (0, genesis_link(genesis))
    fitted = header | {
        "events": len(rows),
        "head": format_head(*head),
        "state": None,
        "children": [],
        "head_mac": None,
    }
    lines = [json.dumps(fitted, separators=(",", ":")).encode()]
    for row in rows:
        line = {"seq": row.seq, "hash": row.hash.hex(), "payload": row.payload.decode()}
        lines.append(json.dumps(line, separators=(",", ":")).encode())
    return lines


def write_forged(
    path: Path, header: dict[str, Any], payloads: Sequence[bytes | str]
) -> Path:
    """Write a forged one-block file; return its path."""
    data = [p.encode() if isinstance(p, str) else p for p in payloads]
    path.write_bytes(b"\n".join(forged_lines(header, data)) + b"\n")
    return path
