"""Append-only in the database: the triggers refuse UPDATE and DELETE of
events and any index-row change but an append's; a PostgreSQL role with
no DDL rights writes through the journal."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import journal
from journal.keys import Keyring
from journal.urls import open_store
from tests.conftest import in_schema, isolated_url, new_tenant, server_url
from tests.tampering import RawDatabase


@pytest.fixture
def url(sql_backend: str, tmp_path: Path) -> str:
    return isolated_url(sql_backend, tmp_path)


@pytest.fixture
def recorded(url: str) -> Iterator[tuple[RawDatabase, int]]:
    with journal.Journal(open_store(url, keyring=Keyring()), new_tenant()) as j:
        handle = j.create(flow="guarded", input={"n": 1})
        handle.start()
        handle.complete("done")
        execution_id = str(handle.id)
    raw = RawDatabase(url)
    yield raw, raw.key(execution_id)
    raw.close()


REFUSED = [
    "UPDATE journal_events SET payload = payload WHERE exec_key = ?",
    "UPDATE journal_events SET seq = seq + 100 WHERE exec_key = ?",
    "DELETE FROM journal_events WHERE exec_key = ?",
    "DELETE FROM journal_executions WHERE exec_key = ?",
    "UPDATE journal_executions SET state = 'Cancelled', head_seq = head_seq + 1 "
    "WHERE exec_key = ?",
    "UPDATE journal_executions SET tenant_id = 'tenant_other' WHERE exec_key = ?",
    "UPDATE journal_executions SET head_seq = head_seq - 1 WHERE exec_key = ?",
    "UPDATE journal_executions SET output = NULL WHERE exec_key = ?",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_triggers_refuse_an_update_or_delete_of_evidence(
    recorded: tuple[RawDatabase, int], statement: str
) -> None:
    raw, key = recorded
    before = raw.rows(key)
    refused = (sqlite3.DatabaseError, psycopg.Error)
    with pytest.raises(refused, match=r"append-only|only an append") as caught:
        raw.run(statement, key)
    assert "journal" in str(caught.value)
    assert raw.rows(key) == before


def test_the_index_trigger_lets_an_append_advance_the_head(url: str) -> None:
    with journal.Journal(open_store(url, keyring=Keyring()), new_tenant()) as j:
        handle = j.create(flow="guarded", input=None)
        handle.start()
        handle.complete(1)
        assert j.verify(handle.id)[0] == 3


def test_a_postgres_role_without_ddl_rights_records_and_verifies(
    tmp_path: Path,
) -> None:
    """The documented grants: select/insert on events, and the index-row
    update an append makes; no CREATE, no ownership."""
    owner_url = isolated_url("postgres", tmp_path)
    journal.open(owner_url).close()  # `journal init`, as the owner
    schema = owner_url.rpartition("%3D")[2]
    role = f"jt_writer_{secrets.token_hex(4)}"
    grants = [
        f"CREATE ROLE {role} LOGIN",
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT, INSERT ON {schema}.journal_events TO {role}",
        f"GRANT SELECT, INSERT, UPDATE ON {schema}.journal_executions TO {role}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.journal_snapshots, "
        f"{schema}.journal_leases TO {role}",
        f"GRANT SELECT, INSERT ON {schema}.journal_schemas, {schema}.journal_meta "
        f"TO {role}",
        # A writer marks its execution for the store-wide log's next round.
        f"GRANT SELECT, INSERT, UPDATE ON {schema}.journal_log_marks TO {role}",
    ]
    with psycopg.connect(server_url(), autocommit=True) as admin:
        for statement in grants:
            admin.execute(statement)
        try:
            writer_url = in_schema(
                server_url().replace("postgres@", f"{role}@", 1), schema
            )
            with journal.open(writer_url, tenant=new_tenant()) as writer:
                handle = writer.create(flow="limited", input={"n": 2})
                handle.start()
                handle.complete("ok")
                assert writer.verify(handle.id)[0] == 3
                raw = RawDatabase(writer_url)
                try:
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        raw.run("CREATE TABLE journal_sneaky (x INT)")
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        raw.run("DROP TRIGGER journal_events_append_only "
                                "ON journal_events")  # fmt: skip
                finally:
                    raw.close()
        finally:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
