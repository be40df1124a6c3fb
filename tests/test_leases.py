"""Leases: one holder per execution, fenced appends, a heartbeat during long
steps, and `journal.step_key()` for idempotent effects (every backend)."""

from __future__ import annotations

import threading
import time

import pytest

import journal
from journal import ExecutionState, Flow, StepState
from journal.errors import LeaseLostError
from journal.ids import new_execution_id
from tests.conftest import OpenJournal
from tests.flows_helpers import NO_RETRY


def wait_until(check: object, what: str, limit_s: float = 20.0) -> None:
    """Poll `check()` until true (a bounded wait for another thread, never a
    timed assertion: the limit only stops a hung test)."""
    deadline = time.monotonic() + limit_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


def test_a_live_lease_is_not_taken_and_a_stale_one_is_taken_with_a_new_token(
    journal_: journal.Journal,
) -> None:
    execution_id = new_execution_id()
    journal_.lease_ttl_s = 0  # the holder promises nothing beyond its beat

    first = journal_.acquire_lease(execution_id)
    refused = journal_.acquire_lease(execution_id)
    taken = journal_.acquire_lease(execution_id, stale_after_s=0)

    assert first is not None
    assert first.token == 1
    assert refused is None
    assert taken is not None
    assert taken.token == 2
    assert taken.owner != first.owner


def test_a_lease_within_its_holders_time_to_live_is_not_taken_even_at_zero(
    journal_: journal.Journal,
) -> None:
    execution_id = new_execution_id()
    journal_.lease_ttl_s = 60

    first = journal_.acquire_lease(execution_id)
    refused = journal_.acquire_lease(execution_id, stale_after_s=0)

    assert first is not None
    assert first.ttl_ms == 60_000
    assert refused is None


def test_an_append_under_a_lease_that_was_taken_over_is_refused(
    journal_: journal.Journal,
) -> None:
    execution_id = new_execution_id()
    journal_.lease_ttl_s = 0
    lease = journal_.acquire_lease(execution_id)
    handle = journal.ExecutionHandle.create(
        journal_, flow="f", execution_id=execution_id, lease=lease
    )
    handle.start()
    assert journal_.acquire_lease(execution_id, stale_after_s=0) is not None

    with pytest.raises(LeaseLostError, match="lease lost"):
        handle.start_step("late", "ToolNode")

    assert journal_.get(execution_id).version == 2
    assert LeaseLostError.exit_code == 11


def test_a_released_lease_keeps_its_token_so_the_next_holder_gets_a_higher_one(
    journal_: journal.Journal,
) -> None:
    execution_id = new_execution_id()
    first = journal_.acquire_lease(execution_id)
    assert first is not None
    journal_.store.release_lease(first)

    stored = journal_.store.get_lease(execution_id, journal_.tenant_id)
    second = journal_.acquire_lease(execution_id)

    assert stored is not None
    assert stored.owner is None
    assert stored.token == 1
    assert second is not None
    assert second.token == 2


def test_another_tenant_sees_no_lease_and_cannot_take_one(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    execution_id = new_execution_id()
    assert journal_.acquire_lease(execution_id) is not None
    other = open_journal(journal_.tenant_id + "_other")

    assert other.store.get_lease(execution_id, other.tenant_id) is None
    assert other.acquire_lease(execution_id, stale_after_s=0) is None


def test_of_two_takeovers_racing_for_one_stale_lease_exactly_one_wins(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    execution_id = new_execution_id()
    journal_.lease_ttl_s = 0
    assert journal_.acquire_lease(execution_id) is not None
    racers = [open_journal() for _ in range(4)]
    start = threading.Barrier(len(racers))
    won: list[object] = []

    def race(racer: journal.Journal) -> None:
        start.wait()
        # Stale after 0.5 s: the first winner's own heartbeat is fresh.
        won.append(racer.acquire_lease(execution_id, stale_after_s=0.5))

    time.sleep(0.5)
    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len([w for w in won if w is not None]) == 1


def test_a_run_holds_its_lease_and_the_heartbeat_renews_it_during_a_long_step(
    journal_: journal.Journal,
) -> None:
    flow = Flow("leased")
    beats: list[int] = []

    @flow.step
    def long_step() -> int:
        execution_id = journal.step_key().split(":")[0]
        lease = journal_.store.get_lease(execution_id, journal_.tenant_id)
        assert lease is not None
        beats.append(lease.heartbeat_ms)

        def renewed() -> bool:
            now = journal_.store.get_lease(execution_id, journal_.tenant_id)
            return now is not None and now.heartbeat_ms > beats[0]

        wait_until(renewed, "a heartbeat during the step")
        return 1

    @flow.entry
    def main() -> int:
        return long_step()

    journal_.heartbeat_every_s = 0.02
    execution = flow.run(journal_)

    lease = journal_.store.get_lease(execution.id, journal_.tenant_id)
    assert execution.state is ExecutionState.COMPLETED
    assert lease is not None
    assert lease.owner is None  # released at the end


def test_a_run_whose_lease_is_taken_over_mid_step_stops_with_lease_lost(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    flow = Flow("taken")
    thief = open_journal()
    journal_.lease_ttl_s = 0  # so that the thief may take it at once

    @flow.step(retry=NO_RETRY)
    def effect() -> int:
        execution_id = journal.step_key().split(":")[0]
        assert thief.acquire_lease(execution_id, stale_after_s=0) is not None
        return 1

    @flow.entry
    def main() -> int:
        return effect()

    with pytest.raises(LeaseLostError):
        flow.run(journal_)

    (summary,) = journal_.list()
    execution = journal_.get(summary.execution_id)
    assert execution.state is ExecutionState.RUNNING
    assert execution.ordered_steps()[0].state is StepState.RUNNING


def test_step_key_is_stable_per_call_across_retries_and_differs_between_calls(
    journal_: journal.Journal,
) -> None:
    flow = Flow("keys")
    keys: list[tuple[str, str]] = []
    failures = iter([True, False, False, False])

    @flow.step
    def inner() -> None:
        keys.append(("inner", journal.step_key()))

    @flow.step(retry=journal.RetryPolicy.retrying(max_retries=2))
    def outer(n: int) -> int:
        keys.append(("outer", journal.step_key()))
        inner()
        if next(failures):
            raise ConnectionError("flaky")
        return n

    @flow.entry
    def main() -> int:
        return outer(1) + outer(2)

    execution = flow.run(journal_)

    assert execution.state is ExecutionState.COMPLETED
    assert [k for _, k in keys] == [
        f"{execution.id}:0",
        f"{execution.id}:0.0",
        f"{execution.id}:0",  # the retry of the same call
        f"{execution.id}:0.1",
        f"{execution.id}:1",
        f"{execution.id}:1.0",
    ]


def test_step_key_outside_a_step_is_refused() -> None:
    with pytest.raises(RuntimeError, match="inside a step"):
        journal.step_key()
