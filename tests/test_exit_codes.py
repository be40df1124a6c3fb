"""The exit-code contract, row by row, through the real console script.

Every code in the README's exit-code table is produced here by running the
installed ``journal`` script in a subprocess. `ROWS` names the test that
produces each code; a code whose feature is not built yet is in `PENDING`
with the work that adds it. When you add a row: write its test below (named
``test_row_<code>_...``), add it to `ROWS` and remove the code from
`PENDING`; `test_every_row_of_the_readme_table_has_a_test` keeps the three
(README, `ROWS`, `PENDING`) in step.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import journal
from journal import demo
from tests.cli_support import (
    CALC_CHANGED,
    CALC_DIVERGED,
    CALC_V1,
    edit_payload,
    journal_script,
    record_calc,
    script_env,
    write_module,
)

pytest_plugins = ["tests.cli_fixtures"]

Run = Callable[..., subprocess.CompletedProcess[str]]

#: code -> the tests in this module that produce it with the real script.
ROWS: dict[int, tuple[str, ...]] = {
    0: ("test_row_0_a_clean_replay_and_a_verify_exit_0",),
    1: (
        "test_row_1_bad_data_in_a_file_exits_1_naming_the_file",
        "test_row_1_a_missing_store_exits_1",
        "test_row_1_a_replay_without_its_flow_exits_1",
        "test_row_1_a_flows_module_calling_sys_exit_cannot_choose_the_code",
        "test_row_1_flow_code_calling_sys_exit_during_replay_exits_1",
        "test_row_1_a_bad_tenant_in_pyproject_is_bad_data_in_a_file",
    ),
    2: (
        "test_row_2_a_bad_value_typed_as_an_option_or_argument_exits_2",
        "test_row_2_a_bad_value_in_the_options_environment_variable_exits_2",
    ),
    3: ("test_row_3_an_execution_not_in_this_tenant_exits_3",),
    4: ("test_row_4_a_changed_schema_exits_4",),
    5: ("test_row_5_a_diverged_replay_exits_5",),
    6: (
        "test_row_6_an_edited_row_exits_6",
        "test_row_6_a_header_count_that_does_not_match_the_next_block_exits_6",
    ),
    7: ("test_row_7_an_import_of_a_different_history_exits_7",),
    8: ("test_row_8_a_command_the_state_does_not_allow_exits_8",),
    9: ("test_row_9_an_approval_for_another_digest_exits_9",),
    10: (
        "test_row_10_a_signed_store_without_its_key_exits_10",
        "test_row_10_a_ledger_key_missing_malformed_or_another_ledgers_exits_10",
    ),
    11: ("test_row_11_a_run_whose_lease_was_taken_over_exits_11",),
    12: ("test_row_12_a_store_locked_past_the_lock_timeout_exits_12",),
    130: ("test_row_130_an_interrupt_exits_130",),
}

#: code -> the work that adds it (and its test here).
PENDING: dict[int, str] = {}

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_codes() -> set[int]:
    text = README.read_text(encoding="utf-8")
    table = text.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    return {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}


def test_every_row_of_the_readme_table_has_a_test() -> None:
    codes = _readme_codes()
    assert codes == set(ROWS) | set(PENDING)
    assert not set(ROWS) & set(PENDING)
    for names in ROWS.values():
        for name in names:
            assert callable(globals().get(name)), name


def _one_error_line(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    """stderr is one ``journal: error:`` line holding every part, no traceback."""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("journal: error: "), result.stderr
    for part in parts:
        assert part in result.stderr, (part, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.fixture
def refund(db: str) -> str:
    """One demo run recorded into the test's store; its id."""
    with journal.open(db) as journal_:
        return str(demo.refund.run(journal_, *demo.DEMO_REQUESTS[0]).id)


def test_row_0_a_clean_replay_and_a_verify_exit_0(
    run_script: Run, db: str, refund: str
) -> None:
    replayed = run_script("replay", refund, "--db", db, "--flows", "journal.demo")
    assert replayed.returncode == 0, replayed.stderr
    verified = run_script("verify", refund, "--db", db)
    assert verified.returncode == 0, verified.stderr


def test_row_1_bad_data_in_a_file_exits_1_naming_the_file(
    run_script: Run, workdir: Path
) -> None:
    (workdir / "bad.jsonl").write_text('{"format": "journal-export/1"\n')
    result = run_script("import", "bad.jsonl")
    assert result.returncode == 1
    _one_error_line(result, "bad.jsonl:1")
    assert not (workdir / "journal.db").exists()


