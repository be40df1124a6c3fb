"""Bad data stops at the door: refused on append and on import, naming where,
before anything is written; an import that fails leaves no file; a stored
row cannot inflate without bound; old naive times never crash a reader."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

import journal
from journal import events as ev
from journal.errors import ConflictError, EventDecodeError, InvalidValueError
from journal.model import elapsed_ms
from journal.packing import DICTIONARY_V1, MAX_PAYLOAD_BYTES, unpack
from journal.validation import MAX_DEPTH
from tests.cli_support import dump, journal_script, script_env
from tests.conftest import new_tenant, require_postgres
from tests.forge import template, write_forged

pytest_plugins = ["tests.cli_fixtures"]

Run = Callable[..., subprocess.CompletedProcess[str]]


def _nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (
            lambda h: h.record(ev.ExecutionPaused(at=datetime(2026, 1, 1))),
            "ExecutionPaused.at: the time 2026-01-01T00:00:00 has no zone",
        ),
        (
            lambda h: h.record(
                ev.ExecutionPaused(
                    at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
                )
            ),
            "is outside 0001-01-01..9999-12-31 in UTC",
        ),
        (lambda h: h.complete(_nested(MAX_DEPTH + 1)), "nests deeper than 100"),
        (lambda h: h.complete({"n": 2**64}), "18446744073709551616 does not fit"),
        (lambda h: h.complete(-(2**63) - 1), "does not fit in 64 signed bits"),
    ],
)
def test_append_refuses_what_the_store_cannot_hold_and_stores_nothing(
    db: str, db_path: Path, command: Callable[[Any], Any], says: str
) -> None:
    with journal.open(db) as journal_:
        handle = journal_.create()
        handle.start()
        before = dump(db_path)
        with pytest.raises(InvalidValueError, match=re.escape(says)) as refused:
            command(handle)
        assert str(refused.value).startswith(f"{handle.id} event 3: ")
        assert dump(db_path) == before


def test_append_refuses_a_raw_value_that_is_not_json(db: str, db_path: Path) -> None:
    with journal.open(db) as journal_:
        handle = journal_.create()
        handle.start()
        before = dump(db_path)
        with pytest.raises(EventDecodeError, match=r"ExecutionCompleted\.output"):
            handle.complete(msgspec.Raw(b"[1, 2"))
        assert dump(db_path) == before


def test_append_accepts_the_edges_of_every_range(db: str) -> None:
    with journal.open(db) as journal_:
        handle = journal_.create()
        handle.start()
        handle.record(ev.ExecutionPaused(at=datetime(9999, 12, 31, tzinfo=UTC)))
        handle.resume()
        done = handle.complete([_nested(MAX_DEPTH - 2), 2**63 - 1, -(2**63)])
    assert done.state.value == "Completed"


def _forge(workdir: Path, name: str, change: Callable[[list[str]], None]) -> Path:
    found = template()
    payloads = list(found["payloads"])
    change(payloads)
    return write_forged(workdir / f"{name}.jsonl", found["header"], payloads)


def _at(payloads: list[str], when: str) -> None:
    payloads[1] = re.sub(r'"at":"[^"]+"', f'"at":"{when}"', payloads[1])


def _output(payloads: list[str], text: str) -> None:
    payloads[2] = payloads[2].replace('"output":1', f'"output":{text}')


BAD_FILES: list[tuple[str, Callable[[list[str]], None], str]] = [
    (
        "far_east",
        lambda p: _at(p, "0001-01-01T00:00:00+14:00"),
        "far_east.jsonl:3: ExecutionStarted.at: the time 0001-01-01T00:00:00+14:00",
    ),
    ("naive", lambda p: _at(p, "2026-01-01T00:00:00"), "naive.jsonl:3: "),
    ("deep", lambda p: _output(p, "[" * 1000 + "]" * 1000), "deep.jsonl:4: "),
    ("huge", lambda p: _output(p, "9" * 400), "huge.jsonl:4: the integer"),
]


@pytest.mark.parametrize(("name", "change", "says"), BAD_FILES)
def test_import_refuses_a_value_the_store_cannot_hold_naming_file_and_line(
    run_script: Run,
    workdir: Path,
    name: str,
    change: Callable[[list[str]], None],
    says: str,
) -> None:
    path = _forge(workdir, name, change)

    imported = run_script("import", path.name)
    replayed = run_script("replay", "--file", path.name, "--fold-only")

    assert imported.returncode == 1
    assert imported.stderr.startswith(f"journal: error: {says}")
    assert imported.stderr.count("\n") == 1
    assert not (workdir / "journal.db").exists()
    assert replayed.returncode == imported.returncode
    assert replayed.stderr == imported.stderr


def test_import_refuses_into_an_existing_store_leaving_it_byte_identical(
    run_script: Run, workdir: Path, db_path: Path, db: str
) -> None:
    with journal.open(db) as journal_:
        journal_.create().start()
    before = db_path.read_bytes()
    path = _forge(workdir, "far_east", BAD_FILES[0][1])

    result = run_script("import", path.name, "--db", db)

    assert result.returncode == 1
    assert db_path.read_bytes() == before


def test_an_import_that_fails_folding_exits_as_replay_file_and_creates_nothing(
    run_script: Run, workdir: Path
) -> None:
    def never_started(payloads: list[str]) -> None:
        del payloads[1]

    path = _forge(workdir, "unfoldable", never_started)

    imported = run_script("import", path.name)
    replayed = run_script("replay", "--file", path.name)

    assert imported.returncode == replayed.returncode == 6
    assert "the history breaks the state machine" in imported.stderr
    assert "ExecutionCompleted refused: not allowed in state Created" in (
        imported.stderr
    )
    assert not (workdir / "journal.db").exists()


def test_schema_documents_are_written_with_the_histories_or_not_at_all(
    workdir: Path,
) -> None:
    from journal.store import History

    url = f"sqlite:///{workdir / 'store.db'}"
    with journal.open(url) as journal_:
        handle = journal_.create()
        handle.start()
        present = journal_.history(handle.id)
        other = History(present.summary, present.rows[:1])  # same id, differs
        with pytest.raises(ConflictError):
            journal_.store.import_histories([other], {"sha256:abc": b"{}"})
        assert journal_.store.get_schema("sha256:abc") is None


def test_an_interrupted_import_leaves_no_file(workdir: Path) -> None:
    """SIGINT at several points of a larger import: either it finished (the
    file holds everything) or it was interrupted (no file at all)."""
    from journal.export import export_lines

    with journal.open("memory://") as journal_:
        handle = journal_.create()
        handle.start()
        for i in range(2000):
            handle.complete_step(handle.start_step(f"s{i}"), {"i": i})
        (workdir / "x.jsonl").write_bytes(b"".join(export_lines(journal_, handle.id)))
    outcomes = []
    for delay in (0.05, 0.2, 0.35, 0.5, 0.8):
        target = workdir / f"target{delay}.db"
        process = subprocess.Popen(
            [journal_script(), "import", "x.jsonl", "--db", f"sqlite:///{target}"],
            cwd=workdir,
            env=script_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
        outcomes.append((process.returncode, target.exists()))
        assert not list(workdir.glob(f".{target.name}.importing-*"))
        if target.exists():  # only ever the whole import, never a part
            with journal.open(f"sqlite:///{target}", create=False) as imported:
                assert imported.verify(handle.id)[0] == 4002
        else:
            assert process.returncode != 0
    assert any(not exists for _code, exists in outcomes), outcomes


def test_a_crafted_row_cannot_inflate_past_the_limit() -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -10, 8, 0, DICTIONARY_V1)
    bomb = b"\x01" + deflate.compress(b"0" * (MAX_PAYLOAD_BYTES * 4))
    bomb += deflate.flush()

    assert unpack(bomb) == bomb  # returned as stored: the chain names its seq
    assert len(bomb) < MAX_PAYLOAD_BYTES // 100


def test_times_without_a_zone_from_an_older_store_never_crash_a_reader(
    invoke: Any, db: str, db_path: Path
) -> None:
    import sqlite3

    with journal.open(db) as journal_:
        handle = journal_.create()
        handle.start()
        handle.complete(1)
    connection = sqlite3.connect(db_path)
    with connection:  # as a store written before the door was there
        connection.execute("DROP TRIGGER journal_executions_append_only")
        connection.execute(
            "UPDATE journal_executions SET started_at = '2026-01-01T00:00:00'"
        )
    connection.close()

    listed = invoke("list", "--db", db)
    shown = invoke("show", handle.id, "--db", db)

    assert listed.exit_code == 0, listed.stderr
    assert shown.exit_code == 0, shown.stderr
    naive, aware = datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert elapsed_ms(naive, aware) == 1000


def test_on_postgresql_a_time_it_cannot_hold_is_refused_and_the_tenant_still_works(
    run_script: Run, workdir: Path
) -> None:
    url = require_postgres()
    tenant = new_tenant()
    with journal.open(url, tenant=tenant) as journal_:
        journal_.create().start()
    found = template(tenant=tenant)  # a new execution id for this store
    payloads = list(found["payloads"])
    _at(payloads, "0001-01-01T00:00:00+14:00")
    path = write_forged(workdir / "far_east.jsonl", found["header"], payloads)

    imported = run_script("import", path.name, "--db", url, "--tenant", tenant)
    listed = run_script("list", "--db", url, "--tenant", tenant)
    verified = run_script("verify", "--all", "--db", url, "--tenant", tenant)
    replayed = run_script(
        "replay", "--all", "--fold-only", "--db", url, "--tenant", tenant
    )

    assert imported.returncode == 1
    assert "far_east.jsonl:3: ExecutionStarted.at" in imported.stderr
    assert (listed.returncode, verified.returncode, replayed.returncode) == (0, 0, 0)
