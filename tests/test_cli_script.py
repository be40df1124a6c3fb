"""The installed ``journal`` console script, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_support import edit_payload
from tests.conftest import new_tenant, require_postgres

pytest_plugins = ["tests.cli_fixtures"]

Run = Callable[..., subprocess.CompletedProcess[str]]


def _demo(run_script: Run, *args: str) -> dict[str, object]:
    result = run_script("demo", "--json", *args)
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_demo_on_a_fresh_directory_works_and_its_next_commands_work_pasted(
    run_script: Run, workdir: Path
) -> None:
    result = run_script("demo")
    assert result.returncode == 0, result.stderr
    assert "Recorded 3 runs of demo.refund" in result.stdout
    assert (workdir / "journal.db").exists()
    hints = result.stdout.split("Next, try:\n", 1)[1].splitlines()
    assert len(hints) == 9
    for hint in hints:
        program, *args = hint.split()
        assert program == "journal"
        pasted = run_script(*args)
        assert pasted.returncode == 0, (hint, pasted.stderr)
    assert (workdir / "refund.jsonl").exists()


def test_replay_and_verify_through_the_script_keep_stdout_machine_readable(
    run_script: Run,
) -> None:
    first = _demo(run_script)["recorded"][0]["execution_id"]  # type: ignore[index]
    replayed = run_script("replay", first, "--flows", "journal.demo", "--json")
    assert replayed.returncode == 0
    assert json.loads(replayed.stdout)["verdict"] == "ok"
    assert replayed.stderr == ""
    verified = run_script("verify", first, "--json")
    assert verified.returncode == 0
    head = json.loads(verified.stdout)["head"]
    again = run_script("verify", first, "--expect-head", head)
    assert again.returncode == 0
    assert f"--expect-head {head}" in again.stderr


def test_the_script_reports_an_edited_row_with_exit_6_and_one_line(
    run_script: Run, workdir: Path
) -> None:
    first = _demo(run_script)["recorded"][0]["execution_id"]  # type: ignore[index]
    edit_payload(workdir / "journal.db", first, seq=2)
    result = run_script("verify", first)
    assert result.returncode == 6
    assert result.stderr == (
        f"journal: error: {first}: chain broken at seq 2: stored hash does not "
        "match the event's bytes\n"
    )
    replayed = run_script("replay", first, "--flows", "journal.demo")
    assert replayed.returncode == 6


def test_the_script_runs_as_python_dash_m(workdir: Path) -> None:
    import sys

    from tests.cli_support import script_env

    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "list", "--bogus"],
        cwd=workdir,
        env=script_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "No such option '--bogus'" in result.stderr


@pytest.mark.postgres
def test_demo_and_replay_work_against_postgresql(run_script: Run) -> None:
    url = require_postgres()
    tenant = new_tenant()
    data = _demo(run_script, "--db", url, "--tenant", tenant)
    first = data["recorded"][0]["execution_id"]  # type: ignore[index]
    result = run_script(
        "replay",
        first,
        "--flows",
        "journal.demo",
        JOURNAL_DB=url,
        JOURNAL_TENANT=tenant,
    )
    assert result.returncode == 0, result.stderr
    assert f"{first}: ok" in result.stdout
    hidden = run_script("show", first, "--db", url)
    assert hidden.returncode == 3