def test_row_1_a_missing_store_exits_1(run_script: Run, workdir: Path) -> None:
    result = run_script("list", "--db", "sqlite:///absent.db")
    assert result.returncode == 1
    _one_error_line(result, "absent.db")
    assert not (workdir / "absent.db").exists()


def test_row_1_a_replay_without_its_flow_exits_1(
    run_script: Run, db: str, refund: str
) -> None:
    result = run_script("replay", refund, "--db", db)
    assert result.returncode == 1
    assert "not_rerun" in result.stdout


def test_row_1_a_flows_module_calling_sys_exit_cannot_choose_the_code(
    run_script: Run, workdir: Path
) -> None:
    name = write_module(workdir, "import sys\nsys.exit(3)\n")
    result = run_script("schema", "--flows", name)
    assert result.returncode == 1
    _one_error_line(result, name, "sys.exit(3)")


def test_row_1_flow_code_calling_sys_exit_during_replay_exits_1(
    run_script: Run, db: str, workdir: Path
) -> None:
    execution_id = record_calc(workdir, db)
    source = CALC_V1.replace("return x * 2", "raise SystemExit(5)")
    result = run_script(
        "replay", execution_id, "--db", db, "--flows", write_module(workdir, source)
    )
    assert result.returncode == 1
    _one_error_line(result, "sys.exit(5)")


def test_row_1_a_bad_tenant_in_pyproject_is_bad_data_in_a_file(
    run_script: Run, workdir: Path
) -> None:
    (workdir / "pyproject.toml").write_text('[tool.journal]\ntenant = "Acme"\n')
    result = run_script("list")
    assert result.returncode == 1
    _one_error_line(result, "pyproject.toml", "'Acme'")


@pytest.mark.parametrize(
    "args",
    [
        ("list", "--tenant", "Acme"),
        ("list", "--db", "ftp://host/journal"),
        ("list", "--db", "sqlite://relative.db"),
        ("show", "exec_nope"),
        ("verify", "not-an-id"),
        ("replay", "exec_" + "!" * 27),
        ("export", "exec_1"),
        ("diff", "exec_1", "exec_2"),
        ("list", "--state", "Finished"),
        ("list", "--since", "yesterday-ish"),
        ("list", "--limit", "0"),
        ("verify", "--all", "--expect-head", "nope"),
        ("replay",),
        ("frobnicate",),
    ],
)
def test_row_2_a_bad_value_typed_as_an_option_or_argument_exits_2(
    run_script: Run, workdir: Path, args: tuple[str, ...]
) -> None:
    result = run_script(*args)
    assert result.returncode == 2, result.stderr
    _one_error_line(result)
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [("JOURNAL_TENANT", "Acme"), ("JOURNAL_DB", "ftp://host/journal")],
)
def test_row_2_a_bad_value_in_the_options_environment_variable_exits_2(
    run_script: Run, variable: str, value: str
) -> None:
    result = run_script("list", **{variable: value})
    assert result.returncode == 2
    _one_error_line(result, variable, repr(value))


def test_row_3_an_execution_not_in_this_tenant_exits_3(
    run_script: Run, db: str, refund: str
) -> None:
    result = run_script("show", refund, "--db", db, "--tenant", "tenant_other")
    assert result.returncode == 3
    _one_error_line(result, refund)


def test_row_4_a_changed_schema_exits_4(
    run_script: Run, db: str, workdir: Path
) -> None:
    execution_id = record_calc(workdir, db)
    flows = write_module(workdir, CALC_CHANGED)
    result = run_script("replay", execution_id, "--db", db, "--flows", flows)
    assert result.returncode == 4
    assert "schema_mismatch" in result.stdout


def test_row_5_a_diverged_replay_exits_5(
    run_script: Run, db: str, workdir: Path
) -> None:
    execution_id = record_calc(workdir, db)
    flows = write_module(workdir, CALC_DIVERGED)
    result = run_script("replay", execution_id, "--db", db, "--flows", flows)
    assert result.returncode == 5
    assert "diverged" in result.stdout


def test_row_6_an_edited_row_exits_6(
    run_script: Run, db: str, db_path: Path, refund: str
) -> None:
    edit_payload(db_path, refund, seq=2)
    result = run_script("verify", refund, "--db", db)
    assert result.returncode == 6
    _one_error_line(result, refund, "seq 2")


