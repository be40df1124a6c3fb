"""Several OS processes append to the same execution at once.

Each writer holds the same head when a barrier releases them all, so the
first round is a guaranteed race: exactly one wins, the others get
`ConflictError`. Then each loops (reload, append, count conflicts, retry)
until it has stored its share. Afterwards every event a writer was told is
stored is there exactly once, at the sequence number it was told, and nothing
else is; the chain verifies.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import journal
from journal import events as ev
from journal.errors import ConflictError
from tests.conftest import backend_url, new_tenant

WRITERS = 4
APPENDS_EACH = 12
BARRIER_TIMEOUT_S = 120


def writer(
    url: str,
    tenant: str,
    execution_id: str,
    number: int,
    barrier: Any,
    results: Any,
) -> None:
    """One process: append APPENDS_EACH steps; report what it was told."""
    stored: list[tuple[str, int]] = []
    refused: list[str] = []
    try:
        with journal.open(url, tenant=tenant) as journal_:
            handle = journal_.handle(execution_id)
            barrier.wait(BARRIER_TIMEOUT_S)
            attempt = 0
            while len(stored) < APPENDS_EACH:
                attempt += 1
                name = f"writer{number}-attempt{attempt}"
                try:
                    step_id = handle.start_step(name, "ToolNode")
                except ConflictError:
                    refused.append(name)  # the handle has reloaded: retry
                    continue
                stored.append((step_id, handle.state.version))
        results.put((number, stored, refused, None))
    except BaseException as error:  # report, never hang the parent
        results.put((number, stored, refused, repr(error)))
        raise


@pytest.mark.slow
def test_concurrent_writers_never_both_win_a_sequence_number(
    sql_backend: str, tmp_path: Path
) -> None:
    url = backend_url(sql_backend, tmp_path)
    tenant = new_tenant()
    with journal.open(url, tenant=tenant) as journal_:
        handle = journal_.create(flow="race")
        handle.start()
        start_seq = handle.state.version

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS)
    results = context.Queue()
    processes = [
        context.Process(
            target=writer,
            args=(url, tenant, handle.id, number, barrier, results),
        )
        for number in range(WRITERS)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    assert [r[3] for r in reports] == [None] * WRITERS

    told_stored = {
        step_id: seq for _n, stored, _r, _e in reports for step_id, seq in stored
    }
    conflicts = sum(len(refused) for _n, _s, refused, _e in reports)
    assert len(told_stored) == WRITERS * APPENDS_EACH  # step ids never repeat

    # Everyone held the same head at the barrier: all but one lost round one.
    assert conflicts >= WRITERS - 1

    with journal.open(url, tenant=tenant) as journal_:
        head = journal_.verify(handle.id)
        history = journal_.history(handle.id)
        final = journal_.get(handle.id)
    assert head[0] == start_seq + WRITERS * APPENDS_EACH
    started = {
        row.seq: event.step_id
        for row, event in zip(history.rows, history.events, strict=True)
        if isinstance(event, ev.StepStarted)
    }
    # One winner per sequence number, and it is the writer told so.
    assert sorted(started) == list(range(start_seq + 1, head[0] + 1))
    assert {step_id: seq for seq, step_id in started.items()} == told_stored
    # Losers' steps were never stored.
    stored_names = {step.name for step in final.steps.values()}
    refused_names = {name for _n, _s, refused, _e in reports for name in refused}
    assert stored_names.isdisjoint(refused_names)
    assert len(final.step_order) == WRITERS * APPENDS_EACH
