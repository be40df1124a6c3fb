"""The one-call append on PostgreSQL (`journal.postgres_append`).

A writer that knows the head it follows appends in one autocommit call of
``journal_append``; the server checks that guess, and anything but a clean
match falls back to the transaction path, which raises the precise error.
These tests make the guess wrong in each way it can be, against the real
server, and check that nothing wrong is written and the errors are the ones
the transaction path gives.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import msgspec
import psycopg
import pytest

import journal
from journal import events as ev
from journal.errors import ConflictError, SigningKeyError
from journal.ids import new_step_id
from journal.keys import Keyring, SigningKey
from journal.urls import open_store
from tests.conftest import in_schema, isolated_url, new_tenant, server_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(tmp_path: Path) -> str:
    return isolated_url("postgres", tmp_path)


def has_append_call(journal_: journal.Journal) -> bool:
    """Whether the store found (or made) ``journal_append`` on open."""
    return bool(getattr(journal_.store, "_append_function", False))


def test_a_head_another_writer_moved_is_refused_as_stale_and_nothing_written(
    url: str,
) -> None:
    tenant = new_tenant()
    with (
        journal.open(url, tenant=tenant) as first,
        journal.open(url, tenant=tenant) as second,
    ):
        assert has_append_call(first)
        handle = first.create(flow="raced")
        handle.start()  # the first writer now remembers head 2
        other = second.handle(handle.id)
        other.start_step("theirs", "ToolNode")  # head 3, by the other writer

        with pytest.raises(ConflictError, match="expected head seq 2"):
            handle.start_step("ours", "ToolNode")  # its guess is stale

        assert first.verify(handle.id)[0] == 3
        steps = [s.name for s in first.get(handle.id).steps.values()]
        assert steps == ["theirs"]
        # Reloaded, the first writer carries on (and remembers the new head).
        again = first.handle(handle.id)
        again.start_step("ours", "ToolNode")
        again.start_step("and more", "ToolNode")
        assert first.verify(handle.id)[0] == 5


def test_an_unsigned_writer_is_refused_once_the_store_holds_signed_chains(
    url: str,
) -> None:
    """The writer's remembered head was unsigned when it was left; the store
    became signed since: the call must not let an unsigned write through."""
    tenant = new_tenant()
    key = SigningKey.parse(secrets.token_hex(32))
    unsigned = journal.Journal(open_store(url, keyring=Keyring()), tenant)
    signer = journal.Journal(open_store(url, keyring=Keyring(key)), tenant)
    try:
        handle = unsigned.create(flow="unsigned")
        handle.start()  # remembered, unsigned
        signer.create(flow="signed").start()  # the store is signed now

        with pytest.raises(SigningKeyError, match="refusing an unsigned write"):
            handle.start_step("late", "ToolNode")

        assert unsigned.verify(handle.id)[0] == 2
    finally:
        unsigned.close()
        signer.close()


def test_a_store_made_before_the_function_gets_it_or_appends_without_it(
    url: str,
) -> None:
    """The owner's open adds ``journal_append``; a writer who may not create
    functions appends through transactions, with the same result."""
    schema = url.rpartition("%3D")[2]
    journal.open(url).close()
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f"DROP FUNCTION {schema}.journal_append")
        role = f"jt_nofunc_{secrets.token_hex(4)}"
        for statement in (
            f"CREATE ROLE {role} LOGIN",
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        ):
            admin.execute(statement)
        try:
            writer_url = in_schema(
                server_url().replace("postgres@", f"{role}@", 1), schema
            )
            with journal.open(writer_url, tenant=new_tenant()) as writer:
                assert not has_append_call(writer)
                handle = writer.create(flow="old store")
                handle.start()
                handle.start_step("s1", "ToolNode")
                assert writer.verify(handle.id)[0] == 3
        finally:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
    with journal.open(url, tenant=new_tenant()) as owner:
        assert has_append_call(owner)  # the owner's open added it
        handle = owner.create(flow="new again")
        handle.start()
        handle.complete("done")
        assert owner.verify(handle.id)[0] == 3


def test_a_batch_of_events_in_one_call_is_stored_as_a_transaction_stores_it(
    url: str,
) -> None:
    """One event travels as scalars, the rest as arrays numbered from the
    head: the rows must be those the transaction path stores for the same
    events (payload bytes, links, sequence numbers), and verify."""
    tenant = new_tenant()
    now = journal.utc_now()
    events: list[ev.Event] = []
    for index in range(5):
        step_id = new_step_id()
        events.append(
            ev.StepStarted(at=now, step_id=step_id, step_type="ToolNode",
                           name="fetch", callable_id="t.fetch",
                           input=msgspec.Raw(b'{"i":%d}' % index))
        )  # fmt: skip
        events.append(
            ev.StepCompleted(at=now, step_id=step_id, output=msgspec.Raw(b"%d" % index))
        )
    with journal.open(url, tenant=tenant) as j:
        one_call = j.create(flow="batch")
        one_call.start()  # remembered: the next append is one call
        one_call.record(*events)
        by_transaction = j.create(flow="batch")
        by_transaction.start()
    # A fresh store knows no head: its append is the transaction path.
    with journal.open(url, tenant=tenant) as other:
        handle = other.handle(by_transaction.id)
        handle.record(*events)
        for execution_id in (one_call.id, by_transaction.id):
            assert other.verify(execution_id)[0] == 12
        rows = {
            execution_id: other.store.load_rows(execution_id, tenant)
            for execution_id in (one_call.id, by_transaction.id)
        }
    called, transacted = rows[one_call.id], rows[by_transaction.id]
    assert [r.seq for r in called] == list(range(1, 13))
    # Same events after the same kind of head: the same payloads from seq 3.
    assert [r.payload for r in called[2:]] == [r.payload for r in transacted[2:]]