def test_row_6_a_header_count_that_does_not_match_the_next_block_exits_6(
    run_script: Run, db: str, refund: str, workdir: Path
) -> None:
    exported = run_script("export", refund, "--db", db, "-o", "refund.jsonl")
    assert exported.returncode == 0, exported.stderr
    lines = (workdir / "refund.jsonl").read_text().splitlines(keepends=True)
    first = lines[0].replace('"events":17,', '"events":18,')
    assert first != lines[0]
    (workdir / "count.jsonl").write_text("".join([first, *lines[1:]]))
    for args in (("import", "count.jsonl", "--db", "sqlite:///new.db"),
                 ("replay", "--file", "count.jsonl")):  # fmt: skip
        result = run_script(*args)
        assert result.returncode == 6, result.stderr
        said = result.stderr + result.stdout  # replay reports on stdout
        assert "count.jsonl:19" in said
        assert "the header says 18 events but the next block starts after 17" in said
    assert not (workdir / "new.db").exists()


def test_row_7_an_import_of_a_different_history_exits_7(
    run_script: Run, db: str, workdir: Path
) -> None:
    execution_id = "exec_" + "1" * 27
    other = f"sqlite:///{workdir / 'other.db'}"
    for store, output in ((db, "a"), (other, "b")):
        with journal.open(store) as journal_:
            handle = journal_.create(execution_id=execution_id)
            handle.start()
            handle.complete(output)
    exported = run_script("export", execution_id, "--db", db, "-o", "a.jsonl")
    assert exported.returncode == 0, exported.stderr
    result = run_script("import", "a.jsonl", "--db", other)
    assert result.returncode == 7
    _one_error_line(result, execution_id)


def test_row_8_a_command_the_state_does_not_allow_exits_8(
    run_script: Run, db: str, refund: str
) -> None:
    result = run_script("pause", refund, "--db", db)
    assert result.returncode == 8
    _one_error_line(result, refund, "Completed")


