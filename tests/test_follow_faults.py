"""Followers of the log whose PostgreSQL ``LISTEN`` connection is lost.

The listener's backend is ended with ``pg_terminate_backend`` (found in
``pg_stat_activity`` by the test's own ``application_name`` and its
``LISTEN`` statement) while the follower waits, and events are appended
while it reconnects. `follow_log`, ``journal follow`` and ``journal seal
--follow`` must reconnect, LISTEN again and catch up by reading: every
event exactly once, in position order. A server that stays away through
every retry ends the follower with `TransientStoreError`
(`tests.pg_proxy` plays the server going away).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import journal
from journal.errors import TransientStoreError
from journal.follow import Waiter, follow_log, waiter_for
from journal.ledger import KEY_FILE_ENV
from journal.log import LogEntry
from journal.store import Store
from journal.urls import open_store
from tests.conftest import new_tenant, own_postgres_url, require_postgres
from tests.followers import (
    TIMEOUT,
    Follower,
    terminate_listener,
    wait_for_listener,
)
from tests.ledger_checks import check_sealed, ledger_store, wait_until_sealed
from tests.pg_proxy import FaultProxy
from tests.test_pg_faults import terminate, through, with_params

pytestmark = pytest.mark.postgres

Event = tuple[str, int]  # (execution id, seq)


def own_url(name: str, **params: object) -> str:
    """A schema of this test's own (positions start at 1), as `name`."""
    return with_params(own_postgres_url(), application_name=name, **params)


def record(url: str, tenant: str, steps: int = 1) -> list[Event]:
    """A new execution with `steps` steps; its events."""
    with journal.open(url, tenant=tenant) as j:
        handle = j.create(flow="follow.faults")
        handle.start()
        for index in range(steps):
            step = handle.start_step("fetch", "Tool", input={"i": index})
            handle.complete_step(step, {"ok": index})
        rows = j.store.load_rows(str(handle.id), tenant)
    return [(str(handle.id), seq) for seq in range(1, len(rows) + 1)]


def wait_until_reconnected(waiter: Waiter) -> None:
    """Wait until `waiter` has replaced its connection once more (rounds
    in other schemas of the database notify the same channel, so a wait
    may end on their notification before it finds its connection lost)."""
    before, deadline = waiter.reconnects, time.monotonic() + TIMEOUT
    while waiter.reconnects == before:
        assert time.monotonic() < deadline, "it never reconnected"
        waiter.wait(1.0)


class ApiFollower:
    """`follow_log` in a thread: what it yields, and what ended it."""

    def __init__(self, store: Store, tenant: str | None = None) -> None:
        self.waiter: Waiter = waiter_for(store)
        self.entries: queue.Queue[LogEntry] = queue.Queue()
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._store, self._tenant = store, tenant
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for entry in follow_log(
                self._store, tenant_id=self._tenant, waiter=self.waiter
            ):
                self.entries.put(entry)
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended.set()

    def take(self, count: int) -> list[LogEntry]:
        taken = []
        for _ in range(count):
            try:
                taken.append(self.entries.get(timeout=TIMEOUT))
            except queue.Empty:
                raise AssertionError(f"the follower ended: {self.error!r}") from None
        return taken

    def stop(self) -> None:
        self.waiter.close()
        self.thread.join(timeout=TIMEOUT)


@pytest.fixture
def follower_of() -> Iterator[list[ApiFollower]]:
    started: list[ApiFollower] = []
    yield started
    for follower in started:
        follower.stop()


def test_follow_log_reconnects_after_its_listen_backend_is_terminated(
    follower_of: list[ApiFollower],
) -> None:
    name = f"jt_follow_{time.monotonic_ns() % 10**8}"
    url = own_url(name)
    tenant = new_tenant()
    store = open_store(url)
    follower = ApiFollower(store, tenant)
    follower_of.append(follower)
    expected = record(url, tenant)
    got = follower.take(len(expected))
    for _ in range(3):
        ended = terminate_listener(name)
        # Appended while the follower finds its connection gone and reopens it.
        more = record(url, tenant, steps=2)
        expected += more
        got += follower.take(len(more))
        wait_for_listener(name, not_pid=ended)
    # One more after the last reconnect: it comes next, nothing doubled before.
    last = record(url, tenant)
    expected += last
    got += follower.take(len(last))
    assert [(entry.execution_id, entry.seq) for entry in got] == expected
    assert [entry.position for entry in got] == list(range(1, len(expected) + 1))
    assert follower.entries.empty()
    assert follower.waiter.reconnects == 3
    assert follower.error is None
    store.close()


def test_journal_follow_reconnects_after_its_listen_backend_is_terminated() -> None:
    name = f"jt_follow_cli_{time.monotonic_ns() % 10**8}"
    url = own_url(name)
    tenant = new_tenant()
    expected = record(url, tenant)
    follower = Follower("follow", "--db", url, "--all-tenants")
    try:
        lines = follower.take(len(expected))
        for _ in range(2):
            ended = terminate_listener(name)
            more = record(url, tenant, steps=2)
            expected += more
            lines += follower.take(len(more))
            wait_for_listener(name, not_pid=ended)
        last = record(url, tenant)
        expected += last
        lines += follower.take(len(last))
        assert [(line["execution_id"], line["seq"]) for line in lines] == expected
        assert [line["position"] for line in lines] == list(range(1, len(expected) + 1))
        assert follower.interrupt() == 130
        assert follower.lines.empty()
        stderr = follower.stderr()
        assert stderr.endswith("journal: error: aborted\n"), stderr
        assert "Traceback" not in stderr
    finally:
        follower.kill()


