"""Long-running ``journal`` processes for the tests (``journal follow``,
``journal seal --follow``), and the PostgreSQL backends they LISTEN on."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from typing import Any

import psycopg

from journal.postgres_pool import split_url
from tests.cli_support import journal_script, script_env
from tests.conftest import require_postgres

TIMEOUT = 60.0


class Follower:
    """``journal ARGS…`` running in a subprocess, its stdout lines in a queue."""

    def __init__(self, *args: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [journal_script(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=script_env(**env),
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def take(self, count: int) -> list[dict[str, Any]]:
        return [json.loads(self.lines.get(timeout=TIMEOUT)) for _ in range(count)]

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=TIMEOUT)

    def stderr(self) -> str:
        """What it wrote on stderr (once it has ended)."""
        assert self.process.stderr is not None
        assert self.process.poll() is not None
        return self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        self.reader.join(timeout=TIMEOUT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def _admin() -> psycopg.Connection[Any]:
    return psycopg.connect(split_url(require_postgres())[0], autocommit=True)


def listen_pids(application_name: str) -> list[int]:
    """The server backends of that application that LISTEN (the last
    statement a listener sends)."""
    with _admin() as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND query LIKE 'LISTEN%%' ORDER BY pid",
            (application_name,),
        ).fetchall()
    return [int(row[0]) for row in rows]


def terminate_listener(application_name: str) -> int:
    """End the one LISTEN backend of that application; return its pid."""
    pids = wait_for_listener(application_name)
    with _admin() as admin:
        ended = admin.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
        assert ended.fetchone() == (True,)
    return pids[0]


def wait_for_listener(application_name: str, *, not_pid: int = 0) -> list[int]:
    """Wait until that application has exactly one LISTEN backend (other
    than `not_pid`, a terminated one); return its pid in a list."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        pids = [pid for pid in listen_pids(application_name) if pid != not_pid]
        if len(pids) == 1:
            return pids
        assert time.monotonic() < deadline, f"LISTEN backends: {pids}"
        time.sleep(0.05)