def test_row_12_a_store_locked_past_the_lock_timeout_exits_12(
    run_script: Run, db: str, db_path: Path, refund: str, tmp_path: Path
) -> None:
    exported = tmp_path / "refund.jsonl"
    assert run_script("export", refund, "-o", str(exported), "--db", db).returncode == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    journal.open(other).close()
    holder = sqlite3.connect(tmp_path / "other.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        result = run_script(
            "import", str(exported), "--db", other, JOURNAL_LOCK_TIMEOUT_MS="200"
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 12
    _one_error_line(result, "other.db", "locked by another writer; waited 200 ms")


REPO = Path(__file__).resolve().parent.parent


def test_row_9_an_approval_for_another_digest_exits_9(run_script: Run, db: str) -> None:
    from tests import continuation_flows

    with journal.open(db) as journal_:
        waiting = continuation_flows.approvals.run(journal_, "ord_1").id
    result = run_script(
        "resume", waiting, "--db", db, "--flows", "tests.continuation_flows",
        "--approver", "alice", "--digest", "sha256:" + "0" * 64,
        PYTHONPATH=str(REPO),
    )  # fmt: skip
    assert result.returncode == 9
    _one_error_line(result, waiting, "approval names digest")


def test_row_11_a_run_whose_lease_was_taken_over_exits_11(
    db: str, workdir: Path
) -> None:
    from tests import continuation_flows

    with journal.open(db) as journal_:
        original = continuation_flows.charges.run(journal_, "ord_1").id
    block = workdir / "block"  # the fork's live charge step waits on it
    process = subprocess.Popen(
        [journal_script(), "fork", original, "--at-step", "1", "--db", db,
         "--flows", "tests.continuation_flows"],
        cwd=workdir,
        env=script_env(
            PYTHONPATH=str(REPO), JOURNAL_TEST_BLOCK=str(block),
            JOURNAL_HEARTBEAT_S="0.05",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        while not block.exists() and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signal.SIGSTOP)  # it stalls: no more heartbeats
        with journal.open(db) as journal_:
            (fork,) = {s.execution_id for s in journal_.list()} - {original}
            deadline = time.monotonic() + 60
            while journal_.acquire_lease(fork, stale_after_s=0) is None:
                assert time.monotonic() < deadline, "the lease never went stale"
                time.sleep(0.05)
        process.send_signal(signal.SIGCONT)
        block.unlink()
        _stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 11, stderr
    assert stderr.startswith(f"journal: error: {fork}: lease lost"), stderr
    assert stderr.count("\n") == 1


def test_row_10_a_signed_store_without_its_key_exits_10(
    run_script: Run, workdir: Path
) -> None:
    generated = run_script("keys", "generate")
    assert generated.returncode == 0, generated.stderr
    key = generated.stdout.strip()
    assert run_script("init", "--db", "signed.db").returncode == 0
    recorded = run_script("demo", "--db", "signed.db", JOURNAL_SIGNING_KEY=key)
    assert recorded.returncode == 0, recorded.stderr

    result = run_script("verify", "--all", "--db", "signed.db")

    assert result.returncode == 10
    assert key not in result.stdout + result.stderr


def test_row_10_a_ledger_key_missing_malformed_or_another_ledgers_exits_10(
    run_script: Run, workdir: Path, db: str
) -> None:
    from journal.ledger import KEY_FILE_ENV, write_key_file
    from journal.signednote import Signer

    with journal.open(db) as journal_:
        demo.refund.run(journal_, *demo.DEMO_REQUESTS[0])
    named = run_script("ledger", "init", "--db", db, "--origin", "example.org/j")
    assert named.returncode == 0, named.stderr
    keys = {"right": "example.org/j", "other": "other.org/j", "same": "example.org/j"}
    for name, origin in keys.items():  # "same": a new key under the ledger's name
        write_key_file(workdir / f"{name}.key", Signer.generate(origin))
    (workdir / "bad.key").write_text("PRIVATE+KEY+example.org/j+00000000+AAAA\n")
    sealed = run_script("seal", "--db", db, **{KEY_FILE_ENV: "right.key"})
    assert sealed.returncode == 0, sealed.stderr
    kept = run_script("ledger", "checkpoint", "--db", db, **{KEY_FILE_ENV: "right.key"})
    (workdir / "kept").write_text(kept.stdout)
    with journal.open(db) as journal_:  # a head for the refused seals to seal
        demo.refund.run(journal_, *demo.DEMO_REQUESTS[1])
    wrong = {
        "": KEY_FILE_ENV,  # unset
        "absent.key": "absent.key",
        "bad.key": "bad private key",
        "other.key": "other.org/j",
        "same.key": "signed by another key",
    }
    runs: list[tuple[tuple[str, ...], str]] = [(("seal",), k) for k in wrong]
    runs += [(("seal", "--follow"), key_file) for key_file in ("", "same.key")]
    prove = ("ledger", "prove", "--from", "kept")
    runs += [(prove, key_file) for key_file in ("absent.key", "other.key", "same.key")]
    for command, key_file in runs:
        result = run_script(*command, "--db", db, **{KEY_FILE_ENV: key_file})
        assert result.returncode == 10, (key_file, command, result.stderr)
        _one_error_line(result, wrong[key_file])
    pubkey = run_script("ledger", "pubkey", **{KEY_FILE_ENV: "absent.key"})
    assert pubkey.returncode == 10
    _one_error_line(pubkey, "absent.key")
    # Nothing was sealed with a wrong key: the kept checkpoint is the latest.
    proved = run_script("ledger", "prove", "--from", "kept", "--db", db,
                        **{KEY_FILE_ENV: "right.key"})  # fmt: skip
    assert proved.returncode == 0, proved.stderr
    size = kept.stdout.splitlines()[1]
    assert proved.stdout.startswith(
        f"consistent: tree {size} is a prefix of tree {size}"
    )


def test_row_130_an_interrupt_exits_130(workdir: Path) -> None:
    marker = workdir / "importing"
    source = (
        f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(60)\n"
    )
    name = write_module(workdir, source)
    process = subprocess.Popen(
        [journal_script(), "schema", "--flows", name],
        cwd=workdir,
        env=script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not marker.exists() and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr.strip() == "journal: error: aborted"  # after click's newline


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("list", "--json"),
        ("show", "{id}", "--events"),
        ("verify", "--all"),
        ("replay", "--all", "--flows", "journal.demo"),
        ("schema", "--flows", "journal.demo"),
        ("export", "{id}"),
        ("--help",),
    ],
)
def test_a_closed_pipe_ends_quietly_with_status_0(
    db: str, refund: str, workdir: Path, args: tuple[str, ...]
) -> None:
    """``journal list | head -1`` under ``set -o pipefail``: the reader is
    gone before the first write, every time (its end is closed first)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [journal_script(), *(a.format(id=refund) for a in args), "--db", db]
            if args != ("--help",)
            else [journal_script(), "--help"],
            cwd=workdir,
            env=script_env(),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 0
    assert result.stderr == ""
