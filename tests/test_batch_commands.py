"""Batch commands reach every execution and stop for none: ``replay --all``
continues past executions it cannot read, ``verify --all`` walks the events
table so that a damaged index hides nothing; and the small things that make
their output trustworthy (pasteable hints, no password printed)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import journal
from journal import demo
from tests.cli_support import Invoke
from tests.conftest import new_tenant, require_postgres

pytest_plugins = ["tests.cli_fixtures"]

Run = Callable[..., subprocess.CompletedProcess[str]]


def _undecodable(url: str) -> str:
    """An execution whose third stored event verifies but does not decode."""
    with journal.open(url) as journal_:
        handle = journal_.create()
        handle.start()
        summary = journal_.store.get_summary(handle.id, journal_.tenant_id)
        assert summary is not None
        unknown = b'{"at":"2026-01-01T00:00:00Z","type":"NoSuchEvent"}'
        journal_.store.append(summary, summary.head_seq, [unknown])
        return str(handle.id)


def test_replay_all_reports_an_undecodable_execution_and_goes_on(
    run_script: Run, db: str, demo_ids: dict[str, str]
) -> None:
    bad = _undecodable(db)

    result = run_script("replay", "--all", "--db", db, "--flows", "journal.demo")

    assert result.returncode == 1, result.stderr
    assert f"{bad}: error — {bad} seq 3: not a known event" in result.stdout
    assert "5 replayed: 4 ok, 1 error" in result.stdout


def test_replay_all_json_counts_the_error_and_is_not_ok(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    _undecodable(db)
    result = invoke("replay", "--all", "--db", db, "--flows", "journal.demo", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["counts"]["error"] == 1
    assert data["counts"]["ok"] == 4
    assert data["ok"] is False


def _hide_from_the_time_index(path: Path, execution_id: str) -> None:
    """Damage one entry of the time index on disk, as a bad page would: the
    table row and the events stay intact, `journal list` no longer sees it."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tenant, created = connection.execute(
        "SELECT tenant_id, created_at FROM journal_executions WHERE execution_id = ?",
        (execution_id,),
    ).fetchone()
    connection.close()
    data = bytearray(path.read_bytes())
    entry = data.find(tenant.encode() + created.encode())  # only the index has it
    assert entry > 0
    data[entry] = ord("a")  # sorts before every tenant_…: never found
    path.write_bytes(bytes(data))


def test_verify_all_reaches_an_execution_a_damaged_index_hides(
    run_script: Run, db: str, db_path: Path, demo_ids: dict[str, str]
) -> None:
    hidden = demo_ids["refund"]
    _hide_from_the_time_index(db_path, hidden)
    listed = run_script("list", "--db", db)
    assert hidden not in listed.stdout  # the damage is real

    result = run_script("verify", "--all", "--db", db)

    assert result.returncode == 6, result.stderr
    assert f"{hidden}  BROKEN  the time index does not list it" in result.stdout
    assert "3 verified, 1 broken" in result.stdout


def test_verify_all_reports_stored_events_whose_index_row_is_gone(
    run_script: Run, db: str, db_path: Path, demo_ids: dict[str, str]
) -> None:
    connection = sqlite3.connect(db_path)
    with connection:  # an attacker (or a lost page) removes an index row
        connection.execute("DROP TRIGGER journal_executions_no_delete")
        (key,) = connection.execute(
            "SELECT exec_key FROM journal_executions WHERE execution_id = ?",
            (demo_ids["declined"],),
        ).fetchone()
        connection.execute("DELETE FROM journal_executions WHERE exec_key = ?", (key,))
    connection.close()

    result = run_script("verify", "--all", "--db", db, "--json")
    other = run_script("verify", "--all", "--db", db, "--tenant", new_tenant())

    assert result.returncode == 6, result.stderr
    broken = [r for r in json.loads(result.stdout)["results"] if not r["ok"]]
    assert [r["execution_id"] for r in broken] == [f"key {key}"]
    assert (
        "have no executions-index row (first event: tenant_default)"
        in (broken[0]["error"])
    )
    assert other.returncode == 0  # another tenant's orphans are not ours


def test_verify_all_accepts_the_filters_of_replay_all(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    limited = invoke("verify", "--all", "--limit", "1", "--db", db, "--json")
    flow = invoke("verify", "--all", "--flow", "demo.notify", "--db", db, "--json")
    alone = invoke("verify", demo_ids["refund"], "--limit", "1", "--db", db)

    assert limited.exit_code == 0
    assert len(json.loads(limited.stdout)["results"]) == 1
    assert [r["execution_id"] for r in json.loads(flow.stdout)["results"]] == [
        demo_ids["child"]
    ]
    assert alone.exit_code == 2


def test_the_check_later_hint_keeps_db_and_tenant_and_works_pasted(
    run_script: Run, workdir: Path
) -> None:
    tenant = new_tenant()
    url = f"sqlite:///{workdir / 'elsewhere.db'}"
    with journal.open(url, tenant=tenant) as journal_:
        execution_id = demo.refund.run(journal_, *demo.DEMO_REQUESTS[1]).id

    verified = run_script("verify", execution_id, "--db", url, "--tenant", tenant)
    hint = verified.stderr.split("check later: ", 1)[1].strip()
    program, *args = hint.split()
    pasted = run_script(*args)

    assert verified.returncode == 0
    assert program == "journal"
    assert f"--db {url}" in hint
    assert f"--tenant {tenant}" in hint
    assert pasted.returncode == 0, pasted.stderr


def test_demo_on_postgresql_never_prints_the_password(run_script: Run) -> None:
    url = require_postgres()
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    secret = "s3cret-Pa55word"
    with_password = f"{scheme}://{user}:{secret}@{host}"  # trust auth ignores it
    tenant = new_tenant()

    shown = run_script("demo", "--db", with_password, "--tenant", tenant)
    as_json = run_script("demo", "--db", with_password, "--tenant", tenant, "--json")

    assert shown.returncode == 0, shown.stderr
    assert as_json.returncode == 0, as_json.stderr
    for result in (shown, as_json):
        assert secret not in result.stdout + result.stderr
    assert f"{scheme}://{user}@{host}" in shown.stdout  # shown, without it
    assert json.loads(as_json.stdout)["db"] == f"{scheme}://{user}@{host}"
