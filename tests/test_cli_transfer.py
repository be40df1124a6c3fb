"""``export`` and ``import``: all or nothing, idempotent, conflicts refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import msgspec
import pytest

import journal
from journal import demo
from tests.cli_support import Invoke, dump

pytest_plugins = ["tests.cli_fixtures"]


@pytest.fixture
def exported(invoke: Invoke, db: str, demo_ids: dict[str, str], workdir: Path) -> Path:
    """The refund run and its child, exported to a file."""
    result = invoke("export", demo_ids["refund"], "--db", db, "-o", "refund.jsonl")
    assert result.exit_code == 0
    return workdir / "refund.jsonl"


@pytest.fixture
def target(workdir: Path) -> tuple[str, Path]:
    """Another store, holding one unrelated execution."""
    path = workdir / "target.db"
    with journal.open(f"sqlite:///{path}") as journal_:
        demo.refund.run(journal_, "ord_1002", "I changed my mind")
    return f"sqlite:///{path}", path


def test_export_writes_jsonl_to_stdout(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("export", demo_ids["declined"], "--db", db)
    assert result.exit_code == 0
    header, *events = result.stdout.splitlines()
    assert json.loads(header)["format"] == "journal-export/2"
    assert json.loads(header)["events"] == len(events)
    assert json.loads(events[0])["seq"] == 1


def test_export_to_a_file_reports_the_head_and_includes_children(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke(
        "export", demo_ids["refund"], "--db", db, "-o", "out.jsonl", "--json"
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["executions"] == [demo_ids["refund"], demo_ids["child"]]
    assert data["head"].startswith("17:")


def test_import_writes_new_histories_then_is_idempotent(
    invoke: Invoke, exported: Path, target: tuple[str, Path], demo_ids: dict[str, str]
) -> None:
    url, _path = target
    first = invoke("import", str(exported), "--db", url, "--json")
    assert first.exit_code == 0
    assert json.loads(first.stdout) == {
        "written": [demo_ids["refund"], demo_ids["child"]],
        "present": [],
        "files": 1,
    }
    again = invoke("import", str(exported), "--db", url)
    assert again.exit_code == 0
    assert f"already present {demo_ids['refund']}" in again.stdout
    assert "0 written, 2 already present, from 1 file(s)" in again.stdout
    replayed = invoke(
        "replay", demo_ids["refund"], "--db", url, "--flows", "journal.demo"
    )
    assert replayed.exit_code == 0


def test_import_of_a_different_history_under_the_same_id_exits_7(
    invoke: Invoke, db: str, workdir: Path, target: tuple[str, Path]
) -> None:
    url, path = target
    execution_id = "exec_" + "1" * 27
    for store, output in ((db, "a"), (url, "b")):
        with journal.open(store) as journal_:
            handle = journal_.create(execution_id=execution_id)
            handle.start()
            handle.complete(output)
    invoke("export", execution_id, "--db", db, "-o", "a.jsonl")
    before = dump(path)
    result = invoke("import", "a.jsonl", "--db", url)
    assert result.exit_code == 7
    assert f"{execution_id}: a different history already exists" in result.stderr
    assert dump(path) == before


def _rewrite(path: Path, change: str) -> Path:
    lines = path.read_text().splitlines(keepends=True)
    if change == "truncated":
        lines = lines[:-3]
    elif change == "reordered":
        lines[3], lines[4] = lines[4], lines[3]
    elif change == "edited":
        lines[5] = lines[5].replace("ord_1001", "ord_6666")
    else:
        lines[6] = lines[6][: len(lines[6]) // 2] + "\n"
    bad = path.with_name(f"{change}.jsonl")
    bad.write_text("".join(lines))
    return bad


@pytest.mark.parametrize(
    ("change", "code", "line"),
    [
        ("truncated", 6, 22),
        ("reordered", 6, 4),
        ("edited", 6, 6),
        ("malformed", 1, 7),
    ],
)
def test_import_of_a_damaged_file_exits_nonzero_names_the_line_and_writes_nothing(
    invoke: Invoke,
    exported: Path,
    target: tuple[str, Path],
    change: str,
    code: int,
    line: int,
) -> None:
    url, path = target
    bad = _rewrite(exported, change)
    before = dump(path)
    result = invoke("import", str(exported), str(bad), "--db", url)
    assert result.exit_code == code
    assert len(result.stderr.splitlines()) == 1
    assert f"{bad}:{line}:" in result.stderr
    assert dump(path) == before


def test_import_of_a_malformed_file_into_a_missing_store_creates_nothing(
    invoke: Invoke, workdir: Path
) -> None:
    (workdir / "junk.jsonl").write_text("this is not json\n")
    result = invoke("import", "junk.jsonl")
    assert result.exit_code == 1
    assert "junk.jsonl:1: not a journal-export header" in result.stderr
    assert not (workdir / "journal.db").exists()


def test_import_into_another_tenant_exits_1_naming_both(
    invoke: Invoke, exported: Path, target: tuple[str, Path], demo_ids: dict[str, str]
) -> None:
    url, path = target
    before = dump(path)
    result = invoke("import", str(exported), "--db", url, "--tenant", "tenant_acme")
    assert result.exit_code == 1
    assert "tenant_default" in result.stderr
    assert "tenant_acme" in result.stderr
    assert dump(path) == before


def test_import_for_another_tenant_into_a_missing_store_creates_nothing(
    invoke: Invoke, exported: Path, workdir: Path
) -> None:
    fresh = workdir / "fresh.db"
    result = invoke(
        "import", str(exported), "--db", f"sqlite:///{fresh}", "--tenant", "tenant_acme"
    )
    assert result.exit_code == 1
    assert "tenant_acme" in result.stderr
    assert not fresh.exists()


def test_two_files_with_different_histories_under_one_id_create_nothing(
    invoke: Invoke, exported: Path, workdir: Path
) -> None:
    execution_id = msgspec.json.decode(exported.read_text().splitlines()[0])[
        "execution_id"
    ]
    scratch = f"sqlite:///{workdir / 'scratch.db'}"
    with journal.open(scratch) as journal_:
        # A valid chain, and a different history, under the same id.
        journal_.create(execution_id=execution_id).start()
    assert (
        invoke("export", execution_id, "--db", scratch, "-o", "twin.jsonl").exit_code
        == 0
    )
    fresh = workdir / "fresh.db"
    result = invoke("import", str(exported), "twin.jsonl", "--db", f"sqlite:///{fresh}")
    assert result.exit_code == 7
    assert "twin.jsonl:1" in result.stderr
    assert "refund.jsonl:1" in result.stderr
    assert not fresh.exists()


def test_import_of_a_missing_file_exits_1_naming_it(invoke: Invoke) -> None:
    result = invoke("import", "nowhere.jsonl")
    assert result.exit_code == 1
    assert "nowhere.jsonl: cannot read" in result.stderr


def test_import_into_another_applications_sqlite_file_is_refused(
    invoke: Invoke, exported: Path, workdir: Path
) -> None:
    other = workdir / "crm.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    before = dump(other)
    result = invoke("import", str(exported), "--db", f"sqlite:///{other}")
    assert result.exit_code == 1, result.output
    assert "not the journal's (customers)" in result.output
    assert dump(other) == before


def test_import_flags_a_parent_whose_recorded_child_is_not_in_the_file(
    invoke: Invoke, exported: Path, target: tuple[str, Path], demo_ids: dict[str, str]
) -> None:
    lines = exported.read_bytes().splitlines(keepends=True)
    header = json.loads(lines[0])
    assert header["children"] == [demo_ids["child"]]
    parent_only = exported.with_name("parent_only.jsonl")
    parent_only.write_bytes(b"".join(lines[: 1 + header["events"]]))
    url, path = target
    before = dump(path)
    result = invoke("import", str(parent_only), "--db", url)
    assert result.exit_code == 1, result.output
    assert f"the file does not contain: {demo_ids['child']}" in result.output
    assert dump(path) == before
