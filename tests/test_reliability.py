"""The reliability suite: real processes, real SIGKILLs, the real PostgreSQL.

* Writers (`tests.reliability_writer`: N processes sharing M executions)
  are killed with SIGKILL in the middle of their appends, on SQLite and on
  PostgreSQL, and restarted; an import is killed midway.
* PostgreSQL connections of running writers are ended with
  ``pg_terminate_backend`` under load.
Afterwards every acknowledged event is stored exactly once at the sequence
it was acknowledged at, no append is half-written, nothing is stored twice,
every chain verifies, and an import is all or nothing.

Bounded by default (a few seconds each); ``JOURNAL_SOAK=1`` is the release
configuration (1,000 writer kills in all, 200 import kills, 400 rounds
of connection terminations). Each test prints its figures (``reliability:``).
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

import journal
from journal import events as ev
from journal.errors import StoreError
from journal.export import export_lines
from journal.postgres_pool import split_url
from tests.conftest import backend_url, new_tenant, require_postgres

SOAK = os.environ.get("JOURNAL_SOAK") == "1"
WRITER_KILLS = 500 if SOAK else 20  # per SQL backend
IMPORT_KILLS = 100 if SOAK else 6  # per SQL backend
TERMINATION_ROUNDS = 400 if SOAK else 30
WRITERS, EXECUTIONS = 3, 3
APPENDS_UNDER_TERMINATION = 2000 if SOAK else 120  # per writer
ROOT = Path(__file__).resolve().parent.parent
IMPORT_EXECUTIONS, IMPORT_STEPS = 120, 5


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Print a figure line past pytest's capture."""
    with capsys.disabled():
        print(f"\nreliability: {text}")


@dataclass
class Writer:
    """One writer slot: its process (restarted after each kill) and acks."""

    ack: Path
    process: subprocess.Popen[bytes] | None = None
    acks_at_start: int = 0
    errors: list[str] = field(default_factory=list)

    def start(self, url: str, tenant: str, ids: list[str], count: int) -> None:
        self.acks_at_start = self.acks()
        command = [sys.executable, "-m", "tests.reliability_writer", url, tenant]
        with self.ack.with_suffix(".err").open("ab") as errors:
            self.process = subprocess.Popen(
                [*command, str(self.ack), str(count), *ids],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )

    def acks(self) -> int:
        return len(self.ack.read_bytes().splitlines()) if self.ack.exists() else 0

    def appending(self) -> bool:
        """Started, and has acknowledged an append since: mid-run."""
        return self.acks() > self.acks_at_start

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)

    def finish(self) -> int:
        assert self.process is not None
        code = self.process.wait(timeout=300)
        if code != 0:
            self.errors.append(self.ack.with_suffix(".err").read_text()[-2000:])
        return code


def started_executions(url: str, tenant: str, count: int) -> list[str]:
    with journal.open(url, tenant=tenant) as journal_:
        handles = [journal_.create(flow="reliability") for _ in range(count)]
        for handle in handles:
            handle.start()
    return [handle.id for handle in handles]


def check_exactly_once(
    url: str, tenant: str, ids: list[str], writers: list[Writer]
) -> tuple[int, int]:
    """Every acknowledged append stored once where it was acknowledged, no
    append half-written or doubled, every chain verified. Returns (appends
    acknowledged, appends stored)."""
    acked: dict[str, tuple[str, int]] = {}
    for writer in writers:
        for line in writer.ack.read_text().splitlines():
            execution_id, name, told = line.split()
            assert name not in acked
            acked[name] = (execution_id, int(told))
    stored: dict[str, tuple[str, int]] = {}
    with journal.open(url, tenant=tenant) as journal_:
        for execution_id in ids:
            journal_.verify(execution_id)
            events = journal_.history(execution_id).events
            pairs = itertools.pairwise(events)
            for seq, (first, second) in enumerate(pairs, start=2):
                if isinstance(first, ev.StepStarted):
                    assert isinstance(second, ev.StepCompleted)  # never half
                    assert second.step_id == first.step_id
                    assert first.name not in stored  # never twice
                    stored[first.name or ""] = (execution_id, seq)
    for name, place in acked.items():
        assert stored.get(name) == place, name  # every ack, where it was told
    return len(acked), len(stored)


@pytest.fixture
def writers(tmp_path: Path) -> Iterator[list[Writer]]:
    slots = [Writer(tmp_path / f"acks{number}") for number in range(WRITERS)]
    yield slots
    for slot in slots:
        if slot.process is not None and slot.process.poll() is None:
            slot.kill()


