"""Raw database access for tamper tests: what an attacker with DDL rights
does, in plain SQL on SQLite and PostgreSQL (never through our API)."""

from __future__ import annotations

import sqlite3
from typing import Any

from journal.chain import chain_rows
from journal.packing import pack, unpack
from journal.urls import sqlite_path

GUARDS = (
    ("journal_events", "journal_events_append_only"),
    ("journal_events", "journal_events_no_truncate"),
    ("journal_executions", "journal_executions_no_delete"),
    ("journal_executions", "journal_executions_no_truncate"),
    ("journal_executions", "journal_executions_append_only"),
)


def link(previous: bytes, seq: int, payload: bytes) -> bytes:
    """One keyless link, as anyone (an attacker too) computes it."""
    return chain_rows(previous, seq, [payload])[0].hash


class RawDatabase:
    """A plain driver connection to the store's database.

    The payload column holds packed bytes (`journal.packing`); a forger who
    reads the code knows the packing, so rows are read unpacked (the bytes
    the chain covers) and written packed, all with plain SQL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        path = sqlite_path(url)
        self.conn: Any
        if path is not None:
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.mark = "?"
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)
            self.mark = "%s"

    def drop_guards(self) -> None:
        """What an attacker with DDL rights does first."""
        if self.mark == "?":
            names = self.run("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            for (name,) in names:
                self.run(f"DROP TRIGGER {name}")
            return
        for table, trigger in GUARDS:
            self.run(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")

    def run(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql.replace("?", self.mark), params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    def key(self, execution_id: str) -> int:
        [(key,)] = self.run(
            "SELECT exec_key FROM journal_executions WHERE execution_id = ?",
            execution_id,
        )
        return int(key)

    def rows(self, key: int) -> list[tuple[int, bytes, bytes]]:
        return [
            (int(seq), unpack(bytes(payload)), bytes(link))
            for seq, payload, link in self.run(
                "SELECT seq, payload, hash FROM journal_events WHERE exec_key = ? "
                "ORDER BY seq",
                key,
            )
        ]

    def set_row(self, key: int, seq: int, payload: bytes, link: bytes) -> None:
        self.run(
            "UPDATE journal_events SET payload = ?, hash = ? "
            "WHERE exec_key = ? AND seq = ?",
            pack(payload),
            link,
            key,
            seq,
        )

    def renumber(self, key: int, old: int, new: int) -> None:
        self.run(
            "UPDATE journal_events SET seq = ? WHERE exec_key = ? AND seq = ?",
            new,
            key,
            old,
        )

    def insert(self, key: int, seq: int, payload: bytes, link: bytes) -> None:
        self.run(
            "INSERT INTO journal_events (exec_key, seq, payload, hash) "
            "VALUES (?, ?, ?, ?)",
            key,
            seq,
            pack(payload),
            link,
        )

    def close(self) -> None:
        self.conn.close()
