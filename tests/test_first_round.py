"""A first-round store (made by the first release's code, kept in
`fixtures/first_round/`) reads, verifies and replays unchanged, refuses
writes until migrated, and migrates (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest

from tests.cli_support import Invoke
from tests.conftest import in_schema, own_postgres_url, server_url

pytest_plugins = ["tests.cli_fixtures"]

FIRST_ROUND = Path(__file__).parent.parent / "fixtures" / "first_round"
#: The key `signed.db` was written with (first-round keys were any text).
FIRST_ROUND_KEY = "5e" * 32
EXECUTIONS = 4


def sqlite_copy(tmp_path: Path, name: str = "journal.db") -> tuple[str, Path]:
    path = tmp_path / name
    shutil.copyfile(FIRST_ROUND / name, path)
    return f"sqlite:///{path}", path


def postgres_copy() -> str:
    """A fresh schema holding the first-round PostgreSQL dump."""
    url = own_postgres_url()
    schema = url.rpartition("%3D")[2]
    script = (FIRST_ROUND / "postgres.sql").read_text().replace("__SCHEMA__", schema)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(script.encode())
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def first_round_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_copy(tmp_path)[0]
    return postgres_copy()


def test_a_first_round_sqlite_store_reads_verifies_and_replays_unchanged(
    invoke: Invoke, tmp_path: Path
) -> None:
    url, path = sqlite_copy(tmp_path)
    before = path.read_bytes()
    listed = invoke("list", "--db", url, "--json")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.count('"status": "ok"') == EXECUTIONS
    verified = invoke("verify", "--all", "--db", url)
    assert verified.exit_code == 0, verified.output
    assert f"{EXECUTIONS} verified, 0 broken" in verified.output
    for summary_id in _ids(invoke, url):
        shown = invoke("show", summary_id, "--db", url)
        assert shown.exit_code == 0, shown.output
        replayed = invoke("replay", summary_id, "--db", url, "--flows", "journal.demo")
        assert replayed.exit_code == 0, replayed.output
    single = invoke("verify", _ids(invoke, url)[0], "--db", url)
    assert "v1 binding" in single.output
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.db"]


def test_a_first_round_hmac_store_verifies_with_its_key_and_exits_10_without(
    invoke: Invoke, tmp_path: Path
) -> None:
    url, _path = sqlite_copy(tmp_path, "signed.db")
    keyed = invoke("verify", "--all", "--db", url,
                   env={"JOURNAL_SIGNING_KEY": FIRST_ROUND_KEY})  # fmt: skip
    assert keyed.exit_code == 0, keyed.output
    keyless = invoke("verify", "--all", "--db", url)
    assert keyless.exit_code == 10, keyless.output
    assert "hmac-sha256" in keyless.output


def test_a_first_round_store_refuses_writes_until_migrated_then_migrates(
    invoke: Invoke, first_round_url: str
) -> None:
    url = first_round_url
    refused = invoke("demo", "--db", url)
    assert refused.exit_code == 1, refused.output
    assert "journal migrate" in refused.output
    unfollowed = invoke("follow", "--no-wait", "--all-tenants", "--db", url)
    assert unfollowed.exit_code == 1, unfollowed.output
    assert "no store-wide log to follow" in unfollowed.output
    assert "journal migrate" in unfollowed.output
    migrated = invoke("migrate", "--db", url)
    assert migrated.exit_code == 0, migrated.output
    assert "from layout 1 to 2" in migrated.output
    again = invoke("migrate", "--db", url)
    assert "at layout 2" in again.output
    verified = invoke("verify", "--all", "--db", url)
    assert verified.exit_code == 0, verified.output
    assert f"{EXECUTIONS} verified, 0 broken" in verified.output
    followed = invoke("follow", "--no-wait", "--all-tenants", "--db", url)
    assert followed.exit_code == 0, followed.output
    positions = [json.loads(line)["position"] for line in followed.stdout.splitlines()]
    assert positions == list(range(1, len(positions) + 1))
    assert positions
    written = invoke("demo", "--db", url)
    assert written.exit_code == 0, written.output
    after = invoke("verify", "--all", "--db", url)
    assert after.exit_code == 0, after.output
    assert f"{EXECUTIONS * 2} verified, 0 broken" in after.output


def test_a_first_round_postgres_store_verifies_and_replays_unchanged(
    invoke: Invoke,
) -> None:
    url = postgres_copy()
    verified = invoke("verify", "--all", "--db", url)
    assert verified.exit_code == 0, verified.output
    for execution_id in _ids(invoke, url):
        replayed = invoke(
            "replay", execution_id, "--db", url, "--flows", "journal.demo"
        )
        assert replayed.exit_code == 0, replayed.output
    schema = url.rpartition("%3D")[2]
    with psycopg.connect(in_schema(server_url(), schema)) as conn:
        found = conn.execute("SELECT to_regclass('journal_meta')").fetchone()
    assert found == (None,)  # reading ran no DDL


def _ids(invoke: Invoke, url: str) -> list[str]:
    import json

    listed = invoke("list", "--db", url, "--json")
    return [e["execution_id"] for e in json.loads(listed.stdout)["executions"]]
