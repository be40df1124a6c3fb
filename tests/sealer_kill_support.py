"""The parts of `tests/test_sealer_kill.py`: writers, a watcher of the
ledger's committed states, and the ways a sealer is killed.

A sealer is killed in one of three ways, in turn:

* ``random``: at a random moment 0-2.5 s after it started (it needs about a
  second to import and connect, so this covers start-up too);
* ``after_round``: at a random moment 0-0.5 s after it committed a round;
* ``in_transaction``: inside the seal round's open transaction, for
  certain: the test polls until the sealer has a write transaction open
  (SQLite: its process holds the WAL write lock, read from ``/proc/locks``;
  PostgreSQL: one of its connections, found by ``application_name``, has a
  transaction id and is in the seal round's statements), freezes it with
  SIGSTOP, checks that the transaction is still open and is the seal round's
  (PostgreSQL: ``idle in transaction``, waiting for the frozen client, after
  a statement on the ledger; SQLite: see `SQLiteProbe`), then sends SIGKILL.
  Otherwise the sealer is let go (SIGCONT) and the poll goes on; after
  `SEAL_HUNT` seconds any write transaction of the sealer will do.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

import journal

#: The sealer's tracking key (`journal.sealer.LedgerView` following the log).
TRACKING_KEY = "sealer:journal"
#: How long a kill ``in_transaction`` waits for the seal round's; then any
#: write transaction of the sealer will do.
SEAL_HUNT = 10.0
#: Steps per execution before a writer completes it and starts another.
STEPS = 12


@dataclass
class Writers:
    """Threads appending steps to executions of their tenants until stopped,
    pausing 0-40 ms between steps; each completes an execution after
    `STEPS` steps and starts another."""

    url: str
    tenants: list[str]
    stop: threading.Event = field(default_factory=threading.Event)
    executions: dict[str, str] = field(default_factory=dict)  # id -> tenant
    appends: int = 0
    errors: list[str] = field(default_factory=list)
    chance: random.Random = field(default_factory=random.Random)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for tenant in self.tenants:
            thread = threading.Thread(target=self._write, args=(tenant,))
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _write(self, tenant: str) -> None:
        try:
            with journal.open(self.url, tenant=tenant) as j:
                while not self.stop.is_set():
                    handle = j.create(flow="kill.test")
                    with self._lock:
                        self.executions[str(handle.id)] = tenant
                    handle.start()
                    self._count(1)
                    for step in range(STEPS):
                        if self.stop.is_set():
                            return
                        handle.complete_step(handle.start_step(f"s{step}"), step)
                        self._count(2)
                        time.sleep(self.chance.uniform(0.0, 0.04))
                    handle.complete(STEPS)
                    self._count(1)
        except Exception as exc:  # reported by the test
            self.errors.append(f"{tenant}: {type(exc).__name__}: {exc}")

    def _count(self, appends: int) -> None:
        with self._lock:
            self.appends += appends


def raw_connection(url: str) -> Any:
    """A DB-API connection of the test's own to the store at `url`; each of
    its transactions reads one snapshot (SQLite: begin with ``BEGIN``)."""
    if url.startswith("sqlite:///"):
        return sqlite3.connect(
            url.removeprefix("sqlite:///"),
            timeout=60,
            isolation_level=None,
            check_same_thread=False,
        )
    conn = psycopg.connect(url)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    return conn


@dataclass(frozen=True)
class Sample:
    """One committed state: the sealer's tracking position and the number
    of leaves of each tenant, read in one snapshot."""

    position: int
    sizes: dict[str, int]


class Watcher:
    """Samples the committed ledger every 10 ms, in a thread: `samples`
    (tracking position and leaf counts, one snapshot each, kept when they
    changed) and `notes` (every checkpoint it saw, as first seen)."""

    def __init__(self, url: str, tenants: list[str]) -> None:
        self.tenants = tenants
        self.sqlite = url.startswith("sqlite:")
        self.mark = "?" if self.sqlite else "%s"
        self.conn = raw_connection(url)
        self.samples: list[Sample] = [Sample(0, dict.fromkeys(tenants, 0))]
        self.notes: dict[tuple[str, int], str] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def close(self) -> None:
        self.stop()
        self.conn.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.sample()
                time.sleep(0.01)
        except Exception as exc:  # reported by the test
            self.errors.append(f"watcher: {type(exc).__name__}: {exc}")

    def sample(self) -> None:
        """Read the committed state; keep it if it changed."""
        with self._lock:
            cur = self.conn.cursor()
            if self.sqlite:
                cur.execute("BEGIN")
            try:
                sample = self._read(cur)
            finally:
                cur.execute("COMMIT") if self.sqlite else self.conn.commit()
            if sample != self.samples[-1]:
                self.samples.append(sample)

    def _read(self, cur: Any) -> Sample:
        m = self.mark
        cur.execute(
            f"SELECT notification_id FROM journal_tracking "
            f"WHERE application_name = {m}",
            (TRACKING_KEY,),
        )
        found = cur.fetchone()
        sizes = dict.fromkeys(self.tenants, 0)
        cur.execute(
            "SELECT tenant_id, count(*) FROM journal_ledger_leaves GROUP BY tenant_id"
        )
        sizes.update({str(t): int(n) for t, n in cur.fetchall() if t in sizes})
        seen = dict.fromkeys(self.tenants, 0)
        for tenant, size in self.notes:
            seen[tenant] = max(seen[tenant], size)
        cur.execute(
            "SELECT tenant_id, tree_size, note FROM journal_ledger_checkpoints "
            f"WHERE tree_size > {m}",
            (min(seen.values()),),
        )
        for tenant, size, note in cur.fetchall():
            self.notes.setdefault((str(tenant), int(size)), str(note))
        return Sample(0 if found is None else int(found[0]), sizes)

    def position(self) -> int:
        """The tracking position last sampled."""
        return self.samples[-1].position


class SQLiteProbe:
    """Whether a sealer holds the WAL write lock of the SQLite file: an
    exclusive POSIX lock on byte 120 of its ``-shm`` file (SQLite's
    ``WAL_WRITE_LOCK``), as ``/proc/locks`` lists it.

    Once its runner has started (it has threads), the sealer's write
    transaction is a seal round or a numbering round of the log
    (`journal.sql_log`), which it opens only after reading marks; nobody
    else numbers the log here, and no writer commits while it holds the
    lock. So when the committed state has no marks, the frozen sealer's
    transaction is its seal round ("seal"); otherwise it may be either
    ("write"). Before its runner starts, ``journal seal`` numbers the log
    once whether there are marks or not: that is a "write"."""

    def __init__(self, url: str) -> None:
        self.shm = Path(url.removeprefix("sqlite:///") + "-shm")
        self.conn = raw_connection(url)

    def close(self) -> None:
        self.conn.close()

    def open_transaction(self, pid: int, *, frozen: bool = False) -> str | None:
        try:
            inode = os.stat(self.shm).st_ino
        except FileNotFoundError:
            return None
        for line in Path("/proc/locks").read_text().splitlines():
            words = line.split()  # "1: POSIX ADVISORY WRITE pid dev:inode 120 120"
            if (
                words[1:5] == ["POSIX", "ADVISORY", "WRITE", str(pid)]
                and words[5].endswith(f":{inode}")
                and words[6:8] == ["120", "120"]
            ):
                break
        else:
            return None
        if len(list(Path(f"/proc/{pid}/task").iterdir())) == 1:
            return "write"
        try:
            marks = self.conn.execute("SELECT 1 FROM journal_log_marks LIMIT 1")
            return "write" if marks.fetchone() else "seal"
        except sqlite3.OperationalError:  # frozen while it rewrote the WAL index
            return "write"


class PostgresProbe:
    """Whether a sealer (its connections named by ``application_name``) is
    inside its seal round's transaction: a transaction id, and the last
    statement on the ledger or the tracking table."""

    def __init__(self, url: str, application_name: str) -> None:
        self.name = application_name
        self.conn = psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def open_transaction(self, pid: int, *, frozen: bool = False) -> str | None:
        """ "seal" if a connection of the sealer is in its seal round's
        transaction (`frozen`: and waits for the frozen client, so that the
        transaction can only roll back), else None."""
        rows = self.conn.execute(
            "SELECT state, query FROM pg_stat_activity WHERE application_name = %s "
            "AND backend_xid IS NOT NULL",
            (self.name,),
        ).fetchall()
        for state, query in rows:
            if frozen and state != "idle in transaction":
                continue  # a statement still running (a COMMIT may succeed)
            if "journal_ledger" in query or "journal_tracking" in query:
                return "seal"
        return None


Probe = SQLiteProbe | PostgresProbe


@dataclass
class Kills:
    """How each kill landed."""

    random: int = 0
    after_round: int = 0
    in_seal: int = 0  # frozen inside its seal round's open transaction
    in_write: int = 0  # SQLite: in a seal round or a numbering round
    missed: int = 0  # in_transaction tries that caught none in time
    freezes_let_go: int = 0
    hunt_seconds: float = 0.0  # spent finding the transactions

    @property
    def total(self) -> int:
        return (
            self.random + self.after_round + self.in_seal + self.in_write + self.missed
        )


def start_sealer(
    command: list[str], env: dict[str, str], errors: Path
) -> subprocess.Popen[bytes]:
    """Start a sealer; its standard error goes to the file `errors`."""
    with errors.open("wb") as err:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)


def kill(sealer: subprocess.Popen[bytes]) -> None:
    """SIGKILL `sealer`, which must still have been running."""
    sealer.send_signal(signal.SIGKILL)
    sealer.wait(timeout=60)
    assert sealer.returncode == -signal.SIGKILL, (
        f"the sealer exited {sealer.returncode}"
    )


def stopped(pid: int) -> bool:
    """Whether every thread of `pid` is stopped (state T)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] != "T":
            return False
    return True


