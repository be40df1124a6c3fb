"""Bytes on disk of an SQLite database, measured the same way for every anchor."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

__all__ = ["settled_db_bytes"]


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