def test_journal_seal_follow_reconnects_after_its_listen_backend_is_terminated(
    tmp_path: Path,
) -> None:
    name = f"jt_seal_{time.monotonic_ns() % 10**8}"
    url = own_url(name)
    store, signer, key_file = ledger_store(url, tmp_path, "ledger.reconnect")
    tenant = new_tenant()
    ids = [record(url, tenant)[0][0]]
    sealer = Follower("seal", "--follow", "--db", url, **{KEY_FILE_ENV: str(key_file)})
    try:
        wait_until_sealed(store, tenant, ids, sealer.process, TIMEOUT)
        for _ in range(2):
            ended = terminate_listener(name)
            ids.append(record(url, tenant, steps=2)[0][0])
            wait_until_sealed(store, tenant, ids, sealer.process, TIMEOUT)
            wait_for_listener(name, not_pid=ended)
        assert sealer.interrupt() == 130
    finally:
        sealer.kill()
    check_sealed(store, tenant, ids, signer)
    store.close()


def test_a_follower_waits_out_a_server_that_is_away_for_a_moment(
    follower_of: list[ApiFollower],
) -> None:
    parts = urlsplit(require_postgres())
    proxy = FaultProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        direct = own_postgres_url()
        url = with_params(through(proxy, direct), retry_attempts=12)
        tenant = new_tenant()
        store = open_store(url)
        follower = ApiFollower(store, tenant)
        follower_of.append(follower)
        expected = record(direct, tenant)
        got = follower.take(len(expected))
        proxy.pause()  # the server restarts: refused, then back
        threading.Timer(0.5, proxy.resume).start()
        expected += record(direct, tenant, steps=2)
        got += follower.take(len(expected) - len(got))
        listener = follower.waiter
        deadline = time.monotonic() + TIMEOUT
        while listener.reconnects == 0:
            assert time.monotonic() < deadline, follower.error
            time.sleep(0.05)
        expected += record(direct, tenant)
        got += follower.take(len(expected) - len(got))
        assert [(e.execution_id, e.seq) for e in got] == expected
        assert [e.position for e in got] == list(range(1, len(expected) + 1))
        follower.stop()
        assert follower.error is None
        store.close()
    finally:
        proxy.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_follower_whose_round_or_read_loses_its_connection_at_commit_carries_on(
    when: str, follower_of: list[ApiFollower]
) -> None:
    parts = urlsplit(require_postgres())
    proxy = FaultProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        direct = own_postgres_url()
        store = open_store(through(proxy, direct))  # only the follower's
        tenant = new_tenant()
        follower = ApiFollower(store, tenant)
        follower_of.append(follower)
        expected = record(direct, tenant)
        got = follower.take(len(expected))
        # The next COMMIT the follower sends (a round's, or a read's) is cut:
        # the outcome is unknown to it; the round or read is repeated.
        proxy.cut_next_commit(when)
        expected += record(direct, tenant, steps=2)
        got += follower.take(len(expected) - len(got))
        assert proxy.cuts == [f"{when} COMMIT"]
        expected += record(direct, tenant)
        got += follower.take(len(expected) - len(got))
        assert [(e.execution_id, e.seq) for e in got] == expected
        assert [e.position for e in got] == list(range(1, len(expected) + 1))
        follower.stop()
        assert follower.error is None
        store.close()
    finally:
        proxy.close()


def test_a_listener_whose_server_stays_away_gives_up_after_every_try() -> None:
    parts = urlsplit(require_postgres())
    proxy = FaultProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        url = with_params(through(proxy, require_postgres()), retry_attempts=2)
        store = open_store(url)
        waiter = waiter_for(store)
        proxy.pause()  # and never comes back
        with pytest.raises(TransientStoreError, match="gave up after 2 attempts"):
            wait_until_reconnected(waiter)
        waiter.close()
        store.close()
    finally:
        proxy.close()


def test_a_listener_lost_again_as_it_listens_tries_a_bounded_number_of_times() -> None:
    parts = urlsplit(require_postgres())
    proxy = FaultProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        store = open_store(through(proxy, require_postgres()))
        waiter = waiter_for(store)
        proxy.cut_next_listens(2)
        proxy.cut_all()  # the connection is lost; so are the next two at LISTEN
        wait_until_reconnected(waiter)
        assert waiter.reconnects == 1
        assert proxy.cuts == ["before LISTEN", "before LISTEN"]
        proxy.cut_next_listens(3)
        proxy.cut_all()
        with pytest.raises(TransientStoreError, match="failed on 3 new connections"):
            wait_until_reconnected(waiter)
        waiter.close()
        store.close()
    finally:
        proxy.close()


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "--debug"])
def test_a_pooled_connection_the_server_dropped_is_not_noise_on_stderr(
    debug: bool,
) -> None:
    """The pool discards a connection the server ended and the store goes on;
    the driver's log line about it shows only with ``--debug``."""
    name = f"jt_quiet_{time.monotonic_ns() % 10**8}"
    url = own_url(name)
    tenant = new_tenant()
    expected = record(url, tenant)
    flags = ["--debug"] if debug else []
    follower = Follower("follow", *flags, "--db", url, "--tenant", tenant)
    try:
        lines = follower.take(len(expected))
        wait_for_listener(name)
        assert terminate(name) >= 2  # its pooled connection and its LISTEN one
        more = record(url, tenant)
        expected += more
        lines += follower.take(len(more))
        assert [(line["execution_id"], line["seq"]) for line in lines] == expected
        assert follower.interrupt() == 130
        stderr = follower.stderr()
    finally:
        follower.kill()
    shown = "journal: debug: psycopg.pool: discarding closed connection"
    if debug:
        assert shown in stderr
    else:  # only the interrupt's own line
        assert stderr.split() == ["journal:", "error:", "aborted"], stderr