def kill_in_transaction(
    sealer: subprocess.Popen[bytes], probe: Probe, kills: Kills, deadline: float
) -> None:
    """Freeze the sealer inside its seal round's open transaction and kill it
    there; after `SEAL_HUNT` seconds, in any open write transaction of its
    (SQLite's numbering of the log); at `deadline`, wherever it is. Counted
    in `kills`."""
    pid, began = sealer.pid, time.monotonic()
    while time.monotonic() < deadline:
        assert sealer.poll() is None, "the sealer exited by itself"
        any_will_do = time.monotonic() - began > SEAL_HUNT
        kind = probe.open_transaction(pid)
        if kind is None or (kind != "seal" and not any_will_do):
            time.sleep(0.001)
            continue
        os.kill(pid, signal.SIGSTOP)
        while not stopped(pid):
            time.sleep(0.0005)
        for _ in range(20):  # PostgreSQL: a sent statement may still run
            kind = probe.open_transaction(pid, frozen=True)
            if kind is not None or isinstance(probe, SQLiteProbe):
                break
            time.sleep(0.005)
        if kind == "seal" or (kind is not None and any_will_do):
            kill(sealer)
            kills.in_seal += kind == "seal"
            kills.in_write += kind != "seal"
            kills.hunt_seconds += time.monotonic() - began
            return
        kills.freezes_let_go += 1
        os.kill(pid, signal.SIGCONT)
    kill(sealer)
    kills.missed += 1


def kill_one(
    how: str,
    sealer: subprocess.Popen[bytes],
    watcher: Watcher,
    probe: Probe,
    kills: Kills,
    chance: random.Random,
) -> None:
    """Kill `sealer` the way `how` names (see the module's docstring)."""
    if how == "random":
        time.sleep(chance.uniform(0.0, 2.5))
        kill(sealer)
        kills.random += 1
    elif how == "after_round":
        start, deadline = watcher.position(), time.monotonic() + 60
        while watcher.position() == start and time.monotonic() < deadline:
            time.sleep(0.005)
        assert watcher.position() != start, "the sealer sealed no round in 60 s"
        time.sleep(chance.uniform(0.0, 0.5))
        kill(sealer)
        kills.after_round += 1
    else:
        kill_in_transaction(sealer, probe, kills, time.monotonic() + 60)


def rotate(kills: int) -> list[str]:
    ways = ["random", "after_round", "in_transaction"]
    return [ways[i % 3] for i in range(kills)]
