"""Tampering made directly in the database is caught by `verify`.

Every edit here is raw SQL on the tables (never through our API), on SQLite
and on PostgreSQL, and `verify` must name the first bad sequence number.
The attacker has DDL rights and drops the append-only triggers first, so
the chain checks are tested on their own (tests/test_guards.py shows the
triggers refusing).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import journal
from journal.chain import chain_rows, genesis_link
from journal.errors import ChainIntegrityError
from journal.keys import Keyring, SigningKey, generate_key
from journal.urls import open_store
from tests.conftest import isolated_url, new_tenant
from tests.tampering import RawDatabase, link

EVENTS = 10  # created, started, 4 x (step started, step completed)


@pytest.fixture
def url(sql_backend: str, tmp_path: Path) -> str:
    """A store of this test's own: some tests sign, and a store holding
    signed chains refuses unsigned writes."""
    return isolated_url(sql_backend, tmp_path)


@pytest.fixture
def raw_db(url: str) -> Iterator[RawDatabase]:
    journal.open(url).close()  # make sure the tables exist
    database = RawDatabase(url)
    database.drop_guards()
    yield database
    database.close()


def open_journal(url: str, keyring: Keyring | None = None) -> journal.Journal:
    return journal.Journal(open_store(url, keyring=keyring), new_tenant())


@pytest.fixture
def journal_(url: str) -> Iterator[journal.Journal]:
    with open_journal(url, Keyring()) as opened:
        yield opened


def recorded(journal_: journal.Journal) -> str:
    handle = journal_.create(flow="tamper", input={"amount": 100})
    handle.start()
    for n in range(4):
        handle.complete_step(handle.start_step(f"step{n}", input=n), {"n": n})
    assert handle.state.version == EVENTS
    journal_.verify(handle.id)
    return str(handle.id)


def first_bad_seq(journal_: journal.Journal, execution_id: str, **kwargs: Any) -> int:
    with pytest.raises(ChainIntegrityError) as caught:
        journal_.verify(execution_id, **kwargs)
    assert caught.value.seq is not None
    assert execution_id in str(caught.value)
    return caught.value.seq


def test_verify_names_the_first_edited_sequence(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    seq, payload, link = raw_db.rows(key)[5]
    assert seq == 6
    edited = payload.replace(b'"n":1', b'"n":9')
    assert edited != payload
    raw_db.set_row(key, 6, edited, link)
    assert first_bad_seq(journal_, execution_id) == 6
    with pytest.raises(ChainIntegrityError, match="at seq 6:"):
        journal_.history(execution_id)


def test_verify_catches_an_edit_of_a_single_byte_in_the_first_event(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    _seq, payload, link = raw_db.rows(key)[0]
    raw_db.set_row(key, 1, payload.replace(b"100", b"900"), link)
    assert first_bad_seq(journal_, execution_id) == 1


def test_verify_names_an_event_whose_stored_bytes_no_longer_unpack(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    raw_db.run(
        "UPDATE journal_events SET payload = ? WHERE exec_key = ? AND seq = 4",
        b"\x01\xff\xfe not deflate",
        key,
    )
    assert first_bad_seq(journal_, execution_id) == 4


def test_verify_names_a_deleted_event(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    raw_db.run("DELETE FROM journal_events WHERE exec_key = ? AND seq = 4", key)
    assert first_bad_seq(journal_, execution_id) == 4


def test_verify_names_the_first_of_two_swapped_payloads(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    rows = raw_db.rows(key)
    _, payload3, link3 = rows[2]
    _, payload5, link5 = rows[4]
    raw_db.set_row(key, 3, payload5, link5)
    raw_db.set_row(key, 5, payload3, link3)
    assert first_bad_seq(journal_, execution_id) == 3


def test_verify_names_the_first_of_two_events_whose_seqs_were_swapped(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    raw_db.renumber(key, 3, -3)
    raw_db.renumber(key, 7, 3)
    raw_db.renumber(key, -3, 7)
    assert [seq for seq, _, _ in raw_db.rows(key)] == list(range(1, EVENTS + 1))
    assert first_bad_seq(journal_, execution_id) == 3


def test_verify_names_an_event_inserted_in_the_middle(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    rows = raw_db.rows(key)
    for seq in range(EVENTS, 4, -1):  # make room at 5, from the top down
        raw_db.renumber(key, seq, seq + 1)
    # The forger links the new event correctly onto h_4 (SHA-256 is public),
    # but cannot fix the links after it without rewriting the whole tail.
    forged = rows[2][1]  # a copy of event 3 (a StepStarted) as event 5
    raw_db.insert(key, 5, forged, link(rows[3][2], 5, forged))
    assert len(raw_db.rows(key)) == EVENTS + 1
    assert first_bad_seq(journal_, execution_id) == 6


def test_verify_names_an_event_inserted_in_the_middle_with_a_bogus_link(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    rows = raw_db.rows(key)
    for seq in range(EVENTS, 2, -1):
        raw_db.renumber(key, seq, seq + 1)
    raw_db.insert(key, 3, rows[4][1], rows[4][2])
    assert first_bad_seq(journal_, execution_id) == 3


def test_verify_names_an_event_appended_with_a_bogus_link(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    rows = raw_db.rows(key)
    raw_db.insert(key, EVENTS + 1, rows[-1][1], rows[-1][2])
    assert first_bad_seq(journal_, execution_id) == EVENTS + 1


def test_an_honestly_linked_extra_event_at_the_end_is_caught_by_the_index_head(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    """Summary and rows are read in one snapshot: a chain longer than the
    index is tampering, never "a concurrent append"."""
    execution_id = recorded(journal_)
    head = journal_.verify(execution_id)
    key = raw_db.key(execution_id)
    payload = (
        b'{"at":"2024-01-01T00:00:00Z","reason":"forged","type":"ExecutionCancelled"}'
    )
    raw_db.insert(key, EVENTS + 1, payload, link(head[1], EVENTS + 1, payload))
    with pytest.raises(ChainIntegrityError, match="head_seq is 10 but the chain"):
        journal_.verify(execution_id)
    assert first_bad_seq(journal_, execution_id) == EVENTS + 1


def test_tail_truncation_passes_plain_verify_but_not_the_expected_head(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    head = journal_.verify(execution_id)
    key = raw_db.key(execution_id)
    rows = raw_db.rows(key)
    raw_db.run("DELETE FROM journal_events WHERE exec_key = ? AND seq = ?", key, EVENTS)
    raw_db.run(
        "UPDATE journal_executions SET head_seq = ?, head_hash = ? WHERE exec_key = ?",
        EVENTS - 1,
        rows[-2][2],
        key,
    )
    assert journal_.verify(execution_id) == (EVENTS - 1, rows[-2][2])
    assert first_bad_seq(journal_, execution_id, expect_head=head) == EVENTS


def test_an_untouched_chain_verifies_against_its_head(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    head = journal_.verify(execution_id)
    key = raw_db.key(execution_id)
    assert head == (EVENTS, raw_db.rows(key)[-1][2])
    assert journal_.verify(execution_id, expect_head=head) == head


# --- with a signing key -----------------------------------------------------------

KEY = generate_key()


def recompute_without_the_key(
    raw_db: RawDatabase, execution_id: str, *, strip_mac: bool
) -> None:
    """What an attacker with database access but no key can do: edit an
    event, relink the whole (keyless) chain, move the index head."""
    key = raw_db.key(execution_id)
    rows = raw_db.rows(key)
    payloads = [payload for _seq, payload, _link in rows]
    payloads[3] = payloads[3].replace(b'"n":0', b'"n":7')
    [(genesis,)] = raw_db.run(
        "SELECT genesis FROM journal_executions WHERE exec_key = ?", key
    )
    relinked = chain_rows(genesis_link(bytes(genesis)), 1, payloads)
    for row in relinked:
        raw_db.set_row(key, row.seq, row.payload, row.hash)
    raw_db.run(
        "UPDATE journal_executions SET head_hash = ? WHERE exec_key = ?",
        relinked[-1].hash,
        key,
    )
    if strip_mac:
        raw_db.run(
            "UPDATE journal_executions SET key_id = NULL, head_mac = NULL "
            "WHERE exec_key = ?",
            key,
        )


@pytest.mark.parametrize("strip_mac", [False, True])
def test_a_signed_chain_recomputed_without_the_key_is_caught(
    url: str, raw_db: RawDatabase, strip_mac: bool
) -> None:
    with open_journal(url, Keyring(SigningKey.parse(KEY))) as signed:
        execution_id = recorded(signed)
        recompute_without_the_key(raw_db, execution_id, strip_mac=strip_mac)
        expected = "unsigned but a signing key is set" if strip_mac else "head MAC"
        with pytest.raises(ChainIntegrityError, match=expected):
            signed.verify(execution_id)
        # The forgery is a valid keyless chain: only the key catches it.
        if strip_mac:
            with open_journal(url, Keyring()) as keyless:
                unsigned = keyless.with_tenant(signed.tenant_id)
                assert unsigned.verify(execution_id)[0] == EVENTS


def test_the_signing_key_is_read_from_the_environment(
    url: str, raw_db: RawDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_SIGNING_KEY", KEY)
    with journal.Journal(open_store(url), new_tenant()) as signed:
        execution_id = recorded(signed)
        assert signed.summary(execution_id).key_id == SigningKey.parse(KEY).key_id
        recompute_without_the_key(raw_db, execution_id, strip_mac=False)
        with pytest.raises(ChainIntegrityError, match="head MAC"):
            signed.verify(execution_id)


def test_deleting_the_tail_without_fixing_the_index_is_caught_by_plain_verify(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    execution_id = recorded(journal_)
    key = raw_db.key(execution_id)
    raw_db.run("DELETE FROM journal_events WHERE exec_key = ? AND seq = ?", key, EVENTS)
    assert first_bad_seq(journal_, execution_id) == EVENTS


def test_a_child_catches_its_parents_history_rewritten_without_a_key(
    journal_: journal.Journal, raw_db: RawDatabase
) -> None:
    """The child's genesis names the parent's head when it was created: a
    parent chain rewritten consistently (undetectable on its own without a
    key) no longer holds that link."""
    parent_id = recorded(journal_)
    child = journal_.handle(parent_id).child(flow="tamper.child", input=None)
    key = raw_db.key(parent_id)
    rows = raw_db.rows(key)
    payloads = [payload for _seq, payload, _link in rows]
    payloads[3] = payloads[3].replace(b'"n":0', b'"n":7')
    [(genesis,)] = raw_db.run(
        "SELECT genesis FROM journal_executions WHERE exec_key = ?", key
    )
    relinked = chain_rows(genesis_link(bytes(genesis)), 1, payloads)
    for row in relinked:
        raw_db.set_row(key, row.seq, row.payload, row.hash)
    raw_db.run(
        "UPDATE journal_executions SET head_hash = ? WHERE exec_key = ?",
        relinked[-1].hash,
        key,
    )
    assert journal_.verify(parent_id)[0] == EVENTS  # consistent on its own
    with pytest.raises(ChainIntegrityError, match=f"names parent {parent_id} at seq"):
        journal_.verify(child.id)


def test_a_v2_chain_claiming_keyed_v1_links_is_caught(
    url: str, raw_db: RawDatabase
) -> None:
    """Claiming ``hmac-sha256`` (keyed v1 links, no MAC) must not skip the
    MAC check of a v2 chain recomputed without the key."""
    with open_journal(url, Keyring(SigningKey.parse(KEY))) as signed:
        execution_id = recorded(signed)
        recompute_without_the_key(raw_db, execution_id, strip_mac=True)
        raw_db.run(
            "UPDATE journal_executions SET alg = 'hmac-sha256' WHERE exec_key = ?",
            raw_db.key(execution_id),
        )
        with pytest.raises(ChainIntegrityError, match="index column alg"):
            signed.verify(execution_id)