@pytest.mark.slow
def test_writers_killed_mid_append_leave_every_acknowledged_event_once(
    sql_backend: str,
    tmp_path: Path,
    writers: list[Writer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, tenant = backend_url(sql_backend, tmp_path), new_tenant()
    ids = started_executions(url, tenant, EXECUTIONS)
    for writer in writers:
        writer.start(url, tenant, ids, 0)
    rng = random.Random(13)
    kills, deadline = 0, time.monotonic() + (3600 if SOAK else 240)
    while kills < WRITER_KILLS:
        assert time.monotonic() < deadline, f"only {kills} kills"
        ready = [w for w in writers if w.appending()]
        if not ready:
            time.sleep(0.01)
            continue
        victim = rng.choice(ready)
        time.sleep(rng.uniform(0, 0.03))  # land anywhere in an append
        victim.kill()
        kills += 1
        victim.start(url, tenant, ids, 0)
    for writer in writers:
        writer.kill()
    acked, stored = check_exactly_once(url, tenant, ids, writers)
    report(
        capsys,
        f"{sql_backend}: {kills} writer kills (SIGKILL mid-append), {WRITERS} "
        f"processes x {EXECUTIONS} executions; {acked} appends acknowledged, "
        f"{stored} stored ({stored - acked} stored before their writer could "
        "acknowledge), 0 lost, 0 doubled, 0 half-written, every chain verified",
    )


def export_file(path: Path, tenant: str) -> None:
    """IMPORT_EXECUTIONS executions of this tenant, as one export file."""
    with journal.open("memory://", tenant=tenant) as journal_, path.open("wb") as out:
        for _ in range(IMPORT_EXECUTIONS):
            handle = journal_.create(flow="imported")
            handle.start()
            for number in range(IMPORT_STEPS):
                handle.complete_step(handle.start_step(f"s{number}", "ToolNode"))
            handle.complete()
            out.writelines(export_lines(journal_, handle.id))


def imported_count(url: str, tenant: str) -> int:
    """Executions of `tenant` stored (chains verified); 0 if no journal."""
    try:
        journal_ = journal.open(url, tenant=tenant, create=False)
    except StoreError:
        return 0  # the killed import created no journal tables
    with journal_:
        summaries = journal_.list()
        for summary in summaries:
            journal_.verify(summary.execution_id)
    return len(summaries)


def run_import(url: str, tenant: str, path: Path) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).parent / "journal"
    return subprocess.Popen(
        [str(script), "--db", url, "--tenant", tenant, "import", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_an_import_killed_midway_stores_all_or_nothing(
    sql_backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(7)
    outcomes = {0: 0, IMPORT_EXECUTIONS: 0}
    durations = []
    for round_ in range(IMPORT_KILLS + 1):
        tenant = new_tenant()
        path = tmp_path / f"export{round_}.jsonl"
        export_file(path, tenant)
        base = tmp_path / f"round{round_}"
        base.mkdir()
        url = backend_url(sql_backend, base)
        started = time.monotonic()
        process = run_import(url, tenant, path)
        if round_ == 0:  # the first runs whole: how long an import takes
            assert process.wait(timeout=300) == 0
            durations.append(time.monotonic() - started)
            assert imported_count(url, tenant) == IMPORT_EXECUTIONS
            continue
        time.sleep(rng.uniform(0.5, 1.2) * durations[0])
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        count = imported_count(url, tenant)
        assert count in outcomes, f"a killed import left {count} executions"
        outcomes[count] += 1
    report(
        capsys,
        f"{sql_backend}: {IMPORT_KILLS} imports of {IMPORT_EXECUTIONS} executions "
        f"killed midway (one import takes {durations[0]:.2f} s): "
        f"{outcomes[0]} stored nothing, {outcomes[IMPORT_EXECUTIONS]} stored "
        "everything, 0 partial, every chain verified",
    )


def terminate(application_name: str) -> int:
    with psycopg.connect(split_url(require_postgres())[0], autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    return int(ended[0]) if ended else 0


@pytest.mark.slow
@pytest.mark.postgres
def test_connections_terminated_under_load_lose_and_double_nothing(
    writers: list[Writer], capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"jt_load_{secrets.token_hex(4)}"
    url = f"{require_postgres()}&application_name={name}&retry_attempts=8"
    tenant = new_tenant()
    ids = started_executions(url, tenant, EXECUTIONS)
    for writer in writers:
        writer.start(url, tenant, ids, APPENDS_UNDER_TERMINATION)
    rng = random.Random(5)
    rounds = dropped = 0
    while any(w.process and w.process.poll() is None for w in writers):
        time.sleep(rng.uniform(0.02, 0.15))
        if rounds < TERMINATION_ROUNDS:
            dropped += terminate(name)
            rounds += 1
    assert [w.finish() for w in writers] == [0] * WRITERS, writers[0].errors
    acked, stored = check_exactly_once(url, tenant, ids, writers)
    assert acked == stored == WRITERS * APPENDS_UNDER_TERMINATION
    report(
        capsys,
        f"postgres: {dropped} connections terminated in {rounds} rounds under "
        f"load, {WRITERS} processes x {EXECUTIONS} executions; {acked} appends "
        f"acknowledged, {stored} stored, 0 writer failures, 0 lost, 0 doubled",
    )
