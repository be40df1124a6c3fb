"""Bytes on disk of an SQLite database, measured the same way for every anchor."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

__all__ = ["bytes_added_per_item", "settled_db_bytes"]


def settled_db_bytes(path: str | os.PathLike[str]) -> int:
    """Database plus WAL bytes after a truncating WAL checkpoint.

    The checkpoint moves committed pages into the database file, so pages the
    WAL holds several versions of are counted once; the ``-shm`` index (32 KiB,
    rebuilt on open) is not data and is left out. Free pages are counted.
    """
    with closing(sqlite3.connect(os.fspath(path))) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        total = 0
        for suffix in ("", "-wal"):
            p = Path(os.fspath(path) + suffix)
            if p.exists():
                total += p.stat().st_size
    return total


def bytes_added_per_item(
    path: str | os.PathLike[str],
    items: int,
    fill: Callable[[str | os.PathLike[str]], object],
    create_empty: Callable[[Path], object],
) -> float:
    """On-disk bytes each of `items` adds to a fresh database at `path`.

    `fill` writes the items into `path` (which must not exist yet);
    `create_empty` makes an empty database of the same schema, whose size is
    subtracted.
    """
    import tempfile

    if Path(os.fspath(path)).exists():
        raise FileExistsError(f"{path} exists; the measure needs a fresh file")
    fill(path)
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.db"
        create_empty(empty)
        baseline = settled_db_bytes(empty)
    return (settled_db_bytes(path) - baseline) / items
