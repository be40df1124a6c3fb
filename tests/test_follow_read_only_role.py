"""``journal follow`` as a PostgreSQL role that may only read.

An auditor's role cannot run a sequencing round (a round writes). It must
stream what other followers' rounds numbered, say once on stderr that it
does not number, keep waiting, and receive what a writer's round numbers
later; ``--no-wait`` streams what is numbered, says how many events wait,
and exits 0.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

import journal
from journal.urls import open_store
from tests.conftest import in_schema, new_tenant, own_postgres_url, server_url
from tests.followers import Follower

pytestmark = pytest.mark.postgres


def record(url: str, tenant: str) -> str:
    with journal.open(url, tenant=tenant) as j:
        handle = j.create(flow="follow.role")
        handle.start()
        return str(handle.id)


def number(url: str) -> None:
    """A round run by someone who may write (a follower, the sealer)."""
    store = open_store(url)
    try:
        store.sequence_log(wait=True)
    finally:
        store.close()


@pytest.fixture
def reader_url() -> Iterator[tuple[str, str]]:
    """(owner's URL, a read-only role's URL) on a schema of this test's own."""
    owner = own_postgres_url()
    journal.open(owner).close()
    schema = owner.rpartition("%3D")[2]
    role = f"jt_reader_{secrets.token_hex(4)}"
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
        try:
            yield (
                owner,
                in_schema(server_url().replace("postgres@", f"{role}@", 1), schema),
            )
        finally:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_a_read_only_role_follows_what_others_number(
    reader_url: tuple[str, str],
) -> None:
    owner, reader = reader_url
    tenant = new_tenant()
    first = record(owner, tenant)
    number(owner)
    unnumbered = record(owner, tenant)  # no round yet

    once = Follower("follow", "--no-wait", "--db", reader, "--tenant", tenant)
    assert once.process.wait(timeout=60) == 0
    streamed = once.take(2)
    assert [(e["execution_id"], e["seq"]) for e in streamed] == [(first, 1), (first, 2)]
    stderr = once.stderr()
    assert stderr.count("may not number the log") == 1
    assert "2 events are not numbered yet" in stderr
    once.kill()

    follower = Follower("follow", "--db", reader, "--tenant", tenant)
    try:
        got = follower.take(2)
        number(owner)  # a writer's round numbers the two waiting events
        got += follower.take(2)
        later = record(owner, tenant)
        number(owner)
        got += follower.take(2)
        assert [(e["execution_id"], e["seq"]) for e in got] == [
            (first, 1), (first, 2), (unnumbered, 1), (unnumbered, 2),
            (later, 1), (later, 2),
        ]  # fmt: skip
        assert [e["position"] for e in got] == list(range(1, 7))
        assert follower.interrupt() == 130
        assert follower.stderr().count("may not number the log") == 1
    finally:
        follower.kill()
