"""One store contract, run unchanged against memory, SQLite and PostgreSQL.

Every test gets a fresh store (PostgreSQL: the shared test database, so each
test uses fresh execution ids and a tenant of its own).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest

import journal
from journal import events as ev
from journal import schema
from journal.chain import genesis_link, verify_links
from journal.errors import (
    ConflictError,
    EventDecodeError,
    ExecutionNotFoundError,
    InvalidTransitionError,
    StoreError,
)
from journal.fold import begin, fold
from journal.ids import TenantId, new_execution_id
from journal.keys import Keyring, SigningKey, generate_key
from journal.model import ErrorCategory, ExecutionError, ExecutionState, WaitReason
from journal.store import History, ListFilter, Summary
from journal.urls import open_store
from tests.conftest import OpenJournal, isolated_url, new_tenant

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def recorded(journal_: journal.Journal) -> journal.ExecutionHandle:
    """An execution with a few steps, still running."""
    handle = journal.ExecutionHandle.create(
        journal_, flow="contract", input={"order": 42}
    )
    handle.start()
    first = handle.start_step("fetch", "ToolNode", input={"id": 1})
    handle.complete_step(first, {"total": 10})
    second = handle.start_step("decide", "LlmNode")
    handle.fail_step(
        second, ExecutionError(category=ErrorCategory.TIMEOUT, message="slow")
    )
    return handle


def create_at(
    journal_: journal.Journal, at: datetime, *, flow: str | None = None
) -> journal.ExecutionHandle:
    """Create an execution whose creation time is `at` (for listing tests)."""
    created = ev.ExecutionCreated(at=at, tenant_id=journal_.tenant_id, flow=flow)
    state = begin(new_execution_id(), created)
    journal_.append(0, state, [created])
    return journal.ExecutionHandle(journal_, state)


# --- append, load, get -------------------------------------------------------


def test_an_appended_execution_reads_back_as_it_was_recorded(
    journal_: journal.Journal,
) -> None:
    handle = recorded(journal_)
    assert journal_.get(handle.id) == handle.state
    history = journal_.history(handle.id)
    assert fold(handle.id, history.events) == handle.state
    assert [row.seq for row in history.rows] == list(range(1, 7))
    summary = journal_.summary(handle.id)
    assert summary.state == "Running"
    assert summary.flow == "contract"
    assert summary.step_count == 2
    assert summary.failed_steps == 1
    assert summary.head_seq == 6
    assert (summary.head_seq, summary.head_hash) == journal_.verify(handle.id)


def test_get_at_a_sequence_number_gives_the_state_after_that_event(
    journal_: journal.Journal,
) -> None:
    handle = recorded(journal_)
    events = journal_.history(handle.id).events
    for n in range(1, len(events) + 1):
        assert journal_.get(handle.id, at=n) == fold(handle.id, events[:n])
    with pytest.raises(InvalidTransitionError):
        journal_.get(handle.id, at=len(events) + 1)


def test_a_new_connection_sees_what_another_appended(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    handle = recorded(journal_)
    handle.complete_step(handle.start_step("late"), "x")
    other = open_journal()
    assert other.get(handle.id) == handle.state


def test_an_unknown_execution_is_not_found(journal_: journal.Journal) -> None:
    missing = new_execution_id()
    for read in (journal_.summary, journal_.get, journal_.history, journal_.verify):
        with pytest.raises(ExecutionNotFoundError, match=missing):
            read(missing)


def test_a_terminal_execution_is_indexed_with_its_output_and_end(
    journal_: journal.Journal,
) -> None:
    handle = journal_.create()
    handle.start()
    handle.complete({"answer": 42})
    summary = journal_.summary(handle.id)
    assert summary.state == "Completed"
    assert summary.output is not None
    assert msgspec.json.decode(summary.output) == {"answer": 42}
    assert summary.ended_at == handle.state.ended_at
    assert summary.duration_ms == handle.state.duration_ms


# --- optimistic concurrency -------------------------------------------------


def test_a_stale_writer_gets_conflict_and_nothing_of_it_is_stored(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    first = recorded(journal_)
    second = open_journal().handle(first.id)
    winner = first.start_step("winner")
    head = journal_.verify(first.id)
    with pytest.raises(ConflictError):
        second.start_step("loser")
    assert journal_.verify(first.id) == head
    names = [s.name for s in journal_.get(first.id).steps.values()]
    assert "loser" not in names
    assert winner in journal_.get(first.id).steps
    # The loser's handle reloaded: a retry now succeeds, after the winner.
    assert second.state == journal_.get(first.id)
    retried = second.start_step("loser")
    assert journal_.get(first.id).step_order[-2:] == [winner, retried]


def test_creating_an_execution_id_that_exists_is_a_conflict(
    journal_: journal.Journal,
) -> None:
    handle = recorded(journal_)
    head = journal_.verify(handle.id)
    with pytest.raises(ConflictError):
        journal_.create(execution_id=handle.id)
    assert journal_.verify(handle.id) == head


def test_a_refused_command_appends_nothing(journal_: journal.Journal) -> None:
    handle = recorded(journal_)
    head = journal_.verify(handle.id)
    with pytest.raises(InvalidTransitionError):
        handle.resume()
    with pytest.raises(InvalidTransitionError):
        handle.start_planning()
    assert journal_.verify(handle.id) == head
    assert journal_.get(handle.id) == handle.state


# --- tenants ------------------------------------------------------------------


def test_another_tenants_execution_is_not_found(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    handle = recorded(journal_)
    intruder = open_journal(new_tenant())
    for read in (
        intruder.summary,
        intruder.get,
        intruder.history,
        intruder.verify,
        intruder.events,
        intruder.handle,
    ):
        with pytest.raises(ExecutionNotFoundError) as caught:
            read(handle.id)
        assert intruder.tenant_id in str(caught.value)
    assert intruder.list() == []
    assert intruder.list(ListFilter(flow="contract")) == []


def test_appending_to_another_tenants_execution_is_not_found_and_stores_nothing(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    handle = recorded(journal_)
    head = journal_.verify(handle.id)
    intruder = open_journal(new_tenant())
    # Even knowing the exact state and head, the other tenant cannot append.
    forged = msgspec.structs.replace(handle.state, tenant_id=intruder.tenant_id)
    with pytest.raises(ExecutionNotFoundError):
        journal.ExecutionHandle(intruder, forged).cancel("not yours")
    with pytest.raises(ExecutionNotFoundError):
        intruder.store.append(
            Summary(execution_id=handle.id, tenant_id=intruder.tenant_id),
            head[0],
            [b'{"at":"2024-01-01T00:00:00Z","type":"ExecutionCancelled"}'],
        )
    assert journal_.verify(handle.id) == head
    assert journal_.get(handle.id) == handle.state


def test_snapshots_and_rows_are_scoped_to_the_tenant(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    handle = recorded(journal_)
    journal_.save_snapshot(handle.state)
    intruder = open_journal(new_tenant())
    assert intruder.store.load_rows(handle.id, intruder.tenant_id) == []
    assert intruder.store.load_snapshot(handle.id, intruder.tenant_id) is None
    assert intruder.store.get_summary(handle.id, intruder.tenant_id) is None
    assert journal_.store.load_snapshot(handle.id, journal_.tenant_id) is not None


# --- listing --------------------------------------------------------------------


def test_listing_filters_by_state_flow_and_time_newest_first(
    journal_: journal.Journal, open_journal: OpenJournal
) -> None:
    hours = [create_at(journal_, T0 + timedelta(hours=h), flow="a") for h in range(4)]
    other_flow = create_at(journal_, T0 + timedelta(hours=4), flow="b")
    hours[1].start()
    hours[1].wait(WaitReason.APPROVAL)
    hours[2].start()
    hours[2].wait(WaitReason.RATE_LIMIT)
    hours[3].start()
    open_journal(new_tenant()).create(flow="a")  # another tenant's: never listed

    def ids(where: ListFilter) -> list[str]:
        return [s.execution_id for s in journal_.list(where)]

    newest_first = [other_flow.id, *(h.id for h in reversed(hours))]
    assert ids(ListFilter()) == newest_first
    assert ids(ListFilter(limit=2)) == newest_first[:2]
    assert ids(ListFilter(flow="a")) == newest_first[1:]
    assert ids(ListFilter(state="Waiting")) == [hours[2].id, hours[1].id]
    assert ids(ListFilter(state="Waiting(approval)")) == [hours[1].id]
    assert ids(ListFilter(state="Running")) == [hours[3].id]
    assert ids(ListFilter(state="Created", flow="a")) == [hours[0].id]
    assert ids(ListFilter(state="Wait")) == []
    since, until = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    assert ids(ListFilter(since=since, until=until)) == [hours[2].id, hours[1].id]
    assert ids(ListFilter(since=since, flow="b")) == [other_flow.id]
    assert [s.state for s in journal_.list(ListFilter(flow="a"))] == [
        "Running",
        "Waiting(rate_limit)",
        "Waiting(approval)",
        "Created",
    ]


def test_listing_by_time_does_not_depend_on_the_time_zone_it_is_given_in(
    journal_: journal.Journal,
) -> None:
    handles = [create_at(journal_, T0 + timedelta(hours=h)) for h in range(3)]
    plus_two = timezone(timedelta(hours=2))
    since = (T0 + timedelta(hours=1)).astimezone(plus_two)
    until = (T0 + timedelta(hours=2)).astimezone(plus_two)
    found = journal_.list(ListFilter(since=since, until=until))
    assert [s.execution_id for s in found] == [handles[1].id]


# --- snapshots --------------------------------------------------------------------


def test_get_from_a_snapshot_equals_the_full_fold(open_journal: OpenJournal) -> None:
    journal_ = open_journal(snapshot_every=5)
    handle = recorded(journal_)
    for n in range(6):
        handle.complete_step(handle.start_step(f"s{n}"), n)
    snapshot = journal_.store.load_snapshot(handle.id, journal_.tenant_id)
    assert snapshot is not None
    assert snapshot[0] < handle.state.version
    full = fold(handle.id, journal_.history(handle.id).events)
    assert journal_.get(handle.id) == full == handle.state
    for n in (4, 5, 6, 11, 15):
        at_n = journal_.get(handle.id, at=n)
        assert at_n == fold(handle.id, journal_.history(handle.id).events[:n])


def test_get_ignores_a_snapshot_that_is_not_this_chains(
    journal_: journal.Journal,
) -> None:
    handle = recorded(journal_)
    forged = msgspec.structs.replace(
        handle.state, state=ExecutionState.COMPLETED, output=msgspec.Raw(b'"forged"')
    )
    version = handle.state.version
    # A forged state under a link that is not the stored event's: ignored.
    journal_.store.save_snapshot(
        handle.id,
        journal_.tenant_id,
        version,
        b"\x00" * 32 + msgspec.json.encode(forged),
    )
    assert journal_.get(handle.id) == handle.state
    # Bytes that do not decode at all: ignored too.
    journal_.store.save_snapshot(
        handle.id, journal_.tenant_id, version + 1, b"\x00not json"
    )
    assert journal_.get(handle.id) == handle.state
    # The real snapshot (with the real link) is used, and gives the same state.
    journal_.save_snapshot(handle.state)
    snapshot = journal_.store.load_snapshot(handle.id, journal_.tenant_id)
    assert snapshot is not None
    assert snapshot[0] == version
    assert snapshot[1][:32] == journal_.verify(handle.id)[1]
    assert journal_.get(handle.id) == handle.state


def test_a_tampered_snapshot_is_never_used_by_verify(journal_: journal.Journal) -> None:
    handle = recorded(journal_)
    head = journal_.verify(handle.id)
    forged = msgspec.structs.replace(
        handle.state, state=ExecutionState.COMPLETED, output=msgspec.Raw(b'"forged"')
    )
    journal_.save_snapshot(forged)
    journal_.store.save_snapshot(handle.id, journal_.tenant_id, 3, b"\x00not json")
    assert journal_.verify(handle.id) == head
    history = journal_.history(handle.id)
    assert fold(handle.id, history.events) == handle.state
    assert fold(handle.id, history.events).state is ExecutionState.RUNNING


# --- schemas ------------------------------------------------------------------------


def test_schema_documents_are_stored_once_per_hash(journal_: journal.Journal) -> None:
    document = {"flow": f"f{secrets.token_hex(8)}", "steps": []}
    schema_hash = schema.schema_hash(document)
    assert journal_.get_schema(schema_hash) is None
    journal_.put_schema(schema_hash, schema.canonical(document))
    journal_.put_schema(schema_hash, schema.canonical(document))
    assert journal_.get_schema(schema_hash) == schema.canonical(document)
    # Schemas are shared across tenants: they describe code, not data.
    assert journal_.with_tenant(new_tenant()).get_schema(schema_hash) == (
        schema.canonical(document)
    )


def test_a_schema_document_that_does_not_hash_to_its_key_is_refused(
    journal_: journal.Journal,
) -> None:
    schema_hash = schema.schema_hash({"flow": "honest"})
    with pytest.raises(EventDecodeError, match="does not hash to"):
        journal_.put_schema(schema_hash, b'{"flow":"forged"}')
    assert journal_.get_schema(schema_hash) is None


# --- import -------------------------------------------------------------------------


def histories_of(source: journal.Journal, *ids: str) -> list[History]:
    result = []
    for execution_id in ids:
        verified = source.history(execution_id)
        result.append(History(verified.summary, verified.rows))
    return result


def test_import_writes_whole_histories_that_verify_and_fold_the_same(
    journal_: journal.Journal,
) -> None:
    with journal.open("memory://", tenant=journal_.tenant_id) as source:
        one, two = recorded(source), recorded(source)
        two.complete_step(two.start_step("more"), 1)
        written = journal_.store.import_histories(histories_of(source, one.id, two.id))
        assert sorted(written) == sorted([one.id, two.id])
        for handle in (one, two):
            assert journal_.verify(handle.id) == source.verify(handle.id)
            assert journal_.get(handle.id) == handle.state
            assert journal_.summary(handle.id) == source.summary(handle.id)


def test_importing_an_identical_history_again_changes_nothing(
    journal_: journal.Journal,
) -> None:
    with journal.open("memory://", tenant=journal_.tenant_id) as source:
        handle = recorded(source)
        histories = histories_of(source, handle.id)
        assert journal_.store.import_histories(histories) == [handle.id]
        assert journal_.store.import_histories(histories) == []
        assert len(journal_.history(handle.id).rows) == 6


def test_import_is_all_or_nothing_when_one_history_differs(
    journal_: journal.Journal,
) -> None:
    with journal.open("memory://", tenant=journal_.tenant_id) as source:
        existing, fresh = recorded(source), recorded(source)
        journal_.store.import_histories(histories_of(source, existing.id))
        existing.cancel("diverged after the first import")
        batch = histories_of(source, fresh.id, existing.id)
        with pytest.raises(ConflictError, match=existing.id):
            journal_.store.import_histories(batch)
        with pytest.raises(ExecutionNotFoundError):
            journal_.summary(fresh.id)
        assert len(journal_.history(existing.id).rows) == 6


def test_importing_a_history_under_an_id_another_tenant_holds_is_a_conflict(
    journal_: journal.Journal,
) -> None:
    handle = recorded(journal_)
    other = TenantId(new_tenant())
    with journal.open("memory://", tenant=other) as source:
        imposter = recorded(source)
        verified = source.history(imposter.id)
        forged = History(
            Summary(execution_id=handle.id, tenant_id=other),
            verified.rows,
        )
        with pytest.raises(ConflictError):
            journal_.store.import_histories([forged])
    assert journal_.get(handle.id) == handle.state


# --- long executions ------------------------------------------------------------------


@pytest.mark.slow
def test_a_ten_thousand_event_execution_folds_back_to_the_recorded_state(
    journal_: journal.Journal,
) -> None:
    handle = journal_.create(flow="long", input=list(range(10)))
    handle.start()
    batch: list[ev.Event] = []
    for n in range(4999):
        step_id = journal.ids.new_step_id()
        now = T0 + timedelta(milliseconds=n)
        batch += [
            ev.StepStarted(at=now, step_id=step_id, step_type="ToolNode", name=f"s{n}"),
            ev.StepCompleted(at=now, step_id=step_id, output=msgspec.Raw(b"%d" % n)),
        ]
        if len(batch) >= 500:
            handle.record(*batch)
            batch = []
    handle.record(*batch)
    assert handle.state.version == 10_000
    assert journal_.verify(handle.id)[0] == 10_000
    assert journal_.get(handle.id) == handle.state
    history = journal_.history(handle.id)
    assert len(history.rows) == 10_000
    assert fold(handle.id, history.events) == handle.state
    assert len(handle.state.step_order) == 4999


# --- opening stores ----------------------------------------------------------------


def test_a_read_only_open_of_a_missing_sqlite_file_fails_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.db"
    for url in (f"sqlite:///{missing}", str(missing)):
        with pytest.raises(StoreError, match=r"missing\.db"):
            journal.open(url, create=False)
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_open_of_a_file_that_is_not_a_journal_fails(
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    with pytest.raises(StoreError):
        journal.open(f"sqlite:///{other}", create=False)


def test_an_unsupported_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="unsupported"):
        journal.open("mysql://localhost/db")


def test_a_keyed_store_signs_the_head_and_keeps_the_links_keyless(
    backend: str, tmp_path: Path
) -> None:
    key = SigningKey.parse(generate_key())
    store = open_store(isolated_url(backend, tmp_path), keyring=Keyring(key))
    with journal.Journal(store, new_tenant()) as keyed:
        handle = recorded(keyed)
        summary = keyed.summary(handle.id)
        assert (summary.alg, summary.key_id) == ("sha256", key.key_id)
        assert summary.head_mac == key.head_mac(summary.head_record())
        assert keyed.verify(handle.id)[0] == 6
        assert summary.genesis is not None
        links = [(r.seq, r.payload, r.hash) for r in keyed.history(handle.id).rows]
        # Anyone recomputes the links without the key.
        assert verify_links(genesis_link(summary.genesis), handle.id, links) == (
            6,
            summary.head_hash,
        )
